"""Run the reference bot locally: in a thread (tests) or as a process (the Render stand-in).

Both run the real ASGI app under real uvicorn on a loopback port, with
python-telegram-bot pointed at the Bot API stand-in through ``TELEGRAM_API_URL``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import uvicorn

from ci_tools.redact import is_secret_name
from sandbox.ports import free_port


class ThreadedBot:
    """The bot app served by uvicorn in a background thread of this process."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        from mindmate.app import create_app
        from mindmate.settings import load_settings

        self.port = int(environ.get("PORT") or free_port())
        self.settings = load_settings({**environ, "PORT": str(self.port), "HOST": "127.0.0.1"})
        config = uvicorn.Config(
            create_app(self.settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="mindmate", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ThreadedBot:
        """Claim the Redis for this environment (as ``python -m mindmate`` does), then serve."""
        import redis

        from mindmate.store import EnvMismatchError, claim_env_marker

        try:
            client = redis.Redis.from_url(self.settings.redis_url, socket_connect_timeout=5)
            claim_env_marker(client, self.settings.key_prefix, self.settings.env)
        except EnvMismatchError as exc:
            raise RuntimeError(str(exc)) from None
        except redis.RedisError:
            pass  # as python -m mindmate: serve, /healthz answers 503 until Redis answers
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the bot did not start (see its log above)")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> ThreadedBot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# What the bot reads (release_kit/config.py, mindmate/settings.py): on Render only its service sets these.
BOT_SETTINGS = (
    "ENV",
    "KEY_PREFIX",
    "PORT",
    "HOST",
    "HISTORY_LIMIT",
    "MOVED_TO",
    "TESTER_IDS",
    "PRODUCTION_BOT",
    "PROBE_USER_ID",
    "RENDER_EXTERNAL_URL",
    "RENDER_GIT_COMMIT",
    "TELEGRAM_API_URL",
)


def inherited() -> dict[str, str]:
    """This process's environment less its secrets and the bot's settings: a stand-in bot
    gets those from its service only, never from the shell that started the tests."""
    return {k: v for k, v in os.environ.items() if not is_secret_name(k) and k not in BOT_SETTINGS}


class BotProcess:
    """``python -m mindmate`` as a child process, as Render would run it."""

    def __init__(self, environ: Mapping[str, str], *, log_path: Path | None = None, source: Path | None = None) -> None:
        self.port = int(environ.get("PORT") or free_port())
        self.environ = {**inherited(), **environ, "PORT": str(self.port), "HOST": "127.0.0.1"}
        self.log_path = log_path
        # A build of a commit: ``python -m mindmate`` run there imports that tree's bot (the
        # working directory comes first on sys.path), its dependencies from this environment.
        self.source = source
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> BotProcess:
        """Start and wait until /healthz answers; RuntimeError with the exit line if it dies."""
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mindmate"],
                env=self.environ,
                cwd=self.source,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT if self.log_path else subprocess.PIPE,
            )
        finally:
            if self.log_path:
                log.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"the bot exited with {code}: {self.last_line()}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=0.5)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the bot did not answer on {self.url} within {timeout}s")

    def last_line(self) -> str:
        if self.log_path and self.log_path.exists():
            text = self.log_path.read_text(errors="replace")
        elif self.process and self.process.stderr:
            text = self.process.stderr.read().decode(errors="replace")
        else:
            text = ""
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process and process.stderr:
            process.stderr.close()

    def __enter__(self) -> BotProcess:
        return self if self.process is not None else self.start()  # started already: not twice

    def __exit__(self, *exc: object) -> None:
        self.stop()
