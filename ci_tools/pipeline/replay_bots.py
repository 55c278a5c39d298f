"""The bots under replay: each commit's own checkout, started as a process of its own.

A bot under replay is code nobody has released yet, running on the runner beside the daily
user's memory. So it gets nothing it does not need: an environment of non-secret variables
(the bot contract's, pointing at a private Redis and a capture server in place of Telegram),
a throwaway token and webhook secret. ``secrets_in_reach`` checks what it could still read —
its own environment and every ancestor's ``/proc/<pid>/environ`` — before any bot starts.
When a bot cannot start, it is named by its exit status and the exception's *type*, with the
message masked (``ValueError: xxxxx xxx …``): a start-up error may quote a stored fact.

Any bot, not only ours: a tree without a uv.lock is built by its own render.yaml build command
(``ci_tools/botrun``), an unchanged bot's calls to api.telegram.org reach the capture server
(botrun's reroute), the bot is ready when its health path answers (the config's; with none, when
its port is open and it has set its webhook), each turn is posted where the bot set its webhook
(any path), and a reply sent after the webhook answered (python-telegram-bot's own queue) is
waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from ci_tools import botrun, redact
from ci_tools.botrun.running import REROUTE, TELEGRAM_VARIABLE, free_port
from ci_tools.botrun.sessions import die_with_parent
from ci_tools.clients.capture import CaptureServer
from ci_tools.clients.health import BotSurface, NotTheContract, Unreachable
from ci_tools.errors import BuildFailed, ConfigError
from ci_tools.pipeline.replay_judge import Answer, Conversation, letters_masked
from ci_tools.repo.bot_detection import module_of
from ci_tools.settings import Environment

Status = Callable[[str], None]
NAME = "Friend"  # the first name every replayed turn carries: the same on every side
# How long a turn waits for a reply the bot sends after its webhook answered (python-telegram-bot's
# own run_webhook queues the update): a turn that gets none costs this much, once.
LATE_REPLY = 5.0
# A Python traceback's last line: ``package.module.SomeError: message`` (or the type alone).
EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Failure|Fault))(?::\s?(.*))?$")


class CannotStart(Exception):
    """A bot under replay did not come up; the message is safe to print (no memory in it)."""

    def __init__(self, message: str, *, exited: bool = False) -> None:
        super().__init__(message)
        self.exited = exited  # it ended by itself (else: it never got healthy in time)


def checkout(commit: str, into: Path) -> Path:
    """The commit's own tree, as Render would build it (``git archive`` of this repository)."""
    target = into / commit[:12]
    target.mkdir()
    archive = subprocess.run(["git", "archive", commit], capture_output=True, check=False)
    if archive.returncode != 0:
        raise ConfigError(
            f"git cannot read commit {commit[:12]} here",
            hint="check out with fetch-depth: 0 so both the live commit and the candidate are present",
        )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def interpreter(tree: Path, environ: Mapping[str, str], on_status: Status, env: Environment | None = None) -> str:
    """The Python that runs the bot of ``tree``, with the dependencies of its own ``uv.lock``.

    When its lock is this checkout's (the environment this command runs in was installed from
    it), that environment serves: ``python -m`` run in the tree imports the tree's own code
    first. Otherwise ``uv sync --locked --no-default-groups`` builds the tree's own, as Render's
    build does. A tree without a uv.lock (``requirements.txt``, Poetry) is built by the build
    command of its own render.yaml service of ``env``, in its ``.venv`` (``botrun.build``).

    With a ``rootDir``, that folder is the tree: its uv.lock, its build, its ``.venv``. A uv.lock
    outside it is not even there on Render (render.com/docs/monorepo-support)."""
    root = tree
    if env is not None and (tree / "render.yaml").is_file():
        root = service_root(tree, _service_of(tree, env))
    here, there = Path("uv.lock"), root / "uv.lock"
    if not there.is_file() and env is not None:
        return _built(tree, environ, on_status, env)
    if not there.is_file() or (here.is_file() and here.read_bytes() == there.read_bytes()):
        return sys.executable
    uv = shutil.which("uv", path=environ.get("PATH"))
    if uv is None:
        raise ConfigError(
            f"{tree.name} has a uv.lock of its own and uv is not on PATH to install it", hint="install uv"
        )
    on_status(f"installing {tree.name}'s own dependencies (its uv.lock differs from this checkout's)")
    built = subprocess.run(
        [uv, "sync", "--locked", "--no-default-groups", "--quiet"],
        cwd=root,
        env={**environ, "UV_PROJECT_ENVIRONMENT": str(root / ".venv")},
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        last = (built.stderr.strip().splitlines() or ["uv sync failed"])[-1]
        raise CannotStart(f"its dependencies do not install from its uv.lock ({redact.redact(last)})")
    return str(root / ".venv" / "bin" / "python")


def _built(tree: Path, environ: Mapping[str, str], on_status: Status, env: Environment) -> str:
    try:
        text = (tree / "render.yaml").read_text(encoding="utf-8")
    except OSError:
        raise CannotStart("it has no render.yaml, so nothing says how it builds") from None
    try:
        commands = botrun.from_blueprint(text, env.render_service)
    except ConfigError:
        try:
            commands = botrun.from_blueprint(text)  # the tree's only web service
        except ConfigError as exc:
            raise CannotStart(f"its render.yaml says no build for {env.render_service} ({exc.message})") from None
    if not commands.build:
        return sys.executable
    on_status(f"building {tree.name} with its own build command ({commands.build})")
    try:
        botrun.build(tree, commands, environ, cache=botrun.default_cache())
    except BuildFailed as exc:
        raise CannotStart(f"its build command failed ({letters_masked(exc.message)[:120]})") from None
    workdir = tree / commands.root if commands.root else tree
    return str(workdir / ".venv" / "bin" / "python")


def own_start(tree: Path, env: Environment) -> tuple[str, Path]:
    """The start command of the commit of ``tree`` and the folder it runs in: its own
    render.yaml's ``startCommand`` (the service of ``env``, else the tree's only web service),
    run in the service's ``rootDir`` as Render runs it (render.com/docs/monorepo-support).

    The live commit and the candidate may start differently (a renamed module); each runs as its
    own tree says, never as the candidate's says (``python -m`` would then find the candidate's
    package installed in this environment and run it as "live")."""
    service = _service_of(tree, env)
    command = str(service.get("startCommand") or "").strip()
    if not command:
        raise CannotStart(f"its render.yaml says no startCommand for {env.render_service}")
    return command, service_root(tree, service)


def _service_of(tree: Path, env: Environment) -> dict[str, Any]:
    """The web service of ``env`` in the tree's own render.yaml, else its only web service ({} if none)."""
    try:
        blueprint = yaml.safe_load((tree / "render.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        raise CannotStart("its render.yaml cannot be read, so nothing says how it starts") from None
    declared = blueprint.get("services") if isinstance(blueprint, dict) else None
    services = (
        [s for s in declared if isinstance(s, dict) and s.get("type") == "web"] if isinstance(declared, list) else []
    )
    named = [s for s in services if s.get("name") == env.render_service]
    if not named and len(services) == 1:
        named = services
    return named[0] if named else {}


def service_root(tree: Path, service: Mapping[str, Any]) -> Path:
    """The folder the service's commands run in: its ``rootDir`` inside ``tree`` (a leading or
    trailing ``/`` and ``./`` read as Render reads them, as botrun does), else ``tree`` itself.
    One that leaves the tree (``..``, a symlink out) or is missing is CannotStart, in one line."""
    value = service.get("rootDir")
    if isinstance(value, (dict, list)):
        raise CannotStart(f"its render.yaml's rootDir is a {type(value).__name__}, not a folder: write it as one path")
    root = str(value or "").strip().strip("/")
    parts = [part for part in root.split("/") if part not in ("", ".")]
    if not parts:
        return tree
    depth, out = 0, False
    for part in parts:  # as botrun's _root: '../tree' is out of the repository, then in again
        depth += -1 if part == ".." else 1
        out = out or depth < 0
    try:
        workdir = (tree / root).resolve()
    except RuntimeError:  # a symlink loop (Python 3.11 and 3.12; later ones leave the path as it is)
        workdir = tree.resolve() / root
    if out or not workdir.is_relative_to(tree.resolve()):  # or a symlink out of it
        raise CannotStart(f"its render.yaml's rootDir {root!r} leaves the repository: set it to a folder inside it")
    if not workdir.is_dir():
        raise CannotStart(
            f"its render.yaml's rootDir {root!r} is not a folder of the commit: set it to one, or leave it out"
        )
    return workdir


def start_argv(python: str, command: str) -> list[str]:
    """How the replay starts a bot: ``python -m <module>`` with the interpreter its build made
    (as before, whatever PATH holds); any other start command (``python ava.py`` from a Procfile,
    ``gunicorn …``) as Render runs it, ``bash -c``, with that interpreter's folder first on PATH."""
    module = module_of(command)
    if module is not None:
        return [python, "-m", module]
    return ["bash", "-c", command]


def why_it_stopped(log: str) -> str:
    """What a bot's log says about its end, without its words: the exception's type, the
    message's shape with every letter and digit masked; else the last line's length alone."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    if not lines:
        return "it printed nothing"
    for line in reversed(lines[-40:]):
        found = EXCEPTION_LINE.match(line)
        if found:
            kind, message = found.group(1), found.group(2)
            return f"{kind}" + (f": {letters_masked(message)[:120]}" if message else "")
    return f"its last line ({len(lines[-1])} chars, not shown: it may quote memory): {letters_masked(lines[-1])[:80]}"


class ReplayBot:
    """One bot process of one commit, on one private copy, talking to one capture server."""

    def __init__(
        self, role: str, commit: str, tree: Path, python: str, environ: Mapping[str, str], start: str, log: Path
    ) -> None:
        self.role, self.commit = role, commit
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log  # in the stage's temporary folder: never printed, only its end's shape
        self._command = start_argv(python, start)
        self._tree = tree
        self._environ = {
            **environ,
            "PORT": str(self.port),
            "RENDER_GIT_COMMIT": commit,
            "RENDER_EXTERNAL_URL": self.url,  # where Render would say it is: its webhook goes there
            # an unchanged bot's calls to api.telegram.org go to the capture server too
            "PYTHONPATH": os.pathsep.join(p for p in (str(REROUTE), environ.get("PYTHONPATH", "")) if p),
            # the build's interpreter first, as Render's .venv is: a start command's `python` is it
            "PATH": os.pathsep.join(p for p in (str(Path(python).parent), environ.get("PATH", os.defpath)) if p),
            TELEGRAM_VARIABLE: environ.get("TELEGRAM_API_URL", ""),
        }
        self.webhook = ""  # where it set its webhook, once ready
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self._command,
                cwd=self._tree,
                env=self._environ,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own session: whatever it starts is stopped with it
                preexec_fn=die_with_parent,  # only prctl(2), before exec: safe with threads
            )

    async def ready(self, surface: BotSurface, timeout: float, capture: CaptureServer, health_path: str) -> None:
        """Up: its health path answers 200 (with none configured: its port is open), and it has
        set its webhook on the capture server, at any path of its own address."""
        deadline = time.monotonic() + timeout
        seen = "no answer"
        while time.monotonic() < deadline:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                raise CannotStart(f"it exited with status {code} at start ({self.end()})", exited=True)
            up = await self._up(surface, health_path)
            if up is True and capture.webhook.startswith(self.url):
                self.webhook = capture.webhook
                return
            seen = up if isinstance(up, str) else "it set no webhook at its own address"
            await asyncio.sleep(0.05)
        raise CannotStart(f"it did not get ready within {timeout:.0f} s ({seen})")

    async def _up(self, surface: BotSurface, health_path: str) -> bool | str:
        if not health_path:
            return await asyncio.to_thread(_port_open, self.port) or "no answer"
        try:
            health = await surface.health(f"{self.url}{health_path}")
        except Unreachable:
            return "no answer"
        except NotTheContract:
            return f"{health_path} does not follow the health contract"
        return True if health.http_status == 200 else f"{health_path} answered {health.http_status}"

    def end(self) -> str:
        return why_it_stopped(self.log.read_text(errors="replace")) if self.log.exists() else "it printed nothing"

    def stop(self) -> None:
        stop_all([self])


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _sessions_members(sessions: set[int], proc: Path = Path("/proc")) -> list[int]:
    """Every process in one of ``sessions`` (a bot's children and theirs, reparented or not)."""
    found = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in sessions:  # after state, ppid, pgrp: the session id
            found.append(int(stat.parent.name))
    return found


def stop_all(bots: list[ReplayBot], grace: float = 2.0) -> None:
    """SIGTERM to every bot's session at once, one shared ``grace``, then SIGKILL to what is left:
    a cancel must be over before the runner's SIGKILL (7.5 s after its SIGINT), and a process a
    bot started must not outlive the stage to meet the steps after it."""
    processes = [bot.process for bot in bots if bot.process is not None]
    for bot in bots:
        bot.process = None
    sessions = {process.pid for process in processes}
    for sid in sessions:
        with contextlib.suppress(OSError):
            os.killpg(sid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for pid in _sessions_members(sessions):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


def bot_environ(
    child: Mapping[str, str], env: Environment, redis_url: str, capture_url: str, token: str, secret: str
) -> dict[str, str]:
    """What the bot reads (docs/ADOPTING.md, "use it with your own bot"), nothing of this process's secrets."""
    return {
        **child,
        "ENV": env.name,
        "KEY_PREFIX": env.key_prefix_variable,
        "REDIS_URL": redis_url,
        "TELEGRAM_BOT_TOKEN": token,
        "TELEGRAM_WEBHOOK_SECRET": secret,
        "TELEGRAM_API_URL": capture_url,
        "HOST": "127.0.0.1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def update(update_id: int, user_id: int, text: str) -> dict[str, Any]:
    """The Update Telegram would deliver for ``text`` from ``user_id`` in their private chat."""
    message: dict[str, Any] = {
        "message_id": update_id,
        "from": {"id": user_id, "is_bot": False, "first_name": NAME},
        "chat": {"id": user_id, "type": "private", "first_name": NAME},
        "date": int(time.time()),
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"update_id": update_id, "message": message}


class Replayer:
    """Sends the turns as each user through one bot and keeps what it answered."""

    def __init__(self, surface: BotSurface, headers: dict[str, str], turns: tuple[str, ...]) -> None:
        self.surface, self.headers, self.turns = surface, headers, turns
        self._ids = iter(range(900_000_000, 2_000_000_000))

    async def run(self, bot: ReplayBot, capture: CaptureServer, users: list[int]) -> Conversation:
        found: Conversation = {}
        for user in users:
            capture.take(user)
            for index, text in enumerate(self.turns):
                try:
                    status: int | None = await self.surface.post(
                        bot.webhook, update(next(self._ids), user, text), self.headers
                    )
                except Unreachable:
                    status = None
                if status is not None and 200 <= status < 300:
                    await _late_reply(capture, user)
                found[user, index] = Answer(status, tuple(capture.take(user)))
        return found


async def _late_reply(capture: CaptureServer, user: int) -> None:
    """A reply the bot sends after its webhook answered (an update it queued), up to LATE_REPLY."""
    deadline = time.monotonic() + LATE_REPLY
    while not capture.replied(user) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


# -- what a bot could read ----------------------------------------------------------------------
# The names whose values give power over an environment (redact's list, GitHub's tokens), bare
# or as a person's local <ENV>_<NAME>: none may be readable to code under replay.
POWER = (*redact.SECRET_ENV_VARS, "GITHUB_TOKEN", "GH_TOKEN", "ACTIONS_RUNTIME_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")


def _ancestors(pid: int, proc: Path) -> Iterator[int]:
    """``pid`` and each parent up to (not including) PID 1, read from ``/proc/<pid>/stat``."""
    seen: set[int] = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        yield pid
        try:
            stat = (proc / str(pid) / "stat").read_text()
        except OSError:
            return
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state: the parent's pid


def powerful(name: str) -> bool:
    return any(name == power or name.endswith(f"_{power}") for power in POWER)


def secrets_in_reach(pid: int, proc: Path = Path("/proc")) -> list[str]:
    """Where a process started by ``pid`` could read a secret: ``NAME in pid N (command)`` each.

    ``/proc/<pid>/environ`` is the environment a process was *started* with, readable by any
    process of the same user: a secret a step passed to ``ci-tools`` stays there whatever the
    process later changes in its own mapping. Values are never read into the answer, only names."""
    found: list[str] = []
    for ancestor in _ancestors(pid, proc):
        try:
            raw = (proc / str(ancestor) / "environ").read_bytes()
            command = (proc / str(ancestor) / "comm").read_text().strip()
        except OSError:
            continue  # not ours to read: nor is it the bot's
        for entry in raw.split(b"\0"):
            name, _, value = entry.partition(b"=")
            text = name.decode(errors="replace")
            if value and powerful(text):
                found.append(f"{text} in pid {ancestor} ({command})")
    return found
