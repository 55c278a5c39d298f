"""Memory tests copy between two prefixed environments: the config after the move, and the pair of
servers the copy's cross-version path needs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.redis import RedisServer, server_available
from tests.memory.helpers import seed_user
from tests.support import after_the_move


@pytest.fixture(autouse=True)
def _config_after_the_move(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    config = after_the_move(tmp_path_factory.mktemp("moved"))
    monkeypatch.chdir(config.parent)


@pytest.fixture
def valkey_to_old_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RedisServer, RedisServer]]:
    """Staging on Valkey 9 with the user seeded, production on a Redis older than 7.4, whose RESTORE
    refuses Valkey 9's DUMP payloads (the copy's cross-version path); SOURCE_REDIS_URL and
    TARGET_REDIS_URL name them. Skipped where either server is missing."""
    for kind in ("valkey", "redis"):
        if not server_available(kind):
            pytest.skip(f"needs a Valkey and a Redis server; no {kind} server here")
    with RedisServer(kind="valkey") as valkey, RedisServer(kind="redis") as old:
        if old.version() >= "7.4":
            pytest.skip(f"redis-server {old.version()} may accept Valkey 9 payloads")
        seed_user(valkey.client())
        old.client().set("prod:meta:env", "production")
        monkeypatch.setenv("SOURCE_REDIS_URL", valkey.url)
        monkeypatch.setenv("TARGET_REDIS_URL", old.url)
        yield valkey, old
