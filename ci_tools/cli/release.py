"""``ci-tools release ENV --commit SHA``: what staging.yml and production.yml run.

Deploy, probe, and in production roll back when the probe fails (the rule lives in
``ci_tools.pipeline.release``, shared with the rehearsal).
"""

from __future__ import annotations

import argparse

from ci_tools.cli._common import (
    RENDER,
    TOKEN,
    WEBHOOK_SECRET,
    add_probe_options,
    printer,
    report_probe,
    tell_owner,
)
from ci_tools.context import Context
from ci_tools.errors import FatalError
from ci_tools.memory.restore_points import safety_net
from ci_tools.needs import Needs
from ci_tools.output import say
from ci_tools.pipeline.deploy import parse_commit
from ci_tools.pipeline.release import ReleaseRequest, release


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    rel = subparsers.add_parser("release")
    rel.add_argument("environment")
    rel.add_argument("--commit", required=True)
    rel.add_argument("--timeout", type=float, default=900)
    add_probe_options(rel)
    rel.add_argument("--allow-other-branch", action="store_true", help="staging only")
    rel.add_argument(
        "--memory-snapshot",
        default="",
        metavar="OUTCOME",
        help="the snapshot step's outcome: 'success' when this run kept memory-before-<sha>, "
        "which a rollback then names with its run",
    )
    rel.add_argument(
        "--no-bake",
        dest="bake",
        action="store_false",
        help="skip the bake window after the probe (bake_minutes): the run warns that nobody watched",
    )
    rel.add_argument("--poll", type=float, help=argparse.SUPPRESS)
    rel.set_defaults(func=run, needs=Needs(required=TOKEN, optional=(*RENDER, *WEBHOOK_SECRET, "OWNER_CHAT_ID")))


def run(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.config
    request = ReleaseRequest(
        env=config.env(args.environment),
        commit=parse_commit(args.commit),
        token=ctx.secrets["TELEGRAM_BOT_TOKEN"],
        timeout=args.timeout,
        deadline=args.deadline,
        poll=ctx.poll_seconds(2.0) if args.poll is None else args.poll,
        allow_other_branch=args.allow_other_branch,
        webhook_secret=ctx.secrets.get("TELEGRAM_WEBHOOK_SECRET"),
        conversation=args.conversation,
        bake=args.bake,
    )
    say(f"releasing {request.commit[:12]} to {request.env.name}")
    if not args.bake and request.env.bake_minutes > 0:
        minutes = request.env.bake_minutes
        line = f"--no-bake: nobody watches {request.commit[:12]} after its probe (bake_minutes is {minutes:g})"
        say(f"⚠ {line}")
        ctx.runner.annotate("warning", line, title="bake skipped")
        ctx.runner.add_summary(f"**Bake skipped**: {line}")

    rolled: list[str] = []

    def rolling_back(why: str) -> None:
        rolled.append(why)
        ctx.runner.annotate("error", why, title=f"{request.env.name} release failed: rolling back")
        if request.env.name == config.memory_backup.environment:
            note = safety_net(request.env.name, request.commit, ctx.runner.run_id if args.memory_snapshot else None)
            say(note)
            ctx.runner.add_summary(note)

    ctx.runner.set_output("bot_url", f"https://t.me/{request.env.bot_username}")  # the environment's url
    try:
        result = release(
            ctx,
            request,
            on_status=printer(False),
            on_probe=lambda title, checks: report_probe(ctx.runner, title, checks),
            on_rollback=rolling_back,
        )
    except FatalError as failed:
        if rolled or "could not be judged in its bake" in failed.message:
            tell_owner(ctx, request.env, f"↩ {failed.message}" if rolled else f"⚠ {failed.message}")
        raise
    if result.unheld:
        say(f"⚠ {result.unheld}")
        ctx.runner.annotate("warning", result.unheld, title=f"{request.env.name} level not held")
        ctx.runner.add_summary(f"**Level not held**: {result.unheld}")
    baked = result.baked
    if baked is not None and baked.ended_early:  # another commit serves: this one is neither live nor baked
        tell_owner(ctx, request.env, f"↷ {request.commit[:12]} no longer serves; its bake {baked.detail}")
        ctx.runner.add_summary(f"**Bake (ended early, another commit serves)**: {baked.detail}")
    elif baked is not None and baked.inconclusive:  # the release stays; the owner hears why it was not judged
        ctx.runner.annotate("warning", baked.inconclusive, title=f"{request.env.name} bake inconclusive")
        tell_owner(ctx, request.env, f"⚠ {request.commit[:12]} is live; its bake was inconclusive: {baked.detail}")
        ctx.runner.add_summary(f"**Bake (inconclusive)**: {baked.detail}")
    elif baked is not None:
        tell_owner(ctx, request.env, f"✓ {request.commit[:12]} is live and baked: {baked.detail}")
        ctx.runner.add_summary(f"**Bake**: {baked.detail}")
    ctx.runner.set_output("deploy_id", result.deploy_id or "")
    ctx.runner.set_output("previous_deploy_id", result.previous_deploy_id or "")
    return 0
