"""The bot's memory in Redis, under a per-environment key prefix.

The key schema is a contract with ``ci-tools memory`` (see ARCHITECTURE.md):
``<prefix>user:<id>:history`` (list, recent messages, capped),
``<prefix>memory:<id>`` (list of facts the user asked the bot to remember),
``<prefix>user:<id>:profile`` (hash: first/last seen and names, and which bot they talk to:
``bot_id``, the bot that saw them last, and ``bot_since``, when they first wrote to it after
another bot had their memory — the pipeline reads these to time the end of a move, README),
``<prefix>meta:env`` (the environment this Redis belongs to).

Two more, short-lived: ``<prefix>update:<update_id>`` marks an update that took
effect (set in the same MULTI/EXEC as the effect, so Telegram's redelivery of it
is acknowledged without storing a fact twice), and ``<prefix>probe:<nonce>`` keeps
the replies the bot gave the pipeline's probe user instead of sending them.

Every method lets Redis errors through: the webhook turns them into a 5xx so that
Telegram delivers the update again (``mindmate.app``).
"""

from __future__ import annotations

import json
import time

import redis
import redis.asyncio as aioredis

UPDATE_MARKER_TTL = 2 * 24 * 3600  # Telegram stops redelivering long before this
PROBE_TTL = 300  # the probe user's keys and replies outlive no probe run
# Which bot the user talks to, and since when, in their profile: a memory copy carries the profile
# from one bot's Redis to the other's, so the first visit to a bot whose id is not the one recorded
# is the user's arrival there (``ci-tools finish-move`` waits its window from that moment).
BOT_FIELD = "bot_id"
SINCE_FIELD = "bot_since"


class EnvMismatchError(Exception):
    """The Redis we were given belongs to another environment."""


def marker_key(prefix: str) -> str:
    return f"{prefix}meta:env"


def history_key(prefix: str, user_id: int) -> str:
    return f"{prefix}user:{user_id}:history"


def memory_key(prefix: str, user_id: int) -> str:
    return f"{prefix}memory:{user_id}"


def profile_key(prefix: str, user_id: int) -> str:
    return f"{prefix}user:{user_id}:profile"


def update_key(prefix: str, update_id: int) -> str:
    return f"{prefix}update:{update_id}"


def probe_key(prefix: str, nonce: str) -> str:
    return f"{prefix}probe:{nonce}"


def claim_env_marker(client: redis.Redis, prefix: str, env: str) -> str:
    """Write the marker if absent; refuse a Redis that another environment claimed.

    A production bot started on the dev Redis would otherwise serve (and change)
    the dev user's memory under the wrong name, which is exactly the mix-up the
    migration plan exists to end.
    """
    key = marker_key(prefix)
    client.set(key, env, nx=True)
    raw = client.get(key)
    found = raw.decode() if isinstance(raw, bytes) else str(raw)
    if found != env:
        raise EnvMismatchError(
            f"refusing to start: this bot is ENV={env} but its Redis is marked {key}={found}; "
            f"point REDIS_URL at the {env} Redis"
        )
    return found


class MemoryStore:
    """Async access to one user's memory, for the bot's handlers.

    Each write takes the update's id and sets its marker in the same transaction, so
    an update either took effect (and is marked) or did not (and may be redelivered).
    """

    def __init__(self, client: aioredis.Redis, prefix: str, history_limit: int = 50, env: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self.history_limit = history_limit
        self.env = env
        self.claimed = not env  # without an env to claim for, there is nothing to wait for

    async def claim(self) -> None:
        """Claim this Redis for ``env`` once it answers (``claim_env_marker``, asynchronously).

        A bot that started while its Redis did not answer serves 503 until this succeeds,
        so Render never routes to it and Telegram delivers its updates again later.
        Raises EnvMismatchError for a Redis another environment claimed; Redis errors pass.
        """
        if self.claimed:
            return
        key = marker_key(self.prefix)
        await self.client.set(key, self.env, nx=True)
        raw = await self.client.get(key)
        found = raw.decode() if isinstance(raw, bytes) else str(raw)
        if found != self.env:
            raise EnvMismatchError(
                f"this bot is ENV={self.env} but its Redis is marked {key}={found}; "
                f"point REDIS_URL at the {self.env} Redis"
            )
        self.claimed = True

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
        bot_id: int | None = None,
    ) -> bool:
        """Record first/last seen (and, for a read-only command, the update); True on a first visit.

        With ``bot_id`` (the bot answering), a visit whose profile names another bot (or none: a
        copy from a bot that kept no record) is the user's arrival here: ``bot_since`` is now."""
        now = str(int(time.time()))
        key = profile_key(self.prefix, user_id)
        recorded = await self.client.hget(key, BOT_FIELD) if bot_id is not None else None
        recorded = recorded.decode() if isinstance(recorded, bytes) else recorded
        arrived = bot_id is not None and recorded != str(bot_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "first_seen", now)
            pipe.hset(key, mapping={"last_seen": now, "first_name": first_name or ""})
            if username:
                pipe.hset(key, "username", username)
            if arrived:
                pipe.hset(key, mapping={BOT_FIELD: str(bot_id), SINCE_FIELD: now})
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

    # -- the pipeline's probe user ------------------------------------------------------
    async def keep_probe_reply(self, nonce: str, text: str) -> None:
        key = probe_key(self.prefix, nonce)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(key, text)
            pipe.expire(key, PROBE_TTL)
            await pipe.execute()

    async def probe_replies(self, nonce: str) -> list[str]:
        return [str(r) for r in await self.client.lrange(probe_key(self.prefix, nonce), 0, -1)]

    def probe_user_keys(self, user_id: int, nonce: str) -> list[str]:
        return [
            memory_key(self.prefix, user_id),
            history_key(self.prefix, user_id),
            profile_key(self.prefix, user_id),
            probe_key(self.prefix, nonce),
        ]

    async def expire_probe_user(self, user_id: int, nonce: str) -> None:
        """The probe user's keys live minutes at most, even if the probe never cleans up."""
        async with self.client.pipeline(transaction=False) as pipe:
            for key in self.probe_user_keys(user_id, nonce):
                pipe.expire(key, PROBE_TTL)
            await pipe.execute()

    async def forget_probe_user(self, user_id: int, nonce: str) -> int:
        return int(await self.client.delete(*self.probe_user_keys(user_id, nonce)))

    async def health(self) -> tuple[bool, str | None]:
        try:
            await self.claim()
            await self.client.ping()
            marker = await self.client.get(marker_key(self.prefix))
        except (redis.RedisError, OSError, EnvMismatchError):
            return False, None
        return True, None if marker is None else str(marker)
