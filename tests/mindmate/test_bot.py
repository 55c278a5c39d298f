"""The reference bot against real Redis and the Telegram stand-in."""

from __future__ import annotations

import time

import httpx
import pytest

from mindmate.settings import SettingsError, bot_secret, load_settings
from mindmate.store import claim_env_marker
from release_kit import __version__ as KIT_VERSION
from release_kit.arrival import arrival_key
from sandbox.bot import BotProcess, ThreadedBot
from tests.support import WEBHOOK_SECRET, signed

USER = 4242


def test_unsigned_webhook_post_is_refused(running_bot, telegram):
    bot, fake = running_bot
    update = telegram.make_update(USER, "/start", to=fake)
    assert httpx.post(f"{bot.url}/telegram", json=update).status_code == 403
    wrong = {"X-Telegram-Bot-Api-Secret-Token": "not-the-secret"}
    assert httpx.post(f"{bot.url}/telegram", json=update, headers=wrong).status_code == 403
    assert fake.sent == []


def test_signed_garbage_is_acknowledged_and_logged_not_redelivered_forever(running_bot, caplog):
    bot, fake = running_bot
    headers = {**signed(fake.token), "Content-Type": "application/json"}
    for body in (b"{not json", b"[1, 2]", b'{"update_id": "x", "message": 5}'):
        response = httpx.post(f"{bot.url}/telegram", content=body, headers=headers)
        assert response.status_code == 200, body
    assert caplog.text.count("ignored a body that is not a Telegram update") == 3
    assert fake.sent == []


def test_start_sets_webhook_and_greets(running_bot, telegram, redis_server):
    bot, fake = running_bot
    assert fake.webhook_url == f"{bot.url}/telegram"
    assert fake.webhook_secret == bot_secret(WEBHOOK_SECRET, fake.token)  # bound to this bot
    assert fake.webhook_secret != WEBHOOK_SECRET
    response = telegram.send_user_message(fake, USER, "/start")
    assert response is not None and response.status_code == 200
    replies = telegram.replies_to(fake, USER)
    assert len(replies) == 1 and replies[0].startswith("Hello, Ada! Nice to meet you.")
    profile = redis_server.client(decode_responses=True).hgetall(f"dev:user:{USER}:profile")
    assert profile["first_seen"] == profile["last_seen"] and profile["first_name"] == "Ada"
    telegram.send_user_message(fake, USER, "/start")
    assert "Good to see you again" in telegram.replies_to(fake, USER)[-1]


def test_remember_recall_forget_round_trip_under_prefix(running_bot, telegram, redis_server):
    _, fake = running_bot
    telegram.send_user_message(fake, USER, "/remember I take my tea without sugar")
    telegram.send_user_message(fake, USER, "/remember My sister is called Mia")
    telegram.send_user_message(fake, USER, "/recall")
    recall = telegram.replies_to(fake, USER)[-1]
    assert "1. I take my tea without sugar" in recall and "2. My sister is called Mia" in recall
    client = redis_server.client(decode_responses=True)
    assert client.lrange(f"dev:memory:{USER}", 0, -1) == [
        "I take my tea without sugar",
        "My sister is called Mia",
    ]
    assert not [k for k in client.keys("*") if not k.startswith("dev:")]
    telegram.send_user_message(fake, USER, "/forget 1")
    assert client.lrange(f"dev:memory:{USER}", 0, -1) == ["My sister is called Mia"]
    telegram.send_user_message(fake, USER, "/forget 9")
    assert "Which one?" in telegram.replies_to(fake, USER)[-1]
    telegram.send_user_message(fake, USER, "/forget all")
    assert client.exists(f"dev:memory:{USER}") == 0


def test_key_prefix_none_keeps_a_legacy_bots_unprefixed_memory(redis_server, bot_environ, telegram):
    """The daily user's bot until they move: KEY_PREFIX=none reads and writes the legacy keys."""
    client = redis_server.client(decode_responses=True)
    client.rpush(f"memory:{USER}", "I take my tea without sugar")  # what the legacy bot wrote
    environ, fake = bot_environ(redis_server.url, KEY_PREFIX="none")
    with ThreadedBot(environ):
        telegram.send_user_message(fake, USER, "/remember My sister is called Mia")
        telegram.send_user_message(fake, USER, "/recall")
    recall = telegram.replies_to(fake, USER)[-1]
    assert "1. I take my tea without sugar" in recall and "2. My sister is called Mia" in recall
    assert client.get("meta:env") == "staging"
    assert not [k for k in client.keys("*") if k.startswith(("dev:", "none"))]


def test_free_text_goes_to_capped_history(redis_server, bot_environ, telegram):
    environ, fake = bot_environ(redis_server.url, HISTORY_LIMIT="8")
    claim_env_marker(redis_server.client(), "dev:", "staging")
    with ThreadedBot(environ):
        for i in range(12):
            telegram.send_user_message(fake, USER, f"message {i}")
    history = redis_server.client(decode_responses=True).lrange(f"dev:user:{USER}:history", 0, -1)
    assert len(history) == 8
    assert '"message 11"' in history[-1] and '"message 4"' in history[0]


def test_version_names_env_and_short_commit(running_bot, telegram):
    _, fake = running_bot
    telegram.send_user_message(fake, USER, "/version")
    assert telegram.replies_to(fake, USER)[-1] == "MindMate staging @ 0123456"


def test_healthz_contract_then_503_when_redis_stops(running_bot, redis_server):
    bot, fake = running_bot
    response = httpx.get(f"{bot.url}/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body.pop("contract") == {"level": "conversation", "kit": KIT_VERSION, "probe_path": "/probe"}
    assert body["updates"].pop("last_handled_at") is None  # nothing handled yet
    assert body["updates"].pop("started_at") <= time.time()  # when it started: the quiet moment reads it
    assert body.pop("reports") == {"oops": []}  # /oops is on; nobody has said anything is off
    assert body == {
        "status": "ok",
        "env": "staging",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "bot": {"id": fake.id, "username": "mindmate_dev_bot"},
        "redis": {"ok": True, "env_marker": "staging"},
        "key_prefix": "dev:",
        "moved_to": None,
        "updates": {"handled": 0, "failed": 0, "last_failure": None},
    }
    assert fake.token not in response.text and WEBHOOK_SECRET not in response.text
    redis_server.stop()
    response = httpx.get(f"{bot.url}/healthz", timeout=10)
    assert response.status_code == 503
    assert response.json()["redis"] == {"ok": False, "env_marker": None}


def test_healthz_counts_the_updates_a_handler_failed_on_but_not_telegrams_refusals(running_bot, telegram, monkeypatch):
    """A handler's exception is answered 200 (no retry helps), so only /healthz can show it."""
    bot, fake = running_bot
    telegram.send_user_message(fake, USER, "/start")
    fake.blocked_by.add(USER)  # Telegram refuses the reply: not the code's failure
    telegram.send_user_message(fake, USER, "/recall")
    fake.blocked_by.clear()
    monkeypatch.setattr("mindmate.store.MemoryStore.append_history", _boom)
    assert telegram.send_user_message(fake, USER, "my secret diary entry").status_code == 200
    body = httpx.get(f"{bot.url}/healthz").json()
    assert time.time() - 30 < body["updates"].pop("last_handled_at") <= time.time()  # when, never who or what
    assert body["updates"].pop("started_at") <= time.time()
    assert body["updates"] == {"handled": 3, "failed": 1, "last_failure": {"error": "KeyError", "kind": "message"}}
    assert "diary" not in httpx.get(f"{bot.url}/healthz").text


async def _boom(*args: object, **kwargs: object) -> None:
    raise KeyError("a refactor's bug")


def test_moved_to_answers_every_message_with_the_link(redis_server, bot_environ, telegram):
    environ, fake = bot_environ(redis_server.url, MOVED_TO="@mindmate_companion_bot")
    claim_env_marker(redis_server.client(), "dev:", "staging")
    with ThreadedBot(environ):
        for text in ["/start", "hello", "/recall"]:
            telegram.send_user_message(fake, USER, text)
    assert telegram.replies_to(fake, USER) == ["https://t.me/mindmate_companion_bot"] * 3
    assert redis_server.client().exists(f"dev:memory:{USER}", f"dev:user:{USER}:profile") == 0


def test_production_on_a_staging_redis_exits_with_one_line(redis_server, bot_environ, subprocess_env, tmp_path):
    claim_env_marker(redis_server.client(), "prod:", "staging")
    environ, _ = bot_environ(redis_server.url, env="production", username="mindmate_companion_bot")
    process = BotProcess({**subprocess_env, **environ}, log_path=tmp_path / "bot.log")
    with pytest.raises(RuntimeError) as failure:
        process.start()
    line = process.last_line()
    assert "ENV=production" in line and "prod:meta:env=staging" in line
    assert "exited with 1" in str(failure.value)
    log = (tmp_path / "bot.log").read_text()
    assert "Traceback" not in log
    assert environ["TELEGRAM_BOT_TOKEN"] not in log
    assert "starting MindMate ENV=production commit=0123456 key_prefix=prod:" in log


def test_process_start_claims_marker_and_serves(redis_server, bot_environ, subprocess_env, tmp_path):
    environ, fake = bot_environ(redis_server.url, env="production", username="mindmate_companion_bot")
    with BotProcess({**subprocess_env, **environ}, log_path=tmp_path / "bot.log") as process:
        body = httpx.get(f"{process.url}/healthz").json()
    assert body["env"] == "production" and body["redis"]["env_marker"] == "production"
    assert redis_server.client().get("prod:meta:env") == b"production"
    assert fake.token not in (tmp_path / "bot.log").read_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ENV": ""}, "ENV is not set"),
        ({"ENV": "qa"}, "KEY_PREFIX is not set"),
        ({"KEY_PREFIX": "dev"}, "must end with ':'"),
        ({"PORT": "eighty"}, "must be whole numbers"),
        ({"TELEGRAM_WEBHOOK_SECRET": "has space"}, "may hold only"),
        ({"MOVED_TO": "no/such"}, "not a Telegram username"),
        ({"REDIS_URL": ""}, "REDIS_URL is not set"),
    ],
)
def test_settings_errors_name_the_fix(change, message):
    environ = {
        "ENV": "staging",
        "TELEGRAM_BOT_TOKEN": "1:x",
        "TELEGRAM_WEBHOOK_SECRET": "abc",
        "REDIS_URL": "redis://127.0.0.1:1",
        **change,
    }
    with pytest.raises(SettingsError, match=message):
        load_settings(environ)


def test_settings_repr_hides_secrets():
    settings = load_settings(
        {
            "ENV": "production",
            "TELEGRAM_BOT_TOKEN": "123456:secret-token",
            "TELEGRAM_WEBHOOK_SECRET": "abc",
            "REDIS_URL": "redis://:hunter2@h:6379",
        }
    )
    assert settings.key_prefix == "prod:"
    assert "secret-token" not in repr(settings) and "hunter2" not in repr(settings)


TESTER = 1001


@pytest.fixture
def staging_with_testers(redis_server, bot_environ):
    environ, fake = bot_environ(redis_server.url, TESTER_IDS=f"{TESTER}, 1002", PRODUCTION_BOT="mindmate_companion_bot")
    claim_env_marker(redis_server.client(), "dev:", "staging")
    with ThreadedBot(environ) as bot:
        yield bot, fake


def test_a_non_tester_on_staging_gets_only_the_link_and_leaves_no_key(staging_with_testers, telegram, redis_server):
    _, fake = staging_with_testers
    client = redis_server.client()
    before = client.dbsize()
    for text in ("/start", "/remember my secret", "hello?"):
        assert telegram.send_user_message(fake, USER, text).status_code == 200
    assert telegram.replies_to(fake, USER) == ["https://t.me/mindmate_companion_bot"] * 3
    assert client.dbsize() == before


def test_a_tester_on_staging_gets_the_bot(staging_with_testers, telegram, redis_server):
    _, fake = staging_with_testers
    telegram.send_user_message(fake, TESTER, "/remember staging works")
    assert telegram.replies_to(fake, TESTER) == ["I'll remember that. (1 things so far)"]
    assert redis_server.client().lrange(f"dev:memory:{TESTER}", 0, -1) == [b"staging works"]


def test_without_an_allowlist_everyone_gets_the_bot(running_bot, telegram):
    _, fake = running_bot  # production leaves TESTER_IDS unset
    telegram.send_user_message(fake, USER, "/remember anyone may")
    assert telegram.replies_to(fake, USER) == ["I'll remember that. (1 things so far)"]


def test_testers_need_a_production_bot_to_send_the_others_to():
    with pytest.raises(SettingsError, match="PRODUCTION_BOT"):
        load_settings(
            {
                "ENV": "staging",
                "TELEGRAM_BOT_TOKEN": "1:x",
                "TELEGRAM_WEBHOOK_SECRET": "s",
                "REDIS_URL": "redis://x",
                "TESTER_IDS": "1",
            }
        )


def test_the_probe_user_talks_through_the_handlers_and_nothing_reaches_telegram(
    staging_with_testers, telegram, redis_server
):
    from mindmate.settings import DEFAULT_PROBE_USER_ID as PROBE

    bot, fake = staging_with_testers  # the allowlist lets the probe user through
    nonce = "abc123def456"
    headers = {**signed(fake.token), "X-Probe-Nonce": nonce}
    for text in ("/start", f"/remember probe-{nonce}", "/recall"):
        update = telegram.make_update(PROBE, text, to=fake)
        assert httpx.post(f"{bot.url}/telegram", json=update, headers=headers).status_code == 200
    assert fake.sent == []
    client = redis_server.client(decode_responses=True)
    assert 0 < client.ttl(f"dev:memory:{PROBE}") <= 300  # gone within minutes even if never cleaned
    assert httpx.get(f"{bot.url}/probe/{nonce}").status_code == 403  # unsigned
    replies = httpx.get(f"{bot.url}/probe/{nonce}", headers=signed(fake.token)).json()["replies"]
    assert len(replies) == 3 and f"probe-{nonce}" in replies[2]
    assert httpx.delete(f"{bot.url}/probe/{nonce}", headers=signed(fake.token)).json()["deleted"] >= 3
    assert [k for k in client.keys("*") if str(PROBE) in k or "probe:" in k] == []


def test_a_probe_nonce_from_a_real_user_is_ignored(running_bot, telegram):
    bot, fake = running_bot
    update = telegram.make_update(USER, "/start", to=fake)
    headers = {**signed(fake.token), "X-Probe-Nonce": "abc123def456"}
    assert httpx.post(f"{bot.url}/telegram", json=update, headers=headers).status_code == 200
    assert len(telegram.replies_to(fake, USER)) == 1  # a real user's reply goes to Telegram


def test_a_second_instance_waits_out_telegrams_429_on_set_webhook(redis_server, bot_environ, telegram):
    """A deploy's new instance sets the webhook within a second of the old one: 429, retry after 1."""

    from sandbox.ports import free_port

    environ, fake = bot_environ(redis_server.url)
    with ThreadedBot(environ):
        port = free_port()
        second = {**environ, "PORT": str(port), "RENDER_EXTERNAL_URL": f"http://127.0.0.1:{port}"}
        started = time.monotonic()
        with ThreadedBot(second):
            assert fake.webhook_url == f"http://127.0.0.1:{port}/telegram"
            assert time.monotonic() - started >= 0.5  # it waited for Telegram's second


def test_the_bot_and_the_pipeline_bind_the_webhook_secret_to_a_bot_alike():
    """The probe signs with what the bot checks; two bots of one environment never share it."""
    import re

    from ci_tools.clients.telegram import webhook_secret_for

    for token in ("123:abc", "7000000001:AAmindmatesandboxTokenXYZ12345"):
        assert bot_secret(WEBHOOK_SECRET, token) == webhook_secret_for(WEBHOOK_SECRET, token)
    assert bot_secret(WEBHOOK_SECRET, "1:a") != bot_secret(WEBHOOK_SECRET, "2:a")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,256}", bot_secret(WEBHOOK_SECRET, "1:a"))  # Telegram's rule


def test_mindmate_gets_the_arrival_record_through_the_kit_and_no_longer_writes_its_own(
    redis_server, bot_environ, telegram
):
    """The kit keeps which bot the user talks to and since when (release_kit/arrival.py), for
    mindmate as for any bot: a record naming another bot (send-back's copy) makes the next visit
    the user's arrival here; later visits leave ``since`` alone. The profile keeps no copy of it."""
    client = redis_server.client(decode_responses=True)
    record, profile = arrival_key("prod:", USER), f"prod:user:{USER}:profile"
    client.hset(record, mapping={"bot_id": "111", "since": "1700000000", "last": "1700000000"})
    environ, fake = bot_environ(redis_server.url, env="production", username="mindmate_companion_bot")
    new_id = fake.token.split(":")[0]
    with ThreadedBot(environ):
        telegram.send_user_message(fake, USER, "/recall")
        arrived = client.hgetall(record)
        assert (
            arrived["bot_id"] == new_id and arrived["since"] == arrived["last"] and int(arrived["since"]) > 1700000000
        )
        client.hset(record, "since", "1700000500")  # as if it were days ago
        telegram.send_user_message(fake, USER, "a plain message")
    assert client.hget(record, "since") == "1700000500"  # still there: no new arrival
    assert not {"bot_id", "bot_since"} & set(client.hgetall(profile))  # the kit's record, not mindmate's
