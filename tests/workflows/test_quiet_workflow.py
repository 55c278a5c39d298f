"""production.yml waits for a quiet moment (issue 43): the daily user wrote to the live bot a
moment ago, so the deploy waits until the gap is quiet_seconds, then goes and says it waited;
dispatched with the hotfix input, it does not wait. The live bot says when it last handled an
update in its /healthz (the kit's updates.last_handled_at), never who or what."""

from __future__ import annotations

import json
import re
import threading

import httpx
import pytest
from cryptography.fernet import Fernet

from ci_tools.memory.files import RecordFile
from ci_tools.pipeline.hold import HELD_VARIABLE, Hold
from sandbox.github import FakeGitHub
from sandbox.world import git
from tests.support import wait_until
from tests.workflows.act import SET_UP
from tests.workflows.scenarios import SNAPSHOT_KEY, dispatch, health, production_secrets, push, start_live

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


def at_the_first_look(world, then) -> None:
    """Run ``then`` inside the quiet step's first GET /healthz, before it is answered: the release
    is waiting for a quiet moment then (nothing else in production.yml asks the router before the
    deploy), so whatever ``then`` does happens during the wait, never a guessed moment."""
    router = world.services["production"].router
    forward = router.handle
    done = threading.Event()

    def handle(request):
        if request.method == "GET" and request.path == "/healthz" and not done.is_set():
            done.set()
            then(lambda: forward(request))
        return forward(request)

    router.handle = handle


def handled(answer) -> int:
    _, body, _ = answer
    document = json.loads(body) if isinstance(body, bytes | str) else body
    return int(document["updates"]["handled"])


def test_what_the_daily_user_says_during_the_wait_is_in_the_restore_point(world, act, quiet):
    """memory-before-<sha> is what a rollback's restore puts back: taken before the wait, it would
    not hold what the user told the live bot while the release waited, and restoring it would undo
    that. Taken after the wait, restoring it gives it back."""
    live = world.commit("main", "what serves now")
    start_live(world, "production", live)
    user_writes(world)
    release = world.commit("main", "a release while the daily user talks")

    def the_user_says_something(look) -> None:
        before = handled(look())
        world.telegram.send_user_message(world.bots["production"], DAILY, "said while the release waited")
        wait_until(lambda: handled(look()) > before, "the live bot to have handled what was said during the wait")

    at_the_first_look(world, the_user_says_something)
    run = act.run("production.yml", "push", secrets=production_secrets(world), payload=push("main", release))
    assert run.ok, run.tail()
    [path] = (act.artifacts / str(run.run_id) / f"memory-before-{release}").glob("*.jsonl")
    records = RecordFile(path, Fernet(SNAPSHOT_KEY.encode())).records()
    [history] = [r for r in records if r.key == f"prod:user:{DAILY}:history".encode()]
    assert "said while the release waited" in repr(history.value)  # a restore of it keeps what they said
    assert "said while the release waited" not in run.log


def test_a_hold_set_during_the_wait_stops_the_release_before_the_deploy(world, act, quiet):
    """vars.* are read when the job starts; an owner who holds releases while the release waits for
    a quiet moment is heard all the same: the hold is read again through the API before the deploy."""
    live = world.commit("main", "what serves now")
    start_live(world, "production", live)
    release = world.commit("main", "a release the owner holds while it waits")
    deploys_before = len(world.services["production"].deploys)
    with FakeGitHub() as github:

        def the_owner_holds(_look) -> None:
            hold = Hold("owner-on-a-phone", "2026-12-06T12:00:00Z", "the bot forgets names")
            github.variables[HELD_VARIABLE] = hold.encode()

        at_the_first_look(world, the_owner_holds)
        run = act.run(
            "production.yml",
            "push",
            secrets=production_secrets(world, GITHUB_ADMIN_TOKEN=github.token),
            payload=push("main", release),
            env={"GITHUB_API_URL": github.url},
            variables=dict(SET_UP),  # not held when the job started
        )
    assert not run.ok
    assert "(the bot forgets names): dispatch hold.yml with hold off" in run.log, run.tail()
    assert health(world, "production")["commit"] == live
    assert len(world.services["production"].deploys) == deploys_before  # nothing deployed on Render
    assert github.token not in run.log
