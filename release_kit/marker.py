"""The environment marker: ``<prefix>meta:env`` names the environment a Redis belongs to.

A production bot started on the staging Redis would otherwise serve (and change) the staging
user's memory under the wrong name. The bot writes the marker when it is absent and refuses a
Redis another environment claimed: at start (one line, exit 1, Render keeps the old instance),
and, when Redis did not answer at start, before the first update and health answer that reach
it (503 until then, so Render does not route to it and Telegram delivers the updates again).
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis


class EnvMismatchError(Exception):
    """The Redis we were given belongs to another environment."""


def marker_key(prefix: str) -> str:
    return f"{prefix}meta:env"


def _refusal(prefix: str, env: str, found: str, *, starting: bool) -> EnvMismatchError:
    lead = "refusing to start: " if starting else ""
    return EnvMismatchError(
        f"{lead}this bot is ENV={env} but its Redis is marked {marker_key(prefix)}={found}; "
        f"point REDIS_URL at the {env} Redis"
    )


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def claim_env_marker(client: redis.Redis, prefix: str, env: str) -> str:
    """Write the marker if absent; raise EnvMismatchError for a Redis another environment claimed."""
    key = marker_key(prefix)
    client.set(key, env, nx=True)
    found = _text(client.get(key))
    if found != env:
        raise _refusal(prefix, env, found, starting=True)
    return found


class EnvClaim:
    """The same claim, asynchronously and once: what the webhook and the health answer wait for."""

    def __init__(self, client: aioredis.Redis, prefix: str, env: str) -> None:
        self.client = client
        self.prefix = prefix
        self.env = env
        self.claimed = False

    async def claim(self) -> None:
        """Raises EnvMismatchError for a Redis another environment claimed; Redis errors pass."""
        if self.claimed:
            return
        key = marker_key(self.prefix)
        await self.client.set(key, self.env, nx=True)
        found = _text(await self.client.get(key))
        if found != self.env:
            raise _refusal(self.prefix, self.env, found, starting=False)
        self.claimed = True

    async def health(self) -> tuple[bool, str | None]:
        """Does Redis answer, claimed for this environment? And the marker it holds."""
        try:
            await self.claim()
            await self.client.ping()
            marker = await self.client.get(marker_key(self.prefix))
        except (redis.RedisError, OSError, EnvMismatchError, TimeoutError):
            return False, None
        return True, None if marker is None else _text(marker)
