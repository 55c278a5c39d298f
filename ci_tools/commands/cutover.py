"""``ci-tools cutover``: phase 2 — production gets the new bot's token, deploys main, probes."""

from __future__ import annotations

import argparse

from ci_tools import github
from ci_tools.commands._common import printer
from ci_tools.config import load_config
from ci_tools.cutover import cutover
from ci_tools.deploy import parse_commit
from ci_tools.needs import Needs
from ci_tools.output import say

NEEDS = Needs(
    required=("NEW_TELEGRAM_BOT_TOKEN", "RENDER_API_KEY", "RENDER_SERVICE_ID"),
    optional=("RENDER_DEPLOY_HOOK_URL",),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    cut = subparsers.add_parser(
        "cutover", help="phase 2: give production the new bot's token, deploy main, probe"
    )
    cut.add_argument("--commit", required=True, help="the main commit to deploy")
    cut.add_argument("--timeout", type=float, default=900)
    cut.add_argument("--deadline", type=float, default=90, help="probe deadline")
    cut.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    cut.set_defaults(func=run, needs=NEEDS)


def run(args: argparse.Namespace) -> int:
    username = cutover(load_config(), parse_commit(args.commit), timeout=args.timeout, deadline=args.deadline,
                       poll=args.poll, on_status=printer(False))  # fmt: skip
    say(f"✓ production now runs @{username}")
    github.add_summary(f"### Cutover\n\n✓ production runs @{username}")
    return 0
