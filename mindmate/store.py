"""The bot's memory in Redis, under a per-environment key prefix.

The key schema is a contract with ``ci-tools memory`` (see ARCHITECTURE.md):
``<prefix>user:<id>:history`` (list, recent messages, capped),
``<prefix>memory:<id>`` (list of facts the user asked the bot to remember),
``<prefix>user:<id>:profile`` (hash: first/last seen and names),
``<prefix>meta:env`` (the environment this Redis belongs to).

Which bot the user talks to and since when (what ``ci-tools finish-move`` times the end of a move
from) is the kit's arrival record, ``<prefix>kit:arrival:<id>`` (``release_kit.arrival``), kept for
mindmate as for any bot the kit serves. A mindmate deployed before the kit kept it wrote
``bot_id``/``bot_since`` into the profile instead; this one no longer does, and the pipeline reads
those two fields only where no arrival record exists (an old deployed mindmate: ci_tools/pipeline/old_bot.py).

One more, short-lived: ``<prefix>update:<update_id>`` marks an update that took
effect (set in the same MULTI/EXEC as the effect, so Telegram's redelivery of it
is acknowledged without storing a fact twice). The marker and the probe user's
replies (``<prefix>probe:<nonce>``) are the kit's (``release_kit``).

Every method lets Redis errors through: the kit's webhook turns them into a 503 so
that Telegram delivers the update again.
"""

from __future__ import annotations

import json
import time

import redis.asyncio as aioredis

from release_kit import EnvMismatchError, claim_env_marker
from release_kit.marker import marker_key

__all__ = ["EnvMismatchError", "MemoryStore", "claim_env_marker", "marker_key"]

UPDATE_MARKER_TTL = 2 * 24 * 3600  # Telegram stops redelivering long before this


def history_key(prefix: str, user_id: int) -> str:
    return f"{prefix}user:{user_id}:history"


def memory_key(prefix: str, user_id: int) -> str:
    return f"{prefix}memory:{user_id}"


def profile_key(prefix: str, user_id: int) -> str:
    return f"{prefix}user:{user_id}:profile"


def update_key(prefix: str, update_id: int) -> str:
    return f"{prefix}update:{update_id}"


class MemoryStore:
    """Async access to one user's memory, for the bot's handlers.

    Each write takes the update's id and sets its marker in the same transaction, so
    an update either took effect (and is marked) or did not (and may be redelivered).
    """

    def __init__(self, client: aioredis.Redis, prefix: str, history_limit: int = 50) -> None:
        self.client = client
        self.prefix = prefix
        self.history_limit = history_limit

    def _mark(self, pipe: aioredis.client.Pipeline, update_id: int | None) -> None:
        if update_id is not None:
            pipe.set(update_key(self.prefix, update_id), "1", ex=UPDATE_MARKER_TTL)

    async def took_effect(self, update_id: int) -> bool:
        """Did this update already take effect (a redelivery)?"""
        return bool(await self.client.exists(update_key(self.prefix, update_id)))

    async def touch(
        self,
        user_id: int,
        first_name: str | None,
        username: str | None,
        update_id: int | None = None,
    ) -> bool:
        """Record first/last seen (and, for a read-only command, the update); True on a first visit."""
        now = str(int(time.time()))
        key = profile_key(self.prefix, user_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "first_seen", now)
            pipe.hset(key, mapping={"last_seen": now, "first_name": first_name or ""})
            if username:
                pipe.hset(key, "username", username)
            self._mark(pipe, update_id)
            first, *_ = await pipe.execute()
        return bool(first)

    async def append_history(self, user_id: int, text: str, update_id: int | None = None) -> None:
        key = history_key(self.prefix, user_id)
        entry = json.dumps({"ts": int(time.time()), "text": text}, ensure_ascii=False)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(key, entry)
            pipe.ltrim(key, -self.history_limit, -1)
            self._mark(pipe, update_id)
            await pipe.execute()

    async def remember(self, user_id: int, fact: str, update_id: int | None = None) -> int:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(memory_key(self.prefix, user_id), fact)
            self._mark(pipe, update_id)
            count, *_ = await pipe.execute()
        return int(count)

    async def recall(self, user_id: int) -> list[str]:
        return [str(f) for f in await self.client.lrange(memory_key(self.prefix, user_id), 0, -1)]

    async def forget(self, user_id: int, index: int | None, update_id: int | None = None) -> str | None:
        """Forget fact number ``index`` (1-based), or every fact when None."""
        key = memory_key(self.prefix, user_id)
        if index is None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                self._mark(pipe, update_id)
                await pipe.execute()
            return None
        facts = await self.recall(user_id)
        if not 1 <= index <= len(facts):
            raise IndexError(index)
        fact = facts[index - 1]
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lrem(key, 1, fact)
            self._mark(pipe, update_id)
            await pipe.execute()
        return fact
