"""watch.yml in act: a healthy production passes; a failing webhook, Redis down and a revoked
token each fail the run naming the cause; an allow-list entry a killed run left is closed."""

from __future__ import annotations

import time

import pytest

from tests.workflows.scenarios import assert_no_secret, dispatch, production_secrets, start_live


@pytest.fixture
def live(world):
    sha = world.commit("main", "release: what production runs")
    start_live(world, "production", sha)
    return sha


OWNER = 7770001  # the owner's Telegram id (OWNER_CHAT_ID)


def watch(world, act, **secrets: str):
    return act.run(
        "watch.yml",
        "workflow_dispatch",
        secrets=production_secrets(world, **secrets),
        payload=dispatch("main", staging="false"),
    )


def test_a_healthy_production_passes_and_the_summary_holds_the_status(world, act, live):
    run = watch(world, act)
    assert run.ok, run.tail()
    assert "a deploy is live" in run.log and live[:7] in run.log
    assert "conversation" in run.log  # the probe held its conversation through Redis
    assert_no_secret(run, world)


def test_a_webhook_that_keeps_failing_fails_the_run(world, act, live):
    bot = world.bots["production"]
    bot.last_error_date, bot.last_error_message = (
        int(time.time()) - 120,
        "Wrong response from the webhook: 500",
    )
    run = watch(world, act)
    assert not run.ok
    assert "Telegram cannot deliver updates" in run.log


def test_redis_down_fails_the_run_and_the_owner_is_told_in_telegram(world, act, live):
    bot = world.bots["production"]
    world.telegram.start_chat(bot, OWNER)  # the owner pressed Start in their production bot once
    # Render stops routing to an instance whose health checks fail for 15 s (and restarts it after
    # 60 s); then /healthz answers Render's 503, not the bot's, and nothing can name Redis. A busy
    # runner's act took longer than that to reach its checks (load 12), so both are held off until
    # the run ends: the watch meets the bot's own answer, which this test is about (the routing's
    # own tests: tests/sandbox/test_render_routing.py).
    world.render.unroute_after = world.render.restart_after = float("inf")
    world.redis["production"].stop()
    run = watch(world, act, OWNER_CHAT_ID=str(OWNER))
    assert not run.ok
    # Redis is named as the cause: by status's health row ("Redis DOWN") when the bot's health
    # answers within status's 6 s budget, else by the probe ("Redis down"), which retries to its
    # deadline — at the suite's loaded end (load 14-17) status's one look ran out twice
    assert "redis down" in run.log.lower(), run.tail()
    [told] = world.telegram.replies_to(bot, OWNER)
    assert "the watch found production unhealthy" in told and "/actions/runs/" in told
    assert [m["chat_id"] for m in bot.sent] == [OWNER]  # nobody else, ever


def test_a_revoked_token_fails_the_run(world, act, live):
    bot = world.bots["production"]
    with world.telegram.lock:
        del world.telegram.bots[bot.token]
    run = watch(world, act)
    assert not run.ok
    assert "the token was revoked or is wrong" in run.log


def test_an_allow_list_entry_a_killed_run_left_is_closed(world, act, live):
    kv = world.key_values["production"]
    kv.ip_allow_list = [
        {
            "cidrBlock": "203.0.113.7/32",
            "description": "ci-tools run 77 at 2026-01-01T00:00:00Z (removed when it ends)",
        },
        {"cidrBlock": "198.51.100.1/32", "description": "the owner's laptop"},
    ]
    run = watch(world, act)
    assert "removed 203.0.113.7/32" in run.log
    assert kv.ip_allow_list == [{"cidrBlock": "198.51.100.1/32", "description": "the owner's laptop"}]
