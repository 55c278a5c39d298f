"""``ci-tools announce --chat-id ID``: runbook step 7 — the old bot tells the user where the new one is."""

from __future__ import annotations

import argparse

from ci_tools.context import Context
from ci_tools.memory.keys import parse_user_id
from ci_tools.needs import Needs
from ci_tools.output import say
from ci_tools.pipeline.announce import announce


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    ann = subparsers.add_parser("announce")
    ann.add_argument("--chat-id", required=True, help="the user's Telegram id")
    ann.add_argument("--text", help="default: 'Official bot moved here: https://t.me/<new bot>'")
    # TELEGRAM_BOT_TOKEN here is the OLD bot's: it is the one the user still talks to.
    ann.set_defaults(func=run, needs=Needs(required=("TELEGRAM_BOT_TOKEN",)))


def run(ctx: Context, args: argparse.Namespace) -> int:
    chat_id = parse_user_id(args.chat_id)
    sent = announce(ctx, ctx.secrets["TELEGRAM_BOT_TOKEN"], chat_id, args.text)
    say(f"✓ sent: {sent}")
    return 0
