"""production.yml's replay stage in act: the daily user's conversation on a private copy of
their memory, with the live commit and the candidate, before any deploy exists on Render."""

from __future__ import annotations

import re

import pytest

from sandbox.breaks import commit_breaking
from sandbox.world import git
from tests.workflows.scenarios import (
    assert_no_secret,
    dispatch,
    health,
    production_secrets,
    push,
    start_live,
)

DAILY = 6660001
FACTS = ["my daughter is called Noor", "I am learning the cello"]


@pytest.fixture
def daily(world) -> str:
    """Production serves a commit that protects the daily user, whose memory it holds. Put live by
    its deploy hook (the set-up, as start_live does elsewhere): a whole production.yml run here
    cost each test ~30 s and is not what these tests are about (test_memory_safety_workflows and
    test_release_workflows run that release)."""
    git(world.repo, "checkout", "-q", "main")
    world.protect(DAILY)
    git(world.repo, "commit", "-qam", "protect the daily user")
    live = git(world.repo, "rev-parse", "HEAD")
    client = world.redis["production"].client()
    client.set("prod:meta:env", "production")
    client.rpush(f"prod:memory:{DAILY}", *FACTS)
    client.hset(f"prod:user:{DAILY}:profile", mapping={"first_seen": "1700000000", "first_name": "Ada"})
    start_live(world, "production", live)
    assert health(world, "production")["commit"] == live
    return live


def assert_private(log: str) -> None:
    for fact in FACTS:
        for word in re.findall(r"\w{4,}", fact):
            assert word not in log, f"{word!r} of the daily user's memory reached act's log"


def release(world, act, sha: str):
    return act.run("production.yml", "push", secrets=production_secrets(world), payload=push("main", sha))


def test_a_release_that_forgets_the_daily_user_is_stopped_before_any_deploy(world, act, daily):
    deploys = len(world.services["production"].deploys)
    bad = commit_breaking(world, "forgets the daily user", "refactor: facts live under facts:")
    run = release(world, act, bad)
    assert not run.ok
    assert f"the replay stopped the release of {bad[:12]}: user {DAILY}, turn 2 (/recall)" in run.log
    assert "the candidate answers differently" in run.log
    assert len(world.services["production"].deploys) == deploys  # no deploy of it exists on Render
    assert health(world, "production")["commit"] == daily
    assert_private(run.log)
    assert_no_secret(run, world)


def test_a_harmless_release_still_goes_out(world, act, daily):
    sha = world.commit("main", "a harmless change")
    run = release(world, act, sha)
    assert run.ok, run.tail()
    assert "answers the protected users as " + daily[:12] in run.log
    assert health(world, "production")["commit"] == sha
    assert_private(run.log)


def test_a_release_whose_memory_the_live_one_cannot_read_is_stopped(world, act, daily):
    bad = commit_breaking(world, "reshapes memory", "facts as one JSON value")
    run = release(world, act, bad)
    assert not run.ok
    assert "this release writes memory the previous one cannot read — a rollback would not be safe" in run.log
    assert health(world, "production")["commit"] == daily
    assert_private(run.log)


def test_a_release_that_cannot_start_is_stopped_and_named(world, act, daily):
    bad = commit_breaking(world, "crash at start", "a start that crashes")
    run = release(world, act, bad)
    assert not run.ok
    assert f"the candidate {bad[:12]} cannot start: it exited with status 1 at start" in run.log
    assert health(world, "production")["commit"] == daily


@pytest.mark.parametrize("how", ["moves facts at start", "deletes memory at start"])
def test_a_migration_at_start_is_stopped_before_any_deploy(world, act, daily, how):
    """The candidate starts on a copy of its own: what its start writes is judged (moved facts only
    in the rollback direction, since it reads them where it moved them)."""
    deploys = len(world.services["production"].deploys)
    bad = commit_breaking(world, how, f"migrate: {how}")
    run = release(world, act, bad)
    assert not run.ok
    assert f"the replay stopped the release of {bad[:12]}: user {DAILY}, turn 2 (/recall)" in run.log
    assert len(world.services["production"].deploys) == deploys
    assert health(world, "production")["commit"] == daily
    assert "no secret is readable from the bots' ancestry" in run.log
    assert_private(run.log)
    assert_no_secret(run, world)


def test_skip_replay_releases_with_a_warning(world, act, daily):
    bad = commit_breaking(world, "forgets the daily user", "released on purpose, unreplayed")
    run = act.run(
        "production.yml",
        "workflow_dispatch",
        secrets=production_secrets(world),
        payload=dispatch("main", skip_replay="true"),
    )
    assert run.ok, run.tail()
    assert "replay skipped" in run.log
    assert health(world, "production")["commit"] == bad
