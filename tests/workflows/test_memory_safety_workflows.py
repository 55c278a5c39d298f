"""The memory safety net in act: production.yml snapshots before it deploys, backup.yml every
night, restore-memory.yml puts a snapshot back (dry run, apply, undo of the apply).

Production's Key Value is private: each run admits itself for its own steps and the allow
list is back to ``[]`` afterwards, failed runs included.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis
from cryptography.fernet import Fernet

from ci_tools.memory.files import RecordFile
from tests.memory.helpers import OTHER, USER, seed_user
from tests.workflows.scenarios import (
    SNAPSHOT_KEY,
    assert_backup_kept_before_the_write,
    assert_no_secret,
    dispatch,
    health,
    production_secrets,
    push,
)

DAMAGE = [b"a release overwrote this"]


@pytest.fixture
def prod(world) -> redis.Redis:
    """Production's Redis with the daily user's and another user's memory, marked."""
    client = world.redis["production"].client()
    seed_user(client, "prod:")
    return client


def dumped(client: redis.Redis) -> dict[bytes, tuple[bytes | None, bool]]:
    return {key: (client.dump(key), client.pttl(key) > 0) for key in client.keys("*")}


def assert_closed_again(world) -> None:
    for kv in world.key_values.values():
        assert kv.ip_allow_list == [], f"{kv.name} was left open"


def kept_snapshot(act, run_id: int, artifact: str) -> RecordFile:
    [path] = (act.artifacts / str(run_id) / artifact).glob("*.jsonl")
    assert b"likes tea" not in path.read_bytes()  # encrypted
    return RecordFile(path, Fernet(SNAPSHOT_KEY.encode()))


def release(world, act, message: str, **secrets: str):
    sha = world.commit("main", message)
    run = act.run("production.yml", "push", secrets={**production_secrets(world), **secrets}, payload=push("main", sha))
    return sha, run


def test_a_release_keeps_every_production_key_as_memory_before_its_sha(world, act, prod):
    keys = set(prod.keys("prod:*"))
    sha, run = release(world, act, "a release with memory present")
    assert run.ok, run.tail()
    assert health(world, "production")["commit"] == sha
    file = kept_snapshot(act, run.run_id, f"memory-before-{sha}")
    assert (file.header["env"], file.header["commit"], file.header["scope"]) == (
        "production",
        sha,
        "environment",
    )
    assert {r.key for r in file.records()} == keys
    assert f"memory snapshot of production: {len(keys)} key(s)" in run.log
    assert_closed_again(world)
    assert_no_secret(run, world)


def test_when_the_snapshot_fails_the_release_does_not_deploy(world, act, prod):
    _, run = release(world, act, "a release whose snapshot cannot be taken", MEMORY_SNAPSHOT_KEY="")
    assert not run.ok
    assert "a memory snapshot needs MEMORY_SNAPSHOT_KEY" in run.log
    assert not world.services["production"].deploys  # nothing was deployed
    assert_closed_again(world)


def test_a_dispatch_may_skip_the_snapshot_and_the_replay_and_the_run_says_so(world, act, prod):
    """Without a snapshot the replay would check nothing: skipping the snapshot alone stops the
    release before any deploy; skipping both releases, and the run says each."""
    sha = world.commit("main", "an urgent fix")
    secrets = production_secrets(world, MEMORY_SNAPSHOT_KEY="")
    run = act.run(
        "production.yml", "workflow_dispatch", secrets=secrets, payload=dispatch("main", skip_memory_snapshot="true")
    )
    assert not run.ok
    assert "no snapshot to replay on" in run.log and "so the replay would check nothing" in run.log
    assert not world.services["production"].deploys
    run = act.run(
        "production.yml",
        "workflow_dispatch",
        secrets=secrets,
        payload=dispatch("main", skip_memory_snapshot="true", skip_replay="true"),
    )
    assert run.ok, run.tail()
    assert health(world, "production")["commit"] == sha
    assert "memory snapshot skipped" in run.log and "replay skipped" in run.log
    assert not (act.artifacts / str(run.run_id)).exists()


@pytest.mark.built  # rejected_release builds and runs each deployed commit
def test_a_rolled_back_release_names_its_snapshot_and_the_dispatch_that_restores_it(rejected_release):
    """The run is rejected_release (conftest), shared with test_release_workflows' rollback tests."""
    bad, run = rejected_release.bad, rejected_release.run
    assert not run.ok
    assert f"artifact memory-before-{bad} of run {run.run_id}" in run.log
    assert f"restore-memory → Run workflow with run_id {run.run_id}, mode dry-run" in run.log
    assert "Nothing was restored automatically" in run.log


def nightly_backup(world, act, ref: str = "main"):
    """backup.yml as scheduler.yml starts it: dispatched on main, in production-scheduled
    (the harness refuses what GitHub's environment gate would: environment_gate)."""
    return act.run("backup.yml", "workflow_dispatch", secrets=production_secrets(world), payload=dispatch(ref))


def assert_kept_nightly(world, act, prod, run) -> None:
    """backup.yml kept every production key as memory-nightly-<date>, and closed the Key Value."""
    assert run.ok, run.tail()
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    file = kept_snapshot(act, run.run_id, f"memory-nightly-{today}")
    assert {r.key for r in file.records()} == set(prod.keys("prod:*"))
    assert_closed_again(world)
    assert_no_secret(run, world)


OWNER = 7770001  # the owner's Telegram id (OWNER_CHAT_ID), who pressed Start in the production bot


def restore(world, act, mode: str, run_id: int, **inputs: str):
    world.telegram.start_chat(world.bots["production"], OWNER)
    values = {
        "run_id": str(run_id),
        "environment": "production",
        "user_id": "",
        "pattern": "",
        "mode": mode,
    }
    return act.run(
        "restore-memory.yml",
        "workflow_dispatch",
        secrets=production_secrets(world, OWNER_CHAT_ID=str(OWNER)),
        payload=dispatch("main", **{**values, **inputs}),
    )


def test_backup_yml_keeps_memory_nightly_then_restore_dry_run_apply_one_user_undo(world, act, prod):
    """One nightly backup serves both: what backup.yml keeps, and the restores from it (each ran
    its own backup.yml before, ~15-25 s a run)."""
    prod.set("prod:memory:999", "a third user's fact")
    original = dumped(prod)
    nightly = nightly_backup(world, act)
    assert_kept_nightly(world, act, prod, nightly)

    prod.delete(f"prod:memory:{USER}")
    prod.rpush(f"prod:memory:{USER}", *DAMAGE)  # a release or a person damaged the daily user
    prod.rpush(f"prod:memory:{OTHER}", "said after the snapshot")  # another user goes on talking
    damaged = dumped(prod)

    looked = restore(world, act, "dry-run", nightly.run_id, user_id=str(USER))
    assert looked.ok, looked.tail()
    assert dumped(prod) == damaged
    assert f"change │ prod:memory:{USER}" in looked.log or f"change | prod:memory:{USER}" in looked.log
    assert "leave alone" in looked.log

    applied = restore(world, act, "apply", nightly.run_id, user_id=str(USER))
    assert applied.ok, applied.tail()
    after = dumped(prod)
    user_keys = {k for k in original if str(USER).encode() in k}
    assert {k: after[k] for k in user_keys} == {k: original[k] for k in user_keys}  # DUMP, byte for byte
    assert {k: v for k, v in after.items() if k not in user_keys} == {
        k: v for k, v in damaged.items() if k not in user_keys
    }  # every other key as it was, the other user's new memory included
    assert f"mode undo (after dry-run), run_id {applied.run_id}" in applied.log
    assert_backup_kept_before_the_write(applied.log)
    [told] = world.telegram.replies_to(world.bots["production"], OWNER)  # the apply, not the dry run
    assert f"memory restored from run {nightly.run_id} (user {USER})" in told

    undone = restore(world, act, "undo", applied.run_id)
    assert undone.ok, undone.tail()
    assert dumped(prod) == damaged
    assert_closed_again(world)
    for run in (looked, applied, undone):
        assert_no_secret(run, world)


def test_restore_refuses_a_run_without_a_snapshot_and_an_absent_user(world, act, prod):
    nightly = nightly_backup(world, act)
    assert nightly.ok, nightly.tail()
    before = dumped(prod)
    nothing = restore(world, act, "apply", 424)
    assert not nothing.ok and "holds no memory snapshot" in nothing.log
    absent = restore(world, act, "apply", nightly.run_id, user_id="555")
    assert not absent.ok and "user 555 is absent from" in absent.log
    assert dumped(prod) == before
    assert_closed_again(world)


def test_a_nightly_backup_on_develop_would_never_run_on_github(world, act, prod):
    """The harness holds GitHub's gate: production-scheduled, like production, admits main alone."""
    run = nightly_backup(world, act, "develop")
    assert not run.ok
    assert 'Branch "develop" is not allowed to deploy to production-scheduled' in run.log
