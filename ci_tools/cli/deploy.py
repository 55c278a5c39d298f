"""``ci-tools deploy ENV --commit SHA``: deploy one commit and wait until it is live."""

from __future__ import annotations

import argparse
import time

from ci_tools.cli._common import DEPLOY_NEEDS, printer
from ci_tools.context import Context
from ci_tools.output import Report, report, say
from ci_tools.pipeline.deploy import deploy, parse_commit


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    d = subparsers.add_parser("deploy")
    d.add_argument("environment", help="staging or production")
    d.add_argument("--commit", required=True, help="the commit SHA (a short one is resolved)")
    d.add_argument("--timeout", type=float, default=900, help="seconds to wait for live (default 900)")
    d.add_argument(
        "--allow-other-branch",
        action="store_true",
        help="staging only: a commit from a feature branch (needs RENDER_API_KEY)",
    )
    d.add_argument("--poll", type=float, help=argparse.SUPPRESS)
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=run, needs=DEPLOY_NEEDS)


def run(ctx: Context, args: argparse.Namespace) -> int:
    env = ctx.config.env(args.environment)
    commit = parse_commit(args.commit)
    started_at = time.time()
    if not args.json:
        say(f"deploying {commit[:12]} to {env.name} ({env.render_service})")
    result = deploy(
        ctx,
        env,
        commit,
        timeout=args.timeout,
        allow_other_branch=args.allow_other_branch,
        poll=ctx.poll_seconds(2.0) if args.poll is None else args.poll,
        on_status=printer(args.json),
    )
    ctx.runner.set_output("deploy_id", result.deploy_id or "")
    ctx.runner.set_output("previous_deploy_id", result.previous_deploy_id or "")
    ctx.runner.set_output("started_at", str(int(started_at)))
    row = [
        "✓",
        commit[:12],
        result.deploy_id or "?",
        result.previous_deploy_id or "unknown",
        result.followed,
        f"{result.waited_s:.0f}s",
    ]
    document = {**result.__dict__, "started_at": int(started_at)}
    note = f"✓ {commit[:12]} is live on {env.name} after {result.waited_s:.0f}s"
    headers = ["", "commit", "deploy", "replaced", "followed by", "waited"]
    report(ctx.runner, Report(f"Deploy to {env.name}", headers, [row], document, [note]), as_json=args.json)
    return 0
