"""``ci-tools``: the command line every workflow step calls.

Each command lives in ``ci_tools/cli/<name>.py`` (``-`` read as ``_``) with an
``add_parser(subparsers)`` function. ``COMMANDS`` below names every command with its line in
``ci-tools --help``, so the listing imports no command; ``main()`` imports only the command it
runs, at dispatch (as twine and pre-commit do), and each command module imports what it uses at
its top. A ``FatalError`` becomes one redacted line on stderr (and an error annotation in
Actions) with the error's exit code; so does an import of the command's libraries that fails
(missing, or not the version locked), and Ctrl-C while they load is "interrupted", exit 130.
A word that is no command is one usage error naming the command it most resembles.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import logging
import os
import select
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from types import FrameType
from typing import Any

from ci_tools import __version__, cancel, redact
from ci_tools.actions import Runner
from ci_tools.context import build
from ci_tools.errors import FatalError, from_unexpected
from ci_tools.needs import NOTHING, describe

# Every command and its line in `ci-tools --help`, in the order of the plan: set up, look, ship,
# check, undo, migrate, rehearse. docs/COMMANDS.md's table is this one (tests/repo/test_docs_match_tree.py).
COMMANDS = {
    "adopt": "put the release pipeline into your bot's repository (its code untouched); safe to run again",
    "init": "runbook step 2: set up this repository for your bot: 5 prompts (2 optional), discovers the rest, "
    "writes the config and .env",
    "config": "show or check the pipeline configuration",
    "flow": "enforce feature/* → develop → main",
    "github": "runbook step 3 (github setup): set up and check GitHub's environments, secrets and rulesets",
    "deploy": "deploy a commit and wait until it is live",
    "quiet": "wait for a quiet moment (the daily user not mid-conversation) before a deploy",
    "release": "deploy, probe, and in production roll back when the probe fails (exit non-zero)",
    "hold": "hold production's releases, or lift the hold (repository variable CI_TOOLS_RELEASES_HELD)",
    "probe": "smoke-test the deployed bot (read-only toward real users)",
    "rollback": "roll back to an earlier deploy, then probe",
    "preflight": "runbook step 4: check which service, token and Redis belong together",
    "cutover": "runbook step 5: a new bot's token on production (or --env staging), deployed and probed; "
    "--back undoes it, --finish closes the rollback window",
    "keyvalue": "admit this runner to the private Key Value instances, or stop",
    "memory": "copy a user's memory between environments, safely",
    "announce": "runbook step 7: the old bot tells the user where the new bot is",
    "acceptance": "runbook step 8: the acceptance checklist, checked for real",
    "send-back": "the move's way back: the daily user on their old bot again, with what they told the new one "
    "(dry run unless --apply); --undo puts the old bot's keys back",
    "finish-move": "runbook step 9: the old bot serves testers only under its own prefix (the window after the "
    "daily user's first message to the new bot must have passed, or --force); closes the cutover's window; "
    "retires the daily user's legacy keys from the old bot's Redis behind an encrypted backup",
    "rehearse": "run the whole plan locally against stand-ins (under a minute)",
    "check-bot": "build and start your bot locally and show which contract level it reaches",
    "replay": "replay the protected users' conversation with the live commit and a candidate, on copies",
    "notify": "the environment's bot tells the owner (OWNER_CHAT_ID) in Telegram",
    "status": "what is live in each environment, and is it healthy",
    "history": "an environment's releases and rollbacks, from Render",
    "contracts": "fetch, compare or cut the providers' API descriptions",
    "ci": "the bot's own tests ([tool.ci_tools.ci] test_command)",
}


def command_module(name: str) -> str:
    """``ci-tools check-bot`` is ``ci_tools/cli/check_bot.py`` (CONTRIBUTING's naming rule)."""
    return f"ci_tools.cli.{name.replace('-', '_')}"


class _Commands(argparse._SubParsersAction):
    """The subcommands, each with its ``--help`` line from ``COMMANDS`` (its module states none)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("help", COMMANDS[name])
        command: argparse.ArgumentParser = super().add_parser(name, **kwargs)
        return command


def build_parser(loaded: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the ``loaded`` commands' modules imported and their arguments in full
    (default: every command); any other command is its name and ``--help`` line only."""
    wanted = set(COMMANDS if loaded is None else loaded)
    parser = argparse.ArgumentParser(
        prog="ci-tools",
        description="MindMate's release pipeline: deploy, probe, roll back, copy memory.",
    )
    parser.add_argument("--version", action="version", version=f"ci-tools {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", action=_Commands)
    for name in COMMANDS:
        if name in wanted:
            importlib.import_module(command_module(name)).add_parser(subparsers)
        else:
            subparsers.add_parser(name)
    _say_what_each_reads(parser)
    return parser


def _say_what_each_reads(parser: argparse.ArgumentParser) -> None:
    """Each command's --help ends with the variables its Needs declare (so none is guessed at)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                needs = command.get_default("needs")
                if needs is not None and (text := describe(needs)):
                    command.epilog = text
                    command.formatter_class = argparse.RawDescriptionHelpFormatter
                _say_what_each_reads(command)


def _configure_logging(verbosity: int) -> None:
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)
    # httpx logs every request URL at INFO; keep it for -vv only (it is redacted anyway).
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbosity > 1 else logging.WARNING)
    redact.install(os.environ)


@contextlib.contextmanager
def interrupted_by_signals() -> Iterator[None]:
    """SIGTERM (and SIGINT) become one KeyboardInterrupt, so every ``with`` block unwinds.

    GitHub's cancel sends SIGINT, then SIGTERM 7.5 s later: Python's default for SIGTERM is to
    die where it stands, leaving a private Redis with the user's memory, bots and temporary
    folders behind. The first signal interrupts; later ones are ignored until the cleanup has
    run (what a step started dies with it anyway: see ``botrun.sessions.die_with_parent``). The
    cancel is also recorded (``ci_tools.cancel``), for the interrupt a ``__del__`` swallows; that
    swallowing is not printed ("Exception ignored" and a traceback), the next checkpoint acts on it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        cancel.request()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if not cancel.defer():  # this thread starts or stops a child: raised once done (cancel.held)
            raise KeyboardInterrupt

    def unraisable(info: Any) -> None:
        # Once cancelled, Python's "Exception ignored … Traceback" would be the one traceback of the
        # cancel: for the interrupt a __del__ swallowed (recorded: the next checkpoint acts on it),
        # and for a second signal that arrived with the first (Ctrl-C twice, SIGINT and SIGTERM at
        # once), which CPython reports as "Signal 15 ignored due to race condition" — ignored, as meant.
        if cancel.requested() and (isinstance(info.exc_value, KeyboardInterrupt) or _signal_ignored(info.exc_value)):
            return
        hook(info)

    def thread_interrupted(args: Any) -> None:
        # A worker thread that started a child as the cancel came stops it and ends with the
        # KeyboardInterrupt of cancel.owned's checkpoint: the cancel's, not a traceback to print.
        if cancel.requested() and issubclass(args.exc_type, KeyboardInterrupt):
            return
        thread_hook(args)

    cancel.clear()
    hook, sys.unraisablehook = sys.unraisablehook, unraisable
    thread_hook, threading.excepthook = threading.excepthook, thread_interrupted
    before = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        cancel.clear()
        for sig, handler in before.items():
            signal.signal(sig, handler)
        sys.unraisablehook = hook
        threading.excepthook = thread_hook


def _signal_ignored(exc: BaseException | None) -> bool:
    """CPython's report of a signal that arrived before its handler became SIG_IGN (signalmodule.c)."""
    return isinstance(exc, OSError) and str(exc).endswith("ignored due to race condition")


def main(argv: Sequence[str] | None = None) -> int:
    with interrupted_by_signals():
        return _main(argv)


def chosen(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option (ci-tools' own options
    take no value), or None (``--help``, ``--version``)."""
    return next((word for word in argv if not word.startswith("-")), None)


def _main(argv: Sequence[str] | None) -> int:
    redact.install(os.environ)
    argv = list(sys.argv[1:] if argv is None else argv)
    runner = Runner.from_environ(os.environ)  # so that even a Context that fails to build annotates
    command = chosen(argv)
    try:
        parser = build_parser([command] if command in COMMANDS else [])
    except KeyboardInterrupt:  # Ctrl-C (or a cancel) while the command's libraries load
        return _interrupted()
    except Exception as exc:  # a library of the `tools` extra, or the stand-ins, missing or not the one we need
        return _report(runner, from_unexpected(exc), command or "")
    if command is not None and command not in COMMANDS and not _answered_first(argv, command):
        parser.error(f"unknown command {command!r}{_did_you_mean(command)}; `ci-tools --help` lists them")
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        ctx = build(os.environ, getattr(args, "needs", NOTHING))
        return int(args.func(ctx, args) or 0)
    except FatalError as exc:
        return _report(runner, exc, args.command)
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError as exc:  # `ci-tools … | head`: the reader left, no service failed
        if not _reader_left():
            return _report(runner, from_unexpected(exc), args.command)
        return 1  # as rich's Console does when its own write meets the closed pipe
    except Exception as exc:  # the one error boundary: never a traceback unless asked (-vv)
        if args.verbose > 1:
            logging.getLogger("ci_tools").exception("unexpected error")
        return _report(runner, from_unexpected(exc), args.command)


def _reader_left() -> bool:
    """Whether our own stdout is the closed pipe; if so it is pointed at /dev/null, so that the
    interpreter's last flush does not print a traceback of its own."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # replaced by an object without a descriptor (a test's capture)
        return False
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    if not any(events & select.POLLERR for _, events in poll.poll(0)):  # POLLERR: a pipe without reader
        return False
    os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
    return True


def _answered_first(argv: Sequence[str], command: str) -> bool:
    """``--help`` or ``--version`` before the command word: argparse answers it and exits 0."""
    return bool({"-h", "--help", "--version"} & set(argv[: list(argv).index(command)]))


def _did_you_mean(command: str) -> str:
    close = difflib.get_close_matches(command, COMMANDS, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _interrupted() -> int:
    print("ci-tools: interrupted", file=sys.stderr)
    return 130


def _report(runner: Runner, exc: FatalError, command: str) -> int:
    line = redact.redact(exc.one_line())
    print(f"ci-tools: {exc.kind}: {line}", file=sys.stderr, flush=True)
    runner.annotate("error", line, title=f"ci-tools {command}: {exc.kind}")
    return exc.exit_code


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
