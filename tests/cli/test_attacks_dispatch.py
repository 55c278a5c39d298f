"""Attacks on ``ci-tools``' dispatch (ci_tools/__main__.py), which imports only the command it
runs: a typo, every command's ``--help``, an import that fails or is interrupted while the
command's libraries load, and ``python -m ci_tools`` beside the ``ci-tools`` entry point. Each
ends in one line and an exit code, never a traceback."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ci_tools.__main__ import COMMANDS, build_parser, main
from tests.support import ROOT

# Runs main() with one module's import made to fail as ``kind`` says (a meta path finder that
# raises before the module is found), as an install without it, or with an older one, would.
FAILING_IMPORT = """
import importlib.abc, sys
kind, target, *argv = sys.argv[1:]
errors = {
    "missing": ModuleNotFoundError(f"No module named {target!r}", name=target),
    "older": ImportError(f"cannot import name 'AsyncClient' from {target!r}", name=target),
    "interrupted": KeyboardInterrupt(),
}
class Fail(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target_=None):
        if name == target:
            raise errors[kind]
sys.meta_path.insert(0, Fail())
from ci_tools.__main__ import main
sys.exit(main(argv))
"""


def run(*argv: str, command: tuple[str, ...] = (sys.executable, "-m", "ci_tools")) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CI_TOOLS_", "GITHUB_", "RUNNER_"))}
    return subprocess.run(
        [*command, *argv], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120, check=False
    )


def failing_import(kind: str, module: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return run(kind, module, *argv, command=(sys.executable, "-c", FAILING_IMPORT))


def test_a_misspelt_command_is_one_error_naming_the_one_it_resembles():
    done = run("relase", "production", "--commit", "abc")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        "ci-tools: error: unknown command 'relase' (did you mean release?); `ci-tools --help` lists them"
    )
    assert "unknown command 'xyzzy'; `ci-tools --help`" in run("-v", "xyzzy").stderr  # nothing close: no guess


def test_help_before_an_unknown_word_is_still_help():
    done = run("-h", "relase")
    assert done.returncode == 0 and "COMMAND" in done.stdout and not done.stderr


def every_parser() -> list[tuple[str, ...]]:
    """Each command, and each subcommand under it, as the words that reach its parser."""
    found: list[tuple[str, ...]] = []

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        found.append(words)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*words, name))

    walk(build_parser(), ())
    return [words for words in found if words]


@pytest.mark.parametrize("words", every_parser(), ids=" ".join)
def test_every_command_and_subcommand_answers_help(words, capsys):
    with pytest.raises(SystemExit) as done:
        main([*words, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"usage: ci-tools {' '.join(words)}") and not out.err


def test_a_command_whose_library_is_missing_is_one_configuration_line():
    done = failing_import("missing", "httpx", "deploy", "--help")
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines() == [
        "ci-tools: configuration: the Python package 'httpx' is not installed "
        "here — install the pipeline's libraries with `uv sync --locked` (or "
        "`uv run ci-tools …`)"
    ]


def test_a_command_whose_library_is_an_older_version_is_one_configuration_line():
    done = failing_import("older", "httpx", "deploy", "--help")
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.splitlines()
    assert "'httpx' installed here is not the version ci-tools needs" in line and "uv sync --locked" in line


def test_ctrl_c_while_a_command_loads_is_interrupted_not_a_traceback():
    done = failing_import("interrupted", "httpx", "deploy", "--help")
    assert (done.returncode, done.stderr) == (130, "ci-tools: interrupted\n")


def test_the_entry_point_and_python_m_say_the_same():
    entry = Path(sys.executable).parent / "ci-tools"
    assert entry.is_file(), "uv sync installs the ci-tools entry point beside python"
    for argv in (("--help",), ("relase",), ("flow", "--help"), ()):
        by_module, by_entry = run(*argv), run(*argv, command=(str(entry),))
        assert (by_module.returncode, by_module.stdout, by_module.stderr) == (
            by_entry.returncode,
            by_entry.stdout,
            by_entry.stderr,
        ), argv
    assert set(COMMANDS) <= set(run("--help").stdout.split())
