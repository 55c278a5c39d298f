"""``ci-tools probe ENV --commit SHA``: read-only smoke checks of the deployed bot, all at once."""

from __future__ import annotations

import argparse
import time

from ci_tools.cli._common import TOKEN, WEBHOOK_SECRET, add_probe_options, report_probe
from ci_tools.context import Context
from ci_tools.needs import Needs
from ci_tools.pipeline.deploy import parse_commit
from ci_tools.pipeline.release import ReleaseRequest, probe_or_fail


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("probe")
    p.add_argument("environment")
    p.add_argument("--commit", required=True, help="the commit the service must run")
    add_probe_options(p)
    p.add_argument(
        "--since",
        type=float,
        help="epoch seconds the deploy started (default: webhook errors of the last 10 minutes count)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run, needs=Needs(required=TOKEN, optional=WEBHOOK_SECRET))


def run(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.config
    commit = parse_commit(args.commit)
    request = ReleaseRequest(
        config.env(args.environment),
        commit,
        ctx.secrets["TELEGRAM_BOT_TOKEN"],
        deadline=args.deadline,
        webhook_secret=ctx.secrets.get("TELEGRAM_WEBHOOK_SECRET"),
        conversation=args.conversation,
    )
    since = args.since if args.since is not None else time.time() - 600
    probe_or_fail(
        ctx,
        request,
        commit,
        since,
        f"Probe of {request.env.name} at {commit[:12]}",
        lambda title, checks: report_probe(ctx.runner, title, checks, as_json=args.json, commit=commit),
    )
    return 0
