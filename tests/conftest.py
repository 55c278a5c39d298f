"""Shared fixtures: real redis-server processes and real loopback stand-ins, never mocks."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ci_tools.redact import SECRET_ENV_VARS
from sandbox.bot import ThreadedBot
from sandbox.contract import LEDGER, Violation, describe
from sandbox.github import FakeGitHub
from sandbox.ports import free_port
from sandbox.redis import RedisServer
from sandbox.telegram import FakeBot, FakeTelegram
from sandbox.world import World
from tests.support import ROOT, WEBHOOK_SECRET

# This machine's environment sets PYTHONDONTWRITEBYTECODE: every Python the suite starts (act's
# ci-tools steps, the bots, `python -m ci_tools`) then compiled each module it imported anew — a
# third of an act scenario's time (tests/workflows/test_hold_workflow.py: 46 s, 30 s without it).
# The suite lets Python cache bytecode, its default; set here, before xdist starts its workers.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

# Variables a developer's shell or a GitHub runner may carry that would change behaviour.
_AMBIENT = (
    *SECRET_ENV_VARS,
    "GITHUB_ACTIONS",
    "GITHUB_OUTPUT",
    "GITHUB_STEP_SUMMARY",
    "TELEGRAM_API_URL",
    "RENDER_API_URL",
    "RENDER_SERVICE_ID",
    "CI_TOOLS_CONFIG",
    "ENV",
    "KEY_PREFIX",
    "MOVED_TO",
    "RENDER_EXTERNAL_URL",
    "RENDER_GIT_COMMIT",
    "PORT",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _AMBIENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(ROOT)


@pytest.fixture(autouse=True)
def _contracts_hold() -> Iterator[None]:
    """A request or answer that breaks the provider's description fails the test that caused it."""
    mark = LEDGER.mark()
    yield
    broken = LEDGER.since(mark)
    if broken:
        pytest.fail(f"{len(broken)} contract violation(s):\n{describe(broken)}", pytrace=False)


@pytest.fixture
def provoked() -> Callable[[], list[Violation]]:
    """For a test that breaks a contract on purpose: take what it provoked out of the LEDGER."""
    mark = LEDGER.mark()
    return lambda: LEDGER.take(mark)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: hand the counts to the controller
        workeroutput["contracts"] = json.dumps(LEDGER.snapshot())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    data = getattr(node, "workeroutput", {}).get("contracts")
    if data:
        LEDGER.merge(json.loads(data))


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(LEDGER.line())


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The whole sandbox (Redis pair, Render, Telegram, the services), cwd in its repository."""
    with World(tmp_path / "world", step=0.05) as sandbox:
        monkeypatch.chdir(sandbox.repo)
        yield sandbox


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    """A dev and a prod Redis, as two separate servers."""
    with RedisServer() as dev, RedisServer() as prod:
        yield dev, prod


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    """The GitHub REST stand-in, GITHUB_API_URL and GITHUB_TOKEN pointing at it (as a job's are)."""
    with FakeGitHub() as server:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        monkeypatch.setenv("GITHUB_TOKEN", server.token)
        yield server


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def bot_environ(telegram: FakeTelegram) -> Callable[..., tuple[dict[str, str], FakeBot]]:
    """Build the environment Render would give the bot, for a new stand-in bot."""

    def make(redis_url: str, env: str = "staging", username: str = "mindmate_dev_bot", **extra: str):
        bot = telegram.add_bot(username)
        port = free_port()
        environ = {
            "ENV": env,
            "TELEGRAM_BOT_TOKEN": bot.token,
            "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "REDIS_URL": redis_url,
            "PORT": str(port),
            "RENDER_EXTERNAL_URL": f"http://127.0.0.1:{port}",
            "RENDER_GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567",
            "TELEGRAM_API_URL": telegram.url,
            **extra,
        }
        return environ, bot

    return make


@pytest.fixture
def running_bot(redis_server: RedisServer, bot_environ) -> Iterator[tuple[ThreadedBot, FakeBot]]:
    """The staging bot, served in-process on a loopback port, its Redis claimed for staging."""
    from mindmate.store import claim_env_marker

    environ, fake = bot_environ(redis_server.url)
    claim_env_marker(redis_server.client(), "dev:", "staging")
    with ThreadedBot(environ) as bot:
        yield bot, fake


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """os.environ without ambient secrets, for child processes."""
    return {k: v for k, v in os.environ.items() if k not in _AMBIENT}


@pytest.fixture
def memory_envs(redis_pair, monkeypatch):
    """A dev Redis holding a user's memory and an empty (marked) prod Redis, wired as source/target."""
    from tests.memory.helpers import seed_user

    dev, prod = redis_pair
    seed_user(dev.client())
    prod.client().set("prod:meta:env", "production")
    monkeypatch.setenv("SOURCE_REDIS_URL", dev.url)
    monkeypatch.setenv("TARGET_REDIS_URL", prod.url)
    return dev, prod


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers a core. Most tests wait on servers, act and deploy polls, not the
    CPU (the suite's time, and the command that measures it: docs/DEVELOPING.md). The cores are
    those this process may run on; xdist's own PYTEST_XDIST_AUTO_NUM_WORKERS still decides when
    set (a machine others share)."""
    wanted = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "")
    if wanted.strip().isdigit():
        return int(wanted)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 * (cores or 1)
