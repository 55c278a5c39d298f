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

import contextvars
import re
from dataclasses import dataclass

import redis.asyncio as aioredis

PROBE_HEADER = "X-Probe-Nonce"
NONCE = re.compile(r"^[a-z0-9-]{6,64}$")
PROBE_TTL = 300  # the probe user's keys and replies outlive no probe run
_GLOB_SPECIALS = re.compile(r"([*?\[\]\\])")


@dataclass(frozen=True)
class ProbeTurn:
    nonce: str
    replies: ProbeReplies


_turn: contextvars.ContextVar[ProbeTurn | None] = contextvars.ContextVar("release_kit_probe", default=None)


def probe_nonce() -> str | None:
    """The nonce of the probe turn this task serves, or None for a real user's update.

    For a bot that marks an update's effect in Redis (to acknowledge Telegram's redelivery
    without repeating it): the probe's turns should leave no such marker behind."""
    turn = _turn.get()
    return None if turn is None else turn.nonce


def active() -> ProbeTurn | None:
    return _turn.get()


def serving(turn: ProbeTurn | None) -> contextvars.Token[ProbeTurn | None]:
    """Route this task's replies to the probe (the webhook resets it after the update)."""
    return _turn.set(turn)


def done(token: contextvars.Token[ProbeTurn | None]) -> None:
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
        return found

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
