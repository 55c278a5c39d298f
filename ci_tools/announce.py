"""Phase 4: the old bot tells the user where the new bot is."""

from __future__ import annotations

import time

import httpx

from ci_tools.config import Config, require_secret, telegram_api_url
from ci_tools.errors import InputError, RemoteError


def default_text(config: Config) -> str:
    return f"Official bot moved here: https://t.me/{config.env('production').bot_username}"


def announce(config: Config, chat_id: int, text: str | None = None, *, attempts: int = 3) -> str:
    """Send the message with the old bot's token (TELEGRAM_BOT_TOKEN); return what was sent."""
    token = require_secret(
        "TELEGRAM_BOT_TOKEN", purpose="the OLD bot's token: it sends the announcement"
    )
    message = (text or default_text(config)).strip()
    if not message:
        raise InputError("the announcement text is empty", hint="leave --text out for the default")
    link = f"https://t.me/{config.env('production').bot_username}"
    for _ in range(attempts):
        response = httpx.post(
            f"{telegram_api_url()}/bot{token}/sendMessage",
            json={"chat_id": chat_id, "text": message},
            timeout=20,
        )
        body = response.json() if response.content else {}
        if body.get("ok"):
            return message
        code, description = (
            body.get("error_code", response.status_code),
            body.get("description", ""),
        )
        if code == 429:
            time.sleep(float((body.get("parameters") or {}).get("retry_after", 1)))
            continue
        if code == 403:
            raise RemoteError(
                f"the user {chat_id} has blocked the old bot, so it cannot tell them ({description})",
                hint=f"tell them another way: {link}",
            )
        if code == 400 and "chat not found" in description:
            raise InputError(
                f"chat {chat_id} not found: that user never talked to the old bot",
                hint="check --chat-id",
            )
        raise RemoteError(f"Telegram refused the message: {code} {description}")
    raise RemoteError("Telegram kept answering 429", hint="try again in a minute")
