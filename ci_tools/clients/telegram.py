"""The Bot API, as the pipeline uses it: getMe, getWebhookInfo, one sendMessage, and one guarded
deleteWebhook.

It never starts a python-telegram-bot Application and has no setWebhook: a probe that
re-pointed the webhook would break the live bot. ``release_webhook`` deletes a webhook only
while it still names the URL it was asked about (``cutover --back`` takes the new bot off
production's URL). The
sync client retries through ``ci_tools.http`` (reads on 429, 5xx and network
errors; sendMessage only where Telegram certainly did not send: 429, or a
connection that never opened). The async client serves the probe, whose checks run
concurrently and retry on their own schedule. Both parse replies in one place.

Contract (tdlib/telegram-bot-api, ``Client::fail_query``/``answer_query``): every
answer is ``{"ok": true, "result": …}`` or ``{"ok": false, "error_code": N,
"description": "…", "parameters": {"retry_after": S}}``; flood control is 429 with
``retry_after`` in ``parameters``, not in an HTTP header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import httpx

from ci_tools.errors import RemoteError
from ci_tools.http import Contact, request


class TelegramError(RemoteError):
    """Telegram answered ``ok: false`` (or not as the Bot API does)."""

    def __init__(self, code: int, description: str, retry_after: float | None = None) -> None:
        super().__init__(
            f"Telegram answered {code} {description}".strip(),
            hint="check the bot token in @BotFather" if code == 401 else "wait and run again" if code == 429 else None,
        )
        self.code = code
        self.description = description
        self.retry_after = retry_after


@dataclass(frozen=True)
class BotInfo:
    id: int
    username: str
    is_bot: bool

    @classmethod
    def from_api(cls, result: dict[str, Any]) -> BotInfo:
        return cls(int(result.get("id", 0)), str(result.get("username", "")), bool(result.get("is_bot")))

    def is_named(self, username: str) -> bool:
        return self.username.lower() == username.lower()


@dataclass(frozen=True)
class WebhookInfo:
    url: str
    pending_update_count: int
    last_error_date: int | None
    last_error_message: str | None

    @classmethod
    def from_api(cls, result: dict[str, Any]) -> WebhookInfo:
        return cls(
            url=str(result.get("url") or ""),
            pending_update_count=int(result.get("pending_update_count") or 0),
            last_error_date=result.get("last_error_date"),
            last_error_message=result.get("last_error_message"),
        )


def result_of(response: httpx.Response) -> Any:
    """The ``result`` of a Bot API answer, or the ``TelegramError`` it describes."""
    try:
        body = response.json()
    except ValueError:
        raise TelegramError(response.status_code, "not a Bot API answer") from None
    if not isinstance(body, dict) or not body.get("ok"):
        body = body if isinstance(body, dict) else {}
        params = body.get("parameters") or {}
        raise TelegramError(
            int(body.get("error_code", response.status_code)),
            str(body.get("description", "")),
            params.get("retry_after"),
        )
    return body["result"]


def retry_after(response: httpx.Response) -> float | None:
    """Telegram's flood-control wait, from the body's ``parameters.retry_after``."""
    try:
        return float(response.json()["parameters"]["retry_after"])
    except (ValueError, KeyError, TypeError):
        return None


def _unreachable(exc: httpx.TransportError) -> RemoteError:
    return RemoteError(
        f"Telegram's Bot API did not answer ({exc})",
        hint="check TELEGRAM_API_URL and the network, then run again",
    )


class Telegram:
    """A synchronous client for one bot token."""

    def __init__(self, token: str, *, base_url: str, timeout: float = 10, budget: float | None = None) -> None:
        self._base = f"{base_url.rstrip('/')}/bot{token}"
        if budget is not None:  # a read-only look: a service that is down is said fast
            timeout = min(timeout, budget)
        self._client = httpx.Client(timeout=timeout)
        self._budget = budget if budget is not None else 6 * timeout  # retries end here
        self._contact = Contact()  # until Telegram answers once, a down Telegram is said fast

    def __enter__(self) -> Telegram:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def _call(self, method: str, *, idempotent: bool = True, **params: Any) -> Any:
        response = request(
            self._client,
            "POST",
            f"{self._base}/{method}",
            json=params or None,
            deadline=self._contact.deadline(time.monotonic() + self._budget),
            what=f"Telegram {method}",
            idempotent=idempotent,
            asked_wait=retry_after,
            **self._contact.options(),
        )
        self._contact.answered = True
        return result_of(response)

    def get_me(self) -> BotInfo:
        return BotInfo.from_api(self._call("getMe"))

    def webhook_info(self) -> WebhookInfo:
        return WebhookInfo.from_api(self._call("getWebhookInfo"))

    def send_message(self, chat_id: int, text: str, **options: Any) -> dict[str, Any]:
        """``options``: sendMessage's optional parameters as the Bot API names them (reply_markup)."""
        return dict(self._call("sendMessage", idempotent=False, chat_id=chat_id, text=text, **options))

    def release_webhook(self, url: str) -> bool:
        """Delete this bot's webhook if it points at ``url`` (or below it); True if it did.

        Pending updates are kept (no ``drop_pending_updates``): Telegram holds them for 24 hours,
        and a later setWebhook delivers them (core.telegram.org/bots/api#deletewebhook).
        """
        if not self.webhook_info().url.startswith(url.rstrip("/") + "/"):
            return False
        self._call("deleteWebhook")
        return True


class AsyncTelegram:
    """The probe's read-only client: one attempt per call, on the probe's shared client."""

    def __init__(self, token: str, client: httpx.AsyncClient, *, base_url: str) -> None:
        self._base = f"{base_url.rstrip('/')}/bot{token}"
        self._client = client

    async def _call(self, method: str) -> Any:
        try:
            response = await self._client.post(f"{self._base}/{method}")
        except httpx.TransportError as exc:
            raise _unreachable(exc) from None
        return result_of(response)

    async def get_me(self) -> BotInfo:
        return BotInfo.from_api(await self._call("getMe"))

    async def webhook_info(self) -> WebhookInfo:
        return WebhookInfo.from_api(await self._call("getWebhookInfo"))


def webhook_secret_for(secret: str, token: str) -> str:
    """The webhook secret a bot sets and checks: TELEGRAM_WEBHOOK_SECRET bound to the bot's id
    (HMAC-SHA256, base64url). So in a cutover's overlap the old instance refuses the new bot's
    updates and Telegram redelivers them to the new one; the bot derives the same
    (release_kit/config.py: bot_secret; tests/mindmate/test_bot.py holds the two equal)."""
    bot_id = token.split(":", 1)[0]
    digest = hmac.new(secret.encode(), f"telegram-bot:{bot_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
