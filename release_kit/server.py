"""The bot's HTTP surface, as one Starlette app: the webhook, the health answer, the probe's replies.

Webhook, not polling: during a Render zero-downtime deploy two instances run at once, and two
pollers fight with 409 Conflict. Each update is processed within its request, so the answer can
say whether it took effect (``release_kit.outcome``): 403 unsigned, 503 memory unavailable
(deliver again), 200 otherwise.

The lifespan does what python-telegram-bot's own ``run_webhook`` does around its server:
``initialize`` (getMe: a wrong token stops the start), ``post_init``, ``setWebhook``, ``start``;
then ``stop``, ``post_stop``, ``shutdown``, ``post_shutdown``.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from json import JSONDecodeError
from typing import Any

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application

from release_kit import outcome, probe, redact
from release_kit.arrival import Arrivals
from release_kit.config import KitConfig, bot_secret
from release_kit.counts import UpdateCounts
from release_kit.gate import signpost
from release_kit.marker import EnvClaim, EnvMismatchError
from release_kit.oops import reports_of
from release_kit.probe import NONCE, PROBE_HEADER, ProbeReplies, ProbeTurn
from release_kit.version import __version__
from release_kit.webhook import set_webhook

log = logging.getLogger("release_kit")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
PROBE_PATH = "/probe"
_NOT_AN_UPDATE = (JSONDecodeError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError)


@dataclass(frozen=True)
class Surface:
    """Where the app answers, and how the webhook is set (``None`` url: left as it is)."""

    webhook_path: str
    health_path: str
    webhook_url: str | None
    allowed_updates: Sequence[str] | None = None
    set_webhook_extra: dict[str, Any] = field(default_factory=dict)
    conversation: bool = True  # the bot keeps the probe's replies (built by kit.builder())
    probe_path: str = PROBE_PATH  # where they are read: the owner's choice, told in the health answer


def build_app(config: KitConfig, application: Application, surface: Surface) -> Starlette:
    return _Served(config, application, surface).starlette()


class _Served:
    def __init__(self, config: KitConfig, application: Application, surface: Surface) -> None:
        self.config = config
        self.application = application
        self.surface = surface
        self.redis = aioredis.from_url(
            config.redis_url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
        )
        self.claim = EnvClaim(self.redis, config.key_prefix, config.env)
        self.replies = ProbeReplies(self.redis, config.key_prefix, config.probe_user_id)
        self.arrivals = Arrivals(self.redis, config.key_prefix, config.probe_user_id)
        self.counts = UpdateCounts()
        application.add_error_handler(outcome.on_error)
        token = application.bot.token
        redact.hide([token, config.webhook_secret, self.secret, redact.url_password(config.redis_url)])

    def starlette(self) -> Starlette:
        routes = [
            Route(self.surface.webhook_path, self.webhook, methods=["POST"]),
            Route(self.surface.health_path, self.health, methods=["GET", "HEAD"]),
        ]
        if self.surface.conversation:
            routes.append(Route(self.surface.probe_path + "/{nonce}", self.probe_replies, methods=["GET", "DELETE"]))
        return Starlette(routes=routes, lifespan=self.lifespan)

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        application = self.application
        # The kit's error handler stops the update on a storage failure, which also stops the
        # error handlers after it: it goes last, after any the owner added since kit.asgi().
        block = application.error_handlers.pop(outcome.on_error, True)
        application.error_handlers[outcome.on_error] = block
        await self._claim_at_start()
        try:
            await application.initialize()
        except TelegramError as exc:
            raise _refused("getMe", exc, "check the bot's token (and TELEGRAM_API_URL if set)") from None
        if application.post_init:
            await application.post_init(application)
        if self.surface.webhook_url:
            try:
                await set_webhook(
                    application,
                    self.surface.webhook_url,
                    self.secret,
                    self.surface.allowed_updates,
                    **self.surface.set_webhook_extra,
                )
            except TelegramError as exc:
                raise _refused("setWebhook", exc, "check RENDER_EXTERNAL_URL or run_webhook's webhook_url") from None
            log.info("webhook set to %s", self.surface.webhook_url)  # the token in it is redacted
        else:
            log.warning("RENDER_EXTERNAL_URL is not set: webhook left as it is")
        await application.start()
        try:
            yield
        finally:
            await application.stop()
            if application.post_stop:
                await application.post_stop(application)
            await application.shutdown()
            if application.post_shutdown:
                await application.post_shutdown(application)
            await self.redis.aclose()

    async def _claim_at_start(self) -> None:
        """For a bot on its own server (``kit.asgi``): say at once why it will answer 503."""
        try:
            await self.claim.claim()
        except EnvMismatchError as exc:
            log.error("%s: the health answer and every update get 503 until REDIS_URL is fixed", exc)
        except outcome.STORAGE_ERRORS as exc:
            log.warning("Redis does not answer (%s): health says 503 until it does", type(exc).__name__)

    @property
    def secret(self) -> str:
        return bot_secret(self.config.webhook_secret, self.application.bot.token)

    def signed(self, request: Request) -> bool:
        given = request.headers.get(SECRET_HEADER, "")
        return hmac.compare_digest(given.encode(), self.secret.encode())

    # -- the webhook -------------------------------------------------------------------
    async def webhook(self, request: Request) -> Response:
        if not self.signed(request):
            return PlainTextResponse("forbidden", status_code=403)
        try:
            update = Update.de_json(await request.json(), self.application.bot)
            if update is None:
                raise ValueError("empty update")
        except _NOT_AN_UPDATE as exc:
            # It will never parse: a 5xx would only make Telegram send it again and again.
            log.warning("ignored a body that is not a Telegram update (%s)", type(exc).__name__)
            return PlainTextResponse("ignored")
        turn = self._probe_turn(request, update)
        try:
            await self.claim.claim()  # nothing is written to a Redis this environment has not claimed
        except (*outcome.STORAGE_ERRORS, EnvMismatchError) as exc:
            return _storage_failure(update.update_id, exc)
        failures = outcome.Failures()
        failures_token, probe_token = outcome.collecting(failures), probe.serving(turn)
        try:
            await self._serve(update, failures)
            if turn is not None:
                await turn.settle()  # its block=False handlers: the probe reads the replies next
        finally:
            probe.done(probe_token)
            outcome.done(failures_token)
        storage = outcome.storage_failure(failures)
        if storage is not None:
            return _storage_failure(update.update_id, storage)
        if turn is None:  # the probe user's turns are the pipeline's, not traffic
            self.counts.count(update, failures)
        for other in failures:  # e.g. Telegram's 403 "bot was blocked by the user": no retry helps
            log.error(
                "update %s: %s: %s (answered 200: a retry would fail the same way)",
                update.update_id,
                type(other).__name__,
                other,
            )
        if turn is not None:
            try:
                await self.replies.expire_user(turn.nonce)
            except outcome.STORAGE_ERRORS as exc:
                return _storage_failure(update.update_id, exc)
        return PlainTextResponse("ok")

    def _probe_turn(self, request: Request, update: Update) -> ProbeTurn | None:
        nonce = request.headers.get(PROBE_HEADER, "")
        user = update.effective_user
        if not self.surface.conversation or user is None or user.id != self.config.probe_user_id:
            return None
        return ProbeTurn(nonce, self.replies, user.id) if NONCE.fullmatch(nonce) else None

    async def _serve(self, update: Update, failures: list[BaseException]) -> None:
        """The handlers, or the signpost instead of them (``release_kit.gate``). Before the handlers,
        the user's arrival record (``release_kit.arrival``)."""
        link = signpost(self.config, update)
        if link is None:
            await self._record_arrival(update)
            await self.application.process_update(update)
            return
        if update.effective_message is None:
            return
        try:
            await update.effective_message.reply_text(link)
        except (TelegramError, *outcome.STORAGE_ERRORS) as exc:
            failures.append(exc)

    async def _record_arrival(self, update: Update) -> None:
        """The record is the pipeline's, not the user's: a Redis that cannot keep it is logged, and
        the update is answered as its handlers fare (503 only if they could not reach memory either)."""
        try:
            await self.arrivals.record(update, self.application.bot.id)
        except outcome.STORAGE_ERRORS as exc:
            log.warning("update %s: arrival record not kept (%s)", update.update_id, type(exc).__name__)

    # -- the probe's replies -----------------------------------------------------------
    async def probe_replies(self, request: Request) -> Response:
        """The replies given to the probe user for this nonce; DELETE also deletes the probe user."""
        if not self.signed(request):
            return PlainTextResponse("forbidden", status_code=403)
        nonce = str(request.path_params["nonce"])
        if not NONCE.fullmatch(nonce):
            return PlainTextResponse("bad nonce", status_code=400)
        try:
            body: dict[str, Any] = {"replies": await self.replies.read(nonce), "commit": self.config.commit}
            if request.method == "DELETE":  # the replies, and the probe user is gone: one round trip
                body["deleted"] = await self.replies.forget_user(nonce)
        except outcome.STORAGE_ERRORS as exc:
            return JSONResponse({"error": type(exc).__name__}, status_code=503)
        return JSONResponse(body)

    # -- the health answer ---------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        redis_ok, marker = await self.claim.health()
        bot = self.application.bot
        contract: dict[str, Any] = {"level": "conversation" if self.surface.conversation else "health"}
        contract["kit"] = __version__
        if self.surface.conversation:
            contract["probe_path"] = self.surface.probe_path
        body: dict[str, Any] = {
            "status": "ok" if redis_ok else "degraded",
            "env": self.config.env,
            "commit": self.config.commit,
            "bot": {"id": bot.id, "username": bot.username},
            "redis": {"ok": redis_ok, "env_marker": marker},
            "key_prefix": self.config.key_prefix,
            "moved_to": self.config.moved_to,
            "updates": self.counts.json(),
            "contract": contract,
        }
        reports = reports_of(self.application)
        if reports is not None and redis_ok:  # /oops is on: the moments the user said something is off
            # Redis answered the claim a moment ago; should it fail now, the reports are not worth a 503.
            with contextlib.suppress(*outcome.STORAGE_ERRORS):
                body["reports"] = {"oops": await reports.recent()}
        return JSONResponse(body, status_code=200 if redis_ok else 503)


class StartRefused(Exception):
    """The Bot API refused the bot's start; the kit has said why in one line."""


class _OneLine(logging.Filter):
    """Drops the server's traceback of a StartRefused: its one line was logged already."""

    def filter(self, record: logging.LogRecord) -> bool:
        return StartRefused.__name__ not in record.getMessage()


def _refused(call: str, exc: TelegramError, fix: str) -> StartRefused:
    """A wrong token or webhook URL ends the start with one line, not the lifespan's traceback
    (the server still exits non-zero, and Render keeps the previous instance)."""
    line = f"release_kit: the Bot API refused {call} at start ({type(exc).__name__}: {exc}): {fix}"
    log.error("%s", line)
    for name in ("uvicorn.error", "uvicorn"):  # where uvicorn logs a lifespan's failure
        logging.getLogger(name).addFilter(_OneLine())
    return StartRefused(line)


def _storage_failure(update_id: int, exc: BaseException) -> Response:
    log.error(
        "update %s did not take effect, memory unavailable (%s: %s); answered 503 so Telegram delivers it again",
        update_id,
        type(exc).__name__,
        exc,
    )
    return PlainTextResponse("memory unavailable, deliver again", status_code=503)
