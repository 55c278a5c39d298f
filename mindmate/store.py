"""The bot's memory in Redis, under a per-environment key prefix.

The key schema is a contract with ``ci-tools memory`` (see ARCHITECTURE.md):
``<prefix>user:<id>:history`` (list, recent messages, capped),
``<prefix>memory:<id>`` (list of facts the user asked the bot to remember),
``<prefix>user:<id>:profile`` (hash: first/last seen and names),
``<prefix>meta:env`` (the environment this Redis belongs to).
"""

from __future__ import annotations

import json
import time

import redis
import redis.asyncio as aioredis


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


def claim_env_marker(client: redis.Redis, prefix: str, env: str) -> str:
    """Write the marker if absent; refuse a Redis that another environment claimed.

    A production bot started on the dev Redis would otherwise serve (and change)
    the dev user's memory under the wrong name, which is exactly the mix-up the
    migration plan exists to end.
    """
    key = marker_key(prefix)
    client.set(key, env, nx=True)
    found = client.get(key)
    found = found.decode() if isinstance(found, bytes) else found
    if found != env:
        raise EnvMismatchError(
            f"refusing to start: this bot is ENV={env} but its Redis is marked {key}={found}; "
            f"point REDIS_URL at the {env} Redis"
        )
    return found


class MemoryStore:
    """Async access to one user's memory, for the bot's handlers."""

    def __init__(self, client: aioredis.Redis, prefix: str, history_limit: int = 50) -> None:
        self.client = client
        self.prefix = prefix
        self.history_limit = history_limit

    async def touch(self, user_id: int, first_name: str | None, username: str | None) -> bool:
        """Record first/last seen; True when this is the user's first visit."""
        now = str(int(time.time()))
        key = profile_key(self.prefix, user_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "first_seen", now)
            pipe.hset(key, mapping={"last_seen": now, "first_name": first_name or ""})
            if username:
                pipe.hset(key, "username", username)
            first, *_ = await pipe.execute()
        return bool(first)

    async def append_history(self, user_id: int, text: str) -> None:
        key = history_key(self.prefix, user_id)
        entry = json.dumps({"ts": int(time.time()), "text": text}, ensure_ascii=False)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(key, entry)
            pipe.ltrim(key, -self.history_limit, -1)
            await pipe.execute()

    async def remember(self, user_id: int, fact: str) -> int:
        return int(await self.client.rpush(memory_key(self.prefix, user_id), fact))

    async def recall(self, user_id: int) -> list[str]:
        return list(await self.client.lrange(memory_key(self.prefix, user_id), 0, -1))

    async def forget(self, user_id: int, index: int | None) -> str | None:
        """Forget fact number ``index`` (1-based), or every fact when None."""
        key = memory_key(self.prefix, user_id)
        if index is None:
            await self.client.delete(key)
            return None
        facts = await self.recall(user_id)
        if not 1 <= index <= len(facts):
            raise IndexError(index)
        fact = facts[index - 1]
        await self.client.lrem(key, 1, fact)
        return fact

    async def health(self) -> tuple[bool, str | None]:
        try:
            await self.client.ping()
            marker = await self.client.get(marker_key(self.prefix))
        except (redis.RedisError, OSError):
            return False, None
        return True, marker
