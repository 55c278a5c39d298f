"""``ci-tools rehearse --bot PATH`` takes an adopted repository: anything else is one line naming
what is missing, before any stand-in starts (the rehearsal itself: tests/sandbox/test_rehearsal.py)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ci_tools.__main__ import main
from tests.cli.test_adopt import FIXTURE


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda root: None, "no such directory — give your bot's repository"),
        (lambda root: root.mkdir(), "has no pyproject.toml — run `ci-tools adopt"),
        (lambda root: shutil.copytree(FIXTURE, root), "has no pyproject.toml — run `ci-tools adopt"),
    ],
    ids=["missing", "empty", "not-adopted"],
)
def test_a_bot_that_is_not_an_adopted_repository_is_one_line(tmp_path, capsys, make, said):
    root = tmp_path / "ava"
    make(root)
    assert main(["rehearse", "--bot", str(root)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and said in err, err


def test_an_adopted_tree_outside_git_is_refused_too(tmp_path, capsys):
    root = tmp_path / "ava"
    shutil.copytree(FIXTURE, root)
    (root / "pyproject.toml").write_text("[tool.ci_tools]\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # the repository is the parent
    assert main(["rehearse", "--bot", str(root)]) == 2
    assert "is not the root of a git repository" in capsys.readouterr().err
