"""check-bot reads ``[tool.ci_tools.probe]`` as the release's probe does (ci_tools/pipeline/check_bot.py).

It was a second reader beside settings.py's: a misspelt key fell back to ``/start`` in silence
(config check refuses it), ``[tool] ci_tools = 1`` was an AttributeError reported as a bug, and a
turn with a brace of its own (``/remember {"a": 1}``) was a KeyError from ``str.format`` where the
release's probe (``said``: a plain replace of ``{nonce}``) sends it as written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_tools.__main__ import main
from ci_tools.errors import ConfigError
from ci_tools.pipeline.check_bot import DEFAULT_TURNS, probe_settings
from tests.release_kit.owner import adopted_tree


def tree_with(tmp_path: Path, text: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(text)
    return tmp_path


@pytest.mark.parametrize("text", ["tool = 1\n", "[tool]\nci_tools = 1\n", "x = ["])
def test_a_pyproject_without_a_probe_table_gives_the_defaults(tmp_path, text):
    assert probe_settings(tree_with(tmp_path, text)) == (DEFAULT_TURNS, "")


def test_a_probe_key_that_is_no_table_is_one_line_as_config_check_says_it(tmp_path):
    with pytest.raises(ConfigError, match=r"\[tool\.ci_tools\.probe\] must be a table"):
        probe_settings(tree_with(tmp_path, "[tool.ci_tools]\nprobe = 1\n"))


def test_a_misspelt_probe_key_is_refused_as_config_check_refuses_it(tmp_path):
    tree = tree_with(tmp_path, '[tool.ci_tools.probe]\nturn = ["/hello"]\n')
    with pytest.raises(ConfigError, match=r"unknown keys: turn \(did you mean turns\?\)"):
        probe_settings(tree)


def test_check_bot_refuses_a_bad_probe_table_in_one_line_before_building(tmp_path, capsys):
    tree = adopted_tree(tmp_path)
    (tree / "pyproject.toml").write_text('[tool.ci_tools.probe]\nturns = ["/start", 5]\n')
    assert main(["check-bot", str(tree)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[tool.ci_tools.probe]: turns must be a non-empty list of messages" in err[0], err


def test_a_turn_with_braces_of_its_own_is_sent_as_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    tree = adopted_tree(tmp_path)
    (tree / "pyproject.toml").write_text('[tool.ci_tools.probe]\nturns = [\'/start {"probe": "{nonce}"}\']\n')
    code = main(["check-bot", str(tree)])
    out = capsys.readouterr()
    assert code == 0 and "Traceback" not in out.err, out.out + out.err
    assert "level reached: conversation (service ava-bot)" in out.out
