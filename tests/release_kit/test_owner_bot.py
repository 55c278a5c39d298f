"""The owner's bot with the kit patch, as a real process against real Redis and the Telegram stand-in.

Each test starts ``python -m bot`` from a patched copy of tests/fixtures/owner_bot: the update goes
from the stand-in to the owner's own webhook path (``/<TOKEN>``), the answer goes back through
the stand-in, and what the contract promises is checked from outside, as the pipeline sees it.
"""

from __future__ import annotations

import time

import httpx
import pytest

from ci_tools.clients.health import contract_problem
from release_kit import DEFAULT_PROBE_USER_ID as PROBE
from release_kit import __version__ as KIT_VERSION
from release_kit import bot_secret
from sandbox.redis import RedisServer
from tests.release_kit.owner import OwnerBot, adopted_tree, bot_environ
from tests.support import WEBHOOK_SECRET, signed

USER = 4242
NONCE = "abc123def456"


@pytest.fixture
def ava(tmp_path, telegram, redis_server):
    """The patched bot on staging (its keys under dev:), serving, and its stand-in bot."""
    fake = telegram.add_bot("ava_staging_bot")
    with OwnerBot(adopted_tree(tmp_path), bot_environ(telegram, fake, redis_server.url)) as bot:
        yield bot, fake


def probe_turn(bot, telegram, fake, text, nonce=NONCE):
    """One turn of the pipeline's probe user, as ci-tools probe posts it: signed, with the nonce."""
    update = telegram.make_update(PROBE, text, first_name="Probe")
    headers = {**signed(fake.token), "X-Probe-Nonce": nonce}
    return httpx.post(f"{bot.url}/{fake.token}", json=update, headers=headers, timeout=15)


def test_the_health_answer_is_the_contract_at_conversation_level(ava, redis_server):
    bot, fake = ava
    answer = httpx.get(f"{bot.url}/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert contract_problem(body) is None
    assert body["contract"] == {"level": "conversation", "kit": KIT_VERSION, "probe_path": "/probe"}
    assert body["bot"] == {"id": fake.id, "username": "ava_staging_bot"}
    assert (body["env"], body["commit"], body["key_prefix"]) == ("staging", bot.environ["RENDER_GIT_COMMIT"], "dev:")
    assert body["redis"] == {"ok": True, "env_marker": "staging"}
    started_at = body["updates"].pop("started_at")
    assert body["updates"] == {"handled": 0, "failed": 0, "last_failure": None, "last_handled_at": None}
    assert started_at <= time.time()  # the instance's start: a restart reads as maybe mid-conversation
    assert httpx.head(f"{bot.url}/healthz").status_code == 200
    assert redis_server.client().get("dev:meta:env") == b"staging"  # claimed at start
    assert fake.token not in answer.text and WEBHOOK_SECRET not in answer.text


def test_an_update_from_the_stand_in_reaches_the_owners_path_and_the_reply_reaches_telegram(
    ava, telegram, redis_server
):
    bot, fake = ava
    assert fake.webhook_url == f"{bot.url}/{fake.token}"  # the owner's path, not ours
    assert fake.webhook_secret == bot_secret(WEBHOOK_SECRET, fake.token)  # bound to this bot
    before = time.time()
    for text in ("/start", "/remember I love tea", "/recall"):
        assert telegram.send_user_message(fake, USER, text).status_code == 200
    replies = telegram.replies_to(fake, USER)
    assert replies[0].startswith("Hi, I'm Ava") and replies[-1] == "Here is what you told me:\n- I love tea"
    client = redis_server.client(decode_responses=True)
    assert client.hgetall(f"dev:memory:{USER}") == {"name": "Ada", "facts": "1", "fact:1": "I love tea"}
    assert not client.exists(f"memory:{USER}")  # the owner's keys, under the environment's prefix
    updates = httpx.get(f"{bot.url}/healthz").json()["updates"]
    assert (updates["handled"], updates["failed"]) == (3, 0)
    assert before <= updates["last_handled_at"] <= time.time()
    log = bot.text()
    assert "sendMessage" in log and fake.token not in log  # httpx logs each call's URL: /bot<token>/...
    assert bot_secret(WEBHOOK_SECRET, fake.token) not in log


def test_an_unsigned_update_is_refused(ava, telegram):
    bot, fake = ava
    update = telegram.make_update(USER, "/start", to=fake)
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "not-the-secret"}, signed("999:another-bot")):
        assert httpx.post(f"{bot.url}/{fake.token}", json=update, headers=headers).status_code == 403
    raw = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}  # the environment's, not bound to the bot
    assert httpx.post(f"{bot.url}/{fake.token}", json=update, headers=raw).status_code == 403
    assert fake.sent == []


def test_a_probe_turns_replies_are_kept_not_sent_and_delete_removes_the_probe_user_only(ava, telegram, redis_server):
    bot, fake = ava
    client = redis_server.client(decode_responses=True)
    telegram.send_user_message(fake, USER, "/start")  # a real user's memory, which must stay
    telegram.send_user_message(fake, USER, "hello")
    neighbours = {  # keys that hold the probe user's id, but not as a whole segment, or not ours
        f"dev:memory:{PROBE}0": "another user",
        f"dev:note:x{PROBE}": "not the probe user",
        f"prod:memory:{PROBE}": "another environment's",
    }
    for key, value in neighbours.items():
        client.set(key, value)
    kept = set(client.keys("*"))
    for text in ("/start", f"/remember probe-{NONCE}", "a word from the probe", "/recall"):
        assert probe_turn(bot, telegram, fake, text).status_code == 200
    assert telegram.replies_to(fake, PROBE) == [] and len(fake.sent) == 2  # only the real user's two
    probe_keys = {f"dev:memory:{PROBE}", f"dev:user:{PROBE}:history", f"dev:probe:{NONCE}"}
    assert set(client.keys("*")) == kept | probe_keys
    assert all(0 < client.ttl(key) <= 300 for key in probe_keys)  # gone within minutes even if never cleaned
    assert httpx.get(f"{bot.url}/probe/{NONCE}").status_code == 403  # unsigned
    answer = httpx.get(f"{bot.url}/probe/{NONCE}", headers=signed(fake.token)).json()
    assert answer["commit"] == bot.environ["RENDER_GIT_COMMIT"] and len(answer["replies"]) == 4
    assert f"probe-{NONCE}" in answer["replies"][-1]
    assert httpx.delete(f"{bot.url}/probe/{NONCE}").status_code == 403  # unsigned: nothing deleted
    deleted = httpx.delete(f"{bot.url}/probe/{NONCE}", headers=signed(fake.token)).json()
    assert deleted["deleted"] == 3 and len(deleted["replies"]) == 4
    assert set(client.keys("*")) == kept  # the probe user gone, nothing else touched
    assert httpx.get(f"{bot.url}/healthz").json()["updates"]["handled"] == 2  # the probe's turns are not traffic


def test_redis_down_is_a_503_and_telegram_delivers_the_update_again(tmp_path, telegram):
    with RedisServer(persist=True) as server:
        fake = telegram.add_bot("ava_staging_bot")
        with OwnerBot(adopted_tree(tmp_path), bot_environ(telegram, fake, server.url)) as bot:
            telegram.send_user_message(fake, USER, "/start")
            server.stop()
            response = telegram.send_user_message(fake, USER, "/remember my sister is Mia", timeout=30)
            assert response is not None and response.status_code == 503
            assert httpx.get(f"{bot.url}/healthz", timeout=30).status_code == 503
            assert len(fake.sent) == 1  # no "Got it" for a fact that was not kept
            server.start()
            assert telegram.wait_delivered(60), f"{telegram.held()} update(s) never taken"
            client = server.client(decode_responses=True)
            assert client.hget(f"dev:memory:{USER}", "fact:1") == "my sister is Mia"
            assert telegram.replies_to(fake, USER)[-1] == "Got it, I'll remember: my sister is Mia"
            assert telegram.redeliveries >= 1 and fake.pending_update_count == 0
            assert "did not take effect, memory unavailable" in bot.text()


def test_a_non_tester_on_staging_gets_the_signpost_and_no_handler_runs(tmp_path, telegram, redis_server):
    fake = telegram.add_bot("ava_staging_bot")
    environ = bot_environ(telegram, fake, redis_server.url, TESTER_IDS="1001", PRODUCTION_BOT="ava_companion_bot")
    with OwnerBot(adopted_tree(tmp_path), environ):
        client = redis_server.client()
        before = set(client.keys("*"))
        for text in ("/start", "/remember my secret", "hello?"):
            assert telegram.send_user_message(fake, USER, text).status_code == 200
        assert telegram.replies_to(fake, USER) == ["https://t.me/ava_companion_bot"] * 3
        assert set(client.keys("*")) == before  # nothing about them stored
        telegram.send_user_message(fake, 1001, "/start")
        assert telegram.replies_to(fake, 1001)[0].startswith("Hi, I'm Ava")


@pytest.mark.parametrize(
    ("change", "line"),
    [
        ({"KEY_PREFIX": "dev"}, "release_kit: KEY_PREFIX='dev' must end with ':'"),
        ({"PORT": "eighty"}, "release_kit: PORT='eighty': ports must be whole numbers"),
    ],
)
def test_a_bad_setting_ends_the_start_with_one_line(tmp_path, telegram, redis_server, change, line):
    fake = telegram.add_bot("ava_staging_bot")
    bot = OwnerBot(adopted_tree(tmp_path), {**bot_environ(telegram, fake, redis_server.url), **change})
    bot.launch()
    assert bot.wait_exit() == 1
    assert bot.last_line().startswith(line)
    assert "Traceback" not in bot.text() and fake.token not in bot.text()


def test_a_redis_another_environment_claimed_is_refused_at_start(tmp_path, telegram, redis_server):
    redis_server.client().set("prod:meta:env", "staging")
    fake = telegram.add_bot("ava_prod_bot")
    bot = OwnerBot(adopted_tree(tmp_path), bot_environ(telegram, fake, redis_server.url, ENV="production"))
    bot.launch()
    assert bot.wait_exit() == 1
    assert "refusing to start: this bot is ENV=production but its Redis is marked prod:meta:env=staging" in (
        bot.last_line()
    )
    assert "Traceback" not in bot.text()
    assert not fake.webhook_url  # it set no webhook


def test_a_token_the_bot_api_refuses_ends_the_start_with_one_line(tmp_path, telegram, redis_server):
    fake = telegram.add_bot("ava_staging_bot")
    wrong = "123456:AAnotTheBotsTokenAtAll0123456789abcd"  # the stand-in answers 401, as Telegram does
    bot = OwnerBot(adopted_tree(tmp_path), bot_environ(telegram, fake, redis_server.url, TELEGRAM_BOT_TOKEN=wrong))
    bot.launch()
    assert bot.wait_exit() != 0
    log = bot.text()
    assert "release_kit: the Bot API refused getMe at start (InvalidToken: " in log
    assert "check the bot's token" in log
    assert "Traceback" not in log and wrong not in log
