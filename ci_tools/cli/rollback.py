"""``ci-tools rollback ENV [--to dep-…|--previous]``: go back to an earlier deploy, then probe."""

from __future__ import annotations

import argparse

from ci_tools.cli._common import (
    TOKEN,
    WEBHOOK_SECRET,
    add_probe_options,
    printer,
    report_probe,
    tell_owner,
)
from ci_tools.context import Context
from ci_tools.errors import InputError
from ci_tools.memory.restore_points import safety_net
from ci_tools.needs import Needs
from ci_tools.output import say
from ci_tools.pipeline.release import ReleaseRequest, probe_serving
from ci_tools.pipeline.rollback import rollback


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    r = subparsers.add_parser("rollback")
    r.add_argument("environment")
    target = r.add_mutually_exclusive_group()
    target.add_argument("--to", dest="deploy_id", help="the deploy id to go back to (dep-…)")
    target.add_argument(
        "--previous",
        action="store_true",
        help="the newest earlier deploy that went live, was not rejected (rolled back from) "
        "and carries another commit (default)",
    )
    r.add_argument("--timeout", type=float, default=900)
    add_probe_options(r)
    r.add_argument("--poll", type=float, help=argparse.SUPPRESS)
    r.add_argument("--json", action="store_true")
    r.set_defaults(
        func=run,
        needs=Needs(
            required=("RENDER_API_KEY", "RENDER_SERVICE_ID", *TOKEN), optional=(*WEBHOOK_SECRET, "OWNER_CHAT_ID")
        ),
    )


def run(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.config
    env = config.env(args.environment)
    if args.deploy_id is not None and not args.deploy_id.strip().startswith("dep-"):
        raise InputError(f"--to {args.deploy_id!r} is not a deploy id", hint="deploy ids look like dep-…")

    def warn(line: str) -> None:
        ctx.runner.annotate("warning", line, title="rolling back to a rejected deploy")
        say(f"⚠ {line}")

    back = rollback(
        ctx,
        env,
        to=(args.deploy_id or "").strip() or None,
        timeout=args.timeout,
        poll=ctx.poll_seconds(2.0) if args.poll is None else args.poll,
        on_status=printer(args.json),
        on_warning=warn,
    )
    target, final = back.target, back.final
    commit = str(target.commit)
    if not back.changed:
        line = f"{env.name} already runs {commit[:12]} ({final.id}): nothing was rolled back"
        ctx.runner.add_summary(f"### Rollback of {env.name}\n\n{line}")
        if not args.json:
            say(f"✓ {line}")
        return 0
    rebuilt = f"; {back.how()}" if back.rebuilt else ""
    ctx.runner.add_summary(
        f"### Rollback of {env.name}\n\nback to `{target.id}` (`{commit[:12]}`), now live as `{final.id}`{rebuilt}"
    )
    if env.name == config.memory_backup.environment:
        note = safety_net(env.name, "", None)
        ctx.runner.add_summary(note)
        if not args.json:
            say(note)
    if not args.json:
        say(f"✓ {env.name} is back on {commit[:12]} ({final.id}){rebuilt}; probing")
    tell_owner(ctx, env, f"↩ {back.how()} by a dispatched rollback")
    request = ReleaseRequest(
        env,
        commit,
        ctx.secrets["TELEGRAM_BOT_TOKEN"],
        deadline=args.deadline,
        webhook_secret=ctx.secrets.get("TELEGRAM_WEBHOOK_SECRET"),
        conversation=args.conversation,
    )
    probe_serving(  # judged from the moment the commit gone back to serves again (pipeline/serving.py)
        ctx,
        request,
        commit,
        final.finished_at,
        f"Probe of {env.name} after rollback",
        lambda title, checks: report_probe(ctx.runner, title, checks, as_json=args.json, commit=commit),
        printer(args.json),
    )
    return 0
