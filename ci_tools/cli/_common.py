"""What several commands share: reporting a probe, Needs every Render command reads, asking the owner."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from ci_tools.actions import Runner
from ci_tools.context import Context
from ci_tools.needs import Needs
from ci_tools.output import Report, report, say
from ci_tools.pipeline.notify import notify
from ci_tools.pipeline.probe import Check, summary_rows
from ci_tools.settings import Environment

RENDER = ("RENDER_DEPLOY_HOOK_URL", "RENDER_API_KEY", "RENDER_SERVICE_ID")
DEPLOY_NEEDS = Needs(optional=RENDER)
TOKEN = ("TELEGRAM_BOT_TOKEN",)
WEBHOOK_SECRET = ("TELEGRAM_WEBHOOK_SECRET",)  # signs the probe's conversation
PROBE_HEADERS = ["", "check", "seen", "likely cause", "time"]


def add_probe_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deadline", type=float, default=90, help="seconds to keep retrying failing checks")
    parser.add_argument(
        "--no-conversation",
        dest="conversation",
        action="store_false",
        help="skip the conversation with the probe user (a bot without one is probed at its own level anyway)",
    )


def report_probe(runner: Runner, title: str, checks: list[Check], *, as_json: bool = False, commit: str = "") -> None:
    document = {"title": title, "commit": commit, "checks": [c.__dict__ for c in checks]}
    report(runner, Report(title, PROBE_HEADERS, summary_rows(checks), document), as_json=as_json)


def printer(as_json: bool) -> Callable[[str], None]:
    """Progress lines for humans; nothing with --json (stdout is one JSON document then)."""
    return (lambda line: None) if as_json else (lambda line: say(f"  {line}"))


def tell_owner(ctx: Context, env: Environment, text: str) -> None:
    """The owner hears it in Telegram; a failure to tell is a warning, never the run's failure."""
    if not ctx.optional("OWNER_CHAT_ID"):
        return  # not set up: nothing to say on every run
    warning = notify(ctx, env, text)
    if warning:
        say(f"⚠ {warning}")
        ctx.runner.annotate("warning", warning, title="owner not told")
    else:
        say(f"  the owner was told in Telegram by @{env.bot_username}")


def ask(prompt: str, *, secret: bool = False, default: str = "") -> str | None:
    """The owner's answer in a terminal (a secret without echo; Enter takes ``default``), or None
    when nobody can answer (no terminal: a workflow, a pipe; or its input ended, Ctrl-D): the
    caller names what to set instead."""
    if not sys.stdin.isatty():
        return None
    shown = f"{prompt} [{default}]: " if default else f"{prompt}: "
    try:
        answer = (getpass.getpass(shown) if secret else input(shown)).strip()
    except EOFError:
        print(file=sys.stderr)  # the line the prompt left open
        return None
    return answer or default
