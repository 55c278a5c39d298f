"""``ci-tools keyvalue open|close|sweep``: admit this runner to Render's private Key Value, then
not; and close what a killed run left open."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ci_tools.cli._common import printer
from ci_tools.context import Context
from ci_tools.needs import Needs
from ci_tools.output import say
from ci_tools.pipeline.keyvalue import close, open_for, runner_ip, sweep

NEEDS = Needs(required=("RENDER_API_KEY",))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keyvalue")
    sub = parser.add_subparsers(dest="keyvalue_command", required=True, metavar="ACTION")
    opening = sub.add_parser("open", help="add this runner's address to the environments' allow lists")
    opening.add_argument(
        "--env",
        dest="envs",
        action="append",
        required=True,
        metavar="ENV",
        help="an environment whose Key Value to open (repeatable)",
    )
    opening.add_argument("--ip", help="the address to admit (default: asked of IP_ECHO_URL)")
    opening.add_argument("--state", type=Path, required=True, help="where to record the lists as they were")
    opening.add_argument(
        "--commit",
        help="the commit this job serves: if it changes render.yaml and a Blueprint auto-syncs it, "
        "wait for Render's sync first (it re-applies ipAllowList: [] and would shut this runner out)",
    )
    opening.set_defaults(func=run_open, needs=NEEDS)
    closing = sub.add_parser("close", help="remove this run's own entries, leave every other (safe to repeat)")
    closing.add_argument("--state", type=Path, required=True)
    closing.set_defaults(func=run_close, needs=NEEDS)
    sweep = sub.add_parser("sweep", help="remove entries our runs added more than an hour ago (a killed run's)")
    sweep.add_argument("--env", dest="envs", action="append", required=True, metavar="ENV")
    sweep.add_argument("--older-than", type=float, default=60, metavar="MINUTES")
    sweep.set_defaults(func=run_sweep, needs=NEEDS)


def run_open(ctx: Context, args: argparse.Namespace) -> int:
    ip = runner_ip(ctx, args.ip)
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # the watch closes it after an hour
    note = f"ci-tools run {ctx.runner.run_id or 'local'} at {at} (removed when it ends)"
    opened = open_for(
        ctx, ctx.secrets["RENDER_API_KEY"], args.envs, ip, args.state, note, printer(False), commit=args.commit
    )
    say(f"✓ {', '.join(opened) or 'nothing'} opened to this runner; run `ci-tools keyvalue close` afterwards")
    ctx.runner.add_summary(f"### Key Value access\n\nopened to this runner for the job: {', '.join(opened) or 'none'}")
    return 0


def run_close(ctx: Context, args: argparse.Namespace) -> int:
    restored = close(ctx, ctx.secrets["RENDER_API_KEY"], args.state, printer(False))
    say(f"✓ this run's allow-list entries removed: {', '.join(restored) or 'none needed'}")
    ctx.runner.add_summary(
        f"### Key Value access\n\nthis run's entries removed: {', '.join(restored) or 'none needed'}"
    )
    return 0


def run_sweep(ctx: Context, args: argparse.Namespace) -> int:
    removed = sweep(ctx, ctx.secrets["RENDER_API_KEY"], args.envs, timedelta(minutes=args.older_than), printer(False))
    line = f"stale allow-list entries removed: {', '.join(removed) or 'none'}"
    say(f"✓ {line}")
    ctx.runner.add_summary(f"### Key Value access\n\n{line}")
    return 0
