"""``ci-tools replay``: does the new release still know the daily user? Their conversation,
replayed on private copies of their memory by the live commit and the candidate, before
anything is deployed (production.yml runs it, in two steps):

- ``ci-tools replay [ENV] --snapshot FILE --candidate REF [--live REF] --out DIR`` holds the
  snapshot key (and Render's, to find the live commit) and prepares DIR;
- ``ci-tools replay --from DIR`` holds no secret and runs the bots.

Without ``--out`` and ``--from``, both halves run in one process (a person's laptop)."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from ci_tools.checklist import Item, report
from ci_tools.cli._common import printer
from ci_tools.context import Context
from ci_tools.errors import InputError, VerificationError
from ci_tools.needs import NOTHING, Needs
from ci_tools.output import say
from ci_tools.pipeline.replay import (
    Outcome,
    ReplayRequest,
    live_commit,
    load_prepared,
    prepare,
    prepare_off,
    remove,
    replay,
    resolve,
    run_prepared,
)

NEEDS = Needs(optional=("MEMORY_SNAPSHOT_KEY", "RENDER_API_KEY", "RENDER_SERVICE_ID"))


class _FromPrepared(argparse.Action):
    """``--from DIR``: the run half, which reads no secret (so its workflow step passes none)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, *_: Any) -> None:
        setattr(namespace, self.dest, Path(values))
        namespace.needs = NOTHING


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("replay")
    p.add_argument("environment", nargs="?", help="whose memory the snapshot holds (default: the memory backup's)")
    p.add_argument("--snapshot", type=Path, help="the snapshot file, or the folder that holds it")
    p.add_argument("--candidate", help="the commit about to be released (a SHA or a ref)")
    p.add_argument(
        "--live",
        help="the commit live now (default: Render's live deploy, with RENDER_API_KEY and RENDER_SERVICE_ID)",
    )
    p.add_argument(
        "--out", type=Path, help="only prepare: decrypt into DIR for a later `--from DIR` that holds no secret"
    )
    p.add_argument(
        "--from",
        dest="prepared",
        action=_FromPrepared,
        metavar="DIR",
        help="run a replay prepared with --out (reads no secret; refuses where one is in reach, in Actions)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run, needs=NEEDS)


def run(ctx: Context, args: argparse.Namespace) -> int:
    if args.prepared is not None:
        if args.snapshot or args.candidate or args.live or args.out or args.environment:
            raise InputError("--from runs a prepared replay alone", hint="drop the other arguments")
        return _run_prepared(ctx, args)
    if args.snapshot is None or args.candidate is None:
        raise InputError("replay needs --snapshot and --candidate (or --from DIR)", hint="see ci-tools replay --help")
    config = ctx.config
    env = config.env(args.environment or config.memory_backup.environment)
    if not config.replay.enabled:
        why = "[tool.ci_tools.replay] enabled = false: this release goes out unreplayed"
        if args.out is not None:
            prepare_off(args.out, env, why)
        _warn(ctx, "replay off", why)
        return 0
    candidate = resolve(args.candidate, "--candidate")
    live = resolve(args.live, "--live") if args.live else live_commit(ctx)
    request = ReplayRequest(env, args.snapshot, candidate, live, config.memory_backup.protected_users)
    if args.out is not None:
        prepared = prepare(ctx, request, args.out)
        say(
            f"prepared the replay of {len(prepared.users)} user(s) in {args.out}: "
            f"next, `ci-tools replay --from {args.out}` in a step that holds no secret"
        )
        return 0
    outcome = replay(ctx, request, _printer(args.json))
    return _verdict(ctx, args, candidate, live, outcome)


def _run_prepared(ctx: Context, args: argparse.Namespace) -> int:
    prepared = load_prepared(args.prepared)
    try:
        if prepared.off:
            _warn(ctx, "replay off", prepared.off)
            return 0
        outcome = run_prepared(ctx, prepared, _printer(args.json))
    finally:
        remove(args.prepared)
    return _verdict(ctx, args, prepared.candidate, prepared.live, outcome)


def _verdict(ctx: Context, args: argparse.Namespace, candidate: str, live: str | None, outcome: Outcome) -> int:
    title = "Replay of the protected users"
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
        compared = any(_compared(item) for item in outcome.items)
        if compared:
            say(f"✓ {candidate[:12]} answers the protected users as " + (live[:12] if live else "expected"))
        else:
            say(f"⚠ nothing of the protected users' turns was compared for {candidate[:12]} (see the table)")
    return 0


def _printer(as_json: bool) -> Any:
    return printer(as_json)


def _compared(item: Item) -> bool:
    return item.name.startswith("user ") and item.ok is True and not item.warning


def _warn(ctx: Context, title: str, line: str) -> None:
    say(f"⚠ {line}")
    ctx.runner.annotate("warning", line, title=title)
    ctx.runner.add_summary(f"**Replay skipped**: {line}")
