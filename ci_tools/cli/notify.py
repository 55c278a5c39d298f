"""``ci-tools notify --env ENV TEXT``: the environment's bot tells the owner (OWNER_CHAT_ID), and no
one else. For the owner's own workflows; the pipeline's own messages go the same way."""

from __future__ import annotations

import argparse

from ci_tools.context import Context
from ci_tools.errors import InputError, RemoteError
from ci_tools.needs import Needs
from ci_tools.output import say
from ci_tools.pipeline.notify import notify

NEEDS = Needs(optional=("TELEGRAM_BOT_TOKEN", "OWNER_CHAT_ID"))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("notify")
    p.add_argument("--env", required=True, dest="environment", help="whose bot writes")
    p.add_argument("text", help="what happened, in one short message (the run's link is added)")
    p.add_argument("--strict", action="store_true", help="exit 4 when the owner could not be told (default: warn)")
    p.set_defaults(func=run, needs=NEEDS)


def run(ctx: Context, args: argparse.Namespace) -> int:
    if not args.text.strip():
        raise InputError("the message is empty", hint='say what happened, e.g. ci-tools notify --env production "…"')
    env = ctx.config.env(args.environment)
    warning = notify(ctx, env, args.text.strip())
    if warning is None:
        say(f"✓ the owner was told by @{env.bot_username}")
        return 0
    if args.strict:
        raise RemoteError(warning, hint="send the bot /start from the owner's account, then run again")
    say(f"⚠ {warning}")
    ctx.runner.annotate("warning", warning, title="owner not told")
    return 0
