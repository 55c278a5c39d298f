"""Runbook step 7: the old bot tells the user where the new bot is."""

from __future__ import annotations

from ci_tools.clients.telegram import TelegramError
from ci_tools.context import Context
from ci_tools.errors import InputError, RemoteError
from ci_tools.settings import Config


def default_text(config: Config) -> str:
    return f"Official bot moved here: https://t.me/{config.role('cutover_target').bot_username}"


def announce(ctx: Context, token: str, chat_id: int, text: str | None = None) -> str:
    """Send the message with the old bot's ``token``; return what was sent.

    sendMessage is not idempotent: the client retries it only on Telegram's 429
    (waiting its retry_after) or a connection that never opened, never after a 5xx.
    """
    config = ctx.config
    message = (text or default_text(config)).strip()
    if not message:
        raise InputError("the announcement text is empty", hint="leave --text out for the default")
    link = f"https://t.me/{config.role('cutover_target').bot_username}"
    try:
        with ctx.telegram(token) as telegram:
            telegram.send_message(chat_id, message)
    except TelegramError as exc:
        if exc.code == 403 and "initiate" in exc.description:  # the Bot API's words for a chat never opened
            raise InputError(
                f"the user {chat_id} never started the old bot, so it cannot write to them first",
                hint=f"check --chat-id (the daily user's Telegram id), or tell them another way: {link}",
            ) from None
        if exc.code == 403:
            raise RemoteError(
                f"the user {chat_id} has blocked the old bot, so it cannot tell them ({exc.description})",
                hint=f"tell them another way: {link}",
            ) from None
        if exc.code == 400 and "chat not found" in exc.description:
            raise InputError(
                f"chat {chat_id} not found: that user never talked to the old bot",
                hint="check --chat-id",
            ) from None
        raise
    return message
