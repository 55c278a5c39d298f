"""The webhook server: ``POST /telegram`` and ``GET /healthz`` on one small ASGI app.

Webhook, not polling: during a Render zero-downtime deploy two instances run at
once, and two pollers fight with 409 Conflict. Updates are processed within the
request, so Telegram's retry covers a crash mid-update.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from json import JSONDecodeError

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, ContextTypes

from mindmate.handlers import register
from mindmate.settings import Settings
from mindmate.store import MemoryStore

log = logging.getLogger("mindmate")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name


def build_application(settings: Settings) -> Application:
    application = (
        Application.builder()
        .token(settings.token)
        .base_url(f"{settings.telegram_api_url}/bot")
        .base_file_url(f"{settings.telegram_api_url}/file/bot")
        .updater(None)
        .build()
    )

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("handler failed: %s", context.error)

    application.add_error_handler(on_error)
    return application


def create_app(settings: Settings) -> Starlette:
    redis_client = aioredis.from_url(
        settings.redis_url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
    )
    store = MemoryStore(redis_client, settings.key_prefix, settings.history_limit)
    application = build_application(settings)
    register(application, settings, store)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await application.initialize()  # getMe: a wrong token stops the start here
        if settings.webhook_url:
            await application.bot.set_webhook(
                url=settings.webhook_url,
                secret_token=settings.webhook_secret,
                allowed_updates=Update.ALL_TYPES,
            )
            log.info("webhook set to %s", settings.webhook_url)
        else:
            log.warning("RENDER_EXTERNAL_URL is not set: webhook left as it is")
        await application.start()
        try:
            yield
        finally:
            await application.stop()
            await application.shutdown()
            await redis_client.aclose()

    async def telegram_webhook(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), settings.webhook_secret.encode()):
            return PlainTextResponse("forbidden", status_code=403)
        try:
            data = await request.json()
        except (JSONDecodeError, UnicodeDecodeError):
            return PlainTextResponse("bad update", status_code=400)
        update = Update.de_json(data, application.bot)
        try:
            await application.process_update(update)
        except TelegramError as exc:
            log.error("update %s failed: %s", update.update_id, exc)
        return PlainTextResponse("ok")

    async def healthz(request: Request) -> Response:
        redis_ok, marker = await store.health()
        bot = application.bot
        body = {
            "status": "ok" if redis_ok else "degraded",
            "env": settings.env,
            "commit": settings.commit,
            "bot": {"id": bot.id, "username": bot.username},
            "redis": {"ok": redis_ok, "env_marker": marker},
            "key_prefix": settings.key_prefix,
            "moved_to": settings.moved_to,
        }
        return JSONResponse(body, status_code=200 if redis_ok else 503)

    return Starlette(
        routes=[
            Route("/telegram", telegram_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
        ],
        lifespan=lifespan,
    )
