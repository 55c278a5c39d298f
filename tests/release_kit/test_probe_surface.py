"""The kit's surface from outside, as an attacker or a confused client meets it (nonces at the
edges of the rules in docs/CONTRACT.md), and what its log shows of the bot's secrets."""

from __future__ import annotations

import logging
import secrets

import httpx
import pytest
from telegram.ext import MessageHandler, filters

from release_kit import DEFAULT_PROBE_USER_ID as PROBE
from release_kit import bot_secret
from sandbox.ports import free_port
from tests.release_kit.test_kit import USER, echo, kit_for, replies, serving, turn
from tests.support import WEBHOOK_SECRET, signed


@pytest.mark.parametrize("nonce", ["abcdef%0A", "abcdef%0D%0A", "ABCDEF", "abc", "a" * 65, "abcdef%2Fx"])
def test_a_nonce_outside_the_contracts_pattern_is_a_400(small_bot, nonce):
    """``^[a-z0-9-]{6,64}$`` with ``re.match`` takes "abcdef\\n" (``$`` matches before a final newline)."""
    with small_bot(echo) as (url, fake):
        for method in ("GET", "DELETE"):
            answer = httpx.request(method, f"{url}/probe/{nonce}", headers=signed(fake.token))
            assert answer.status_code in (400, 404), (method, nonce, answer.text)


def test_no_log_line_holds_the_token_or_the_secret_even_at_debug(redis_server, telegram, caplog):
    """python-telegram-bot logs its URLs (``/bot<token>/...``) at DEBUG while the bot is built,
    before the kit's server exists. A token of this test's own: the redaction is process-wide."""
    caplog.set_level(logging.DEBUG)
    fake, port = (
        telegram.add_bot("debug_kit_bot", token=f"{secrets.randbelow(10**9) + 1}:AA{secrets.token_hex(16)}"),
        free_port(),
    )
    kit = kit_for(redis_server.url, telegram.url, port)
    application = kit.builder().token(fake.token).build()
    application.add_handler(MessageHandler(filters.ALL, echo))
    with serving(kit.asgi(application, url_path=fake.token), port) as url:
        assert turn(url, telegram, fake, USER, "hi", nonce=None, path=fake.token).status_code == 200
        assert turn(url, telegram, fake, PROBE, "hi", path=fake.token).status_code == 200
        assert replies(url, fake) == ["echo: hi"]
    logged = "\n".join(f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records)
    assert "getMe" in logged and "sendMessage" in logged  # the calls are logged, the secrets are not
    for secret in (fake.token, WEBHOOK_SECRET, bot_secret(WEBHOOK_SECRET, fake.token)):
        assert secret not in logged


def test_probe_turns_and_real_users_at_once_each_get_their_own_replies(redis_server, telegram):
    """Each request serves its update in its own task: three probe runs and two real users at
    once, each handler awaiting between its replies, and nothing crosses over."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from telegram import Update
    from telegram.ext import ContextTypes

    async def twice(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        for word in ("one", "two"):
            await asyncio.sleep(0.05)
            await update.message.reply_text(f"{word}: {update.message.text}")

    fake, port = telegram.add_bot("small_kit_bot"), free_port()
    kit = kit_for(redis_server.url, telegram.url, port)
    application = kit.builder().token(fake.token).build()
    application.add_handler(MessageHandler(filters.TEXT, twice))
    turns = [(PROBE, "run-aaaaaa"), (USER, None), (PROBE, "run-bbbbbb"), (USER + 1, None), (PROBE, "run-cccccc")]
    with serving(kit.asgi(application, url_path="hook"), port) as url, ThreadPoolExecutor(len(turns)) as pool:
        answers = pool.map(lambda t: turn(url, telegram, fake, t[0], f"from {t[1]}", nonce=t[1]).status_code, turns)
        assert list(answers) == [200] * len(turns)
        for _, nonce in turns[::2]:
            assert replies(url, fake, str(nonce)) == [f"one: from {nonce}", f"two: from {nonce}"]
    for user in (USER, USER + 1):
        assert telegram.replies_to(fake, user) == ["one: from None", "two: from None"]
    assert {sent["chat_id"] for sent in fake.sent} == {USER, USER + 1}


def test_with_no_prefix_the_probes_clean_up_leaves_another_environments_keys(small_bot, telegram, redis_server):
    """KEY_PREFIX=none puts every key under the prefix, also the staging bot's on the same Redis
    (``dev:``, claimed by ``dev:meta:env``): the probe user there is not this one's to delete."""
    from telegram import Update
    from telegram.ext import ContextTypes

    client = redis_server.client(decode_responses=True)

    async def remembers(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_user is not None and update.message is not None
        client.hset(f"memory:{update.effective_user.id}", "name", "Probe")
        await update.message.reply_text("noted")

    client.set("dev:meta:env", "staging")
    theirs = {f"dev:memory:{PROBE}": "staging's probe run", f"dev:user:{PROBE}:history": "its turns"}
    client.mset(theirs)
    with small_bot(remembers, ENV="production", KEY_PREFIX="none") as (url, fake):
        assert turn(url, telegram, fake, PROBE, "hi").status_code == 200
        assert client.ttl(f"memory:{PROBE}") > 0 and all(client.ttl(key) == -1 for key in theirs)
        answer = httpx.delete(f"{url}/probe/n0nce-123456", headers=signed(fake.token)).json()
    assert answer["deleted"] == 2  # memory:<probe> and probe:<nonce>
    assert client.mget(list(theirs)) == list(theirs.values()) and client.get("meta:env") == "production"


def test_oops_in_a_probe_turn_is_answered_but_no_user_said_anything_is_off(redis_server, telegram):
    """The probe's turns are the pipeline's, not traffic (they are not counted either): an owner
    who puts /oops among them gets the thanks read back, not a moment in the release history."""
    from release_kit.oops import THANKS

    owner = 777
    fake, port = telegram.add_bot("oops_kit_bot"), free_port()
    telegram.start_chat(fake, owner)
    kit = kit_for(redis_server.url, telegram.url, port, OWNER_CHAT_ID=str(owner))
    application = kit.builder().token(fake.token).build()
    kit.oops(application)
    with serving(kit.asgi(application, url_path="hook"), port) as url:
        assert turn(url, telegram, fake, PROBE, "/oops").status_code == 200
        assert replies(url, fake)[-1] == THANKS
        assert httpx.get(f"{url}/healthz").json()["reports"]["oops"] == []
    assert fake.sent == []  # nor was the owner told
