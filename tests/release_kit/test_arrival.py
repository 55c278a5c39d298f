"""The arrival record the kit keeps for a bot that is not ours (release_kit/arrival.py): an echo bot
of a few lines, its handlers unaware of it, against a real redis-server. finish-move reads it."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from release_kit import DEFAULT_PROBE_USER_ID as PROBE
from release_kit.arrival import arrival_key
from tests.release_kit.test_kit import USER, echo, turn

STRANGER = 777


def test_the_kit_records_which_bot_a_user_wrote_to_and_since_when_for_any_bot(small_bot, telegram, redis_server):
    client = redis_server.client(decode_responses=True)
    key = arrival_key("dev:", USER)  # ENV=staging: the kit's default prefix
    with small_bot(echo) as (url, fake):
        bot_id = fake.token.split(":", 1)[0]
        assert turn(url, telegram, fake, USER, "hello", nonce=None).status_code == 200
        first = client.hgetall(key)
        assert first["bot_id"] == bot_id and first["since"] == first["last"]
        client.hset(key, mapping={"since": "1700000000", "last": "1700000000"})  # as if days ago
        assert turn(url, telegram, fake, USER, "again", nonce=None).status_code == 200
        later = client.hgetall(key)
        assert later["since"] == "1700000000" and int(later["last"]) >= int(first["last"])  # no new arrival
        # send-back carried another bot's record here: their next message is their arrival (again)
        client.hset(key, mapping={"bot_id": "111", "since": "1700000000", "last": "1700000000"})
        assert turn(url, telegram, fake, USER, "back", nonce=None).status_code == 200
        back = client.hgetall(key)
        assert back["bot_id"] == bot_id and back["since"] == back["last"] and int(back["since"]) > 1700000000
        assert turn(url, telegram, fake, PROBE, "/start").status_code == 200  # the pipeline's turn
        assert not client.exists(arrival_key("dev:", PROBE))
    assert telegram.replies_to(fake, USER) == ["echo: hello", "echo: again", "echo: back"]
    assert client.keys("*arrival*") == [key]  # one record, under the kit's prefix and layout


def test_a_stranger_the_tester_gate_answers_leaves_no_record(small_bot, telegram, redis_server):
    client = redis_server.client(decode_responses=True)
    with small_bot(echo, TESTER_IDS=str(USER), PRODUCTION_BOT="ava_bot") as (url, fake):
        assert turn(url, telegram, fake, STRANGER, "hi", nonce=None).status_code == 200
        assert turn(url, telegram, fake, USER, "hi", nonce=None).status_code == 200
    assert telegram.replies_to(fake, STRANGER) == ["https://t.me/ava_bot"]
    assert not client.exists(arrival_key("dev:", STRANGER)) and client.exists(arrival_key("dev:", USER))


def test_a_record_that_cannot_be_kept_never_fails_an_update_that_needs_no_memory(small_bot, telegram, redis_server):
    handled: list[int] = []

    async def no_memory(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        handled.append(update.update_id)
        await echo(update, context)

    with small_bot(no_memory) as (url, fake):
        assert turn(url, telegram, fake, USER, "before", nonce=None).status_code == 200  # claims the Redis
        redis_server.stop()
        assert turn(url, telegram, fake, USER, "still here", nonce=None).status_code == 200
    assert telegram.replies_to(fake, USER) == ["echo: before", "echo: still here"] and len(handled) == 2
