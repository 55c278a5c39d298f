"""Attacks on the arrival record the kit keeps (release_kit/arrival.py, docs/CONTRACT.md): a Redis that
will not keep it, an owner's own prefix and probe user, an update that is not a message to the bot.
A small bot that is not ours on the kit, against a real redis-server."""

from __future__ import annotations

import logging
import time

import httpx
from telegram import Update
from telegram.ext import ContextTypes

from release_kit.arrival import arrival_key
from tests.release_kit.test_kit import USER, echo, turn
from tests.support import signed

PRIVATE = "my secret diary entry"


def remembering(redis_url: str):
    """A handler that keeps the user's message in the bot's own key, as an owner's bot would."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)

    async def handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.effective_user is not None
        client.rpush(f"acme:notes:{update.effective_user.id}", update.message.text or "")
        await echo(update, context)

    return handler, client


def test_a_redis_that_refuses_the_record_script_loses_no_update_and_logs_no_user_text(
    small_bot, telegram, redis_server, caplog
):
    """A provider's Redis (or its ACL) that allows no EVAL: the kit cannot keep the record, and the
    user's message still takes effect, answered 200; the log names the failure, not the message."""
    handler, client = remembering(redis_server.url)
    client.execute_command("ACL", "SETUSER", "default", "-eval", "-evalsha")
    caplog.set_level(logging.WARNING, logger="release_kit")
    with small_bot(handler, KEY_PREFIX="acme:") as (url, fake):
        assert turn(url, telegram, fake, USER, PRIVATE, nonce=None).status_code == 200
    assert client.lrange(f"acme:notes:{USER}", 0, -1) == [PRIVATE]
    assert telegram.replies_to(fake, USER) == [f"echo: {PRIVATE}"]
    assert not client.exists(arrival_key("acme:", USER))
    said = [r.getMessage() for r in caplog.records if "arrival record not kept" in r.getMessage()]
    assert said and "NoPermissionError" in said[0]
    assert not [r for r in caplog.records if "diary" in r.getMessage()]


def test_a_record_name_of_another_type_loses_no_update(small_bot, telegram, redis_server):
    handler, client = remembering(redis_server.url)
    client.set(arrival_key("acme:", USER), "the owner's own key")
    with small_bot(handler, KEY_PREFIX="acme:") as (url, fake):
        assert turn(url, telegram, fake, USER, "hello", nonce=None).status_code == 200
    assert client.lrange(f"acme:notes:{USER}", 0, -1) == ["hello"]
    assert client.get(arrival_key("acme:", USER)) == "the owner's own key"  # not overwritten


def test_an_owners_prefix_and_probe_user_are_the_records_own(small_bot, telegram, redis_server):
    """KEY_PREFIX=acme: and PROBE_USER_ID=31337: the record lands under acme:, and the owner's probe
    user (not the default one) leaves none."""
    client = redis_server.client(decode_responses=True)
    with small_bot(echo, KEY_PREFIX="acme:", PROBE_USER_ID="31337") as (url, fake):
        assert turn(url, telegram, fake, USER, "hi", nonce=None).status_code == 200
        assert turn(url, telegram, fake, 31337, "/start").status_code == 200
    assert client.keys("*arrival*") == [arrival_key("acme:", USER)]
    assert client.hget(arrival_key("acme:", USER), "bot_id") == fake.token.split(":", 1)[0]


def test_leaving_or_blocking_the_bot_is_no_message_to_it(small_bot, telegram, redis_server):
    """my_chat_member (the user blocked the bot): not an arrival, and no later `last`."""
    client = redis_server.client(decode_responses=True)
    with small_bot(echo) as (url, fake):
        bot_id = int(fake.token.split(":", 1)[0])
        member = {"user": {"id": bot_id, "is_bot": True, "first_name": "bot"}, "status": "member"}
        kicked = {**member, "status": "kicked", "until_date": 0}
        update = {
            "update_id": 90001,
            "my_chat_member": {
                "chat": {"id": USER, "type": "private", "first_name": "Ada"},
                "from": {"id": USER, "is_bot": False, "first_name": "Ada"},
                "date": int(time.time()),
                "old_chat_member": member,
                "new_chat_member": kicked,
            },
        }
        answer = httpx.post(f"{url}/hook", json=update, headers=signed(fake.token), timeout=15)
        assert answer.status_code == 200
    assert not client.exists(arrival_key("dev:", USER))
