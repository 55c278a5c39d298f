"""``ci-tools`` loads the command it runs and no other: ``--help`` lists every command from the
table in ci_tools/__main__.py (COMMANDS) without importing one, and each command module states
its arguments, not its ``--help`` line."""

from __future__ import annotations

import json
import subprocess
import sys

from ci_tools.__main__ import COMMANDS, build_parser, chosen, command_module
from ci_tools.cli.init import OPTIONAL_ASKED, PROMPTS
from ci_tools.pipeline.hold import HELD_VARIABLE
from tests.support import ROOT

# Runs main() in a fresh interpreter and says which command modules (and httpx) it imported.
LOADED = """
import contextlib, io, json, sys
from ci_tools.__main__ import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
    main(sys.argv[1:])
commands = sorted(m for m in sys.modules if m.startswith("ci_tools.cli.") and not m.endswith("._common"))
print(json.dumps({"out": out.getvalue(), "commands": commands, "httpx": "httpx" in sys.modules}))
"""


def run_main(*argv: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *argv], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(done.stdout.splitlines()[-1])


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_help_lists_every_command_with_its_line_and_imports_none():
    seen = run_main("--help")
    assert seen["commands"] == [] and not seen["httpx"]
    listing = _flat(seen["out"])
    for name, line in COMMANDS.items():
        assert f"{name} {_flat(line)}" in listing, name


def test_a_command_imports_its_own_module_and_no_other():
    seen = run_main("flow", "check", "--base", "develop", "--head", "feature/lighter")
    assert seen["commands"] == ["ci_tools.cli.flow"]
    assert "✓" in seen["out"]


def test_every_command_module_is_in_the_table_and_none_states_its_own_help_line():
    modules = {p.stem for p in (ROOT / "ci_tools" / "cli").glob("*.py")} - {"__init__", "_common"}
    assert {command_module(name).rsplit(".", 1)[1] for name in COMMANDS} == modules
    (subparsers,) = [a for a in build_parser()._actions if a.dest == "command"]
    assert [a.dest for a in subparsers._choices_actions] == list(COMMANDS)
    for action in subparsers._choices_actions:
        assert action.help == COMMANDS[action.dest], f"ci_tools/cli: {action.dest} states a --help line of its own"


def test_the_table_counts_what_the_commands_hold():
    assert f"{len(PROMPTS)} prompts ({len(OPTIONAL_ASKED)} optional)" in COMMANDS["init"]
    assert f"repository variable {HELD_VARIABLE}" in COMMANDS["hold"]


def test_the_command_is_the_first_word_that_is_not_an_option():
    assert chosen(["-vv", "deploy", "staging", "--commit", "abc"]) == "deploy"
    assert chosen(["--version"]) is None and chosen([]) is None
