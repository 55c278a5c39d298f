"""``ci-tools ci run`` and its setting, ``[tool.ci_tools.ci] test_command``: the bot's own tests,
run as the owner wrote the command, in ci.yml's one step."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_tools.__main__ import main
from ci_tools.errors import ConfigError
from ci_tools.settings import load_config
from tests.release_kit.owner import owner_config
from tests.support import ROOT


def repository(tmp_path: Path, ci: str | None, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bot's repository whose config has the ``[tool.ci_tools.ci]`` table ``ci`` (None: none)."""
    more = "" if ci is None else f"\n[tool.ci_tools.ci]\n{ci}\n"
    config = owner_config(tmp_path, "https://ava-bot.onrender.com", key_prefix="prod:", more=more)
    monkeypatch.setenv("CI_TOOLS_CONFIG", str(config))
    return tmp_path


def test_our_own_bot_has_its_tests_configured():
    assert load_config(ROOT / "pyproject.toml").ci.test_command == (
        "uv run --locked --quiet pytest -p no:cacheprovider tests/mindmate"
    )


def test_config_show_says_what_ci_runs(tmp_path, monkeypatch, capsys):
    repository(tmp_path, None, monkeypatch)
    assert main(["config", "show"]) == 0
    assert "the bot's tests (ci.yml): none configured ([tool.ci_tools.ci] test_command)" in capsys.readouterr().out
    repository(tmp_path, 'test_command = "make test"', monkeypatch)
    assert main(["config", "show", "--json"]) == 0
    assert '"test_command": "make test"' in capsys.readouterr().out


@pytest.mark.parametrize("table", [None, ""], ids=["no-table", "empty-table"])
def test_no_test_command_says_so_and_passes(tmp_path, monkeypatch, capfd, table):
    repository(tmp_path, table, monkeypatch)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["ci", "run"]) == 0
    out = capfd.readouterr().out
    assert "no tests configured: set [tool.ci_tools.ci] test_command in pyproject.toml" in out
    assert "::notice title=no tests configured::" in out
    assert "No tests configured" in summary.read_text()


def test_the_command_runs_in_the_repository_with_bash_and_passes(tmp_path, monkeypatch, capfd):
    root = repository(
        tmp_path, 'test_command = "set -o pipefail; pwd > ran-in; echo the-owners-tests | cat"', monkeypatch
    )
    monkeypatch.chdir(tmp_path.parent)  # not where the tests run: the repository's root is
    assert main(["ci", "run"]) == 0
    captured = capfd.readouterr()
    assert "the-owners-tests" in captured.out and "✓ the bot's tests passed" in captured.out
    assert Path((root / "ran-in").read_text().strip()) == root


def test_a_failing_command_fails_the_run_with_one_line(tmp_path, monkeypatch, capfd):
    repository(tmp_path, "test_command = \"echo 'FAILED test_memory'; exit 3\"", monkeypatch)
    assert main(["ci", "run"]) == 5
    captured = capfd.readouterr()
    assert "FAILED test_memory" in captured.out  # the owner's own log, as it came
    [line] = captured.err.strip().splitlines()
    assert line.startswith("ci-tools: verification: the bot's tests failed: test_command exited with 3")


def test_the_tests_get_no_secret_of_the_runner(tmp_path, monkeypatch, capfd):
    """Only what any child of the pipeline gets (PATH, HOME, the locale, …) and CI=true."""
    repository(tmp_path, 'test_command = "env > seen-env"', monkeypatch)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:secret-token-the-tests-must-not-see")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_notForTheTests0123456789")
    assert main(["ci", "run"]) == 0
    seen = dict(line.split("=", 1) for line in (tmp_path / "seen-env").read_text().splitlines() if "=" in line)
    assert seen["CI"] == "true" and "PATH" in seen
    assert "TELEGRAM_BOT_TOKEN" not in seen and "GITHUB_TOKEN" not in seen


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('test_command = ""', "test_command must be a shell command as one string, or left out for no tests"),
        ('test_command = "   "', "test_command must be a shell command as one string"),
        ('test_command = ["pytest"]', "test_command must be a shell command as one string"),
        ("test_command = 1", "test_command must be a shell command as one string"),
        ('test = "pytest"', "[tool.ci_tools.ci] takes only test_command"),
    ],
    ids=["empty", "blank", "a-list", "a-number", "misspelt"],
)
def test_a_bad_test_command_is_one_clear_line(tmp_path, monkeypatch, capsys, table, message):
    root = repository(tmp_path, table, monkeypatch)
    with pytest.raises(ConfigError, match="test_command"):
        load_config(root / "pyproject.toml")
    assert main(["ci", "run"]) == 3
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("ci-tools: configuration: pyproject.toml: [tool.ci_tools.ci]") and message in line
    assert "e.g. test_command = " in line


def test_the_command_is_read_as_written(tmp_path, monkeypatch):
    root = repository(tmp_path, "test_command = '  python -m pytest -q  '", monkeypatch)
    assert load_config(root / "pyproject.toml").ci.test_command == "python -m pytest -q"
