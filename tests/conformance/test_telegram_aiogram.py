"""aiogram (v3), a second Bot API client we did not write, against the Bot API stand-in.

aiogram parses answers with pydantic models of its own and maps each error code to its own
exception (aiogram.exceptions): the same operations and error paths as PTB's module, read by a
different client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import BufferedInputFile, Message, Update, User, WebhookInfo

from sandbox.telegram import FakeTelegram

T = TypeVar("T")
HOOK = "https://mindmate.example/telegram"


def drive(telegram: FakeTelegram, token: str, calls: Callable[[Bot], Awaitable[T]]) -> T:
    """Run ``calls`` with an aiogram Bot whose session points at the stand-in, then close it."""

    async def run() -> T:
        session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.url))
        bot = Bot(token, session=session)
        try:
            return await calls(bot)
        finally:
            await session.close()

    return asyncio.run(run())


def test_get_me(telegram, fake):
    me = drive(telegram, fake.token, lambda bot: bot.get_me())
    assert isinstance(me, User) and me.is_bot and me.username == fake.username


def test_set_webhook_then_read_it_back(telegram, fake):
    async def calls(bot: Bot) -> tuple[bool, WebhookInfo]:
        done = await bot.set_webhook(HOOK, secret_token="s3cret-token", allowed_updates=["message", "chat_member"])
        return done, await bot.get_webhook_info()

    done, info = drive(telegram, fake.token, calls)
    assert done is True and info.url == HOOK and info.max_connections == 40
    assert info.allowed_updates == ["message", "chat_member"]  # not the default: shown


def test_set_webhook_with_a_certificate_goes_multipart(telegram, fake):
    """A certificate is a file, so aiogram sends the whole call as multipart/form-data (the Bot
    API's fourth way to pass parameters): every field in it must be read."""

    async def calls(bot: Bot) -> tuple[bool, WebhookInfo]:
        certificate = BufferedInputFile(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "cert.pem")
        done = await bot.set_webhook(HOOK, certificate=certificate, max_connections=5, allowed_updates=["message"])
        return done, await bot.get_webhook_info()

    done, info = drive(telegram, fake.token, calls)
    assert done is True and info.url == HOOK and info.has_custom_certificate is True
    assert info.max_connections == 5 and info.allowed_updates == ["message"]


def test_delete_webhook_then_get_updates_polls(telegram, fake):
    fake.webhook_url = HOOK

    async def calls(bot: Bot) -> tuple[bool, list[Update], WebhookInfo]:
        deleted = await bot.delete_webhook(drop_pending_updates=True)
        return deleted, await bot.get_updates(timeout=0), await bot.get_webhook_info()

    deleted, updates, info = drive(telegram, fake.token, calls)
    assert deleted is True and updates == [] and info.url == "" and info.allowed_updates is None


def test_send_message(telegram, fake):
    telegram.start_chat(fake, 5151)
    message = drive(telegram, fake.token, lambda bot: bot.send_message(5151, "hello from aiogram"))
    assert isinstance(message, Message) and message.text == "hello from aiogram" and message.chat.id == 5151


# -- the error paths, as aiogram's own exceptions ---------------------------------------------


def test_get_updates_under_a_webhook_is_a_conflict(telegram, fake):
    fake.webhook_url = HOOK
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        drive(telegram, fake.token, lambda bot: bot.get_updates(timeout=0))


def test_a_user_who_never_started_the_bot_is_forbidden(telegram, fake):
    telegram.meet(fake, 88)
    with pytest.raises(TelegramForbiddenError, match="can't initiate conversation"):
        drive(telegram, fake.token, lambda bot: bot.send_message(88, "hi"))


def test_a_user_the_bot_never_saw_is_a_bad_request(telegram, fake):
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        drive(telegram, fake.token, lambda bot: bot.send_message(89, "hi"))


def test_a_rate_limit_is_retry_after(telegram, fake):
    telegram.start_chat(fake, 90)
    telegram.rate_limit(fake, calls=1, retry_after=4)
    with pytest.raises(TelegramRetryAfter) as raised:
        drive(telegram, fake.token, lambda bot: bot.send_message(90, "hi"))
    assert raised.value.retry_after == 4


def test_a_wrong_token_is_unauthorized(telegram):
    with pytest.raises(TelegramUnauthorizedError):
        drive(telegram, "123456789:AAwrongButWellFormedTokenXYZ", lambda bot: bot.get_me())
