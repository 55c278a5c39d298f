"""The kit in-process: a bot of a few lines built on it, served by real uvicorn on a loopback port,
against real Redis and the Telegram stand-in. What the owner's-bot tests do not reach: the health
level, a reply that cannot be kept, every kind of Bot API call during a probe turn, MOVED_TO."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from telegram import Message, Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters
from telegram.request import HTTPXRequest

from ci_tools.clients.health import contract_problem
from release_kit import DEFAULT_PROBE_USER_ID as PROBE
from release_kit import ConfigError, Kit, read_config
from release_kit.oops import THANKS
from release_kit.request import ProbeRequest, fake_result
from sandbox.ports import free_port
from tests.support import WEBHOOK_SECRET, signed

USER = 4242
NONCE = "n0nce-123456"
Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Any]


def kit_for(redis_url: str, telegram_url: str, port: int, **extra: str) -> Kit:
    return Kit.from_environ(
        {
            "ENV": "staging",
            "REDIS_URL": redis_url,
            "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TELEGRAM_API_URL": telegram_url,
            "RENDER_EXTERNAL_URL": f"http://127.0.0.1:{port}",
            "RENDER_GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567",
            **extra,
        }
    )


@contextmanager
def serving(app: Any, port: int) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the bot did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def small_bot(redis_server, telegram):
    """``start(handler, conversation=True, **env)``: a one-handler bot on the kit, its URL and stand-in bot."""

    @contextmanager
    def start(handler: Handler, *, conversation: bool = True, **extra: str) -> Iterator[tuple[str, Any]]:
        fake, port = telegram.add_bot("small_kit_bot"), free_port()
        kit = kit_for(redis_server.url, telegram.url, port, **extra)
        builder = kit.builder() if conversation else Application.builder().base_url(f"{telegram.url}/bot")
        application = builder.token(fake.token).build()
        application.add_handler(MessageHandler(filters.ALL, handler))
        with serving(kit.asgi(application, url_path="hook"), port) as url:
            yield url, fake

    return start


def turn(
    url: str, telegram, fake, user: int, text: str, *, nonce: str | None = NONCE, path: str = "hook"
) -> httpx.Response:
    update = telegram.make_update(user, text, to=fake)
    headers = {**signed(fake.token), **({"X-Probe-Nonce": nonce} if nonce else {})}
    return httpx.post(f"{url}/{path}", json=update, headers=headers, timeout=15)


def replies(url: str, fake, nonce: str = NONCE) -> list[str]:
    return httpx.get(f"{url}/probe/{nonce}", headers=signed(fake.token)).json()["replies"]


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None and update.message.text is not None
    await update.message.reply_text(f"echo: {update.message.text}")


def test_a_bot_served_by_the_kit_but_not_built_by_it_is_at_the_health_level(small_bot, telegram):
    with small_bot(echo, conversation=False) as (url, fake):
        body = httpx.get(f"{url}/healthz").json()
        assert contract_problem(body) is None
        assert body["contract"]["level"] == "health" and "probe_path" not in body["contract"]
        assert httpx.get(f"{url}/probe/{NONCE}", headers=signed(fake.token)).status_code == 404
        assert turn(url, telegram, fake, USER, "hi", nonce=None).status_code == 200
        assert telegram.replies_to(fake, USER) == ["echo: hi"]


def test_every_kind_of_call_in_a_probe_turn_gets_a_well_formed_answer_and_none_reaches_telegram(small_bot, telegram):
    answers: list[object] = []

    async def busy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        assert chat is not None and update.message is not None
        await context.bot.send_chat_action(chat.id, "typing")
        sent = await update.message.reply_text("first")
        edited = await context.bot.edit_message_text("first, edited", chat_id=chat.id, message_id=sent.message_id)
        answers.extend([sent, edited, await context.bot.send_location(chat.id, 52.5, 13.4)])
        answers.append(await context.bot.copy_message(chat.id, chat.id, sent.message_id))
        answers.append(await context.bot.delete_message(chat.id, sent.message_id))
        answers.append(await context.bot.get_me())  # reading the bot itself still reaches Telegram

    with small_bot(busy) as (url, fake):
        assert turn(url, telegram, fake, PROBE, "go").status_code == 200
        assert replies(url, fake) == ["first", "first, edited", "[sendLocation]", "[copyMessage]"]
        assert fake.sent == []
    sent, edited, location, copied, deleted, me = answers
    assert isinstance(sent, Message) and sent.text == "first" and sent.chat.id == PROBE
    assert isinstance(edited, Message) and edited.text == "first, edited" and edited.message_id == sent.message_id
    assert isinstance(location, Message) and deleted is True and copied.message_id > 0
    assert me.username == "small_kit_bot"


def test_a_probe_reply_that_cannot_be_kept_is_a_503_but_a_real_users_update_needs_no_redis(
    small_bot, telegram, redis_server
):
    with small_bot(echo) as (url, fake):
        assert turn(url, telegram, fake, USER, "before", nonce=None).status_code == 200  # claims the Redis
        redis_server.stop()
        assert turn(url, telegram, fake, PROBE, "/start").status_code == 503  # the probe would miss it
        assert turn(url, telegram, fake, USER, "still here", nonce=None).status_code == 200
        assert telegram.replies_to(fake, USER) == ["echo: before", "echo: still here"]
        assert httpx.get(f"{url}/probe/{NONCE}", headers=signed(fake.token), timeout=15).status_code == 503
        health = httpx.get(f"{url}/healthz", timeout=15)
        assert health.status_code == 503 and health.json()["redis"] == {"ok": False, "env_marker": None}


def test_a_probe_nonce_from_a_real_user_or_a_bad_nonce_is_no_probe_turn(small_bot, telegram):
    with small_bot(echo) as (url, fake):
        assert turn(url, telegram, fake, USER, "mine").status_code == 200
        assert turn(url, telegram, fake, PROBE, "bad", nonce="NOT A NONCE").status_code == 200
        assert telegram.replies_to(fake, USER) == ["echo: mine"]  # sent, not kept
        assert replies(url, fake) == []
        assert httpx.get(f"{url}/probe/NOT_A_NONCE", headers=signed(fake.token)).status_code == 400


def test_a_bot_that_moved_points_everyone_at_the_new_one_the_probe_too(small_bot, telegram):
    ran: list[int] = []

    async def handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        ran.append(update.update_id)

    with small_bot(handler, MOVED_TO="@ava_new_bot") as (url, fake):
        assert turn(url, telegram, fake, USER, "/start", nonce=None).status_code == 200
        assert turn(url, telegram, fake, PROBE, "/start").status_code == 200
        assert telegram.replies_to(fake, USER) == ["https://t.me/ava_new_bot"]
        assert replies(url, fake) == ["https://t.me/ava_new_bot"]
        assert httpx.get(f"{url}/healthz").json()["moved_to"] == "ava_new_bot"
    assert ran == []


def test_the_builder_wraps_whatever_request_the_owner_configures(telegram):
    kit = Kit(read_config({"ENV": "production", "REDIS_URL": "redis://127.0.0.1:1", "TELEGRAM_WEBHOOK_SECRET": "s"}))
    plain = kit.builder().token("1:a").connect_timeout(3).build()
    assert isinstance(plain.bot.request, ProbeRequest) and plain.bot.request.inner.read_timeout == 5.0
    own = HTTPXRequest(read_timeout=9)
    custom = kit.builder().token("1:a").request(own).build()
    assert isinstance(custom.bot.request, ProbeRequest) and custom.bot.request.inner is own
    assert not isinstance(custom.bot._request[0], ProbeRequest)  # getUpdates is left alone
    assert plain.bot.base_url == "https://api.telegram.org/bot1:a"  # no TELEGRAM_API_URL: PTB's own


def test_the_owners_path_takes_its_leading_slash_optional_and_may_not_be_the_kits(telegram):
    kit = Kit(read_config({"ENV": "staging", "REDIS_URL": "redis://127.0.0.1:1", "TELEGRAM_WEBHOOK_SECRET": "s"}))
    application = kit.builder().token("1:a").build()
    paths = {route.path for route in kit.asgi(application, "TOKEN").routes}  # type: ignore[attr-defined]
    assert paths == {"/TOKEN", "/healthz", "/probe/{nonce}"}
    for taken in ("healthz", "/probe", "/probe/x"):
        with pytest.raises(ValueError, match="one of the kit's own paths"):
            kit.asgi(application, taken)


@pytest.mark.parametrize("argument", ["cert", "secret_token", "unix"])
def test_run_webhook_refuses_what_the_contract_decides_with_one_line(argument):
    kit = Kit(read_config({"ENV": "staging", "REDIS_URL": "redis://127.0.0.1:1", "TELEGRAM_WEBHOOK_SECRET": "s"}))
    with pytest.raises(SystemExit) as stopped:
        kit.run_webhook(kit.builder().token("1:a").build(), url_path="x", **{argument: "given"})
    assert str(stopped.value).startswith(f"release_kit: run_webhook({argument}=...) is not supported")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ENV": ""}, "ENV is not set"),
        ({"ENV": "qa"}, "KEY_PREFIX is not set and ENV='qa' has no default"),
        ({"KEY_PREFIX": "none"}, None),
        ({"PROBE_USER_ID": "me"}, "PROBE_USER_ID one id"),
        ({"TESTER_IDS": "1,x", "PRODUCTION_BOT": "ava_bot"}, "TESTER_IDS must be Telegram user ids"),
        ({"PRODUCTION_BOT": "no/such"}, "PRODUCTION_BOT='no/such' is not a Telegram username"),
        ({"TELEGRAM_API_URL": "api.example"}, "TELEGRAM_API_URL='api.example' is not an http(s) URL"),
        ({"RENDER_EXTERNAL_URL": "ava.onrender.com"}, "is not an http(s) URL"),
        ({"TELEGRAM_WEBHOOK_SECRET": ""}, "TELEGRAM_WEBHOOK_SECRET is not set"),
    ],
)
def test_each_setting_is_read_or_named_with_its_fix(change, message):
    environ = {"ENV": "staging", "REDIS_URL": "redis://h:6379", "TELEGRAM_WEBHOOK_SECRET": "s", **change}
    if message is None:
        assert read_config(environ).key_prefix == ""
        return
    with pytest.raises(ConfigError, match=re.escape(message)):
        read_config(environ)
    with pytest.raises(SystemExit, match=f"^release_kit: .*{re.escape(message)}"):
        Kit.from_environ(environ)


def test_the_config_never_shows_its_secrets():
    config = read_config({"ENV": "production", "REDIS_URL": "redis://:hunter2@h:6379", "TELEGRAM_WEBHOOK_SECRET": "s3"})
    assert "hunter2" not in repr(config) and "s3" not in repr(config)
    assert (config.key_prefix, config.probe_user_id, config.port) == ("prod:", 2**52 - 1, 10000)


def test_fake_answers_parse_as_the_bot_api_types():
    assert Message.de_json(fake_result("sendMessage", {"chat_id": 7, "text": "hi"}), None).text == "hi"
    assert Message.de_json(fake_result("sendPhoto", {"chat_id": 7, "caption": "c"}), None).caption == "c"
    assert len(fake_result("sendMediaGroup", {"chat_id": 7, "media": [1, 2]})) == 2  # type: ignore[arg-type]
    assert fake_result("editMessageText", {"inline_message_id": "x", "text": "t"}) is True
    assert fake_result("answerCallbackQuery", {"callback_query_id": "1"}) is True


def test_health_answers_before_the_contract_field_stay_valid_and_a_conversation_level_names_its_path():
    old = {
        "status": "ok",
        "env": "staging",
        "commit": "abc",
        "bot": {"id": 1, "username": "b"},
        "redis": {"ok": True, "env_marker": "staging"},
        "key_prefix": "dev:",
        "updates": {"handled": 0, "failed": 0, "last_failure": None},
    }
    assert contract_problem(old) is None
    assert contract_problem({**old, "contract": {"level": "health"}}) is None
    assert contract_problem({**old, "contract": {"level": "conversation"}}) is not None  # no probe_path
    assert contract_problem({**old, "contract": {"level": "chat", "probe_path": "/p"}}) is not None
    late = {**old, "updates": {**old["updates"], "last_handled_at": "yesterday"}}
    assert contract_problem(late) is not None
    assert contract_problem({**old, "updates": {**old["updates"], "started_at": 1_700_000_000.5}}) is None
    assert contract_problem({**old, "updates": {**old["updates"], "started_at": None}}) is not None  # a time or absent


def test_on_its_own_server_a_redis_another_environment_claimed_is_named_and_answered_503(
    small_bot, telegram, redis_server, caplog
):
    redis_server.client().set("dev:meta:env", "production")
    with small_bot(echo) as (url, fake):
        assert httpx.get(f"{url}/healthz").status_code == 503
        assert turn(url, telegram, fake, USER, "hi", nonce=None).status_code == 503
    assert "this bot is ENV=staging but its Redis is marked dev:meta:env=production" in caplog.text
    assert telegram.replies_to(fake, USER) == []
    assert redis_server.client().get("dev:meta:env") == b"production"  # never overwritten


def test_a_storage_failure_stops_the_update_so_its_redelivery_does_not_land_twice(redis_server, telegram):
    """Group 0 fails on Redis: the kit answers 503, and group 1 (which would have written) never runs."""
    import redis as redis_py

    ran: list[str] = []

    async def fails(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        ran.append("first")
        raise redis_py.ConnectionError("Redis went away")

    async def writes(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        ran.append("second")

    fake, port = telegram.add_bot("small_kit_bot"), free_port()
    kit = kit_for(redis_server.url, telegram.url, port)
    application = kit.builder().token(fake.token).build()
    application.add_handler(MessageHandler(filters.ALL, fails), group=0)
    application.add_handler(MessageHandler(filters.ALL, writes), group=1)
    with serving(kit.asgi(application, url_path="hook"), port) as url:
        assert turn(url, telegram, fake, USER, "hi", nonce=None).status_code == 503
        assert httpx.get(f"{url}/healthz").json()["updates"]["handled"] == 0  # not taken: it comes again
    assert ran == ["first"]


def test_oops_thanks_the_user_tells_the_owner_the_live_commit_only_and_history_shows_the_moment(
    redis_server, telegram, tmp_path
):
    """Issue 43: the daily user says something is off; the owner's chat gets one message with the
    live commit and the time, and no word of what the user wrote; the moment is kept for history."""
    from ci_tools.clients.health import Health
    from ci_tools.pipeline.history import said_off

    owner = 777
    fake, port = telegram.add_bot("oops_kit_bot"), free_port()
    telegram.start_chat(fake, owner)
    kit = kit_for(redis_server.url, telegram.url, port, OWNER_CHAT_ID=str(owner))
    application = kit.builder().token(fake.token).build()
    seen: list[str] = []

    async def owners_handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.append(update.message.text if update.message else "")

    application.add_handler(MessageHandler(filters.ALL, owners_handler))
    kit.oops(application)
    with serving(kit.asgi(application, url_path="hook"), port) as url:
        said = "/oops the new bot forgot my sister's name"
        assert turn(url, telegram, fake, USER, said, nonce=None).status_code == 200
        [told] = telegram.replies_to(fake, owner)
        assert "0123456789ab" in told and "something is off (/oops)" in told
        assert "sister" not in told and str(USER) not in told  # never who, never what
        assert telegram.replies_to(fake, USER) == [THANKS]
        assert seen == []  # the owner's own handlers never see it
        body = httpx.get(f"{url}/healthz").json()
        assert contract_problem(body) is None
        [moment] = body["reports"]["oops"]
        assert moment["commit"] == "0123456789abcdef0123456789abcdef01234567"
        for _ in range(5):  # a flood: anyone may type /oops
            assert turn(url, telegram, fake, USER + 1, "/oops", nonce=None).status_code == 200
        assert len(telegram.replies_to(fake, owner)) == 1  # the owner is told once in ten minutes
        assert len(httpx.get(f"{url}/healthz").json()["reports"]["oops"]) == 1  # one moment a minute
        assert telegram.replies_to(fake, USER + 1) == [THANKS] * 5  # and everyone is thanked
        health = Health.from_json(200, body)
        [row] = said_off(health.oops, tmp_path)
        assert row.row()[2] == "a user said something is off" and row.row()[1].startswith("0123456")


def test_oops_takes_only_a_command_name_telegram_allows(redis_server, telegram):
    kit = kit_for(redis_server.url, telegram.url, free_port())
    application = kit.builder().token(telegram.add_bot("oops_name_bot").token).build()
    with pytest.raises(SystemExit, match="a Telegram command is 1-32 of a-z, 0-9 and _"):
        kit.oops(application, command="Oops!")
