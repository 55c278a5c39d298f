"""A read-only Bot API client for probes: getMe and getWebhookInfo, over plain HTTP.

It never starts a python-telegram-bot Application and has no method that writes:
setWebhook or deleteWebhook from a probe would re-point the live bot.
"""

from __future__ import annotations

from typing import Any

import httpx

from ci_tools.config import telegram_api_url


class TelegramError(Exception):
    def __init__(self, code: int, description: str, retry_after: float | None = None) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description
        self.retry_after = retry_after


class BotAPI:
    READ_ONLY = ("getMe", "getWebhookInfo")

    def __init__(self, token: str, client: httpx.AsyncClient) -> None:
        self._url = f"{telegram_api_url()}/bot{token}"
        self._client = client

    async def call(self, method: str) -> Any:
        if method not in self.READ_ONLY:
            raise ValueError(f"{method} is not a read-only method")
        response = await self._client.post(f"{self._url}/{method}")
        try:
            body = response.json()
        except ValueError:
            raise TelegramError(response.status_code, "not a Bot API answer") from None
        if not body.get("ok"):
            params = body.get("parameters") or {}
            raise TelegramError(
                int(body.get("error_code", response.status_code)),
                str(body.get("description", "")),
                params.get("retry_after"),
            )
        return body["result"]

    async def get_me(self) -> dict[str, Any]:
        return dict(await self.call("getMe"))

    async def webhook_info(self) -> dict[str, Any]:
        return dict(await self.call("getWebhookInfo"))


def bot_info(token: str, *, timeout: float = 10) -> dict[str, Any]:
    """getMe, synchronously, for the plan's commands (preflight, cutover, acceptance)."""
    response = httpx.post(f"{telegram_api_url()}/bot{token}/getMe", timeout=timeout)
    try:
        body = response.json()
    except ValueError:
        raise TelegramError(response.status_code, "not a Bot API answer") from None
    if not body.get("ok"):
        raise TelegramError(
            int(body.get("error_code", response.status_code)), str(body.get("description", ""))
        )
    return dict(body["result"])
