"""No remembered fact is lost when Redis blips, and no update takes effect twice.

The real bot, a real redis-server with an append-only file (so a restart keeps the
data, as Render's Key Value does) and the Telegram stand-in delivering updates.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from mindmate.store import claim_env_marker
from sandbox.bot import ThreadedBot
from sandbox.redis import RedisServer
from tests.support import signed

USER = 5150


@pytest.fixture
def durable_bot(bot_environ):
    with RedisServer(persist=True) as server:
        environ, fake = bot_environ(server.url)
        claim_env_marker(server.client(), "dev:", "staging")
        with ThreadedBot(environ) as bot:
            yield bot, fake, server


def deliver(bot, update):
    return httpx.post(f"{bot.url}/telegram", json=update, headers=signed(bot.settings.token), timeout=15)


def test_redis_down_answers_5xx_then_the_redelivery_is_stored_once_and_answered(durable_bot, telegram, caplog):
    bot, fake, server = durable_bot
    update = telegram.make_update(USER, "/remember my sister is Mia", to=fake)
    server.stop()
    response = deliver(bot, update)
    assert response.status_code == 503
    assert f"update {update['update_id']} did not take effect" in caplog.text
    assert fake.sent == []  # no "I'll remember that" for a fact that was not kept
    server.start()
    client = server.client(decode_responses=True)
    assert client.lrange(f"dev:memory:{USER}", 0, -1) == []  # nothing half-written
    assert deliver(bot, update).status_code == 200  # Telegram's redelivery
    assert client.lrange(f"dev:memory:{USER}", 0, -1) == ["my sister is Mia"]
    assert telegram.replies_to(fake, USER) == ["I'll remember that. (1 things so far)"]


def test_the_same_update_delivered_twice_takes_effect_once(durable_bot, telegram, caplog):
    caplog.set_level(logging.INFO, logger="mindmate")
    bot, fake, server = durable_bot
    fact = telegram.make_update(USER, "/remember I play the cello", to=fake)
    chat = telegram.make_update(USER, "a long day today", to=fake)
    for update in (fact, fact, chat, chat):
        assert deliver(bot, update).status_code == 200
    client = server.client(decode_responses=True)
    assert client.lrange(f"dev:memory:{USER}", 0, -1) == ["I play the cello"]
    assert client.llen(f"dev:user:{USER}:history") == 1
    assert len(telegram.replies_to(fake, USER)) == 2
    assert "already took effect" in caplog.text


def test_a_refused_write_is_a_5xx_too(durable_bot, telegram):
    """Redis refusing writes (here: it wants a replica it does not have) is a storage failure."""
    bot, fake, server = durable_bot
    server.client().config_set("min-replicas-to-write", 1)
    response = deliver(bot, telegram.make_update(USER, "/remember tea, no sugar", to=fake))
    assert response.status_code == 503
    server.client().config_set("min-replicas-to-write", 0)
    assert server.client().llen(f"dev:memory:{USER}") == 0


def test_a_user_who_blocked_the_bot_is_acknowledged(durable_bot, telegram, caplog):
    bot, fake, server = durable_bot
    fake.blocked_by.add(USER)
    assert deliver(bot, telegram.make_update(USER, "/remember still here", to=fake)).status_code == 200
    assert "a retry would fail the same way" in caplog.text
    assert server.client(decode_responses=True).lrange(f"dev:memory:{USER}", 0, -1) == ["still here"]


def test_redis_down_for_3_s_while_10_messages_arrive_all_are_stored_once_in_order(durable_bot, telegram):
    """Through the stand-in's own redelivery (tdlib's WebhookActor: backoff, per-chat order), not a resend."""
    import json
    import time

    _, fake, server = durable_bot
    server.stop()
    stopped = time.monotonic()
    for i in range(10):
        telegram.send_user_message(fake, USER, f"message {i}")
        time.sleep(0.25)
    time.sleep(max(0.0, 3.0 - (time.monotonic() - stopped)))
    server.start()
    assert telegram.wait_delivered(30), f"{telegram.held()} update(s) never taken"
    stored = server.client(decode_responses=True).lrange(f"dev:user:{USER}:history", 0, -1)
    texts = [json.loads(entry)["text"] for entry in stored]
    assert texts == [f"message {i}" for i in range(10)]  # each once, in the order sent
    assert telegram.redeliveries >= 1 and fake.pending_update_count == 0
