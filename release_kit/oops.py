"""``/oops``: the daily user can say something is off, and the owner hears it at once.

The person a bot is built for is the first to notice a bad release, and the last to open an
issue. With ``kit.oops(application)`` (the command's name is the owner's choice), whoever writes
``/oops`` is thanked, and the owner — ``OWNER_CHAT_ID``, the chat the pipeline's own messages
go to — gets one message from the bot: which commit is live, and when it was said. Never who
said it, nor a word of anything they wrote: the message is built from the time and the commit
alone. The moment is kept (``<prefix>meta:oops``, the newest fifty: a time and a commit) and
the health answer lists it under ``reports.oops``, so ``ci-tools history`` shows it beside the
releases.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationHandlerStop, CommandHandler, ContextTypes

from release_kit.config import KitConfig
from release_kit.outcome import STORAGE_ERRORS
from release_kit.probe import probe_nonce

log = logging.getLogger("release_kit")
KEY = "meta:oops"
KEEP = 50
KEEP_GAP = 60  # seconds: at most one kept moment a minute
TELL_GAP = 600  # seconds: at most one message to the owner in ten minutes
LATEST = 253402300800.0  # 10000-01-01 UTC: a kept moment at or after it is no time
THANKS = "Thank you for telling me. I've let the person who looks after me know that something feels off."
GROUP = -10  # before the owner's handlers (and the kit's own group -1 checks): /oops is ours alone

_enabled: weakref.WeakKeyDictionary[Application, OopsReports] = weakref.WeakKeyDictionary()


class OopsReports:
    """The kept moments: ``{"at": unix seconds, "commit": the live commit}``, newest first."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.redis = aioredis.from_url(redis_url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2)
        self.key = f"{prefix}{KEY}"
        self.told_here = -float(TELL_GAP)  # monotonic: the gap kept by this process while Redis is down

    async def first_in(self, what: str, seconds: int) -> bool:
        """True once per ``seconds`` for ``what`` (SET NX EX): anyone can type /oops, and a flood
        must neither fill the owner's chat nor push the kept moments out."""
        return bool(await self.redis.set(f"{self.key}:{what}", "1", nx=True, ex=seconds))

    async def tell_now(self) -> bool:
        """Whether to tell the owner of this /oops: once per TELL_GAP, kept in Redis; while Redis is
        down, kept by this process instead — a bot whose memory is gone is the moment the owner
        most needs to hear it, and a 503 would only bring the same /oops back unheard."""
        try:
            return await self.first_in("told", TELL_GAP)
        except STORAGE_ERRORS:
            now = time.monotonic()
            if now - self.told_here < TELL_GAP:
                return False
            self.told_here = now
            return True

    async def record(self, at: float, commit: str) -> None:
        if not await self.first_in("kept", KEEP_GAP):
            return  # one moment a minute is kept: a flood is one moment
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(self.key, json.dumps({"at": round(at, 3), "commit": commit or None}))
            pipe.ltrim(self.key, 0, KEEP - 1)
            await pipe.execute()

    async def recent(self) -> list[dict[str, Any]]:
        kept: list[dict[str, Any]] = []
        for raw in await self.redis.lrange(self.key, 0, KEEP - 1):
            try:
                item = json.loads(raw)
                at, commit = float(item["at"]), item.get("commit")
            except (ValueError, KeyError, TypeError):
                continue  # not ours to explain: the list is read, never trusted
            # A time the health answer can carry and history can show: NaN or an infinity would make
            # the whole /healthz a 500 (JSON has neither), so the pipeline would read the bot as down.
            if 0 <= at < LATEST and (commit is None or isinstance(commit, str)):
                kept.append({"at": at, "commit": commit})
        return kept


def owner_message(bot_username: str | None, config: KitConfig, command: str, at: float) -> str:
    """What the owner reads: the bot, the environment, the time, the live commit. Nothing else."""
    when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = config.commit[:12] if config.commit else "unknown"
    return (
        f"@{bot_username or 'bot'} ({config.env}): someone said something is off (/{command}) at {when}. "
        f"Live commit: {commit}. What they wrote is not passed on; look at the release and roll back if needed."
    )


def add_oops(application: Application, config: KitConfig, command: str = "oops", thanks: str = THANKS) -> None:
    """Register ``/<command>`` on ``application`` (see the module's docstring)."""
    reports = OopsReports(config.redis_url, config.key_prefix)

    async def said_off(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        at = time.time()
        kept = True
        if probe_nonce() is None:  # the probe's turns are the pipeline's: no user said anything
            try:
                await reports.record(at, config.commit)
            except STORAGE_ERRORS as exc:  # the owner is told all the same, and told it was not kept
                kept = False
                log.warning("/%s: the moment was not kept (%s)", command, type(exc).__name__)
        if probe_nonce() is not None or not await reports.tell_now():
            pass  # the probe's turn, or the owner was told minutes ago: the user is still thanked
        elif config.owner_chat_id is not None:
            text = owner_message(context.bot.username, config, command, at)
            if not kept:
                text += " The bot's Redis did not answer, so this moment is not in history."
            try:
                await context.bot.send_message(config.owner_chat_id, text)
            except TelegramError as exc:  # the owner never pressed Start: the user is still thanked
                log.warning("/%s: the owner was not told (%s)", command, type(exc).__name__)
        else:
            log.warning("/%s: OWNER_CHAT_ID is not set, so the owner was not told (the moment is kept)", command)
        if update.effective_message is not None:
            await update.effective_message.reply_text(thanks)
        raise ApplicationHandlerStop  # the owner's own handlers do not see it

    application.add_handler(CommandHandler(command, said_off), group=GROUP)
    _enabled[application] = reports


def reports_of(application: Application) -> OopsReports | None:
    """The application's kept moments, when ``/oops`` is on."""
    return _enabled.get(application)
