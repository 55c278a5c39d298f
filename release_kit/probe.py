"""The pipeline's probe user: its turns run through the real handlers, its replies kept, not sent.

The release pipeline holds a conversation with each release as a user would (say ``/start``,
``/remember probe-<nonce>``, ``/recall``), through the bot's real handlers and its real Redis. The
probe user is no real chat, so while the webhook serves a signed update from ``PROBE_USER_ID``
carrying ``X-Probe-Nonce``, every reply the handlers send is kept under ``<prefix>probe:<nonce>``
for a few minutes (``release_kit.request``) and read back from the signed ``GET /probe/<nonce>``.
``DELETE /probe/<nonce>`` also deletes the probe user's keys: the kit does not know the bot's key
layout, so it takes every key under the prefix that holds the probe user's id as a whole
``:``-separated segment (``memory:<id>``, ``user:<id>:history``, ...). Nothing of a real user is read.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis

PROBE_HEADER = "X-Probe-Nonce"
NONCE = re.compile(r"[a-z0-9-]{6,64}")  # whole: fullmatch ($ would take a final newline)
PROBE_TTL = 300  # the probe user's keys and replies outlive no probe run
# How long a probe turn's answer waits for its non-blocking handlers: the pipeline's probe waits
# 10 s for the answer, and a task that runs longer (a loop until cancelled) must not cost the turn.
SETTLE_SECONDS = 8.0
_GLOB_SPECIALS = re.compile(r"([*?\[\]\\])")


@dataclass
class ProbeTurn:
    """One probe update being served. ``serving`` ends when the webhook has answered it.

    Why it ends rather than live on in the context variable: whatever a handler schedules
    inherits its context, and a scheduler may hand that context on to work that is not the turn's.
    python-telegram-bot's JobQueue (APScheduler) arms its next timer in the context of the call that
    added a job: after a probe turn adds one, every later job of every user runs in the probe's
    context, and their messages must still reach Telegram."""

    nonce: str
    replies: ProbeReplies
    user_id: int
    serving: bool = True
    tasks: set[asyncio.Task[object]] = field(default_factory=set)  # its block=False handlers (KitApplication)

    async def settle(self, timeout: float = SETTLE_SECONDS) -> None:
        """Wait (at most ``timeout``) for the turn's non-blocking handlers, and those they start."""
        deadline = time.monotonic() + timeout
        while pending := {task for task in self.tasks if not task.done()}:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.wait(pending, timeout=left)


_turn: contextvars.ContextVar[ProbeTurn | None] = contextvars.ContextVar("release_kit_probe", default=None)


def probe_nonce() -> str | None:
    """The nonce of the probe turn this task serves, or None for a real user's update.

    For a bot that marks an update's effect in Redis (to acknowledge Telegram's redelivery
    without repeating it): the probe's turns should leave no such marker behind."""
    turn = _turn.get()
    return turn.nonce if turn is not None and turn.serving else None


def started(task: asyncio.Task[object]) -> None:
    """A task python-telegram-bot started for the update being served (a ``block=False`` handler)."""
    turn = _turn.get()
    if turn is not None and turn.serving:
        turn.tasks.add(task)


def keeping(chat_id: object) -> ProbeTurn | None:
    """The probe turn a Bot API call to ``chat_id`` is a reply of, or None: it goes to Telegram.

    While the turn's update is served, every call of its task is the turn's. After the answer a
    context that still holds the turn (a ``block=False`` handler of the turn, or a job that ran in
    a context the turn left behind) keeps only what goes to the probe user's own chat, which is no
    real chat: a real user's message always reaches Telegram."""
    turn = _turn.get()
    if turn is None:
        return None
    return turn if turn.serving or str(chat_id) == str(turn.user_id) else None


def serving(turn: ProbeTurn | None) -> contextvars.Token[ProbeTurn | None]:
    """Route this task's replies to the probe (the webhook resets it after the update)."""
    return _turn.set(turn)


def done(token: contextvars.Token[ProbeTurn | None]) -> None:
    turn = _turn.get()
    if turn is not None:
        turn.serving = False  # copies of this context that outlive the update no longer serve it
    _turn.reset(token)


class ProbeReplies:
    """The probe's side of Redis: the replies kept for a nonce, and the probe user's keys."""

    def __init__(self, client: aioredis.Redis, prefix: str, probe_user_id: int) -> None:
        self.client = client
        self.prefix = prefix
        self.probe_user_id = probe_user_id

    def key(self, nonce: str) -> str:
        return f"{self.prefix}probe:{nonce}"

    async def keep(self, nonce: str, text: str) -> None:
        key = self.key(nonce)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(key, text)
            pipe.expire(key, PROBE_TTL)
            await pipe.execute()

    async def read(self, nonce: str) -> list[str]:
        return [_text(r) for r in await self.client.lrange(self.key(nonce), 0, -1)]

    async def user_keys(self) -> list[str]:
        """Every key under the prefix with the probe user's id as a whole segment of its name."""
        user = str(self.probe_user_id)
        pattern = _GLOB_SPECIALS.sub(r"\\\1", self.prefix) + f"*{user}*"
        found: list[str] = []
        async for raw in self.client.scan_iter(match=pattern, count=1000):
            key = _text(raw)
            if user in key[len(self.prefix) :].split(":"):
                found.append(key)
        return found if self.prefix else await self._without_other_environments(found)

    async def _without_other_environments(self, keys: list[str]) -> list[str]:
        """With no prefix (``KEY_PREFIX=none``) every key is under it, also another environment's
        on the same Redis (``dev:memory:<id>``): a key is another's when one of its leading
        segments is a prefix that environment claimed (``dev:meta:env`` exists)."""
        heads = sorted({key[: i + 1] for key in keys for i, c in enumerate(key) if c == ":"})
        if not heads:
            return keys
        async with self.client.pipeline(transaction=False) as pipe:
            for head in heads:
                pipe.exists(f"{head}meta:env")
            claimed = {heads[i] for i, n in enumerate(await pipe.execute()) if n}
        return [key for key in keys if not any(key.startswith(head) for head in claimed)]

    async def expire_user(self, nonce: str) -> None:
        """The probe user's keys live minutes at most, even if the probe never cleans up."""
        keys = [*await self.user_keys(), self.key(nonce)]
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.expire(key, PROBE_TTL)
            await pipe.execute()

    async def forget_user(self, nonce: str) -> int:
        keys = [*await self.user_keys(), self.key(nonce)]
        return int(await self.client.delete(*keys))


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
