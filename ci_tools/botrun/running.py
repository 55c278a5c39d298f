"""Start a bot with its own start command, as Render does, and stop it with everything it started.

The start command runs with ``bash -c`` in the tree, the build's virtualenv first on PATH, in a
session of its own (so ``stop()`` reaches whatever it started), and dies with this process
(``die_with_parent``: even a SIGKILL of ours takes it along). The environment is the caller's
(PORT, RENDER_EXTERNAL_URL, RENDER_GIT_COMMIT, the bot's own settings), plus a directory on
PYTHONPATH whose ``sitecustomize.py`` sends an unchanged bot's Bot API calls, made with httpx or
aiohttp to https://api.telegram.org, to ``telegram_api`` instead (``CI_TOOLS_TELEGRAM_API``); the
bot's own sitecustomize still runs after it.

Ready means what Render waits for before it health-checks a new instance: with a health check
path, that path answers (any status; whether it is healthy is the caller's question), else the
port accepts TCP connections (render.com/docs/health-checks: "By default, health checks are TCP
socket probes to one of your service's open ports"). A process that exits first is StartFailed,
with its last line.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_tools import cancel
from ci_tools.botrun.building import VENV, build_environ
from ci_tools.botrun.commands import BotCommands
from ci_tools.botrun.logs import last_lines
from ci_tools.botrun.sessions import die_with_parent, stop_session
from ci_tools.clients.health import answers
from ci_tools.errors import StartFailed

REROUTE = Path(__file__).parent / "reroute"  # holds sitecustomize.py, and nothing else
TELEGRAM_VARIABLE = "CI_TOOLS_TELEGRAM_API"
START_TIMEOUT = 60.0


class _Spawner:
    """One long-lived thread that starts every bot process.

    The parent-death signal fires when the *thread* that forked the child ends, not the
    process: a bot started from a deploy's short-lived thread (the Render stand-in) would be
    killed as that thread returns. Started from here, it dies only with this process."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], queue.Queue[tuple[bool, Any]]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, job: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="botrun-spawner", daemon=True)
                self._thread.start()
        answer: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
        self._jobs.put((job, answer))
        ok, value = answer.get()
        if not ok:
            raise value
        return value

    def _serve(self) -> None:
        while True:
            job, answer = self._jobs.get()
            try:
                answer.put((True, job()))
            except BaseException as exc:  # handed to the caller's thread, raised there
                answer.put((False, exc))


SPAWNER = _Spawner()


def free_port() -> int:
    """A port nothing listens on now, on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningBot:
    """A started bot: where it answers, its log, and how to stop it (and all it started)."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    commands: BotCommands
    _folder: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def exited(self) -> int | None:
        """Its exit status once it has ended by itself, else None."""
        return self.process.poll()

    def log_tail(self, count: int = 20) -> tuple[str, ...]:
        return last_lines(self.log, count)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to its session, ``grace`` seconds, then SIGKILL to whatever is left of it."""
        stop_session(self.process, grace)  # its log stays readable: a temporary one goes with this object

    def __enter__(self) -> RunningBot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(
    tree: Path,
    commands: BotCommands,
    environ: Mapping[str, str],
    telegram_api: str | None,
    *,
    log: Path | None = None,
    timeout: float = START_TIMEOUT,
    host: str = "127.0.0.1",
) -> RunningBot:
    """Run ``commands.start`` in ``tree`` (built by ``build()``) with ``environ`` and wait until
    it is ready. PORT is ``environ``'s, else a free one (set for the bot, as Render sets it)."""
    workdir = tree / commands.root if commands.root else tree
    port = int(environ.get("PORT") or free_port())
    env = build_environ(workdir / VENV, environ)
    env["PORT"] = str(port)
    env.setdefault("PYTHONUNBUFFERED", "1")  # its log is read while it runs
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REROUTE), environ.get("PYTHONPATH", "")) if p)
    env.pop(TELEGRAM_VARIABLE, None)
    if telegram_api:
        env[TELEGRAM_VARIABLE] = telegram_api.rstrip("/")
    folder = None
    if log is None:
        folder = tempfile.TemporaryDirectory(prefix="ci-tools-bot-")
        log = Path(folder.name) / "bot.log"
    with log.open("ab") as handle:
        handle.write(f"==> Running '{commands.start}'\n".encode())
        handle.flush()

        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                ["bash", "-c", commands.start],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session: whatever it starts is stopped with it
                preexec_fn=die_with_parent,  # only prctl(2), before exec: safe with threads
            )

        def started() -> RunningBot:
            return RunningBot(f"http://{host}:{port}", port, SPAWNER.run(spawn), log, commands, folder)

        with cancel.owned(started, lambda bot: bot.stop(grace=1.0), always=False) as bot:
            _wait_ready(bot, host, timeout)
    return bot


def _wait_ready(bot: RunningBot, host: str, timeout: float) -> None:
    path = bot.commands.health_path
    deadline = time.monotonic() + timeout
    while True:
        code = bot.exited
        if code is not None:
            tail = bot.log_tail()
            last = tail[-1] if tail else "it printed nothing"
            raise StartFailed(
                f"the start command exited with {code} before the bot answered: {bot.commands.start} ({last})",
                hint="run the start command with the service's environment to see why, and fix it",
                log_tail=tail,
            )
        if answers(bot.url + path, timeout=2.0) if path else _port_open(host, bot.port):
            return
        if time.monotonic() > deadline:
            what = f"{path} did not answer" if path else "its port did not accept connections"
            raise StartFailed(
                f"{what} on port {bot.port} within {timeout:.0f} s of: {bot.commands.start}",
                hint="the bot must listen on $PORT (host 0.0.0.0), as Render requires",
                log_tail=bot.log_tail(),
            )
        time.sleep(0.05)


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False
