"""``ci-tools replay [ENV] --snapshot FILE --candidate REF [--live REF]``: does the new release still
know the daily user? Their conversation, replayed on a private copy of their memory by the live
commit and the candidate, before anything is deployed (production.yml runs it)."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from ci_tools.context import Context
from ci_tools.needs import Needs

NEEDS = Needs(optional=("MEMORY_SNAPSHOT_KEY", "RENDER_API_KEY", "RENDER_SERVICE_ID"))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "replay", help="replay the protected users' conversation with the live commit and a candidate, on a copy"
    )
    p.add_argument("environment", nargs="?", help="whose memory the snapshot holds (default: the memory backup's)")
    p.add_argument("--snapshot", type=Path, required=True, help="the snapshot file, or the folder that holds it")
    p.add_argument("--candidate", required=True, help="the commit about to be released (a SHA or a ref)")
    p.add_argument(
        "--live",
        help="the commit live now (default: Render's live deploy, with RENDER_API_KEY and RENDER_SERVICE_ID)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run, needs=NEEDS)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from ci_tools.checklist import report
    from ci_tools.cli._common import printer
    from ci_tools.errors import VerificationError
    from ci_tools.output import say
    from ci_tools.pipeline.replay import ReplayRequest, live_commit, replay, resolve

    config = ctx.config
    env = config.env(args.environment or config.memory_backup.environment)
    title = f"Replay of the protected users on {env.name}"
    if not config.replay.enabled:
        _warn(ctx, "replay off", "[tool.ci_tools.replay] enabled = false: this release goes out unreplayed")
        return 0
    users = config.memory_backup.protected_users
    if not users:
        _warn(ctx, "nobody to replay", "protected_users is empty: add the daily user's Telegram id to it")
        return 0
    candidate = resolve(args.candidate, "--candidate")
    live = resolve(args.live, "--live") if args.live else live_commit(ctx)
    request = ReplayRequest(env, args.snapshot, candidate, live, users)
    outcome = replay(ctx, request, printer(args.json))
    if outcome.stops:
        with contextlib.suppress(VerificationError):  # the table, then the one line below
            report(ctx.runner, title, outcome.items, as_json=args.json)
        raise VerificationError(
            f"the replay stopped the release of {candidate[:12]}: {outcome.stops[0]}"
            + (f" (and {len(outcome.stops) - 1} more in the table)" if len(outcome.stops) > 1 else ""),
            hint="fix forward on develop; production still serves "
            + (live[:12] if live else "what it served")
            + " (dispatch production with skip_replay only if you are sure)",
        )
    report(ctx.runner, title, outcome.items, as_json=args.json)
    if not args.json:
        say(f"✓ {candidate[:12]} answers the protected users as " + (live[:12] if live else "expected"))
    return 0


def _warn(ctx: Context, title: str, line: str) -> None:
    from ci_tools.output import say

    say(f"⚠ {line}")
    ctx.runner.annotate("warning", line, title=title)
    ctx.runner.add_summary(f"**Replay skipped**: {line}")
