"""``ci-tools check-bot``: the owner's bot, built and started with its own commands against the
stand-ins, and the contract level it reaches; nothing it started outlives it."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path

from ci_tools.__main__ import main
from tests.support import ROOT

OWNER_BOT = ROOT / "tests" / "fixtures" / "owner_bot"


def owner_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "ava"
    shutil.copytree(OWNER_BOT, repo)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "Ava"],
        cwd=repo,
        check=True,
    )
    return repo


def port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_the_unchanged_owner_bot_reaches_the_base_level(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # its requirements are installed here: fetch nothing
    code = main(["check-bot", str(owner_repo(tmp_path))])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "level reached: base (service ava-bot)" in out
    for item in ("getMe called with its token", "webhook set at its own URL", "it replies through sendMessage"):
        assert re.search(rf"✓ .*base .*{item}", out), item
    assert re.search(r"✗ .*health .*GET /healthz answers the health JSON", out)
    assert "<token>" in out and ":AA" not in out  # the throwaway token is never printed
    port = int(re.search(r"answers on port (\d+)", out)[1])  # type: ignore[index]
    assert port_closed(port)  # the bot is gone with the command


def test_a_start_command_that_fails_is_named_and_exits_non_zero(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    repo = owner_repo(tmp_path)
    spec = repo / "render.yaml"
    spec.write_text(spec.read_text().replace("startCommand: python -m bot", "startCommand: python -m bot.main"))
    code = main(["check-bot", str(repo)])
    captured = capsys.readouterr()
    assert code == 5
    assert "level reached: none" in captured.out
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("ci-tools: verification: the bot does not reach the base level (the bot starts:")
    assert "python -m bot.main" in line and "No module named bot.main" in line


def test_our_bot_reaches_the_conversation_level(capsys):
    """mindmate, from this repository, with its production service's own commands (uv sync --locked)."""
    code = main(["check-bot", str(ROOT), "--service", "mindmate-prod"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "level reached: conversation (service mindmate-prod)" in out
    assert "✗" not in out


def test_the_owner_bot_with_the_kit_reaches_the_conversation_level(tmp_path, capsys, monkeypatch):
    from tests.release_kit.owner import adopted_tree

    monkeypatch.setenv("PIP_NO_INDEX", "1")
    tree = adopted_tree(tmp_path)
    code = main(["check-bot", str(tree)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "level reached: conversation (service ava-bot)" in out
    for item in ("an unsigned POST is refused 403", "with Redis down an update is answered 503"):
        assert re.search(rf"✓ .*conversation .*{item}", out), item


def test_several_services_need_a_name(capsys):
    assert main(["check-bot", str(ROOT)]) == 3
    assert "has 2 web services (mindmate-dev, mindmate-prod): which one is the bot?" in capsys.readouterr().err
