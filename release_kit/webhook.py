"""Setting the webhook: the bot's public URL, and the secret bound to this bot.

``setWebhook`` is retried on Telegram's 429: the Bot API re-sets a webhook at most once a second,
and a deploy's new instance starts while the old one may have just set it.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from telegram import Update
from telegram.error import RetryAfter
from telegram.ext import Application
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger("release_kit")


async def set_webhook(
    application: Application,
    url: str,
    secret: str,
    allowed_updates: Sequence[str] | None = None,
    attempts: int = 5,
    **extra: Any,
) -> None:
    for attempt in range(1, attempts + 1):
        try:
            await application.bot.set_webhook(
                url=url,
                secret_token=secret,
                allowed_updates=Update.ALL_TYPES if allowed_updates is None else allowed_updates,
                **extra,
            )
            return
        except RetryAfter as exc:
            with warnings.catch_warnings():  # PTB 22.2+ warns that the type becomes timedelta: both are read
                warnings.simplefilter("ignore", PTBDeprecationWarning)
                wait = exc.retry_after
            seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            if attempt == attempts:
                raise
            log.warning("setWebhook: Telegram asks to retry after %.0f s (attempt %d)", seconds, attempt)
            await asyncio.sleep(seconds)
