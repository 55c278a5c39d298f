from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ci_tools.__main__ import main
from ci_tools.errors import ConfigError, FatalError, InputError, RemoteError, VerificationError
from tests.support import ROOT


def test_exit_codes_are_distinct_per_kind():
    codes = [cls.exit_code for cls in (InputError, ConfigError, RemoteError, VerificationError)]
    assert len(set(codes)) == 4 and 0 not in codes and FatalError.exit_code not in codes


def test_config_show_json(capsys):
    assert main(["config", "show", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["environments"]["staging"]["key_prefix"] == ""  # legacy until the move
    assert data["flow"]["develop"][:3] == ["feature/*", "fix/*", "main"]


def test_config_show_table(capsys):
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "mindmate-prod" in out and "PRs into main: from develop, hotfix/*" in out


def test_fatal_error_is_one_line_with_exit_code_and_annotation(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main(["config", "show"]) == 3
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("ci-tools: configuration: ")
    assert captured.out.startswith("::error title=ci-tools config%3A configuration::no pyproject.toml")


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["config", "frobnicate"])
    assert exit_info.value.code == 2


def test_python_dash_m_entry_point(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ci_tools", "config", "show"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 3
    assert result.stderr.strip().startswith("ci-tools: configuration: no pyproject.toml")
    assert "Traceback" not in result.stderr


def test_the_error_boundary_turns_what_no_layer_caught_into_one_line():
    import httpx
    import redis

    from ci_tools.errors import FatalError, RemoteError, from_unexpected

    request = httpx.Request("GET", "https://api.render.com/v1/services?key=secret")
    refused = from_unexpected(httpx.ConnectError("refused", request=request))
    assert isinstance(refused, RemoteError) and refused.exit_code == 4
    assert "https://api.render.com" in refused.message and "key=" not in refused.message
    assert isinstance(from_unexpected(redis.ConnectionError("Error 111")), RemoteError)
    assert isinstance(from_unexpected(TimeoutError("slow")), RemoteError)
    bug = from_unexpected(KeyError("x"))
    assert type(bug) is FatalError and bug.exit_code == 1 and "-vv" in bug.one_line()


def test_a_missing_library_is_an_install_to_fix_not_a_bug(tmp_path):
    """The bot's install lacks the pipeline's libraries: one line naming the install, exit 3.

    ``-S`` leaves site-packages out, so the first third-party import (``rich``, when the
    command reports) fails as it does in an install without the ``tools`` extra.
    """
    result = subprocess.run(
        [sys.executable, "-S", "-m", "ci_tools", "config", "show"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    line = result.stderr.strip()
    assert line.count("\n") == 0 and "Traceback" not in line
    assert line.startswith("ci-tools: configuration: the Python package '")
    assert "uv sync --locked" in line and "bug" not in line


def test_a_reader_that_left_is_no_remote_service_failing():
    """`ci-tools config check | head -0`: stdout's reader is gone before the first line. The pipe
    is not a service that did not answer (it said so, exit 4): the command stops quietly."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ci_tools", "config", "check"],
            cwd=ROOT,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert done.returncode == 1 and done.stderr == "", done.stderr
