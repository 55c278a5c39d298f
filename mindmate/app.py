"""The webhook server: ``POST /telegram``, ``GET /healthz`` and the probe's replies.

Webhook, not polling: during a Render zero-downtime deploy two instances run at
once, and two pollers fight with 409 Conflict. Updates are processed within the
request, and the answer tells Telegram whether to deliver the update again:

- **5xx when the update could not take effect because memory could not be read or
  written** (Redis unreachable, a timeout, a refused write). Telegram redelivers an
  update only after a failed webhook call; answering 200 here would lose the fact.
- **200 for everything no retry can fix**: a body that is not an update (it would
  fail the same way forever), a user who blocked the bot (Telegram's 403 on our
  reply), and an update that already took effect (a redelivery: acknowledged, not
  repeated — see ``MemoryStore``).
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import logging
import re
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from json import JSONDecodeError
from typing import Any

import redis
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from telegram import Update
from telegram.error import RetryAfter, TelegramError
from telegram.ext import Application, ContextTypes
from telegram.warnings import PTBDeprecationWarning

from mindmate.conversation import ProbeTurn, done_probing, probing
from mindmate.handlers import register
from mindmate.settings import Settings
from mindmate.store import EnvMismatchError, MemoryStore

log = logging.getLogger("mindmate")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
PROBE_HEADER = "X-Probe-Nonce"
NONCE = re.compile(r"^[a-z0-9-]{6,64}$")
# What "memory could not be read or written" looks like from redis-py's asyncio client.
STORAGE_ERRORS = (redis.RedisError, OSError, asyncio.TimeoutError)
_failures: contextvars.ContextVar[list[BaseException] | None] = contextvars.ContextVar("failures", default=None)


def build_application(settings: Settings) -> Application:  # type: ignore[type-arg, unused-ignore]
    application = (
        Application.builder()
        .token(settings.token)
        .base_url(f"{settings.telegram_api_url}/bot")
        .base_file_url(f"{settings.telegram_api_url}/file/bot")
        .updater(None)
        .build()
    )

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """PTB catches a handler's exception and lands here; the webhook decides the answer."""
        failures = _failures.get()
        if failures is not None and context.error is not None:
            failures.append(context.error)
        else:
            log.error("handler failed: %s", context.error)

    application.add_error_handler(on_error)
    return application


async def _set_webhook(application: Application, settings: Settings, attempts: int = 5) -> None:  # type: ignore[type-arg, unused-ignore]
    """setWebhook, waiting out a 429: the Bot API re-sets a webhook at most once a second, and a
    deploy's new instance starts while the old one may have just set it."""
    for attempt in range(1, attempts + 1):
        try:
            await application.bot.set_webhook(
                url=settings.webhook_url, secret_token=settings.bot_webhook_secret, allowed_updates=Update.ALL_TYPES
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


class UpdateCounts:
    """Since this instance started: updates handled, and those a handler failed on.

    A handler's exception is answered 200 (a retry would fail the same way), so Telegram's
    ``last_error`` never shows it; ``/healthz`` does, for the bake window after a release.
    Telegram's own refusals of a reply (a user who blocked the bot) are not the code's failures
    and are not counted. Nothing of a message's content is kept: the exception's type and the
    update's kind only."""

    KINDS = ("message", "edited_message", "callback_query", "inline_query", "channel_post", "my_chat_member")

    def __init__(self) -> None:
        self.handled = 0
        self.failed = 0
        self.last_failure: dict[str, str] | None = None

    def count(self, update: Update, failures: list[BaseException]) -> None:
        self.handled += 1
        own = [f for f in failures if not isinstance(f, TelegramError)]
        if own:
            self.failed += 1
            kind = next((k for k in self.KINDS if getattr(update, k, None) is not None), "update")
            self.last_failure = {"error": type(own[-1]).__name__, "kind": kind}

    def json(self) -> dict[str, Any]:
        return {"handled": self.handled, "failed": self.failed, "last_failure": self.last_failure}


def create_app(settings: Settings) -> Starlette:
    redis_client = aioredis.from_url(
        settings.redis_url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
    )
    store = MemoryStore(redis_client, settings.key_prefix, settings.history_limit, env=settings.env)
    application = build_application(settings)
    register(application, settings, store)
    counts = UpdateCounts()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await application.initialize()  # getMe: a wrong token stops the start here
        if settings.webhook_url:
            await _set_webhook(application, settings)
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

    def signed(request: Request) -> bool:
        given = request.headers.get(SECRET_HEADER, "")
        return hmac.compare_digest(given.encode(), settings.bot_webhook_secret.encode())

    async def telegram_webhook(request: Request) -> Response:
        if not signed(request):
            return PlainTextResponse("forbidden", status_code=403)
        try:
            update = Update.de_json(await request.json(), application.bot)
            if update is None:
                raise ValueError("empty update")
        except (
            JSONDecodeError,
            UnicodeDecodeError,
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
        ) as exc:
            # It will never parse: a 5xx would only make Telegram send it again and again.
            log.warning("ignored a body that is not a Telegram update (%s)", type(exc).__name__)
            return PlainTextResponse("ignored")
        nonce = request.headers.get(PROBE_HEADER, "")
        user = update.effective_user
        turn = ProbeTurn(store, nonce) if user and user.id == settings.probe_user_id and NONCE.match(nonce) else None
        try:
            await store.claim()  # nothing is written to a Redis this environment has not claimed
            if turn is None and await store.took_effect(update.update_id):
                log.info("update %s already took effect: acknowledged, not repeated", update.update_id)
                return PlainTextResponse("ok")
        except (*STORAGE_ERRORS, EnvMismatchError) as exc:
            return _storage_failure(update.update_id, exc)
        failures: list[BaseException] = []
        failures_token, probe_token = _failures.set(failures), probing(turn)
        try:
            await application.process_update(update)
        finally:
            done_probing(probe_token)
            _failures.reset(failures_token)
        storage = next((f for f in failures if isinstance(f, STORAGE_ERRORS)), None)
        if storage is not None:
            return _storage_failure(update.update_id, storage)
        if turn is None:  # the probe user's turns are the pipeline's, not traffic
            counts.count(update, failures)
        for other in failures:  # e.g. Telegram's 403 "bot was blocked by the user": no retry helps
            log.error(
                "update %s: %s: %s (answered 200: a retry would fail the same way)",
                update.update_id,
                type(other).__name__,
                other,
            )
        if turn is not None and user is not None:
            await store.expire_probe_user(user.id, turn.nonce)
        return PlainTextResponse("ok")

    def _storage_failure(update_id: int, exc: BaseException) -> Response:
        log.error(
            "update %s did not take effect, memory unavailable (%s: %s); answered 503 so Telegram delivers it again",
            update_id,
            type(exc).__name__,
            exc,
        )
        return PlainTextResponse("memory unavailable, deliver again", status_code=503)

    async def probe_replies(request: Request) -> Response:
        """The replies the bot gave the probe user for this nonce; DELETE cleans the probe user up."""
        if not signed(request):
            return PlainTextResponse("forbidden", status_code=403)
        nonce = str(request.path_params["nonce"])
        if not NONCE.match(nonce):
            return PlainTextResponse("bad nonce", status_code=400)
        try:
            replies = await store.probe_replies(nonce)
            body: dict[str, Any] = {"replies": replies, "commit": settings.commit}
            if request.method == "DELETE":  # the replies, and the probe user is gone: one round trip
                body["deleted"] = await store.forget_probe_user(settings.probe_user_id, nonce)
            return JSONResponse(body)
        except STORAGE_ERRORS as exc:
            return JSONResponse({"error": type(exc).__name__}, status_code=503)

    async def healthz(request: Request) -> Response:
        redis_ok, marker = await store.health()
        bot = application.bot
        body: dict[str, Any] = {
            "status": "ok" if redis_ok else "degraded",
            "env": settings.env,
            "commit": settings.commit,
            "bot": {"id": bot.id, "username": bot.username},
            "redis": {"ok": redis_ok, "env_marker": marker},
            "key_prefix": settings.key_prefix,
            "moved_to": settings.moved_to,
            "updates": counts.json(),
            # The conversation level: the pipeline's probe may talk to it as the probe user and read
            # the replies at /probe/<nonce> (ci_tools/clients/health.schema.json: contract).
            "contract": {"level": "conversation", "kit": "mindmate", "probe_path": "/probe"},
        }
        return JSONResponse(body, status_code=200 if redis_ok else 503)

    return Starlette(
        routes=[
            Route("/telegram", telegram_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/probe/{nonce}", probe_replies, methods=["GET", "DELETE"]),
        ],
        lifespan=lifespan,
    )
