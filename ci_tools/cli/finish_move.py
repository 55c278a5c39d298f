"""``ci-tools finish-move --user-id ID``: runbook step 9 — the old bot becomes the testers' staging bot, no
earlier than ``[tool.ci_tools.move] window_days`` after the daily user's first message to the new bot
(``--force``: now, and the run says so); the cutover's rollback window closes with it."""

from __future__ import annotations

import argparse

from ci_tools.cli._common import printer
from ci_tools.context import Context
from ci_tools.errors import InputError
from ci_tools.memory.keys import parse_user_id
from ci_tools.needs import Needs
from ci_tools.output import Report, report
from ci_tools.pipeline.finish_move import Finished, FinishRequest, finish_move

# Run in production's environment: the new bot's token (whose id the kit's arrival record names), production's
# Redis and service (the cutover's window), and the old bot's service and Redis as production holds
# them for preflight (STAGING_REDIS_URL: production's SOURCE_REDIS_URL).
NEEDS = Needs(
    required=("TELEGRAM_BOT_TOKEN", "REDIS_URL", "RENDER_API_KEY", "RENDER_SERVICE_ID", "STAGING_RENDER_SERVICE_ID"),
    optional=("STAGING_REDIS_URL", "STAGING_RENDER_API_KEY", "OWNER_CHAT_ID"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    fin = subparsers.add_parser("finish-move")
    fin.add_argument("--user-id", required=True, help="the daily user's Telegram id")
    fin.add_argument(
        "--tester-ids",
        default="",
        help="who keeps the old bot, comma-separated Telegram ids (default: OWNER_CHAT_ID, you)",
    )
    fin.add_argument("--force", action="store_true", help="finish before the window has passed (the run says so)")
    fin.add_argument("--timeout", type=float, default=900, help="seconds for the old bot's redeploy")
    fin.add_argument("--deadline", type=float, default=90, help="seconds for its /healthz to show the new prefix")
    fin.add_argument("--poll", type=float, help=argparse.SUPPRESS)
    fin.set_defaults(func=run, needs=NEEDS)


def run(ctx: Context, args: argparse.Namespace) -> int:
    raw = args.tester_ids.replace(" ", "") or (ctx.optional("OWNER_CHAT_ID") or "")
    try:
        testers = tuple(int(part) for part in raw.split(",") if part)
    except ValueError:
        raise InputError(
            f"--tester-ids {args.tester_ids!r} is not Telegram user ids separated by commas",
            hint="e.g. 123456789,987654321",
        ) from None
    request = FinishRequest(
        parse_user_id(args.user_id),
        testers,
        force=args.force,
        timeout=args.timeout,
        deadline=args.deadline,
        poll=ctx.poll_seconds(2.0) if args.poll is None else args.poll,
    )
    result = finish_move(ctx, request, on_status=printer(False))
    _report(ctx, request, result)
    return 0


def _report(ctx: Context, request: FinishRequest, result: Finished) -> None:
    old, timing = result.old, result.timing
    prefix = ctx.config.move.old_bot_prefix
    arrived = f"{timing.arrived:%Y-%m-%d %H:%M} UTC" if timing.arrived else "not recorded"
    rows = [
        [
            "✓",
            f"@{old.bot_username} serves its testers only",
            f"{prefix} keys; anyone else: https://t.me/{result.new_bot.username}",
        ],
        ["✓", "its service", _service_line(result)],
        ["✓", "the daily user's first message to the new bot", arrived],
        ["✓", "the cutover's rollback window", "closed"],
    ]
    notes = []
    if result.forced:
        rows.insert(0, ["⚠", "forced: before the window was over", timing.refusal or ""])
        ctx.runner.annotate("warning", f"finish-move forced: {timing.refusal}", title="finish-move")
        notes.append(f"⚠ forced (the move's window was not over): {timing.refusal}")
    notes += [
        f"✓ the move is finished: the daily user is on @{result.new_bot.username}; send-back is closed",
        f"✓ {result.window}",
        "remove now: SOURCE_REDIS_URL from production's GitHub environment (Settings → Environments → "
        "production): it reaches the old bot's Redis, which production no longer needs",
        f"then make the repository agree: ci-tools init --staging-prefix {prefix} --tester-ids "
        f"{','.join(str(t) for t in request.tester_ids)}, commit, push to {old.branch}",
    ]
    report(ctx.runner, Report("Move finished", ["", "what", "now"], rows, notes=notes))


def _service_line(result: Finished) -> str:
    changed = f"{', '.join(result.changed)} set" if result.changed else "its settings were so already"
    return f"{changed}; redeployed ({result.deployed})" if result.deployed else f"{changed}; nothing to redeploy"
