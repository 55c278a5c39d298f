"""``ci-tools history ENV``: the environment's releases and rollbacks, newest first."""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

from ci_tools.checklist import BUDGET
from ci_tools.clients.health import NotTheContract, Unreachable, health_of
from ci_tools.context import Context
from ci_tools.errors import ConfigError, InputError
from ci_tools.needs import Needs
from ci_tools.output import Report, report
from ci_tools.pipeline.history import history, interleaved, said_off
from ci_tools.pipeline.status import secret

NEEDS = Needs(
    optional=("RENDER_API_KEY", "RENDER_SERVICE_ID"),
    local=("STAGING_RENDER_SERVICE_ID", "PRODUCTION_RENDER_SERVICE_ID"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("history")
    parser.add_argument("environment")
    parser.add_argument("--limit", type=int, default=20, help="how many deploys (default 20)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run, needs=NEEDS)


def run(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.config
    env = config.env(args.environment)
    if args.limit < 1:
        raise InputError(f"--limit {args.limit} is not a positive number", hint="e.g. --limit 20")
    api_key = ctx.optional("RENDER_API_KEY")
    service_id = secret(ctx, env, "RENDER_SERVICE_ID", single=True)
    if not api_key or not service_id:
        raise ConfigError(
            "history reads Render's deploy list: it needs RENDER_API_KEY and RENDER_SERVICE_ID",
            hint=f"export both (or {env.name.upper()}_RENDER_SERVICE_ID)",
        )
    with ctx.render(api_key, service_id, deadline=time.monotonic() + BUDGET, timeout=BUDGET) as api:
        releases = history(api, args.limit, Path.cwd(), ordered=env.rollback_on_failed_probe)
    moments = []
    if env.health_url:  # the bot kit's /oops moments, from the health answer (a bot without them: none)
        # The deploys are the history; the moments are what a bot that keeps them adds to it.
        with contextlib.suppress(Unreachable, NotTheContract):
            moments = said_off(health_of(env.health_url, BUDGET).oops, Path.cwd())
    releases = interleaved(releases, moments)
    rows = [r.row() for r in releases]
    document = {"environment": env.name, "releases": [r.__dict__ for r in releases]}
    headers = ["deploy", "commit", "trigger", "status", "started", "took"]
    report(
        ctx.runner,
        Report(f"History of {env.name} (newest first)", headers, rows, document, shown=args.limit),
        as_json=args.json,
    )
    return 0
