"""The bot's web app: the kit's surface (``release_kit``) around MindMate's handlers.

The kit serves the webhook at ``POST /telegram``, ``GET /healthz`` and the probe's replies at
``/probe/<nonce>``, and decides each update's answer (403 unsigned, 503 when memory could not be
read or written so Telegram delivers it again, 200 otherwise). MindMate brings its handlers, its
memory store and its "took effect" markers (``mindmate.handlers``, ``mindmate.store``).
"""

from __future__ import annotations

import redis.asyncio as aioredis
from starlette.applications import Starlette
from telegram.ext import Application

from mindmate.handlers import register
from mindmate.settings import Settings
from mindmate.store import MemoryStore
from release_kit import Kit

WEBHOOK_PATH = "/telegram"


def create_app(settings: Settings) -> Starlette:
    kit = Kit(settings.kit)
    redis_client = aioredis.from_url(
        settings.redis_url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
    )

    async def close(application: Application) -> None:
        await redis_client.aclose()

    application = kit.builder().token(settings.token).updater(None).post_shutdown(close).build()
    register(application, settings, MemoryStore(redis_client, settings.key_prefix, settings.history_limit))
    kit.oops(application)  # the daily user can say something is off; the owner hears it (OWNER_CHAT_ID)
    return kit.asgi(application, WEBHOOK_PATH)
