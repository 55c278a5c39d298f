"""The README runbook as an owner runs it, in act: preflight, cutover, memory copy, announce,
acceptance, each a dispatched workflow with its environment's secrets (nothing on a laptop).

The world starts as the seed does: the daily user on the dev bot with their memory under the
legacy unprefixed keys, and mindmate-prod running the old production bot.
"""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from tests.memory.helpers import USER, seed_user
from tests.workflows.scenarios import (
    assert_no_secret,
    dispatch,
    environment_secrets,
    health,
    start_live,
)


@pytest.fixture
def seed(world):
    dev = world.redis["staging"].client()
    seed_user(dev, prefix="")
    world.telegram.start_chat(world.bots["staging"], USER)  # the daily user has talked to the dev bot for months
    dev.delete("meta:env")  # the legacy bot never wrote one; the first staging deploy claims it
    start_live(world, "staging", world.commit("develop", "the dev bot as it runs today"))
    assert dev.get("meta:env") == b"staging" and dev.exists(f"memory:{USER}")
    old = world.telegram.add_bot("mywellnesscompanion_bot")
    world.services["production"].env["TELEGRAM_BOT_TOKEN"] = old.token
    start_live(world, "production", world.commit("main", "main before the cutover"))
    return old


def production(world, **extra):
    """The production environment as `ci-tools init` and `github setup` fill it."""
    values = {
        "REDIS_URL": world.external_redis_url("production"),
        "SOURCE_REDIS_URL": world.external_redis_url("staging"),
        "STAGING_TELEGRAM_BOT_TOKEN": world.bots["staging"].token,
        "STAGING_RENDER_SERVICE_ID": world.services["staging"].id,
        "STAGING_RENDER_API_KEY": world.secrets("staging")["RENDER_API_KEY"],  # scoped to staging
    }
    return environment_secrets(world, "production", **{**values, **extra})


def closed(world) -> bool:
    return all(kv.ip_allow_list == [] for kv in world.key_values.values())


def test_the_runbook_from_preflight_to_acceptance_in_actions(world, act, seed):
    key = Fernet.generate_key().decode()
    run = act.run("preflight.yml", "workflow_dispatch", secrets=production(world), payload=dispatch("main"))
    assert run.ok, run.tail()
    assert "staging and production are different bots" in run.log and closed(world)

    run = act.run("cutover.yml", "workflow_dispatch", secrets=production(world), payload=dispatch("main"))
    assert run.ok, run.tail()
    assert health(world, "production")["bot"]["username"] == world.bots["production"].username

    inputs = {
        "user_id": str(USER),
        "from": "staging",
        "to": "production",
        "mode": "apply",
        "on_conflict": "fail",
        "uncovered": "refuse",
        "legacy_source": "true",
        "run_id": "",
    }
    copy = act.run(
        "migrate-memory.yml",
        "workflow_dispatch",
        secrets=production(world, MEMORY_SNAPSHOT_KEY=key),
        payload=dispatch("main", **inputs),
    )
    assert copy.ok, copy.tail()

    run = act.run(
        "announce.yml",
        "workflow_dispatch",
        secrets=environment_secrets(world, "staging"),
        payload=dispatch("develop", user_id=str(USER), text=""),  # staging's environment admits develop
    )
    assert run.ok, run.tail()
    told = world.telegram.replies_to(world.bots["staging"], USER)[-1]
    assert act.run(
        "announce.yml",
        "workflow_dispatch",
        secrets=environment_secrets(world, "staging"),
        payload=dispatch("main", user_id=str(USER), text=""),
    ).log.startswith("[GitHub's environment gate]")  # from main, GitHub would refuse it
    assert told == f"Official bot moved here: https://t.me/{world.bots['production'].username}"

    world.telegram.send_user_message(world.bots["production"], USER, "/recall")  # the user moves
    assert "likes tea" in world.telegram.replies_to(world.bots["production"], USER)[-1]

    run = act.run(
        "acceptance.yml",
        "workflow_dispatch",
        secrets=production(world, MEMORY_SNAPSHOT_KEY=key),
        payload=dispatch("main", user_id=str(USER), copy_run_id=str(copy.run_id)),
    )
    assert run.ok, run.tail()
    assert "every key present, every remembered fact kept" in run.log and closed(world)
    assert_no_secret(run, world)


def test_preflight_in_actions_catches_one_bot_in_both_environments(world, act, seed):
    secrets = production(world, STAGING_TELEGRAM_BOT_TOKEN=world.bots["production"].token)
    run = act.run("preflight.yml", "workflow_dispatch", secrets=secrets, payload=dispatch("main"))
    assert not run.ok
    assert "create a new production bot in @BotFather" in run.log or "is @mindmate_companion_bot's" in run.log
    assert closed(world)
    assert_no_secret(run, world)


def test_preflight_before_the_new_bot_checks_only_what_exists(world, act, seed):
    secrets = production(world)
    secrets.pop("TELEGRAM_BOT_TOKEN")  # no new bot yet
    run = act.run(
        "preflight.yml", "workflow_dispatch", secrets=secrets, payload=dispatch("main", before_new_bot="true")
    )
    assert run.ok, run.tail()
    assert "not checked before the new bot exists" in run.log and closed(world)
