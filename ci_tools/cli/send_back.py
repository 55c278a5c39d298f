"""``ci-tools send-back --user-id ID``: during the move's window, the daily user back on their old bot
with what they told the new one since the move; ``--undo BACKUP`` puts the old bot's keys back."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ci_tools.cli._common import add_write_flags, report_outcome, resume_command, undo_command, wants_apply
from ci_tools.context import Context
from ci_tools.errors import InputError
from ci_tools.memory.keys import parse_user_id
from ci_tools.memory.model import Uncovered
from ci_tools.needs import Needs
from ci_tools.output import Report, report, say
from ci_tools.pipeline.send_back import WHY_KEY, SendBack, SentBack, send_back, undo_send_back

# Run in production's environment: its own Redis (read only), and the old bot's — its Redis
# (production's SOURCE_REDIS_URL, passed as STAGING_REDIS_URL), token and service — as
# production holds them for preflight. Staging never holds production's Redis.
NEEDS = Needs(
    required=(
        "REDIS_URL",
        "STAGING_REDIS_URL",
        "STAGING_TELEGRAM_BOT_TOKEN",
        "STAGING_RENDER_SERVICE_ID",
        "RENDER_API_KEY",
    ),
    optional=("MEMORY_SNAPSHOT_KEY", "STAGING_RENDER_API_KEY"),
)
# The undo writes the old bot's Redis alone.
UNDO_NEEDS = Needs(required=("STAGING_REDIS_URL",), optional=("MEMORY_SNAPSHOT_KEY",))


class _Undo(argparse.Action):
    """``--undo`` reads fewer secrets than a send-back: the parse says so, before any is read."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, *_: Any) -> None:
        namespace.undo = Path(values)
        namespace.needs = UNDO_NEEDS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    back = subparsers.add_parser("send-back")
    back.add_argument("--user-id", help="the daily user's Telegram id")
    back.add_argument(
        "--undo", action=_Undo, metavar="BACKUP", help="the backup an apply kept (the file, or its artifact's folder)"
    )
    add_write_flags(
        back,
        "with --apply: plan = snapshot and back up only (nothing written); write = write from that plan, "
        "verify, and the old bot tells the user; all = both",
    )
    back.add_argument(
        "--uncovered",
        type=Uncovered,
        choices=list(Uncovered),
        default=Uncovered.REFUSE,
        help="the user's production keys that no memory pattern covers",
    )
    back.add_argument(
        "--old-bot-changes",
        choices=("refuse", "replace"),
        default="refuse",
        help="what the user told the old bot since the move's copy (or an earlier send-back): refuse (the "
        "default), or replace it (this run's backup keeps it, and --undo puts it back)",
    )
    back.add_argument("--text", default="", help="the old bot's one message (default: [tool.ci_tools.move])")
    back.add_argument("--out", type=Path, default=Path("memory-out"), help="where the snapshot and backup go")
    back.add_argument("--json", action="store_true")
    back.set_defaults(func=run, needs=NEEDS, undo=None)


def run(ctx: Context, args: argparse.Namespace) -> int:
    applying = wants_apply(args)
    if applying:
        ctx.require_snapshot_key(WHY_KEY)
    if args.undo is not None:
        return _undo(ctx, args, applying)
    if not args.user_id:
        raise InputError("send-back needs --user-id", hint="the daily user's Telegram id, or --undo BACKUP")
    request = SendBack(
        user_id=parse_user_id(args.user_id),
        apply=applying,
        stage=args.stage,
        out_dir=args.out,
        text=args.text.strip(),
        uncovered=args.uncovered,
        resume_command=resume_command(),
        undo_command=undo_command(ctx, "send-back"),
        replace=args.old_bot_changes == "replace",
    )
    result = send_back(ctx, request)
    _report(ctx, args, request, result)
    return 0


def _report(ctx: Context, args: argparse.Namespace, request: SendBack, result: SentBack) -> None:
    old = result.old
    title = f"send-back of user {request.user_id}: production → @{old.bot.username} ({old.env.name})"
    report_outcome(ctx, result.outcome, args.json, title, workflow="send-back")
    if result.told is not None:
        line = f"✓ @{old.bot.username} serves user {request.user_id} again and told them: {result.told}"
        ctx.runner.add_summary(
            line + "\n\nProduction's memory was read, never changed. Once the new bot is fixed, move them "
            "forward again: migrate-memory (on_conflict replace), then announce; finish-move waits until then."
        )
        if not args.json:
            say(line)
    elif result.already:
        line = (
            f"✓ @{old.bot.username} already holds user {request.user_id}'s memory as production has it "
            "(an earlier send-back): nothing written, no second message"
        )
        ctx.runner.add_summary(
            line + f"\n\nIf they never got the first one, tell them yourself: https://t.me/{old.bot.username}"
        )
        if not args.json:
            say(line)
    elif not args.json and not request.apply:
        say(f"✓ @{old.bot.username} can serve user {request.user_id} (their old keys, no allowlist in the way)")


def _undo(ctx: Context, args: argparse.Namespace, applying: bool) -> int:
    path, count, left = undo_send_back(ctx, args.undo, args.out, apply=applying)
    if applying:
        rows = [["✓", f"put back {count - len(left)} key(s) of the old bot", f"the state before this undo: {path}"]]
        rows += [
            ["⚠", f"{key.decode(errors='replace')} changed since the send-back: left as the user's newer memory", ""]
            for key in left
        ]
        notes = ["production's memory was never changed: the new bot still holds all of it"]
    else:
        rows = [["→", f"dry run: {count} key(s) of the old bot would be put back", "rerun with --apply"]]
        notes = []
    document = {"applied": applying, "records": count, "left_alone_changed": [k.decode(errors="replace") for k in left]}
    report(ctx.runner, Report("send-back undo", ["", "what", "note"], rows, document, notes), as_json=args.json)
    return 0
