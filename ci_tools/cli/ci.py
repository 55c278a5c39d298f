"""``ci-tools ci run``: the bot's own tests, as ``[tool.ci_tools.ci] test_command`` names them.

ci.yml's one step, in every repository the pipeline is adopted into: the required check
``test`` is the bot's own tests, never the pipeline's. No command configured is a choice the
job reports and passes; a command that fails fails the job (exit 5) with one line naming it.
"""

from __future__ import annotations

import argparse

from ci_tools.context import Context
from ci_tools.errors import VerificationError
from ci_tools.needs import NOTHING
from ci_tools.output import say
from ci_tools.pipeline.ci import run_tests

DESCRIPTION = """\
Run the bot's own tests: the shell command [tool.ci_tools.ci] test_command names, with
bash, in the repository's root (ci.yml runs it on every push and pull request). Without
a test_command the run says that no tests are configured and passes. A command that
exits non-zero fails the run (exit 5)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ci")
    sub = parser.add_subparsers(dest="ci_command", required=True, metavar="ACTION")
    run_parser = sub.add_parser("run", help="run [tool.ci_tools.ci] test_command", description=DESCRIPTION)
    run_parser.set_defaults(func=run, needs=NOTHING)


def run(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.config
    where = f"[tool.ci_tools.ci] test_command in {config.path.name}"
    if config.ci.test_command is not None:
        say(f"running the bot's tests ({where}): {config.ci.test_command}")
    status = run_tests(config.ci, config.path.parent, ctx.child)
    if status is None:
        message = f"no tests configured: set {where} to run the bot's tests here"
        say(message)
        ctx.runner.annotate("notice", message, title="no tests configured")
        ctx.runner.add_summary(f"### The bot's tests\n\nNo tests configured ({where}).\n")
        return 0
    if status != 0:
        raise VerificationError(
            f"the bot's tests failed: test_command exited with {status}",
            hint=f"the log above is the command's own; fix the tests or {where}",
        )
    say("✓ the bot's tests passed")
    ctx.runner.add_summary(f"### The bot's tests\n\n✓ `{config.ci.test_command}` passed.\n")
    return 0
