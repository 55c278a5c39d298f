"""``ci-tools``: the command line every workflow step calls.

Each command lives in its own module with an ``add_parser(subparsers)`` function;
this module only wires them together and turns a ``FatalError`` into one redacted
line on stderr (and an error annotation in Actions) with the error's exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

from ci_tools import __version__, redact
from ci_tools.actions import Runner
from ci_tools.cli import (
    acceptance,
    adopt,
    announce,
    check_bot,
    ci,
    config,
    contracts,
    cutover,
    deploy,
    finish_move,
    flow,
    github,
    history,
    hold,
    init,
    keyvalue,
    memory,
    notify,
    preflight,
    probe,
    quiet,
    rehearse,
    release,
    replay,
    rollback,
    send_back,
    status,
)
from ci_tools.context import build
from ci_tools.errors import FatalError, from_unexpected
from ci_tools.needs import NOTHING, describe

# In the order of the plan: set up, look, ship, check, undo, migrate, rehearse.
COMMAND_MODULES = (
    adopt,
    init,
    config,
    flow,
    github,
    deploy,
    quiet,
    release,
    hold,
    probe,
    rollback,
    preflight,
    cutover,
    keyvalue,
    memory,
    announce,
    acceptance,
    send_back,
    finish_move,
    rehearse,
    check_bot,
    replay,
    notify,
    status,
    history,
    contracts,
    ci,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ci-tools",
        description="MindMate's release pipeline: deploy, probe, roll back, copy memory.",
    )
    parser.add_argument("--version", action="version", version=f"ci-tools {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parser(subparsers)
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
    run (what a step started dies with it anyway: see ``throwaway.die_with_parent``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    before = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    with interrupted_by_signals():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    redact.install(os.environ)
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    runner = Runner.from_environ(os.environ)  # so that even a Context that fails to build annotates
    try:
        ctx = build(os.environ, getattr(args, "needs", NOTHING))
        return int(args.func(ctx, args) or 0)
    except FatalError as exc:
        return _report(runner, exc, args.command)
    except KeyboardInterrupt:
        print("ci-tools: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the one error boundary: never a traceback unless asked (-vv)
        if args.verbose > 1:
            logging.getLogger("ci_tools").exception("unexpected error")
        return _report(runner, from_unexpected(exc), args.command)


def _report(runner: Runner, exc: FatalError, command: str) -> int:
    line = redact.redact(exc.one_line())
    print(f"ci-tools: {exc.kind}: {line}", file=sys.stderr, flush=True)
    runner.annotate("error", line, title=f"ci-tools {command}: {exc.kind}")
    return exc.exit_code


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
