"""production.yml's bake window in act: after the probe, the new release is watched with the
bot's own signals and rolled back on a failure the daily user meets; the owner hears of it in
Telegram from the production bot, and only the owner."""

from __future__ import annotations

import contextlib
import re
import threading
import time

import httpx
import pytest

from sandbox.breaks import commit_breaking
from sandbox.world import git
from tests.support import conversations, wait_until
from tests.workflows.scenarios import assert_no_secret, health, production_secrets, push, start_live

OWNER = 7770001
DAILY = 6660002


@pytest.fixture
def baking(world):
    """Production bakes 12 s, a look every 0.5 s (10 min and 30 s as shipped); the owner has
    pressed Start in the production bot once."""
    config = world.repo / "pyproject.toml"
    text, count = re.subn(
        r"bake_minutes = [0-9.]+\nbake_interval_seconds = [0-9.]+",
        "bake_minutes = 0.2\nbake_interval_seconds = 0.5",
        config.read_text(),
    )
    assert count == 1
    config.write_text(text)
    git(world.repo, "checkout", "-q", "main")
    git(world.repo, "commit", "-qam", "a bake window the test can wait for")
    world.telegram.start_chat(world.bots["production"], OWNER)


def release(world, act, sha: str, **secrets: str):
    values = production_secrets(world, **{"OWNER_CHAT_ID": str(OWNER), **secrets})
    return act.run("production.yml", "push", secrets=values, payload=push("main", sha))


def told(world) -> list[str]:
    return world.telegram.replies_to(world.bots["production"], OWNER)


@pytest.mark.built
def test_a_release_that_breaks_plain_messages_is_rolled_back_in_its_bake_and_the_owner_is_told(world, act, baking):
    # The set-up: a good commit live by its deploy hook. A good release's green bake, and the owner
    # told of it, are the delivery-error test's below; a quiet window's note, on a built commit as
    # this release's was, is the stranger's.
    good = world.commit("main", "a good release")
    start_live(world, "production", good, timeout=120)

    bad = commit_breaking(world, "plain text fails", "refactor: read the message's text")
    sent = threading.Event()

    def daily_user_writes() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):  # the router may be between instances
                if health(world, "production").get("commit") == bad:
                    break
            time.sleep(0.1)
        world.telegram.send_user_message(world.bots["production"], DAILY, "just a plain hello")
        sent.set()

    user = threading.Thread(target=daily_user_writes, daemon=True)
    user.start()
    run = release(world, act, bad)
    user.join(5)
    assert sent.is_set(), "the release never went live, so the daily user could not write to it"
    assert not run.ok
    assert f"{bad[:12]} failed its bake on production and was rolled back to {good[:12]}" in run.log
    assert "update(s) failed in a handler" in run.log and "AttributeError on a message" in run.log
    assert health(world, "production")["commit"] == good
    [rolled] = [m for m in told(world) if "rolled back" in m]
    assert bad[:12] in rolled and good[:12] in rolled and "/actions/runs/" in rolled  # rejected and target named
    [message] = [m for m in world.bots["production"].sent if m["text"] == rolled]
    buttons = {b["text"]: b["url"] for row in message["reply_markup"]["inline_keyboard"] for b in row}
    assert buttons["Roll back"].endswith("/actions/workflows/rollback.yml")  # the owner acts from the phone
    assert (
        buttons["Hold releases"].endswith("/actions/workflows/hold.yml") and "/actions/runs/" in buttons["Open the run"]
    )
    assert {m["chat_id"] for m in world.bots["production"].sent} <= {OWNER, DAILY}  # the owner, and the user's reply
    assert "just a plain hello" not in run.log
    assert_no_secret(run, world)


@pytest.mark.built  # a green production.yml release of a commit built and run as Render runs it
def test_an_owner_who_never_started_the_bot_is_a_warning_and_the_release_is_green(world, act, baking):
    stranger = 7770999  # never opened the bot: Telegram refuses the bot's first word (400 chat not found)
    sha = world.commit("main", "a release nobody is told of")
    run = release(world, act, sha, OWNER_CHAT_ID=str(stranger))
    assert run.ok, run.tail()
    assert "no user traffic during the bake: 0 updates" in run.log  # a quiet window passes, with a note
    assert "the owner was not told: @mindmate_companion_bot has never seen the chat in OWNER_CHAT_ID" in run.log
    assert "press Start" in run.log
    assert health(world, "production")["commit"] == sha
    assert world.telegram.replies_to(world.bots["production"], stranger) == []


# -- what counts against the new commit, and from when (ci_tools/pipeline/serving.py, bake.py) ------
def rolled_back(world) -> list[dict]:
    return [d for d in world.services["production"].deploys if d["trigger"] == "rollback"]


def test_a_delivery_error_while_the_old_instance_serves_does_not_roll_the_new_release_back(world, act, baking):
    """Telegram records a failed delivery as the new deploy enters update_in_progress: the old
    instance still serves (Render's zero-downtime overlap), so it is not the new commit's."""
    old = world.commit("main", "the release before")
    start_live(world, "production", old)
    new = world.commit("main", "a good release")
    recorded = threading.Event()

    def while_the_old_instance_serves(deploy: dict, status: str) -> None:
        ours = deploy["commit"]["id"] == new and status == "update_in_progress"
        if ours and health(world, "production")["commit"] == old:  # the old instance answers
            world.telegram.delivery_failed(world.bots["production"], "Wrong response from the webhook: 502")
            recorded.set()

    world.services["production"].on_status = while_the_old_instance_serves
    run = release(world, act, new)
    assert recorded.is_set(), "the error was not recorded while the old instance served"
    assert run.ok, run.tail()
    assert "Wrong response from the webhook: 502" not in run.log  # history: neither probe nor bake judged by it
    assert health(world, "production")["commit"] == new and not rolled_back(world)
    assert any("is live and baked" in m and new[:12] in m for m in told(world))
    assert_no_secret(run, world)


def test_a_redis_outage_inside_the_bake_window_does_not_roll_back_and_the_owner_is_told(world, act, baking):
    """Once the bake has looked, production's redis-server stops and the daily user writes (the bot
    answers 503 so Telegram delivers it again); back after a look. Not the commit's doing."""
    old = world.commit("main", "the release before")
    start_live(world, "production", old)
    new = world.commit("main", "a good release, and then Redis blips")
    router, redis_server = world.services["production"].router, world.redis["production"]
    taken = conversations(router)

    def redis_blips() -> None:
        wait_until(lambda: conversations(router) >= taken + 2, "the bake's first look", deadline=240)
        redis_server.stop()
        world.telegram.send_user_message(world.bots["production"], DAILY, "are you there?")
        looked = sum(1 for request in list(router.requests) if request == ("GET", "/healthz"))
        wait_until(lambda: sum(1 for r in list(router.requests) if r == ("GET", "/healthz")) > looked, "a look")
        redis_server.start()

    blip = threading.Thread(target=redis_blips, daemon=True)
    blip.start()
    run = release(world, act, new)
    blip.join(30)
    assert not blip.is_alive() and redis_server.running
    assert run.ok, run.tail()
    assert "⚠ inconclusive: Redis unreachable" in run.log
    assert "bake inconclusive" in run.log  # the warning annotation's title
    assert health(world, "production")["commit"] == new and not rolled_back(world)
    [message] = told(world)  # one message, and only one
    assert f"{new[:12]} is live; its bake was inconclusive" in message and "Redis unreachable" in message
    assert "nothing was rolled back" in message
    assert "are you there?" not in run.log
    assert_no_secret(run, world)
