"""``ci-tools hold --on | --off | --check``: hold production's releases, lift the hold, honour it.

``--on`` and ``--off`` write the repository variable CI_TOOLS_RELEASES_HELD (hold.yml runs them
from the owner's phone); ``--check`` is production.yml's first step after checkout, which
reads the variable as ``vars.CI_TOOLS_RELEASES_HELD`` and passes it with ``--held``.
``--check --again`` is its step right before the deploy: ``vars.*`` are fixed when the job
starts, and a release may wait minutes for a quiet moment, so a hold set meanwhile is read
through the API (with production's GITHUB_ADMIN_TOKEN). Without a token it cannot be read
again, and the run says the hold was read at the start only: the first check stands.
"""

from __future__ import annotations

import argparse
import getpass
from datetime import UTC, datetime

from ci_tools.clients.github_rest import GitHubAPI
from ci_tools.context import Context
from ci_tools.errors import ConfigError, InputError
from ci_tools.needs import Needs
from ci_tools.pipeline.hold import HELD_VARIABLE, LIFT, Hold, hold_off, hold_on, read_hold, refuse_if_held
from ci_tools.redact import redact

# Optional because --check reads the hold from its --held argument (GITHUB_TOKEN cannot read
# variables); --on and --off need a token that can write them and say so when it is missing.
NEEDS = Needs(optional=("GITHUB_TOKEN",), local=("GH_TOKEN",))

DESCRIPTION = f"""\
Hold production's releases while something is wrong, and lift the hold again.
The hold is the repository variable {HELD_VARIABLE} (who, since when, why, as JSON):
--on sets it, --off deletes it, and production.yml's first step (--check) refuses to
release while it is set, before any snapshot or deploy; --check --again reads it once
more through the API right before the deploy (a release may wait for a quiet moment, and
vars.* are read only when the job starts). A rollback is never held.
From a phone: Actions → hold → Run workflow (hold on or off, a reason)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "hold",
        description=DESCRIPTION,
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--on", action="store_true", help=f"hold releases: set {HELD_VARIABLE}")
    which.add_argument("--off", action="store_true", help=f"lift the hold: delete {HELD_VARIABLE}")
    which.add_argument(
        "--check", action="store_true", help="fail (exit 3, one line) if releases are held; production.yml runs it"
    )
    parser.add_argument(
        "--again",
        action="store_true",
        help="with --check: read the hold again through the API right before the deploy; without a "
        "token, say it was read at the start only and go on",
    )
    parser.add_argument("--reason", default="", help="why (with --on): shown to whoever meets the hold")
    parser.add_argument("--by", default="", help="who holds them (with --on; default: your login)")
    parser.add_argument(
        "--held",
        default=None,
        help=f"with --check: {HELD_VARIABLE}'s value as the workflow has it (vars.{HELD_VARIABLE}); "
        "without it, read through the GitHub API",
    )
    parser.add_argument(
        "--env", default="production", help="the environment whose releases are held (only production's can be)"
    )
    parser.add_argument("--repo", help="OWNER/NAME (default: $GITHUB_REPOSITORY)")
    parser.set_defaults(func=run, needs=NEEDS)


def run(ctx: Context, args: argparse.Namespace) -> int:
    production = ctx.config.role("cutover_target").name
    if ctx.config.env(args.env).name != production:
        raise InputError(
            f"only {production}'s releases can be held, not {args.env}'s",
            hint=f"drop --env or pass --env {production}",
        )
    if args.check and args.held is not None:
        refuse_if_held(args.held)
        _say(f"✓ {production}'s releases are not held")
        return 0
    if args.again and not args.check:
        raise InputError("--again goes with --check", hint="ci-tools hold --check --again")
    if args.again and not ctx.github_token():
        line = (
            f"the hold was read at the job's start only: no GITHUB_ADMIN_TOKEN in {production}'s environment "
            "to read it again, so a hold set since is not seen (ci-tools github setup stores the token)"
        )
        _say(f"⚠ {line}")
        ctx.runner.annotate("warning", line, title="hold not read again")
        return 0
    with _api(ctx, args) as api:
        if args.check:
            refuse_if_held(read_hold(api))
            _say(f"✓ {production}'s releases are not held" + (" (read again before the deploy)" if args.again else ""))
        elif args.on:
            hold = Hold.new(args.by or _login(), args.reason, datetime.now(UTC))
            before = hold_on(api, hold)
            _say(f"✓ {hold.line()}: {LIFT}" + (f" (it replaced: {before.line()})" if before else ""))
            ctx.runner.add_summary(f"**Releases held** since {hold.since} by {hold.by} ({hold.reason}).")
        else:
            lifted = hold_off(api)
            _say(f"✓ hold lifted ({lifted.line()})" if lifted else "✓ releases were not held: nothing to lift")
            ctx.runner.add_summary("**Hold lifted**: production releases go out again.")
    return 0


def _say(line: str) -> None:
    print(redact(line), flush=True)


def _login() -> str:
    """Who runs it on a laptop (hold.yml passes github.actor); a container may have no name."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "someone"


def _api(ctx: Context, args: argparse.Namespace) -> GitHubAPI:
    token = ctx.github_token()
    if not token:
        raise ConfigError(
            f"missing secret GITHUB_TOKEN: {HELD_VARIABLE} needs a token with the Variables permission",
            hint="pass GITHUB_ADMIN_TOKEN as GITHUB_TOKEN (hold.yml does), or export one for a local run",
        )
    repo = args.repo or ctx.runner.repository
    if not repo:
        raise ConfigError("which repository? pass --repo OWNER/NAME", hint="or set GITHUB_REPOSITORY")
    return ctx.github(token, repo)
