"""migrate-memory.yml in act: one user's memory from the dev Key Value to the prod Key Value.

Both instances are private (``ipAllowList: []``): their external URLs refuse this
machine until the workflow admits itself through Render's API, and the allow lists
are put back after every run, failed ones included.
"""

from __future__ import annotations

import pytest
import redis
from cryptography.fernet import Fernet

from tests.memory.helpers import USER, seed_user
from tests.workflows.scenarios import (
    assert_backup_kept_before_the_write,
    assert_no_secret,
    dispatch,
    environment_secrets,
)


@pytest.fixture
def memory(world):
    """The daily user's memory in the dev Redis, under the legacy unprefixed keys the shipped
    config names (staging's prefix comes after the move); an empty, marked prod Redis."""
    seed_user(world.redis["staging"].client(), prefix="")
    world.redis["staging"].client().set("meta:env", "staging")  # what the first staging deploy claims
    world.redis["production"].client().set("prod:meta:env", "production")
    return world.redis["staging"].client(), world.redis["production"].client()


def secrets(world, **extra):
    """The production environment's secrets: both Key Values by their external URLs."""
    return environment_secrets(
        world,
        "production",
        SOURCE_REDIS_URL=world.external_redis_url("staging"),
        REDIS_URL=world.external_redis_url("production"),
        **extra,
    )


def run_memory(world, act, mode: str, **extra: str):
    inputs = {
        "user_id": str(USER),
        "from": "staging",
        "to": "production",
        "mode": mode,
        "on_conflict": "fail",
        "uncovered": "refuse",
        "legacy_source": "false",
        "run_id": "",
    }
    inputs.update({k: v for k, v in extra.items() if k in inputs})
    values = secrets(world, **{k: v for k, v in extra.items() if k not in inputs})
    return act.run(
        "migrate-memory.yml",
        "workflow_dispatch",
        secrets=values,
        payload=dispatch("main", **inputs),
    )


def dumped(client: redis.Redis) -> dict[bytes, tuple[bytes | None, int]]:
    return {key: (client.dump(key), client.pttl(key) > 0) for key in client.keys("*")}


def assert_closed_again(world):
    for kv in world.key_values.values():
        assert kv.ip_allow_list == [], f"{kv.name} was left open"


def test_the_private_key_values_refuse_this_machine_until_the_run_admits_itself(world, memory):
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(world.external_redis_url("production"), socket_timeout=2).ping()


def test_a_dry_run_leaves_the_target_untouched_and_the_allow_lists_as_they_were(world, act, memory):
    _, target = memory
    before = dumped(target)
    run = run_memory(world, act, "dry-run")
    assert run.ok, run.tail()
    assert dumped(target) == before
    assert "create" in run.log and "admits 127.0.0.1/32 for this run" in run.log
    assert_closed_again(world)
    assert_no_secret(run, world)


def test_apply_without_a_snapshot_key_is_refused_and_writes_nothing(world, act, memory):
    _, target = memory
    before = dumped(target)
    run = run_memory(world, act, "apply")
    assert not run.ok
    assert "a write needs MEMORY_SNAPSHOT_KEY" in run.log and "Fernet" in run.log
    assert dumped(target) == before
    assert_closed_again(world)


def test_apply_then_undo_with_that_runs_id_restores_the_target_byte_for_byte(world, act, memory):
    source, target = memory
    target.set("prod:memory:999", "another user's fact")  # must survive both runs untouched
    before = dumped(target)
    key = Fernet.generate_key().decode()
    applied = run_memory(world, act, "apply", MEMORY_SNAPSHOT_KEY=key)
    assert applied.ok, applied.tail()
    assert target.lrange(f"prod:memory:{USER}", 0, -1) == source.lrange(f"memory:{USER}", 0, -1)
    assert f"mode undo (after undo-dry-run), run_id {applied.run_id}" in applied.log
    kept = [p for p in (act.artifacts / str(applied.run_id)).rglob("*") if p.is_file()]
    assert kept and all(b"likes tea" not in p.read_bytes() for p in kept)  # encrypted
    assert any("-backup-" in p.name for p in kept)
    assert_backup_kept_before_the_write(applied.log)

    looked = run_memory(world, act, "undo-dry-run", run_id=str(applied.run_id), MEMORY_SNAPSHOT_KEY=key)
    assert looked.ok, looked.tail()
    assert "would be put back" in looked.log
    assert target.exists(f"prod:memory:{USER}")  # a dry run writes nothing

    undone = run_memory(world, act, "undo", run_id=str(applied.run_id), MEMORY_SNAPSHOT_KEY=key)
    assert undone.ok, undone.tail()
    assert dumped(target) == before
    assert_closed_again(world)
    for run in (applied, looked, undone):
        assert key not in run.log
        assert_no_secret(run, world)


def test_the_legacy_unprefixed_unmarked_source_is_copied_to_prod(world, act, memory):
    _, target = memory
    legacy = world.redis["staging"].client()
    legacy.flushall()
    seed_user(legacy, prefix="")  # the dev bot of today: no prefix…
    legacy.delete("meta:env")  # …and it never wrote a marker
    key = Fernet.generate_key().decode()
    refused = run_memory(world, act, "apply", MEMORY_SNAPSHOT_KEY=key)
    assert not refused.ok and "pass --legacy-source" in refused.log
    run = run_memory(world, act, "apply", legacy_source="true", MEMORY_SNAPSHOT_KEY=key)
    assert run.ok, run.tail()
    assert target.lrange(f"prod:memory:{USER}", 0, -1) == legacy.lrange(f"memory:{USER}", 0, -1)
    assert target.hgetall(f"prod:user:{USER}:profile") == legacy.hgetall(f"user:{USER}:profile")
    assert_closed_again(world)


def test_production_memory_is_never_copied_into_staging(world, act, memory):
    """Staging's job would hold production's Redis, and staging runs feature-branch code."""
    inputs = {
        "user_id": str(USER),
        "from": "production",
        "to": "staging",
        "mode": "dry-run",
        "on_conflict": "fail",
        "uncovered": "refuse",
        "legacy_source": "false",
        "run_id": "",
    }
    run = act.run(
        "migrate-memory.yml",
        "workflow_dispatch",
        secrets=environment_secrets(world, "staging"),
        payload=dispatch("develop", **inputs),
    )
    assert not run.ok
    assert "a user's production memory is not copied there" in run.log
    assert_closed_again(world)
