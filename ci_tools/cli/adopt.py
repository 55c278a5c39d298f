"""``ci-tools adopt PATH [--yes]``: the release pipeline in an existing bot's repository.

Detects how the bot is built, started and keeps its memory, writes the pipeline's files beside
it (never its code), and says where each value came from. What cannot be detected is asked in
a terminal; ``--yes`` asks nothing and takes a named default for each, chosen so that
``ci-tools config check`` passes in PATH at once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ci_tools.cli._common import ask
from ci_tools.context import Context
from ci_tools.errors import InputError
from ci_tools.output import say
from ci_tools.pipeline.adopt import AdoptRequest, Ask, adopt
from ci_tools.repo.adopted_files import COPIED

GIVEN = {
    "production_bot": "the production bot's username (default: asked, or <service>_bot with --yes)",
    "staging_bot": "the staging bot's username",
    "production_url": "the production service's address (default: https://<service>.onrender.com)",
    "staging_url": "the staging service's address",
    "start": "the start command, when render.yaml does not say it",
    "build": "the build command, when render.yaml does not say it",
}
# The kit lines, as docs/CONTRACT.md ("Reaching each level") explains them.
KIT_LINES = (
    "from release_kit import Kit",
    "kit = Kit.from_environ()",
    "application = kit.builder().token(TOKEN).build()      # instead of Application.builder()",
    'kit.run_webhook(application, url_path=TOKEN, health_path="/healthz")  # instead of application.run_webhook',
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "adopt",
        description="Copies the workflows, actions, branch rules and the bot kit into PATH, merges render.yaml "
        "(your live service becomes production, a staging twin is added) and [tool.ci_tools] into its "
        "pyproject.toml, and names where each value came from. Nothing is written unless every detection "
        "succeeds and the result passes `ci-tools config check`.",
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="your bot's repository (its git root)")
    parser.add_argument("--yes", action="store_true", help="ask nothing: detections and named defaults only")
    parser.add_argument("--service", help="the live web service in render.yaml, when it has several")
    parser.add_argument(
        "--pin",
        metavar="SOURCE",
        default="",
        help="what the workflows install ci-tools from: git+https://github.com/<owner>/<repo>@<40-hex commit> "
        "or <wheel URL or absolute path>#sha256=<hex> (default: this checkout's GitHub origin at its HEAD)",
    )
    for name, text in GIVEN.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default="", help=text)
    parser.set_defaults(func=run)


def _asker(yes: bool) -> Ask | None:
    if yes:
        return None

    def asked(question: str, default: str, flag: str) -> str:
        answer = ask(question, default=default)
        if answer is None:
            raise InputError(
                f"adopt has a question and no answer to it (no terminal, or its input ended): {question}",
                hint=f"give {flag}, or --yes to take the defaults (each named in the report)",
            )
        return answer

    return asked


def run(ctx: Context, args: argparse.Namespace) -> int:
    request = AdoptRequest(
        path=args.path,
        service=args.service,
        given={name: getattr(args, name).strip() for name in GIVEN if getattr(args, name).strip()},
        ask=_asker(args.yes),
        pin=args.pin,
    )
    result = adopt(request)
    say(f"ci-tools adopt {args.path}")
    for kind, text in result.said:
        say(f"  {kind}: {text}")
    for change in result.changes:
        say(f"  changed in your render.yaml: {change}")
    for warning in result.warnings:
        say(f"⚠ {warning}")
    if result.written:
        say(f"written: {', '.join(_grouped(result.written))}")
    else:
        say("nothing to change: the repository already has the pipeline as adopt writes it")
    say("your bot's own code is unchanged. The contract levels the pipeline verifies after each release:")
    base = "now" if not result.health_path else "reached"
    say(
        f"  base ({base}): Render's deploy live and its own health check; Telegram: the token is the "
        "expected bot, the webhook points at the service's address, no delivery error or growing backlog"
    )
    health = f"reached: {result.health_path}" if result.health_path else "with the kit's run_webhook"
    say(f"  health ({health}): GET <health_path> answers the health JSON (env, commit, Redis, updates)")
    say(
        "  conversation (with the kit and a webhook secret): the probe user's turns are answered "
        "and read back, never sent to anyone"
    )
    say('to go further, add the kit lines (docs/CONTRACT.md, "Reaching each level"):')
    for line in KIT_LINES:
        say(f"    {line}")
    if not result.kit_vendored:
        say("  (release_kit/ was not copied: see the warning above)")
    say("then run adopt again: it finds the kit and turns the health check on")
    say(
        "next: `ci-tools check-bot PATH` shows the level your bot reaches; commit, then `ci-tools init` and "
        "`ci-tools github setup --apply` in PATH (docs/ADOPTING.md)"
    )
    say("✓ config check: pyproject.toml and render.yaml agree")
    return 0


def _grouped(written: list[str]) -> list[str]:
    """``.github/workflows/ (17 files)`` rather than seventeen names."""
    counted: dict[str, int] = {}
    shown: list[str] = []
    for name in written:
        folder = next((c.folder for c in COPIED if name.startswith(c.folder + "/")), None)
        if folder is None:
            shown.append(name)
        else:
            counted[folder] = counted.get(folder, 0) + 1
    return shown + [f"{folder}/ ({count} file{'s' * (count != 1)})" for folder, count in counted.items()]
