"""Issue 41's promise end to end, with a bot that is not ours (tests/fixtures/owner_bot: module
``bot``, requirements.txt, PTB's own run_webhook on the token path, its own key layout):
``adopt --yes`` leaves ``config check`` green; ``check-bot`` passes at the base level with the
bot unchanged, and at the conversation level once the lines docs/CONTRACT.md names are added
to the kit ``adopt`` vendored."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ci_tools.__main__ import main
from tests.cli.test_adopt import adopted, ci_tools, tree
from tests.support import ROOT

PATCH = ROOT / "tests" / "fixtures" / "owner_bot_kit.patch"


@pytest.fixture
def bot(tmp_path: Path) -> Path:
    """The owner's repository: the fixture copied, a git repository of its own."""
    target = tmp_path / "ava"
    shutil.copytree(ROOT / "tests" / "fixtures" / "owner_bot", target)
    subprocess.run(["git", "init", "-q", str(target)], check=True)
    return target


@pytest.mark.timeout(600)
def test_adopt_then_check_bot_unchanged_at_base_then_at_conversation_with_the_kit_lines(bot, capsys, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # the bot's requirements are installed here: fetch nothing
    owners = {name: data for name, data in tree(bot).items() if name.startswith("bot/") or name == "requirements.txt"}
    said = adopted(bot)
    assert "release_kit/ is not in this checkout" not in said  # the kit came with the pipeline
    assert (bot / "release_kit" / "__init__.py").is_file()
    assert {name: data for name, data in tree(bot).items() if name in owners} == owners  # its code untouched
    check = ci_tools("config", "check", cwd=bot)
    assert check.returncode == 0, check.stdout + check.stderr
    workflows = "\n".join(p.read_text() for p in (bot / ".github").rglob("*.yml"))
    assert "mindmate" not in workflows.lower()

    assert main(["check-bot", str(bot)]) == 0
    out = capsys.readouterr().out
    assert "level reached: base" in out, out

    subprocess.run(["git", "apply", str(PATCH)], cwd=bot, check=True)
    added = [line for line in PATCH.read_text().splitlines() if re.match(r"^\+(?!\+\+)", line)]
    assert len(added) <= 15  # the target for the conversation level, requirements included
    said = adopted(bot)  # adopt again: it now finds the kit's health endpoint
    assert "health_path `/healthz`" in said
    check = ci_tools("config", "check", cwd=bot)
    assert check.returncode == 0, check.stdout + check.stderr

    assert main(["check-bot", str(bot)]) == 0
    out = capsys.readouterr().out
    assert "level reached: conversation" in out, out
    assert "✗" not in out, out
