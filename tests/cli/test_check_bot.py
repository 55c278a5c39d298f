"""``ci-tools check-bot``: the owner's bot, built and started with its own commands against the
stand-ins, and the contract level it reaches; nothing it started outlives it."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from pathlib import Path

from ci_tools.__main__ import main
from tests.support import ROOT, unmeasured

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
    for item in (
        "it listens on all interfaces",
        "getMe called with its token",
        "webhook set at its own URL",
        "it replies through sendMessage",
    ):
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


def test_several_services_need_a_name(tmp_path, capsys):
    """Without a pipeline configuration to say which is staging, two web services are a question."""
    shutil.copy(ROOT / "render.yaml", tmp_path / "render.yaml")
    assert main(["check-bot", str(tmp_path)]) == 3
    assert "has 2 web services (mindmate-dev, mindmate-prod): which one is the bot?" in capsys.readouterr().err


def test_an_adopted_repository_is_checked_on_its_staging_service():
    """Our own tree is configured: its staging service (mindmate-dev) is the one check-bot runs."""
    from ci_tools.cli.check_bot import staging_service

    assert staging_service(ROOT) == "mindmate-dev"


def test_sigterm_mid_build_leaves_no_build_process_and_no_temporary_copy(tmp_path):
    """A runner cancels a step with SIGTERM to ci-tools alone: the build command's own children
    (pip, here a sleep) must go with it, as must the temporary copy of the tree."""
    import os
    import signal
    import sys
    import time

    from tests.botrun.test_botrun import alive

    repo = owner_repo(tmp_path)
    pid = tmp_path / "child.pid"
    spec = repo / "render.yaml"
    spec.write_text(
        spec.read_text().replace(
            "buildCommand: pip install -r requirements.txt", f"buildCommand: sleep 300 & echo $! > {pid}; wait"
        )
    )
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    command = subprocess.Popen(
        [sys.executable, "-m", "ci_tools", "check-bot", str(repo)],
        env=unmeasured({**os.environ, "TMPDIR": str(tmp)}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 90
    while not (pid.exists() and pid.read_text().strip()):
        assert command.poll() is None and time.monotonic() < deadline, "the build did not start"
        time.sleep(0.05)
    command.send_signal(signal.SIGTERM)
    assert command.wait(timeout=60) != 0
    assert "interrupted" in command.stderr.read().decode() if command.stderr else True
    child = int(pid.read_text())
    deadline = time.monotonic() + 15
    while alive(child):
        assert time.monotonic() < deadline, "the build's child outlived check-bot"
        time.sleep(0.05)
    assert not list(tmp.glob("ci-tools-check-bot-*"))


def test_a_bot_whose_calls_never_reach_the_stand_in_is_told_which_calls_are_seen(tmp_path, capsys):
    """A bot on a client that is not rerouted (requests, urllib) calls the real Telegram, unseen:
    check-bot cannot tell 'no call' from 'a call it could not see', and must say so."""
    tree = tmp_path / "web"
    tree.mkdir()
    (tree / "Procfile").write_text("web: exec python -m http.server $PORT --bind 127.0.0.1\n")
    assert main(["check-bot", str(tree), "--timeout", "10", "--json"]) == 5
    document = json.loads(capsys.readouterr().out)
    (item,) = [c for c in document["checks"] if c["name"] == "getMe called with its token"]
    assert item["ok"] is False and item["detail"] == "no Bot API call reached the stand-in"
    assert "httpx or aiohttp" in item["fix"] and "requests" in item["fix"]


def test_with_json_stdout_is_one_json_document(tmp_path, capsys):
    """--json is for machines: the progress lines ("building with…") broke the document."""
    tree = tmp_path / "web"
    tree.mkdir()
    (tree / "Procfile").write_text("web: echo 'no bot here'; exit 3\n")
    assert main(["check-bot", str(tree), "--json"]) == 5
    document = json.loads(capsys.readouterr().out)
    assert document["level"] is None and document["service"] == "(detected)"


def test_a_bot_that_listens_on_loopback_alone_fails_the_base_level(tmp_path, capsys):
    """Render's proxy reaches the bot at 0.0.0.0:$PORT: a bot bound to 127.0.0.1 answers here and
    never goes live there ("No open ports detected"), so check-bot must not say base."""
    tree = tmp_path / "web"
    tree.mkdir()
    (tree / "Procfile").write_text("web: exec python -m http.server $PORT --bind 127.0.0.1\n")
    assert main(["check-bot", str(tree), "--timeout", "10", "--json"]) == 5
    document = json.loads(capsys.readouterr().out)
    (item,) = [c for c in document["checks"] if c["name"] == "it listens on all interfaces"]
    assert item["ok"] is False and "127.0.0.1" in item["detail"] and "0.0.0.0" in item["fix"]  # noqa: S104 - the fix names it


ENV_BOT = """services:
  - type: web
    name: env-bot
    runtime: python
    startCommand: python serve.py
    envVars:
      - key: SESSION_SECRET
        generateValue: true
      - key: {asked}
        sync: false
"""
SERVE = (
    "import os, sys\n"
    "for name in sys.argv[1:] or ['SESSION_SECRET', 'OPENAI_API_KEY']:\n"
    "    os.environ[name]\n"
    "os.execvp(sys.executable, [sys.executable, '-m', 'http.server', os.environ['PORT']])\n"
)


def test_generated_values_are_generated_and_an_unset_variable_is_named(tmp_path, capsys):
    """render.yaml's generateValue: Render makes one, so check-bot does; a sync: false variable
    check-bot cannot know (an API key of the owner's) is named when the bot dies without it."""
    tree = tmp_path / "env"
    tree.mkdir()
    (tree / "serve.py").write_text(SERVE)
    (tree / "render.yaml").write_text(ENV_BOT.format(asked="OPENAI_API_KEY"))
    assert main(["check-bot", str(tree), "--timeout", "60", "--json"]) == 5
    document = json.loads(capsys.readouterr().out)
    (started,) = [c for c in document["checks"] if c["name"] == "the bot starts"]
    assert started["ok"] is False and "KeyError: 'OPENAI_API_KEY'" in started["detail"]
    assert "OPENAI_API_KEY (sync: false)" in started["fix"]
    (tree / "serve.py").write_text(SERVE.replace("or ['SESSION_SECRET', 'OPENAI_API_KEY']", "or ['SESSION_SECRET']"))
    main(["check-bot", str(tree), "--timeout", "10", "--json"])
    document = json.loads(capsys.readouterr().out)
    (started,) = [c for c in document["checks"] if c["name"] == "the bot starts"]
    assert started["ok"] is True, started


def test_a_service_with_a_root_dir_sees_only_that_folder(tmp_path, capsys):
    """render.com/docs/monorepo-support: files outside the service's root directory are not
    available at build time or at runtime. A bot reading ../shared started here and not there."""
    tree = tmp_path / "mono"
    (tree / "svc").mkdir(parents=True)
    (tree / "shared").mkdir()
    (tree / "shared" / "settings.txt").write_text("from outside the root\n")
    (tree / "svc" / "serve.py").write_text(
        "import os, sys\n"
        "open('../shared/settings.txt').read()\n"
        "os.execvp(sys.executable, [sys.executable, '-m', 'http.server', os.environ['PORT']])\n"
    )
    (tree / "render.yaml").write_text(
        "services:\n  - type: web\n    name: mono\n    runtime: python\n    rootDir: svc\n"
        "    startCommand: python serve.py\n"
    )
    assert main(["check-bot", str(tree), "--timeout", "60", "--json"]) == 5
    document = json.loads(capsys.readouterr().out)
    (started,) = [c for c in document["checks"] if c["name"] == "the bot starts"]
    assert started["ok"] is False and "FileNotFoundError" in started["detail"]


def test_a_webhook_at_the_bare_service_url_is_at_its_own_url(tmp_path, capsys):
    """Any path means the root too: setWebhook(RENDER_EXTERNAL_URL) with no path at all."""
    tree = tmp_path / "root-hook"
    tree.mkdir()
    (tree / "serve.py").write_text(
        "import os, sys, httpx\n"
        "api = f\"https://api.telegram.org/bot{os.environ['TELEGRAM_BOT_TOKEN']}\"\n"
        "httpx.post(f'{api}/getMe')\n"
        "httpx.post(f'{api}/setWebhook', data={'url': os.environ['RENDER_EXTERNAL_URL']})\n"
        "os.execvp(sys.executable, [sys.executable, '-m', 'http.server', os.environ['PORT']])\n"
    )
    (tree / "Procfile").write_text("web: python serve.py\n")
    main(["check-bot", str(tree), "--timeout", "60", "--json"])
    document = json.loads(capsys.readouterr().out)
    hooked = next((c for c in document["checks"] if c["name"] == "webhook set at its own URL"), document)
    assert hooked.get("ok") is True, hooked
