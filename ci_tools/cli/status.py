"""``ci-tools status [ENV…]``: what is live in each environment, and is it healthy."""

from __future__ import annotations

import argparse

from ci_tools.checklist import report
from ci_tools.context import Context
from ci_tools.needs import Needs
from ci_tools.pipeline.status import status

PER_ENV = ("TELEGRAM_BOT_TOKEN", "RENDER_SERVICE_ID")
ENVS = ("STAGING", "PRODUCTION")
# One environment reads the plain names (a workflow job in its GitHub environment); several
# read them prefixed, as preflight does.
NEEDS = Needs(
    optional=(*PER_ENV, "RENDER_API_KEY", "GITHUB_TOKEN"),  # the token reads the snapshots' ages
    local=(*(f"{e}_{n}" for e in ENVS for n in PER_ENV), "GH_TOKEN"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status")
    parser.add_argument("envs", nargs="*", metavar="ENV", help="default: every environment")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run, needs=NEEDS)


def run(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.config
    names = list(args.envs) or list(config.environments)
    items, live = status(ctx, list(args.envs))
    for env, commit in live.items():  # what the watch probes next
        ctx.runner.set_output(f"{env}_commit" if len(names) > 1 else "commit", commit)
    report(ctx.runner, f"Status of {', '.join(names)}", items, as_json=args.json)
    return 0
