"""``ci-tools finish-move --user-id ID``: runbook step 9 — the old bot becomes the testers' staging bot, no
earlier than ``[tool.ci_tools.move] window_days`` after the daily user's first message to the new bot
(``--force``: now, and the run says so); the cutover's rollback window closes with it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ci_tools.cli._common import printer
from ci_tools.context import Context
from ci_tools.errors import InputError
from ci_tools.memory.keys import parse_user_id
from ci_tools.memory.model import Stage
from ci_tools.needs import Needs
from ci_tools.output import Report, report
from ci_tools.pipeline.finish_move import Finished, FinishRequest, finish_move, retire_from_backup
from ci_tools.pipeline.retire_legacy import Retired

# Run in production's environment: the new bot's token (whose id the kit's arrival record names), production's
# Redis and service (the cutover's window), and the old bot's service and Redis as production holds
# them for preflight (STAGING_REDIS_URL: production's SOURCE_REDIS_URL); MEMORY_SNAPSHOT_KEY encrypts the
# backup of the daily user's legacy keys before they leave the old bot's Redis (required in Actions).
NEEDS = Needs(
    required=("TELEGRAM_BOT_TOKEN", "REDIS_URL", "RENDER_API_KEY", "RENDER_SERVICE_ID", "STAGING_RENDER_SERVICE_ID"),
    optional=("STAGING_REDIS_URL", "STAGING_RENDER_API_KEY", "OWNER_CHAT_ID", "MEMORY_SNAPSHOT_KEY"),
)
# --stage write removes what the plan stage backed up: the old bot's Redis alone.
RETIRE_NEEDS = Needs(required=("STAGING_REDIS_URL",), optional=("MEMORY_SNAPSHOT_KEY",))


class _Stage(argparse.Action):
    """``--stage write`` reads fewer secrets than the rest: the parse says so, before any is read."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, *_: Any) -> None:
        namespace.stage = Stage(values)
        if namespace.stage is Stage.WRITE:
            namespace.needs = RETIRE_NEEDS


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
    fin.add_argument(
        "--stage",
        action=_Stage,
        choices=[str(s) for s in Stage],
        default=Stage.ALL,
        help="plan = finish the move and back up the daily user's legacy keys (nothing removed); write = remove "
        "them where they match that backup (in --out); all = both",
    )
    fin.add_argument("--out", type=Path, default=Path("memory-out"), help="where the backup of their legacy keys goes")
    fin.add_argument(
        "--legacy-news",
        choices=("keep", "retire"),
        default="keep",
        help="their legacy keys production never got (told the old bot after the move's copy, or named by no "
        "pattern): keep = leave them, named; retire = remove them too (only the backup keeps them)",
    )
    fin.add_argument("--poll", type=float, help=argparse.SUPPRESS)
    fin.set_defaults(func=run, needs=NEEDS)


def run(ctx: Context, args: argparse.Namespace) -> int:
    if args.stage is Stage.WRITE:  # the old bot's Redis alone (RETIRE_NEEDS): their legacy keys removed
        if args.legacy_news == "retire":  # the write removes what the plan's backup holds: the plan chose
            raise InputError(
                "--legacy-news is the plan stage's choice: the write stage removes what the plan backed up, "
                "no more, so nothing was removed",
                hint="run finish-move --stage plan --legacy-news retire (it backs them up too), then --stage write",
            )
        write = FinishRequest(parse_user_id(args.user_id), (), out_dir=args.out, stage=Stage.WRITE)
        rows, notes = _retired(ctx, retire_from_backup(ctx, write))
        report(ctx.runner, Report("The daily user's legacy memory", ["", "what", "now"], rows, notes=notes))
        return 0
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
        out_dir=args.out,
        stage=args.stage,
        retire_news=args.legacy_news == "retire",
    )
    result = finish_move(ctx, request, on_status=printer(False))
    _report(ctx, request, result)
    return 0


def _retired(ctx: Context, retired: Retired | None) -> tuple[list[list[str]], list[str]]:
    """What became of the daily user's legacy keys (rows), where their backup is and its undo (notes):
    counts and key names, never a value."""
    if retired is None:
        return [], []
    what = "the daily user's legacy keys"
    if retired.nothing:
        return [["✓", what, f"nothing to retire: {retired.nothing}"]], []
    if retired.unreached:
        return [["⚠", what, "left where they are"]], [f"⚠ the daily user's legacy keys stay: {retired.unreached}"]
    where = f"the old bot's Redis, {retired.prefix or 'no prefix'!r}"
    backup = retired.backup or Path("?")
    encrypted = "encrypted" if ctx.snapshot_fernet() else "not encrypted: no MEMORY_SNAPSHOT_KEY"
    if ctx.runner.active:
        run_id = ctx.runner.run_id or "?"
        kept = f"this run's artifact memory-{run_id} ({backup.name}, {encrypted})"
        undo = (
            f"Actions → send-back → Run workflow: mode undo (after undo-dry-run), run_id {run_id}, while production "
            f"holds SOURCE_REDIS_URL; after that, the artifact's file with ci-tools memory undo FILE --apply, "
            "TARGET_REDIS_URL the old bot's Redis and production's MEMORY_SNAPSHOT_KEY"
        )
    else:
        kept = f"{backup} ({encrypted})"
        undo = f"ci-tools memory undo {backup} --apply, TARGET_REDIS_URL the old bot's Redis"
    if retired.deleted or retired.changed or retired.gone or not retired.backed_up:
        rows = [["✓", what, f"{len(retired.deleted)} retired from {where}"]]
        notes = [f"✓ their backup: {kept}", f"undo (puts them back where they were): {undo}"]
    else:
        rows = [["✓", what, f"{retired.backed_up} backed up in {where}; none removed yet"]]
        notes = [f"✓ their backup, before anything is removed: {kept}"]
    if retired.gone:
        rows.append(["✓", f"{len(retired.gone)} gone already", "an earlier run removed them, or they expired"])
    if retired.changed:
        rows.append(["⚠", f"{len(retired.changed)} left: changed since the backup", "still there"])
        notes.append(f"⚠ left, changed since the backup (the bot wrote them): {retired.names_changed}")
    if retired.news and retired.news_retired and not retired.deleted:  # the plan stage: backed up, none removed
        rows.append(["⚠", f"{len(retired.news)} production never got", "backed up; the write removes them, as asked"])
        notes.append(
            f"⚠ backed up, for the write to remove as asked (--legacy-news retire), though production never got them: "
            f"{retired.names_news} (the backup keeps them)"
        )
    elif retired.news and retired.news_retired:
        rows.append(["⚠", f"{len(retired.news)} production never got", "retired as asked (--legacy-news retire)"])
        notes.append(
            f"⚠ retired as asked, though production never got them: {retired.names_news} (the backup keeps them)"
        )
    elif retired.news:
        rows.append(["⚠", f"{len(retired.news)} left: production never got them", "still there, not in the backup"])
        notes.append(
            f"⚠ left, what production never got (told the old bot after the move's copy, or no pattern names it): "
            f"{retired.names_news} — to keep it, copy it to production (runbook step 6, on_conflict replace; "
            "uncovered include for a key no pattern names) and run finish-move again; to remove it anyway, run "
            "finish-move again with legacy_news retire (--legacy-news retire): its backup keeps it"
        )
    for name in retired.shared:
        rows.append(["⚠", f"{name} left", "it holds other users' records too"])
    return rows, notes


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
    retired_rows, retired_notes = _retired(ctx, result.retired)
    rows += retired_rows
    notes = []
    if result.forced:
        rows.insert(0, ["⚠", "forced: before the window was over", timing.refusal or ""])
        ctx.runner.annotate("warning", f"finish-move forced: {timing.refusal}", title="finish-move")
        notes.append(f"⚠ forced (the move's window was not over): {timing.refusal}")
    notes += [
        f"✓ the move is finished: the daily user is on @{result.new_bot.username}; send-back is closed",
        f"✓ {result.window}",
        _source_note(result.retired),
        f"then make the repository agree: ci-tools init --staging-prefix {prefix} --tester-ids "
        f"{','.join(str(t) for t in request.tester_ids)}, commit, push to {old.branch}",
    ]
    notes[-2:-2] = retired_notes  # before what the owner does by hand
    report(ctx.runner, Report("Move finished", ["", "what", "now"], rows, notes=notes))


def _source_note(retired: Retired | None) -> str:
    """SOURCE_REDIS_URL goes once nothing is left to settle on the old bot's Redis: copying what production
    never got, or retiring it on a rerun, reaches it through that variable."""
    where = "production's GitHub environment (Settings → Environments → production)"
    if retired is not None and retired.news and not retired.news_retired:
        return (
            f"keep SOURCE_REDIS_URL in {where} until the legacy keys left above are settled (copied to production, "
            "or retired on a rerun): both reach the old bot's Redis through it; then remove it"
        )
    return (
        f"remove now: SOURCE_REDIS_URL from {where}: it reaches the old bot's Redis, which production no longer needs"
    )


def _service_line(result: Finished) -> str:
    changed = f"{', '.join(result.changed)} set" if result.changed else "its settings were so already"
    return f"{changed}; redeployed ({result.deployed})" if result.deployed else f"{changed}; nothing to redeploy"
