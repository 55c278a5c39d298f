"""``ci-tools preflight``: runbook step 4 — which service, token and Redis belong together."""

from __future__ import annotations

import argparse

from ci_tools.checklist import report
from ci_tools.context import Context
from ci_tools.needs import Needs
from ci_tools.pipeline.preflight import preflight

PER_ENV = ("TELEGRAM_BOT_TOKEN", "REDIS_URL", "RENDER_SERVICE_ID", "RENDER_API_KEY")
# It sees both environments at once, so it reads their secrets under prefixed names.
NEEDS = Needs(
    optional=(
        *(f"{env}_{name}" for env in ("STAGING", "PRODUCTION") for name in PER_ENV),
        "RENDER_API_KEY",
        "GITHUB_TOKEN",  # with GITHUB_REPOSITORY: GitHub's settings are checked too
        "GH_TOKEN",
    )
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    pre = subparsers.add_parser("preflight")
    pre.add_argument(
        "--before-new-bot",
        action="store_true",
        help="step 4 run before step 1 (@BotFather): check what exists (the daily user's bot, services, Redis), "
        "not the new bot",
    )
    pre.add_argument("--json", action="store_true")
    pre.set_defaults(func=run, needs=NEEDS)


def run(ctx: Context, args: argparse.Namespace) -> int:
    report(ctx.runner, "Preflight", preflight(ctx, before_new_bot=args.before_new_bot), as_json=args.json)
    return 0
