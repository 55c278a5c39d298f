"""The bake window and the owner's messages, against the stand-ins (threaded bots: the code under
test is the pipeline's; act's tests/workflows/test_bake_workflow.py runs a really broken commit)."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from ci_tools.__main__ import main
from ci_tools.context import build
from ci_tools.pipeline.bake import bake
from ci_tools.pipeline.deploy import deploy
from sandbox.world import SECRETS
from tests.support import use

OWNER = 7770001
USER = 6660003
FAST = ("--timeout", "30", "--poll", "0.05", "--deadline", "5")


def baking(world, minutes: float, interval: float = 0.2):
    """A context whose production bakes ``minutes``, a look every ``interval`` seconds."""
    ctx = build(world.secrets("production"))
    env = dataclasses.replace(ctx.config.env("production"), bake_minutes=minutes, bake_interval_seconds=interval)
    config = dataclasses.replace(ctx.config, environments={**ctx.config.environments, "production": env})
    return ctx.with_config(config), env


def live(world, ctx, env, message: str) -> str:
    sha = world.commit("main", message)
    deploy(ctx, env, sha, timeout=30, poll=0.05)
    return sha


def test_a_quiet_window_passes_with_a_note(world):
    ctx, env = baking(world, 0.02)
    sha = live(world, ctx, env, "quiet")
    result = bake(ctx, env, sha, world.bots["production"].token, time.time(), webhook_secret=SECRETS["production"])
    assert result.passed and result.handled == 0
    assert result.detail.startswith("no user traffic during the bake: 0 updates")


def test_traffic_that_succeeds_passes_and_is_counted(world):
    ctx, env = baking(world, 0.03)
    sha = live(world, ctx, env, "busy")
    world.telegram.send_user_message(world.bots["production"], USER, "/recall")
    result = bake(ctx, env, sha, world.bots["production"].token, time.time(), webhook_secret=SECRETS["production"])
    assert result.passed and result.handled == 1 and "1 user update(s) handled" in result.detail


def test_a_handler_failure_of_the_new_commit_fails_the_bake_naming_it(world, monkeypatch):
    ctx, env = baking(world, 0.5)
    sha = live(world, ctx, env, "breaks plain text")

    async def boom(*args: object, **kwargs: object) -> None:
        raise KeyError("a refactor's bug")

    monkeypatch.setattr("mindmate.store.MemoryStore.append_history", boom)  # the threaded bot's code
    world.telegram.send_user_message(world.bots["production"], USER, "a plain message")
    started = time.monotonic()
    result = bake(ctx, env, sha, world.bots["production"].token, time.time(), webhook_secret=SECRETS["production"])
    assert not result.passed
    assert "1 of 1 update(s) failed in a handler" in result.detail and "KeyError on a message" in result.detail
    assert time.monotonic() - started < env.bake_interval_seconds + 2  # one look, not the whole window


def test_a_delivery_error_after_the_deploy_fails_the_bake(world):
    ctx, env = baking(world, 0.5)
    sha = live(world, ctx, env, "refuses its updates")
    bot = world.bots["production"]
    bot.last_error_date, bot.last_error_message = int(time.time()) + 1, "Wrong response from the webhook: 500"
    result = bake(ctx, env, sha, bot.token, time.time(), webhook_secret=SECRETS["production"])
    assert not result.passed and "Telegram's delivery to it failed after the deploy" in result.detail


def test_a_newer_release_ends_the_window_early(world):
    ctx, env = baking(world, 1.0)
    sha = live(world, ctx, env, "first")
    newer = world.commit("main", "second")
    threading.Timer(0.5, lambda: deploy(ctx, env, newer, timeout=30, poll=0.05)).start()
    started = time.monotonic()
    result = bake(ctx, env, sha, world.bots["production"].token, time.time(), webhook_secret=SECRETS["production"])
    assert result.passed and result.ended_early and time.monotonic() - started < 20
    assert "serves now" in result.detail or "a newer release started" in result.detail


def test_release_with_no_bake_warns(world, monkeypatch, capsys, tmp_path):
    use(monkeypatch, world.secrets("production"))
    config = world.config
    config.write_text(config.read_text().replace("bake_minutes = 0\n", "bake_minutes = 5\n"))
    sha = world.commit("main", "released unwatched")
    assert main(["release", "production", "--commit", sha, "--no-bake", *FAST]) == 0
    assert "--no-bake: nobody watches" in capsys.readouterr().out


def test_notify_tells_the_owner_only(world, monkeypatch, capsys):
    use(monkeypatch, {**world.secrets("production"), "OWNER_CHAT_ID": str(OWNER)})
    bot = world.bots["production"]
    world.telegram.start_chat(bot, OWNER)
    assert main(["notify", "--env", "production", "the nightly job of my own finished"]) == 0
    assert world.telegram.replies_to(bot, OWNER) == ["MindMate production: the nightly job of my own finished"]
    assert [m["chat_id"] for m in bot.sent] == [OWNER]


@pytest.mark.parametrize(("strict", "code"), [(False, 0), (True, 4)])
def test_notify_to_an_owner_who_never_started_the_bot(world, monkeypatch, capsys, strict, code):
    use(monkeypatch, {**world.secrets("production"), "OWNER_CHAT_ID": str(OWNER)})
    assert main(["notify", "--env", "production", "hello", *(["--strict"] if strict else [])]) == code
    captured = capsys.readouterr()
    assert "press Start" in captured.out + captured.err
    assert not world.bots["production"].sent


@pytest.mark.parametrize(
    ("seen", "said"),
    [
        (False, "has never seen the chat in OWNER_CHAT_ID (400 Bad Request: chat not found); check that"),
        (True, "Telegram refused (403 Forbidden: bot can't initiate conversation with a user)"),
    ],
)
def test_notify_names_why_the_owner_was_not_told(world, monkeypatch, capsys, seen, said):
    """A bot that never saw the owner gets 400 "chat not found" (a wrong id, or a bot never
    opened), one that knows them but was never started 403: both end in "press Start"."""
    use(monkeypatch, {**world.secrets("production"), "OWNER_CHAT_ID": str(OWNER)})
    if seen:
        world.telegram.meet(world.bots["production"], OWNER)
    assert main(["notify", "--env", "production", "hello"]) == 0
    out = capsys.readouterr()
    assert said in out.out + out.err
    assert "press Start" in out.out + out.err
