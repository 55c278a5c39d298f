"""The owner's bot, unchanged (tests/fixtures/owner_bot: PTB's own ``run_webhook``, no /healthz),
released through the Render stand-in in process mode: each commit built and started with its own
render.yaml's commands. At the base level the probe and the bake say what they could not verify,
and a bad release is rolled back on Telegram's signals alone."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ci_tools.__main__ import main
from sandbox.redis import RedisServer
from sandbox.render import FakeRender, FakeService
from sandbox.telegram import FakeBot, FakeTelegram
from sandbox.world import git
from tests.release_kit.owner import owner_config, owner_repo
from tests.support import use

pytestmark = pytest.mark.built
FAST = ("--timeout", "120", "--poll", "0.05")

# Production bakes for 6 s, a look every 0.3 s: each release's bake is part of the test.
BAKING = """bake_minutes = 0.1
bake_interval_seconds = 0.3
"""


@dataclass
class Ava:
    repo: Path
    render: FakeRender
    service: FakeService
    telegram: FakeTelegram
    bot: FakeBot

    def commit(self, path: str, old: str, new: str, message: str) -> str:
        target = self.repo / path
        text = target.read_text()
        assert old in text
        target.write_text(text.replace(old, new))
        git(self.repo, "commit", "-q", "-am", message)
        return git(self.repo, "rev-parse", "HEAD")

    def live(self) -> str:
        return next(d["commit"]["id"] for d in self.service.deploys if d["status"] == "live")


@pytest.fixture
def ava(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ava]:
    repo = owner_repo(tmp_path)
    with RedisServer() as redis_server, FakeTelegram() as telegram:
        bot = telegram.add_bot("ava_companion_bot")
        render = FakeRender(step=0.02, process=True).start()
        try:
            render.repo, render.log_dir, render.health_timeout = repo, tmp_path, 60.0
            env = {"TELEGRAM_BOT_TOKEN": bot.token, "REDIS_URL": redis_server.url, "TELEGRAM_API_URL": telegram.url}
            service = render.add_service("ava-bot", "main", env)
            config = owner_config(tmp_path, service.router.url, more=BAKING)
            monkeypatch.chdir(repo)
            use(
                monkeypatch,
                {
                    "CI_TOOLS_CONFIG": str(config),
                    "RENDER_API_URL": render.url,
                    "RENDER_API_KEY": render.api_key,
                    "RENDER_SERVICE_ID": service.id,
                    "TELEGRAM_API_URL": telegram.url,
                    "TELEGRAM_BOT_TOKEN": bot.token,
                    "PIP_NO_INDEX": "1",
                },
                drop=("TELEGRAM_WEBHOOK_SECRET",),
            )
            yield Ava(repo, render, service, telegram, bot)
        finally:
            render.stop()


def users_writing(ava: Ava, stop: threading.Event) -> threading.Thread:
    """Daily traffic: a message from a new user every 0.2 s (each its own chat, so none waits behind
    another's held update), until ``stop``."""

    def write() -> None:
        for user in itertools.count(5_000_000):
            if stop.wait(0.2):
                return
            if ava.bot.webhook_url:
                ava.telegram.send_user_message(ava.bot, user, "hello Ava", timeout=5)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(400)
def test_the_owners_bot_at_base_is_released_and_a_bad_release_rolled_back_on_telegrams_signals(ava, capsys):
    good = git(ava.repo, "rev-parse", "HEAD")
    stop = threading.Event()
    traffic = users_writing(ava, stop)
    try:
        assert main(["release", "production", "--commit", good, *FAST, "--deadline", "30"]) == 0, capsys.readouterr()
        out = capsys.readouterr().out
        assert "the live release's level is unknown" in out  # nothing was live before the first deploy
        assert "base — not verified: health (GET /healthz answered HTTP 404" in out  # the probe's level row
        assert "✓ baked: no delivery error and no growing backlog" in out
        assert "handler-failure counts were not available" in out
        # A refactor that moves the path PTB listens on, not the one it gives Telegram: every
        # delivery now answers 404. Render's deploy passes (the port opens; no health check path).
        bad = ava.commit("bot/__main__.py", "url_path=TOKEN,", 'url_path="hook",', "listen on /hook")
        code = main(["release", "production", "--commit", bad, *FAST, "--deadline", "30"])
        captured = capsys.readouterr()
        assert code == 5, captured
        assert "the live release meets the base level" in captured.out
        # The probe fails it when a delivery failed since it went live; with none yet, the bake's first look.
        assert re.search(
            rf"{bad[:12]} failed its (probe|bake) on production and was rolled back to {good[:12]}", captured.err
        )
        # A Telegram signal of the base level names it, whichever the probe met first: the delivery
        # error (404 at the path the bad release moved), the updates it held untaken, or the updates
        # held after the bot refused them (a busy machine's timing).
        signals = r"Wrong response from the webhook: 404|updates the bot has not taken|updates the bot refused"
        assert re.search(signals, captured.err)
        assert ava.bot.token not in captured.out + captured.err
        assert ava.live() == good
    finally:
        stop.set()
        traffic.join(10)
