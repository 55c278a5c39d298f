"""python-telegram-bot (v22), a Bot API client we did not write, against the Bot API stand-in.

Every Bot API method the pipeline and the bot use (ci_tools/contracts/used.py) and the error
paths they rely on, each mapped to PTB's own exception type. PTB parses every answer into its
typed objects, so an answer shaped unlike Telegram's fails here even where our own client would
not notice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from telegram import Bot, Update, User, WebhookInfo
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, RetryAfter

from sandbox.telegram import FakeTelegram

T = TypeVar("T")
HOOK = "https://mindmate.example/telegram"


@pytest.fixture(autouse=True)
def _timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB's announced behaviour (v22.2): ``RetryAfter.retry_after`` as a timedelta."""
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


def drive(telegram: FakeTelegram, token: str, calls: Callable[[Bot], Awaitable[T]]) -> T:
    """Run ``calls`` with a PTB Bot pointed at the stand-in, opened and closed as PTB expects."""

    async def run() -> T:
        bot = Bot(token, base_url=f"{telegram.url}/bot")
        try:
            await bot.initialize()  # getMe
            return await calls(bot)
        finally:
            await bot.shutdown()

    return asyncio.run(run())


def test_get_me(telegram, fake):
    me = drive(telegram, fake.token, lambda bot: bot.get_me())
    assert isinstance(me, User) and me.is_bot and me.username == fake.username and me.id == fake.id


def test_set_webhook_then_read_it_back_with_the_bots_allowed_updates(telegram, fake):
    async def calls(bot: Bot) -> tuple[bool, WebhookInfo]:
        done = await bot.set_webhook(
            HOOK, secret_token="s3cret-token", max_connections=10, allowed_updates=Update.ALL_TYPES
        )
        return done, await bot.get_webhook_info()

    done, info = drive(telegram, fake.token, calls)
    assert done is True
    assert info.url == HOOK and info.max_connections == 10 and info.has_custom_certificate is False
    assert set(info.allowed_updates) == set(Update.ALL_TYPES)  # as the bot sets them
    assert fake.webhook_secret == "s3cret-token"


def test_delete_webhook_then_get_updates_polls(telegram, fake):
    fake.webhook_url = HOOK

    async def calls(bot: Bot) -> tuple[bool, tuple[Update, ...], WebhookInfo]:
        deleted = await bot.delete_webhook(drop_pending_updates=True)
        return deleted, await bot.get_updates(timeout=0), await bot.get_webhook_info()

    deleted, updates, info = drive(telegram, fake.token, calls)
    assert deleted is True and updates == () and info.url == ""


def test_send_message(telegram, fake):
    telegram.start_chat(fake, 4242)
    message = drive(telegram, fake.token, lambda bot: bot.send_message(4242, "hello from PTB"))
    assert message.text == "hello from PTB" and message.chat.id == 4242 and message.from_user.id == fake.id
    assert telegram.replies_to(fake, 4242) == ["hello from PTB"]


# -- the error paths, as PTB's own exceptions -------------------------------------------------


def test_get_updates_under_a_webhook_is_conflict(telegram, fake):
    fake.webhook_url = HOOK
    with pytest.raises(Conflict, match="webhook is active"):
        drive(telegram, fake.token, lambda bot: bot.get_updates(timeout=0))


def test_a_user_who_never_started_the_bot_is_forbidden(telegram, fake):
    telegram.meet(fake, 77)
    with pytest.raises(Forbidden, match="can't initiate conversation"):
        drive(telegram, fake.token, lambda bot: bot.send_message(77, "hi"))


def test_a_user_who_blocked_the_bot_is_forbidden(telegram, fake):
    telegram.start_chat(fake, 78)
    fake.blocked_by.add(78)
    with pytest.raises(Forbidden, match="blocked by the user"):
        drive(telegram, fake.token, lambda bot: bot.send_message(78, "hi"))


def test_a_user_the_bot_never_saw_is_bad_request_chat_not_found(telegram, fake):
    with pytest.raises(BadRequest, match=r"[Cc]hat not found"):
        drive(telegram, fake.token, lambda bot: bot.send_message(79, "hi"))


def test_a_rate_limit_is_retry_after(telegram, fake):
    async def calls(bot: Bot) -> object:
        telegram.rate_limit(fake, calls=1, retry_after=3)
        return await bot.send_message(80, "hi")

    telegram.start_chat(fake, 80)
    with pytest.raises(RetryAfter) as raised:
        drive(telegram, fake.token, calls)
    assert raised.value.retry_after == timedelta(seconds=3)  # the Bot API's parameters.retry_after


def test_a_second_set_webhook_within_a_second_is_retry_after(telegram, fake):
    async def calls(bot: Bot) -> object:
        await bot.set_webhook(HOOK)
        return await bot.set_webhook(HOOK + "/other")

    with pytest.raises(RetryAfter):
        drive(telegram, fake.token, calls)


def test_a_wrong_token_is_invalid_token(telegram):
    with pytest.raises(InvalidToken):  # 401 Unauthorized
        drive(telegram, "123456789:AAwrongButWellFormedTokenXYZ", lambda bot: bot.get_me())


def test_a_malformed_token_is_invalid_token(telegram):
    with pytest.raises(InvalidToken):  # 404 Not Found: PTB reads it as a bad token too
        drive(telegram, "not-a-token", lambda bot: bot.get_me())
