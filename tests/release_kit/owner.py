"""The owner's bot (tests/fixtures/owner_bot) with the kit patch applied, run as Render runs it.

A copy of the fixture in a temporary directory, ``tests/fixtures/owner_bot_kit.patch`` applied
with ``git apply``, ``release_kit/`` copied beside ``bot/`` (as ``ci-tools adopt`` vendors it),
then ``python -m bot`` as a child process in its own session, pointed at the Bot API stand-in
through ``TELEGRAM_API_URL``. Never the fixture itself: it stays as its owner wrote it.

Beside it, what the owner keeps around the bot: a repository of the fixture as it is, and the
pipeline's config for Ava's two environments.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from sandbox.bot import inherited
from sandbox.ports import free_port
from sandbox.telegram import FakeBot, FakeTelegram
from sandbox.world import git
from tests.support import ROOT, WEBHOOK_SECRET

FIXTURE = ROOT / "tests" / "fixtures" / "owner_bot"
PATCH = ROOT / "tests" / "fixtures" / "owner_bot_kit.patch"
COMMIT = "89abcdef0123456789abcdef0123456789abcdef"

# Ava's environments as her owner configures the pipeline; production's bot answers at ``{url}``.
OWNER_CONFIG = """
[tool.ci_tools.environments.staging]
branch = "develop"
render_service = "ava-bot-staging"
bot_username = "ava_staging_bot"
base_url = "https://ava-staging.example.invalid"
key_prefix = "dev:"
memory_patterns = ["memory:{{user_id}}", "user:{{user_id}}:history"]

[tool.ci_tools.environments.production]
branch = "main"
render_service = "ava-bot"
bot_username = "ava_companion_bot"
base_url = "{url}"
key_prefix = "{key_prefix}"
memory_patterns = ["memory:{{user_id}}", "user:{{user_id}}:history"]
"""


def owner_config(directory: Path, url: str, *, key_prefix: str = "", more: str = "") -> Path:
    """OWNER_CONFIG written to ``directory/pyproject.toml``, its path: production's bot at ``url``
    on ``key_prefix`` ("": the keys of a bot written before the pipeline). ``more`` follows as it
    is: more of production's settings, or tables of their own."""
    config = directory / "pyproject.toml"
    config.write_text(OWNER_CONFIG.format(url=url, key_prefix=key_prefix) + more)
    return config


def owner_repo(directory: Path) -> Path:
    """The fixture bot, unchanged, in a git repository of its own (``directory/ava``, on main)."""
    repo = directory / "ava"
    shutil.copytree(FIXTURE, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Ava")
    return repo


def adopted_tree(directory: Path, *, patch: Path = PATCH) -> Path:
    """The fixture bot copied to ``directory``, the patch applied, the kit vendored beside it."""
    tree = directory / "ava"
    shutil.copytree(FIXTURE, tree, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "apply", str(patch)], cwd=tree, check=True, capture_output=True)
    shutil.copytree(ROOT / "release_kit", tree / "release_kit", ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def bot_environ(telegram: FakeTelegram, bot: FakeBot, redis_url: str, **extra: str) -> dict[str, str]:
    """What the Render service gives the bot (ENV, the secret, the Key Value, its URL and PORT)."""
    port = free_port()
    return {
        "ENV": "staging",
        "TELEGRAM_BOT_TOKEN": bot.token,
        "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "REDIS_URL": redis_url,
        "PORT": str(port),
        "RENDER_EXTERNAL_URL": f"http://127.0.0.1:{port}",
        "RENDER_GIT_COMMIT": COMMIT,
        "TELEGRAM_API_URL": telegram.url,
        **extra,
    }


def _dies_with_parent() -> None:
    """In the child, before exec: SIGTERM when the test process dies (Linux's PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class OwnerBot:
    """``python -m bot`` in ``tree``: started, waited for (its health answer), stopped."""

    def __init__(self, tree: Path, environ: Mapping[str, str]) -> None:
        self.tree = tree
        self.environ = {**inherited(), **environ}
        self.port = int(environ["PORT"]) if environ["PORT"].isdigit() else 0  # a test may give a bad one
        self.log = tree.parent / "bot.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot"],
                cwd=self.tree,
                env=self.environ,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_dies_with_parent,
            )
        return self.process

    def start(self, timeout: float = 60.0) -> OwnerBot:
        process = self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the bot exited with {process.returncode}: {self.last_line()}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the bot did not answer on {self.url} within {timeout:g} s: {self.last_line()}")

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def last_line(self) -> str:
        lines = [line for line in self.text().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the bot and nothing else
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> OwnerBot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
