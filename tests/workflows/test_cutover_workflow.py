"""cutover.yml in act: production moves from the old bot's token to the configured new bot's."""

from __future__ import annotations

import pytest

from tests.workflows.scenarios import (
    assert_no_secret,
    dispatch,
    environment_secrets,
    health,
    start_live,
)


@pytest.fixture
def old_bot_on_production(world):
    """Production runs main with the legacy bot's token, as before runbook step 5."""
    legacy = world.telegram.add_bot("mindmate_legacy_bot")
    world.services["production"].env["TELEGRAM_BOT_TOKEN"] = legacy.token
    start_live(world, "production", world.commit("main", "main before the cutover"))
    assert health(world, "production")["bot"]["username"] == "mindmate_legacy_bot"
    return legacy


def test_cutover_puts_the_new_bot_on_production(world, act, old_bot_on_production):
    new = world.bots["production"]
    # The production environment's TELEGRAM_BOT_TOKEN is still the old bot's at this point.
    secrets = environment_secrets(
        world, "production", TELEGRAM_BOT_TOKEN=old_bot_on_production.token, NEW_TELEGRAM_BOT_TOKEN=new.token
    )
    run = act.run("cutover.yml", "workflow_dispatch", secrets=secrets, payload=dispatch("main"))
    assert run.ok, run.tail()
    seen = health(world, "production")
    assert seen["bot"]["username"] == new.username
    assert world.services["production"].env["TELEGRAM_BOT_TOKEN"] == new.token
    assert "production answers as the new bot: @mindmate_companion_bot" in run.log
    assert "old bot kept until" in run.log
    for value in (new.token, old_bot_on_production.token):
        assert value not in run.log


def test_the_new_bots_token_is_the_environments_own_so_it_is_typed_once(world, act, old_bot_on_production):
    """No NEW_TELEGRAM_BOT_TOKEN: the production environment's TELEGRAM_BOT_TOKEN (ci-tools init's) is it."""
    new = world.bots["production"]
    secrets = environment_secrets(world, "production", TELEGRAM_BOT_TOKEN=new.token)
    secrets.pop("NEW_TELEGRAM_BOT_TOKEN", None)
    run = act.run("cutover.yml", "workflow_dispatch", secrets=secrets, payload=dispatch("main"))
    assert run.ok, run.tail()
    assert health(world, "production")["bot"]["username"] == new.username
    assert_no_secret(run, world)


def test_cutover_with_another_bots_token_is_refused_before_anything_changes(world, act, old_bot_on_production):
    service = world.services["production"]
    deploys_before, env_before = len(service.deploys), dict(service.env)
    secrets = environment_secrets(
        world,
        "production",
        TELEGRAM_BOT_TOKEN=old_bot_on_production.token,
        NEW_TELEGRAM_BOT_TOKEN=world.bots["staging"].token,
    )
    run = act.run("cutover.yml", "workflow_dispatch", secrets=secrets, payload=dispatch("main"))
    assert not run.ok
    assert "NEW_TELEGRAM_BOT_TOKEN is @mindmate_dev_bot's, but production expects" in run.log
    assert (len(service.deploys), service.env) == (deploys_before, env_before)
    assert health(world, "production")["bot"]["username"] == "mindmate_legacy_bot"
    assert_no_secret(run, world)


def cutover(world, act, direction: str, env: str = "production", inputs: dict | None = None, **secrets: str):
    """cutover.yml dispatched from main with ``direction`` (and ``inputs``), in ``env``'s GitHub environment."""
    values = environment_secrets(world, env, **secrets)
    # Dispatched from the branch the environment admits (GitHub's gate: staging takes develop).
    payload = dispatch("main" if env == "production" else "develop", direction=direction, **(inputs or {}))
    return act.run("cutover.yml", "workflow_dispatch", secrets=values, payload=payload)


def test_cutover_forward_then_back_puts_the_old_bot_back_and_probes_it(world, act, old_bot_on_production):
    new, old = world.bots["production"], old_bot_on_production
    run = cutover(world, act, "forward", NEW_TELEGRAM_BOT_TOKEN=new.token)
    assert run.ok, run.tail()
    assert world.services["production"].env["PREVIOUS_TELEGRAM_BOT_TOKEN"] == old.token
    run = cutover(world, act, "back")  # the previous token comes from where cutover kept it
    assert run.ok, run.tail()
    assert health(world, "production")["bot"]["username"] == old.username
    assert "production answers as the previous bot again: @mindmate_legacy_bot" in run.log
    assert world.services["production"].env["PREVIOUS_TELEGRAM_BOT_TOKEN"] == new.token  # redo-able
    # The new bot no longer points at production, whose instance refuses its updates now: Telegram
    # keeps them pending instead of retrying them against the old bot for a day.
    assert new.webhook_url == "" and old.webhook_url.startswith(world.services["production"].router.url)
    assert "@mindmate_companion_bot's webhook deleted from production's URL" in run.log
    for value in (new.token, old.token):
        assert value not in run.log
    assert_no_secret(run, world)


def test_back_with_a_token_of_another_bot_is_refused_before_any_change(world, act, old_bot_on_production):
    run = cutover(world, act, "forward", NEW_TELEGRAM_BOT_TOKEN=world.bots["production"].token)
    assert run.ok, run.tail()
    service = world.services["production"]
    deploys_before, env_before = len(service.deploys), dict(service.env)
    stranger = world.telegram.add_bot("somebody_elses_bot")
    run = cutover(world, act, "back", PREVIOUS_TELEGRAM_BOT_TOKEN=stranger.token)
    assert not run.ok
    assert (
        "PREVIOUS_TELEGRAM_BOT_TOKEN is @somebody_elses_bot's, but the cutover replaced @mindmate_legacy_bot" in run.log
    )
    assert (len(service.deploys), service.env) == (deploys_before, env_before)
    assert stranger.token not in run.log
    assert_no_secret(run, world)


def test_the_window_is_finished_only_when_over_or_when_told(world, act, old_bot_on_production):
    run = cutover(world, act, "forward", NEW_TELEGRAM_BOT_TOKEN=world.bots["production"].token)
    assert run.ok, run.tail()
    service = world.services["production"]
    refused = cutover(world, act, "finish")
    assert not refused.ok and "the rollback window of production is open until" in refused.log, refused.tail()
    assert service.env["PREVIOUS_TELEGRAM_BOT_TOKEN"] == old_bot_on_production.token
    closed = cutover(world, act, "finish", inputs={"finish_now": "true"})
    assert closed.ok, closed.tail()
    assert "rollback window closed: @mindmate_legacy_bot can no longer come back" in closed.log
    assert not {"PREVIOUS_TELEGRAM_BOT_TOKEN", "PREVIOUS_BOT", "CUTOVER_AT"} & set(service.env)
    assert health(world, "production")["bot"]["username"] == "mindmate_companion_bot"  # untouched
    assert service.env["CUTOVER_FINISHED"].endswith(" @mindmate_legacy_bot")  # acceptance: window closed
    assert old_bot_on_production.token not in closed.log
    assert_no_secret(closed, world)


def test_staging_gets_a_new_bot_with_the_same_guarantees(world, act):
    legacy = world.telegram.add_bot("mindmate_old_staging_bot")
    world.services["staging"].env["TELEGRAM_BOT_TOKEN"] = legacy.token
    start_live(world, "staging", world.commit("develop", "develop before the new staging bot"))
    new = world.bots["staging"]  # @mindmate_dev_bot, the username the config expects
    run = cutover(
        world,
        act,
        "forward",
        "staging",
        {"environment": "staging"},
        TELEGRAM_BOT_TOKEN=legacy.token,
        NEW_TELEGRAM_BOT_TOKEN=new.token,
    )
    assert run.ok, run.tail()
    assert health(world, "staging")["bot"]["username"] == new.username
    assert "staging answers as the new bot: @mindmate_dev_bot" in run.log
    assert world.services["staging"].env["PREVIOUS_TELEGRAM_BOT_TOKEN"] == legacy.token  # for --back
    assert world.services["production"].env["TELEGRAM_BOT_TOKEN"] == world.bots["production"].token
    for value in (new.token, legacy.token):
        assert value not in run.log
