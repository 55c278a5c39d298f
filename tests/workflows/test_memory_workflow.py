"""migrate-memory.yml in act: one user's memory from the dev Redis to the prod Redis."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from tests.memory_helpers import USER, seed_user
from tests.workflows.conftest import assert_no_secret, dispatch, environment_secrets


@pytest.fixture
def memory(world):
    """The daily user's memory in the dev Redis; an empty, marked prod Redis."""
    seed_user(world.redis["staging"].client())
    world.redis["production"].client().set("prod:meta:env", "production")
    return world.redis["staging"].client(), world.redis["production"].client()


def secrets(world, **extra):
    return environment_secrets(
        world, "production", SOURCE_REDIS_URL=world.redis["staging"].url, **extra
    )


def copy_inputs(mode: str) -> dict:
    return dispatch("main", user_id=str(USER), to="production", mode=mode, on_conflict="fail",
                    **{"from": "staging"})  # fmt: skip


def test_a_dry_run_leaves_the_target_untouched(world, act, memory):
    _, target = memory
    before = sorted(target.keys("*"))
    run = act.run("migrate-memory.yml", "workflow_dispatch", secrets=secrets(world),
                  payload=copy_inputs("dry-run"))  # fmt: skip
    assert run.ok, run.tail()
    assert sorted(target.keys("*")) == before
    assert "create" in run.log
    assert_no_secret(run, world)


def test_apply_copies_the_memory_and_keeps_only_an_encrypted_artifact(world, act, memory):
    source, target = memory
    key = Fernet.generate_key().decode()
    run = act.run("migrate-memory.yml", "workflow_dispatch",
                  secrets=secrets(world, MEMORY_SNAPSHOT_KEY=key), payload=copy_inputs("apply"))  # fmt: skip
    assert run.ok, run.tail()
    assert target.lrange(f"prod:memory:{USER}", 0, -1) == source.lrange(f"dev:memory:{USER}", 0, -1)
    assert target.hgetall(f"prod:user:{USER}:profile") == source.hgetall(f"dev:user:{USER}:profile")
    kept = [p for p in act.artifacts.rglob("*") if p.is_file()]
    assert kept, "the encrypted snapshot and backup were not kept"
    for path in kept:
        assert b"likes tea" not in path.read_bytes(), f"{path.name} is not encrypted"
    assert key not in run.log
    assert_no_secret(run, world)
