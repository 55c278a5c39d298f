"""``ci-tools quiet ENV [--hotfix true]``: wait for a quiet moment before the deploy.

production.yml runs it after the replay and before ``release``: while the live bot handled an
update less than ``quiet_seconds`` ago, the release waits (at most ``quiet_wait_minutes``), then
goes ahead and says so. ``--hotfix true`` (the dispatch input) skips the wait. The logic and why:
ci_tools/pipeline/quiet.py.
"""

from __future__ import annotations

import argparse

from ci_tools.clients.health import Health, NotTheContract, health_of
from ci_tools.context import Context
from ci_tools.needs import NOTHING
from ci_tools.output import say
from ci_tools.pipeline.quiet import wait_for_quiet

DESCRIPTION = """\
Wait while the live bot is mid-conversation: an update handled within quiet_seconds
(default 120 in production) of now, read from its /healthz as a time (never a user or a
word). At most quiet_wait_minutes (default 15); then the release goes ahead and says so.
--hotfix true skips the wait. A bot without a health endpoint, or one that does not report
updates.last_handled_at, is not waited for, and the run says why."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quiet",
        description=DESCRIPTION,
    )
    parser.add_argument("environment", metavar="ENV")
    parser.add_argument(
        "--hotfix",
        default="false",
        help="true: release now, without waiting (the dispatch input as text; anything else waits, "
        "as a push to main has no input)",
    )
    parser.set_defaults(func=run, needs=NOTHING)


def run(ctx: Context, args: argparse.Namespace) -> int:
    env = ctx.config.env(args.environment)

    def look() -> Health:
        url = env.health_url
        if url is None:
            raise NotTheContract("health_path is empty")
        return health_of(url, ctx.request_timeout(10))

    quiet = wait_for_quiet(
        env, look, hotfix=args.hotfix.strip().lower() == "true", on_status=lambda line: say(f"  {line}")
    )
    mark = "⚠" if quiet.went_ahead_busy else "✓"
    say(f"{mark} {env.name}: {quiet.detail}")
    ctx.runner.add_summary(f"**Quiet moment**: {quiet.detail}")
    if quiet.went_ahead_busy:
        ctx.runner.annotate("warning", quiet.detail, title="released mid-conversation")
    return 0
