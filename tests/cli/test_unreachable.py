"""Every command, with the outside services it talks to unreachable: one line, exit 4, no secret.

"Unreachable" twice: a port where nothing listens (connection refused), and a server that
accepts the connection and never answers (a timeout, kept short by CI_TOOLS_TIMEOUT).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_tools.__main__ import main
from ci_tools.memory.files import RecordWriter
from ci_tools.memory.records import Record
from sandbox.ports import free_port, silent_server
from sandbox.world import git
from tests.support import ROOT

TOKEN = "123456789:AAunreachableTokenValue0123456789abc"
API_KEY = "rnd_unreachableKey0123456789"
PASSWORD = "unreachable-password-0123"


@pytest.fixture(params=["refused", "timeout"])
def dead(request) -> Iterator[str]:
    """host:port of a service that refuses, or one that accepts and never answers."""
    if request.param == "refused":
        yield f"127.0.0.1:{free_port()}"
        return
    with silent_server() as address:
        yield address


def unreachable_world(dead: str, tmp: Path) -> tuple[dict[str, str], Path]:
    """Every service URL at the dead one, a config whose bots live there too, the files some
    commands read, and a repository: the variables to export, and the folder to run in."""
    base = f"http://{dead}"
    config = (ROOT / "pyproject.toml").read_text()
    config = config.replace("https://mindmate-dev.onrender.com", base).replace(
        "https://mindmate-prod.onrender.com",
        base.replace("127.0.0.1", "localhost"),  # two URLs, one port
    )
    config = config.replace("protected_users = []", "protected_users = [42]")  # the replay has someone
    (tmp / "pyproject.toml").write_text(config)
    (tmp / "p.txt").write_text("Name: Ada\nLikes tea\n")
    header = {"kind": "snapshot", "scope": "environment", "env": "production", "prefix": "prod:"}
    with RecordWriter(tmp / "snap" / "production-memory-1.jsonl", header, None) as writer:
        writer.write(Record(b"prod:memory:42", "none"))
    backup = {
        "kind": "backup",
        "env": "staging",
        "prefix": "",
        "server": f"{dead.split(':')[0]}:{dead.split(':')[1]}/0",
    }
    with RecordWriter(tmp / "back.jsonl", backup, None) as writer:
        writer.write(Record(b"memory:42", "none"))
    repo = tmp / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "x")
    git(repo, "branch", "develop")
    git(repo, "commit", "-q", "--allow-empty", "-m", "a hotfix on main: develop lacks it")
    variables = {
        "CI_TOOLS_CONFIG": str(tmp / "pyproject.toml"),
        "RENDER_API_URL": base,
        "TELEGRAM_API_URL": base,
        "GITHUB_API_URL": base,
        "IP_ECHO_URL": base,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "NEW_TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": "whsec-x",
        "RENDER_API_KEY": API_KEY,
        "RENDER_SERVICE_ID": "srv-unreachable01",
        "RENDER_DEPLOY_HOOK_URL": f"{base}/deploy/srv-unreachable01?key=hookkey0123456789",
        "SOURCE_REDIS_URL": f"redis://:{PASSWORD}@{dead}/0",
        "TARGET_REDIS_URL": f"redis://:{PASSWORD}@{dead}/0",
        "REDIS_URL": f"redis://:{PASSWORD}@{dead}/0",
        "GITHUB_TOKEN": "ghs_unreachableToken0123456789",
        "GITHUB_REPOSITORY": "mindmate/mindmate-release",
        "OWNER_CHAT_ID": "7770001",
        # the old bot, as production holds it for send-back and finish-move
        "STAGING_REDIS_URL": f"redis://:{PASSWORD}@{dead}/0",
        "STAGING_TELEGRAM_BOT_TOKEN": TOKEN,
        "STAGING_RENDER_SERVICE_ID": "srv-unreachable02",
    }
    return variables, repo


@pytest.fixture
def nowhere(dead, tmp_path, monkeypatch):
    """Every service unreachable; requests time out after a second (CI_TOOLS_TIMEOUT)."""
    variables, repo = unreachable_world(dead, tmp_path)
    for name, value in {**variables, "CI_TOOLS_TIMEOUT": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(repo)
    return git(repo, "rev-parse", "HEAD"), tmp_path


COMMANDS = {
    "deploy": ["deploy", "production", "--commit", "{sha}", "--timeout", "3"],
    "release": ["release", "production", "--commit", "{sha}", "--timeout", "3", "--deadline", "2"],
    "probe": ["probe", "production", "--commit", "{sha}", "--deadline", "2"],
    "rollback": ["rollback", "production", "--previous", "--timeout", "3"],
    "preflight": ["preflight"],
    "cutover": ["cutover", "--commit", "{sha}", "--timeout", "3"],
    "announce": ["announce", "--chat-id", "42"],
    "acceptance": ["acceptance", "--user-id", "42"],
    "keyvalue": ["keyvalue", "open", "--env", "production", "--state", "{tmp}/state.json"],
    "memory copy": ["memory", "copy", "--user-id", "42", "--from", "staging", "--to", "production"],
    "memory export": ["memory", "export", "--user-id", "42", "--from", "staging"],
    "memory seed": [
        "memory",
        "seed",
        "--user-id",
        "42",
        "--to",
        "production",
        "--profile-file",
        "{tmp}/p.txt",
    ],
    "flow backmerge": [
        "flow",
        "backmerge",
        "--repo",
        "mindmate/mindmate-release",
        "--source",
        "main",
        "--target",
        "develop",
    ],
    "github check": ["github", "check", "--repo", "mindmate/mindmate-release"],
    "github setup": ["github", "setup", "--repo", "mindmate/mindmate-release"],
    "status": ["status", "production"],
    "history": ["history", "production"],
    "memory snapshot": ["memory", "snapshot", "production", "--out", "{tmp}/snap"],
    "memory restore": ["memory", "restore", "{tmp}/snap", "--to", "production"],
    "keyvalue sweep": ["keyvalue", "sweep", "--env", "production"],
    "replay": ["replay", "production", "--snapshot", "{tmp}/snap", "--candidate", "{sha}"],
    "notify": ["notify", "--env", "production", "--strict", "a release went out"],
    "send-back": ["send-back", "--user-id", "42", "--out", "{tmp}/back"],
    "send-back undo": ["send-back", "--undo", "{tmp}/back.jsonl", "--out", "{tmp}/undone"],
    "finish-move": ["finish-move", "--user-id", "42"],
}
SERVICE_WORDS = (
    "Render",
    "Telegram",
    "Redis",
    "GitHub",
    "deploy hook",
    "address",
    "reach",
    "did not answer",
)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_an_unreachable_service_is_one_line_and_exit_4(name, nowhere, capsys):
    sha, tmp = nowhere
    argv = [a.format(sha=sha, tmp=tmp) for a in COMMANDS[name]]
    assert main(argv) == 4, capsys.readouterr()
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ci-tools: remote service:"), err
    assert any(word in lines[0] for word in SERVICE_WORDS), lines[0]
    assert "Traceback" not in out + err
    for secret in (TOKEN, API_KEY, PASSWORD, "hookkey0123456789", "ghs_unreachableToken0123456789"):
        assert secret not in out + err
