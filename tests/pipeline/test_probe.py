"""The probe's verdicts are pure functions of what was seen: judged here without a server."""

from __future__ import annotations

import pytest

from ci_tools.clients.health import Health, NotTheContract, contract_problem
from ci_tools.clients.telegram import BotInfo, WebhookInfo
from ci_tools.pipeline.levels import Level
from ci_tools.pipeline.probe import (
    Failed,
    judge_conversation,
    judge_health,
    judge_token,
    judge_unsigned,
    judge_webhook,
)
from ci_tools.settings import ProbeTalk, load_config

SHA = "a" * 40


@pytest.fixture
def config():
    return load_config()


def health(**changes):
    fields = dict(
        http_status=200,
        env="production",
        commit=SHA,
        bot_id=1,
        bot_username="mindmate_companion_bot",
        redis_ok=True,
        env_marker="production",
        key_prefix="prod:",
        moved_to=None,
    )
    return Health(**{**fields, **changes})


def test_a_healthy_release_passes(config):
    env = config.env("production")
    assert "Redis ok" in judge_health(health(), env, SHA, config)
    assert judge_token(BotInfo(1, "mindmate_companion_bot", True), env, config).startswith("@")
    assert judge_unsigned(403, serves_ours=True) == "unsigned update refused (403)"


@pytest.mark.parametrize(
    ("changes", "definite", "cause"),
    [
        ({"env": "staging"}, True, "ENV on the service is 'staging'"),
        ({"bot_username": "mindmate_dev_bot"}, True, "runs the staging bot's token"),
        ({"key_prefix": "dev:"}, True, "KEY_PREFIX"),
        ({"commit": "b" * 40}, False, "still runs another commit"),
        (
            {"commit": "b" * 40, "env": "staging"},
            False,
            "still runs another commit",
        ),  # not ours: not yet
        ({"redis_ok": False, "http_status": 503}, False, "cannot reach its Redis"),
        ({"env_marker": "staging"}, False, "REDIS_URL points at the staging Redis"),
    ],
)
def test_health_verdicts_are_definite_only_when_our_commit_says_so(config, changes, definite, cause):
    with pytest.raises(Failed) as failed:
        judge_health(health(**changes), config.env("production"), SHA, config)
    assert failed.value.definite is definite and cause in failed.value.cause


def test_another_bots_token_is_definite(config):
    with pytest.raises(Failed) as failed:
        judge_token(BotInfo(2, "mindmate_dev_bot", True), config.env("production"), config)
    assert failed.value.definite and "the staging bot's token" in failed.value.cause


def test_an_unsigned_update_accepted_is_definite_only_on_our_commit():
    for serves_ours, definite in ((True, True), (False, False)):
        with pytest.raises(Failed) as failed:
            judge_unsigned(200, serves_ours=serves_ours)
        assert failed.value.definite is definite
    with pytest.raises(Failed) as failed:
        judge_unsigned(502, serves_ours=True)  # a 5xx is a service starting up, not a verdict
    assert not failed.value.definite


HEALTH = Level.HEALTH


def test_webhook_verdicts(config):
    env = config.env("production")
    hook = f"{env.base_url}/telegram"
    fine = WebhookInfo(hook, 0, None, None)
    assert hook in judge_webhook(fine, env, None, HEALTH)
    with pytest.raises(Failed, match="unset"):
        judge_webhook(WebhookInfo("", 0, None, None), env, None, HEALTH)
    refused = WebhookInfo(hook, 7, 2000, "Wrong response from the webhook: 503")
    with pytest.raises(Failed) as failed:
        judge_webhook(refused, env, 1000, HEALTH)
    assert "Telegram is holding updates the bot refused" in failed.value.cause
    assert judge_webhook(refused, env, 3000, HEALTH)  # an error from before this deploy is history


@pytest.mark.parametrize("path", ["", "/telegram", "/123456:AAtokenAsPath", "/hooks/bot?x=1"])
def test_the_webhook_may_have_any_path_on_the_service(config, path):
    """The path is the bot's own choice (python-telegram-bot's run_webhook uses the token): only
    the host must be this service's."""
    env = config.env("production")
    assert judge_webhook(WebhookInfo(env.base_url + path, 0, None, None), env, None, Level.BASE)


@pytest.mark.parametrize(
    "url",
    [
        "https://mindmate-dev.onrender.com/telegram",  # the other environment's service
        "https://mindmate-prod.onrender.com.evil.example/telegram",  # our host as another's prefix
        "http://mindmate-prod.onrender.com/telegram",  # another scheme
    ],
)
def test_a_webhook_on_another_host_fails(config, url):
    env = config.env("production")
    assert env.base_url == "https://mindmate-prod.onrender.com"
    with pytest.raises(Failed) as failed:
        judge_webhook(WebhookInfo(url, 0, None, None), env, None, Level.CONVERSATION)
    assert failed.value.detail == f"webhook is {url}, expected a URL on https://mindmate-prod.onrender.com"
    assert "another service set this bot's webhook" in failed.value.cause


def test_a_503_telegram_delivered_since_is_a_redis_blip_only_where_healthz_tells(config):
    """The bake's blip rule: the bot's 503 ("deliver again"), everything delivered since. Without
    /healthz nothing says the 503 meant Redis, and it counts as before."""
    env = config.env("production")
    hook = f"{env.base_url}/telegram"
    delivered = WebhookInfo(hook, 0, 2000, "Wrong response from the webhook: 503 Service Unavailable")
    assert "Redis blip" in judge_webhook(delivered, env, 1000, HEALTH)
    with pytest.raises(Failed):
        judge_webhook(WebhookInfo(hook, 0, 2000, "Wrong response from the webhook: 500"), env, 1000, HEALTH)
    with pytest.raises(Failed):
        judge_webhook(delivered, env, 1000, Level.BASE)


MINDMATE = ProbeTalk(("/start", "/remember probe-{nonce}", "/recall"), "probe-{nonce}")


def test_conversation_verdicts():
    said = judge_conversation(["hi", "kept", "1. probe-n0nce"], "n0nce", MINDMATE)
    assert said == "/start, /remember, /recall answered; the last reply holds 'probe-{nonce}'"
    with pytest.raises(Failed, match="/recall did not answer with 'probe-n0nce'"):
        judge_conversation(["hi", "kept", "I don't remember anything yet"], "n0nce", MINDMATE)
    with pytest.raises(Failed, match="/recall did not answer"):  # another probe's nonce is not this one's
        judge_conversation(["hi", "kept", "1. probe-0ther"], "n0nce", MINDMATE)
    with pytest.raises(Failed, match="2 of 3 replies"):
        judge_conversation(["hi", "kept"], "n0nce", MINDMATE)


def test_the_default_conversation_asks_only_for_an_answer():
    assert judge_conversation(["Hi, I'm Ava."], "n0nce", ProbeTalk()) == "/start answered"
    with pytest.raises(Failed, match="0 of 1 replies"):
        judge_conversation([], "n0nce", ProbeTalk())


def test_the_health_contract_names_what_is_missing():
    assert contract_problem({"status": "ok"}) == "the answer: 'env' is a required property (see health.schema.json)"
    with pytest.raises(NotTheContract, match="redis"):
        Health.from_json(
            200, {"status": "ok", "env": "x", "commit": None, "bot": {"id": 1, "username": "b"}, "key_prefix": ""}
        )
