"""production.yml waits for a quiet moment (issue 43): the daily user wrote to the live bot a
moment ago, so the deploy waits until the gap is quiet_seconds, then goes and says it waited;
dispatched with the hotfix input, it does not wait. The live bot says when it last handled an
update in its /healthz (the kit's updates.last_handled_at), never who or what."""

from __future__ import annotations

import re
import threading

import httpx
import pytest

from sandbox.world import git
from tests.support import wait_until
from tests.workflows.scenarios import dispatch, health, production_secrets, push, start_live

DAILY = 6660002
QUIET = 4  # seconds: quiet_seconds as a test can wait for it (120 as shipped)


@pytest.fixture
def quiet(world):
    config = world.repo / "pyproject.toml"
    text, count = re.subn(r"\nquiet_seconds = 0\n", f"\nquiet_seconds = {QUIET}\n", config.read_text())
    assert count == 1  # production's table in the sandbox's config
    config.write_text(text)
    git(world.repo, "checkout", "-q", "main")
    git(world.repo, "commit", "-qam", "a quiet moment the test can wait for")


def user_writes(world) -> None:
    """The daily user says something to the live production bot, and it has handled it."""
    world.telegram.send_user_message(world.bots["production"], DAILY, "hello, are you there?")
    wait_until(
        lambda: bool((health(world, "production").get("updates") or {}).get("last_handled_at")),
        "the live bot to have handled the daily user's message",
    )


def talking_until_the_release_looks(world) -> threading.Thread:
    """The daily user mid-conversation: a message a second until the release first asks the live
    bot's /healthz (the quiet step: nothing else in production.yml asks the router before the
    deploy), then one more, so the release meets a conversation that is still going."""
    router = world.services["production"].router
    looked = threading.Event()
    forward = router.handle

    def handle(request):
        if request.method == "GET" and request.path == "/healthz":
            looked.set()
        return forward(request)

    router.handle = handle

    def talk() -> None:
        while not looked.wait(1.0):
            world.telegram.send_user_message(world.bots["production"], DAILY, "and then I told her")
        world.telegram.send_user_message(world.bots["production"], DAILY, "anyway, what do you think?")

    talking = threading.Thread(target=talk, daemon=True)
    talking.start()
    return talking


def test_a_release_waits_for_the_daily_users_pause_and_a_hotfix_does_not(world, act, quiet):
    live = world.commit("main", "what serves now")
    start_live(world, "production", live)
    user_writes(world)
    release = world.commit("main", "a release while the daily user talks")
    talking = talking_until_the_release_looks(world)
    run = act.run("production.yml", "push", secrets=production_secrets(world), payload=push("main", release))
    talking.join(30)
    assert run.ok, run.tail()
    assert re.search(r"the bot handled an update \d+ s ago: waiting \d+ s for a quiet moment", run.log)
    said = re.search(r"production: quiet \(last update (\d+) s ago\) after waiting (\d+) s", run.log)
    assert said and int(said[1]) >= QUIET and int(said[2]) >= 1, run.tail()
    assert health(world, "production")["commit"] == release
    assert "hello, are you there?" not in run.log and "what do you think" not in run.log  # a time, never a word

    user_writes(world)
    hotfix = world.commit("main", "hotfix: the reply was wrong")
    run = act.run(
        "production.yml",
        "workflow_dispatch",
        secrets=production_secrets(world),
        payload={**dispatch("main", hotfix="true"), "after": hotfix},
    )
    assert run.ok, run.tail()
    assert "hotfix: released without waiting for a quiet moment" in run.log
    assert not re.search(r"waiting \d+ s for a quiet moment", run.log)
    assert httpx.get(world.services["production"].router.url + "/healthz", timeout=10).json()["commit"] == hotfix
