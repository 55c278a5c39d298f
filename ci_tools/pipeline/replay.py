"""Before a production release: does the new release still know the daily user?

The probe talks as the reserved probe user, whose memory is empty: it answers "does the bot
work", not "does it still know me". This stage replays each protected user's conversation
(``[tool.ci_tools.replay] turns``) on private copies of their memory — the snapshot the release
just took, loaded into Redis servers of the runner's own — with the live commit and with the
candidate, each started from its own checkout by its own startCommand and talking to a
capture server instead of Telegram. What is compared with what is ``replay_judge``'s docstring.

Two halves, so the bots never run where a secret can be read:

- ``prepare`` (holds ``MEMORY_SNAPSHOT_KEY`` and Render's key): resolves the live commit,
  decrypts the snapshot and writes a replay folder (the request and the memory in the clear,
  mode 0600) — and fails when the gate would check nothing: no protected user, no snapshot, a
  key that does not decrypt it.
- ``run_prepared`` (holds no secret, and checks that no ancestor's environment does): loads the
  memory into one private Redis per run lane, removes the file, starts the bots, judges.

``replay`` does both in one process, for a person's laptop and the tests. The copies, the
checkouts, the capture servers and the bots are gone when the stage ends — failure, Ctrl-C and
SIGTERM included (``__main__`` turns SIGTERM into an interrupt; each child also dies with us).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_tools import cancel, redact
from ci_tools.checklist import Item
from ci_tools.clients.capture import CaptureServer
from ci_tools.clients.health import BotSurface
from ci_tools.clients.telegram import webhook_secret_for
from ci_tools.context import Context
from ci_tools.errors import ConfigError, FatalError, InputError, VerificationError
from ci_tools.memory import throwaway
from ci_tools.memory.files import RecordFile, RecordWriter
from ci_tools.memory.keys import KeySpace
from ci_tools.memory.records import Record
from ci_tools.memory.restore_points import find_snapshot
from ci_tools.pipeline.replay_bots import (
    CannotStart,
    ReplayBot,
    Replayer,
    bot_environ,
    checkout,
    interpreter,
    own_start,
    secrets_in_reach,
    stop_all,
)
from ci_tools.pipeline.replay_judge import (
    ROLLBACK_UNSAFE,
    Conversation,
    KeyState,
    Outcome,
    Runs,
    compare_memory,
    judge,
)
from ci_tools.settings import Environment

Status = Callable[[str], None]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
REQUEST_FILE, MEMORY_FILE = "replay.json", "memory.jsonl"
FORMAT = "ci-tools-replay"

__all__ = ["ROLLBACK_UNSAFE", "Outcome", "Prepared", "ReplayRequest", "prepare", "replay", "run_prepared"]


@dataclass(frozen=True)
class ReplayRequest:
    env: Environment
    snapshot: Path
    candidate: str
    live: str | None  # None: the first release, the candidate runs alone
    users: tuple[int, ...]


@dataclass(frozen=True)
class Prepared:
    """What ``run_prepared`` needs: the request as resolved, and which users have memory."""

    folder: Path
    env: str
    candidate: str
    live: str | None
    users: tuple[int, ...]  # protected users with memory in the snapshot: these are replayed
    absent: tuple[int, ...] = ()  # protected users without any: nothing of theirs to lose
    off: str | None = None  # the replay is turned off in config: why, for the run to say

    def items(self) -> list[Item]:
        return [
            Item(
                f"user {user}",
                True,
                "has no memory in the snapshot, so nothing of theirs was replayed",
                "check protected_users: a user who never wrote to this environment has nothing to lose",
                warning=True,
            )
            for user in self.absent
        ]


# -- prepare: the half that holds the secrets ------------------------------------------------------


def prepare(ctx: Context, request: ReplayRequest, out: Path) -> Prepared:
    """Decrypt the snapshot into ``out`` for a run that holds no secret; fail if it would check nothing."""
    config = ctx.config
    if not config.replay.turns:
        raise ConfigError(
            f"{config.path.name}: [tool.ci_tools.replay] turns is empty, so there is nothing to replay",
            hint='list what the daily user says, e.g. turns = ["/start", "/recall"], or set enabled = false',
        )
    if not request.users:
        raise ConfigError(
            f"{config.path.name}: [tool.ci_tools.memory_backup] protected_users is empty, so the replay "
            "would check nothing",
            hint="add the daily user's Telegram id, or set [tool.ci_tools.replay] enabled = false "
            "(every release then says it went out unreplayed)",
        )
    try:
        snapshot = find_snapshot(request.snapshot)
    except InputError as exc:
        raise VerificationError(
            f"no snapshot to replay on ({exc.message}), so the replay would check nothing",
            hint="take the snapshot first (production.yml does), or dispatch production with skip_replay",
        ) from None
    fernet = ctx.snapshot_fernet()
    owners = [(user, _space(request.env, user).ownership) for user in request.users]
    present: set[int] = set()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(
            f"{out} is not an empty folder", hint="prepare into a folder of its own, e.g. $RUNNER_TEMP/replay"
        )
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    memory = out / MEMORY_FILE
    with RecordWriter(memory, {"kind": "replay"}, None) as writer:
        for record in RecordFile(snapshot, fernet).records():  # a key that cannot decrypt it: exit 3
            if record.exists:
                writer.write(record)
                present.update(user for user, owns in owners if owns.fullmatch(record.key))
    prepared = Prepared(
        out,
        request.env.name,
        request.candidate,
        request.live,
        tuple(u for u in request.users if u in present),
        tuple(u for u in request.users if u not in present),
    )
    _write_request(prepared)
    return prepared


def _space(env: Environment, user: int) -> KeySpace:
    """The user's keys as the memory tools find them (exact keys and glob patterns alike)."""
    return KeySpace(env.key_prefix.encode(), env.memory_patterns, user)


def prepare_off(out: Path, env: Environment, why: str) -> Prepared:
    """A replay folder that says the replay is off (config): the run step says so and passes."""
    out.mkdir(parents=True, exist_ok=True)
    prepared = Prepared(out, env.name, "", None, (), (), off=why)
    _write_request(prepared)
    return prepared


def _write_request(prepared: Prepared) -> None:
    document = {
        "format": FORMAT,
        "env": prepared.env,
        "candidate": prepared.candidate,
        "live": prepared.live,
        "users": list(prepared.users),
        "absent": list(prepared.absent),
        "off": prepared.off,
    }
    (prepared.folder / REQUEST_FILE).write_text(json.dumps(document))


def load_prepared(folder: Path) -> Prepared:
    """The request ``prepare`` wrote into ``folder`` (exit 2 for a folder it did not write)."""
    try:
        document = json.loads((folder / REQUEST_FILE).read_text())
        if document.get("format") != FORMAT:
            raise ValueError
        return Prepared(
            folder,
            str(document["env"]),
            str(document["candidate"]),
            document["live"],
            tuple(int(u) for u in document["users"]),
            tuple(int(u) for u in document["absent"]),
            document.get("off"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(
            f"{folder} holds no prepared replay",
            hint="run `ci-tools replay ENV --snapshot … --candidate … --out DIR` first, in the step that holds the key",
        ) from None


# -- run: the half that holds no secret -------------------------------------------------------------


def guard_secrets(ctx: Context, on_status: Status) -> Item | None:
    """Before any bot starts: no secret readable in this process's or an ancestor's environment.

    In GitHub Actions that is a stop (the workflow passes the secrets to the preparing step
    only); on a person's machine, whose shell may well export them, a warning."""
    if not Path("/proc/self/environ").exists():
        return Item("secrets out of reach", True, "not checked: this system has no /proc", warning=True)
    found = secrets_in_reach(os.getpid())
    if not found:
        on_status("no secret is readable from the bots' ancestry (their environment nor /proc/*/environ)")
        return None
    where = "; ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
    if ctx.runner.active:
        raise ConfigError(
            f"the bots under replay could read secrets from their ancestors' environment: {where}",
            hint="prepare in one step (ci-tools replay … --out DIR, with the secrets), "
            "then run `ci-tools replay --from DIR` in a step with no secret in its env:",
        )
    return Item(
        "secrets out of reach",
        True,
        f"the bots could read: {where}",
        "run `ci-tools replay --from DIR` from a shell that does not export them",
        warning=True,
    )


def _read_memory(prepared: Prepared) -> list[Record]:
    """The memory ``prepare`` wrote, read once and then removed: the bots see only their Redis."""
    memory = prepared.folder / MEMORY_FILE
    try:
        return list(RecordFile(memory, None).records())
    finally:
        memory.unlink(missing_ok=True)


def run_prepared(ctx: Context, prepared: Prepared, on_status: Status = lambda line: None) -> Outcome:
    """Replay what ``prepare`` left in its folder; the items to report and why it stops (none: pass)."""
    outcome = Outcome(items=prepared.items())
    guarded = guard_secrets(ctx, on_status)
    if guarded is not None:
        outcome.items.append(guarded)
    records = _read_memory(prepared)
    if not prepared.users:
        return outcome
    env = ctx.config.env(prepared.env)
    judged = _Stage(ctx, env, prepared, on_status).run(records)
    outcome.items.extend(judged.items)
    outcome.stops.extend(judged.stops)
    return outcome


def replay(ctx: Context, request: ReplayRequest, on_status: Status = lambda line: None) -> Outcome:
    """Both halves in one process (a person's run, the tests): prepare into a folder, then run."""
    with tempfile.TemporaryDirectory(prefix="ci-tools-replay-") as folder:
        prepared = prepare(ctx, request, Path(folder) / "prepared")
        return run_prepared(ctx, prepared, on_status)


# -- the lanes -----------------------------------------------------------------------------------


@dataclass
class _Lane:
    """One fresh copy of the snapshot and the bots that run on it, one after another."""

    name: str
    runs: tuple[tuple[str, str], ...]  # (role, commit), in order
    results: list[Conversation] = field(default_factory=list)
    cannot_start: str | None = None  # the live commit, restarted on what the candidate left
    keys: KeyState = field(default_factory=dict)  # what the copy holds after the first run


class _Stage:
    """The private copies, the capture servers and the bots; all gone when ``run`` returns."""

    def __init__(self, ctx: Context, env: Environment, prepared: Prepared, on_status: Status) -> None:
        self.ctx, self.env, self.prepared, self.on_status = ctx, env, prepared, on_status
        self.config = ctx.config.replay
        self.token = f"7000000001:replay{secrets.token_hex(16)}"
        self.secret = secrets.token_urlsafe(24)
        redact.add_secret(self.token)
        redact.add_secret(self.secret)
        self.started: list[ReplayBot] = []

    def lanes(self) -> list[_Lane]:
        live, candidate = self.prepared.live, self.prepared.candidate
        if live is None:
            return [_Lane("candidate", (("candidate", candidate),))]
        return [
            _Lane("primary", (("live", live), ("live", live), ("live", live))),
            _Lane("secondary", (("live", live), ("live", live), ("live", live))),
            _Lane("candidate", (("candidate", candidate), ("candidate", candidate), ("live", live))),
        ]

    def run(self, records: list[Record]) -> Outcome:
        lanes = self.lanes()
        with tempfile.TemporaryDirectory(prefix="ci-tools-replay-") as folder, contextlib.ExitStack() as stack:
            trees = self._trees(Path(folder))
            copies = {}
            for lane in lanes:
                url = stack.enter_context(throwaway.private_redis(self.ctx.child))
                copies[lane.name] = (url, stack.enter_context(CaptureServer(self.env.bot_username)))
                keys = throwaway.load_records(url, records)
            self.on_status(
                f"the snapshot ({keys} keys) is loaded into {len(lanes)} private Redis copies on this runner"
            )
            try:
                asyncio.run(self._cancellable(self._all(lanes, copies, trees, Path(folder))))
            except ExceptionGroup as group:  # a lane's failure, as the TaskGroup wraps it
                raise _first_fatal(group) from None
            except asyncio.CancelledError:  # SIGINT or SIGTERM while the bots ran
                raise KeyboardInterrupt from None
            finally:
                stop_all(self.started)  # at once: a cancel must be over in seconds
        shape = (
            "live ×2 and candidate, each twice, then live on each copy"
            if self.prepared.live
            else "candidate alone (first release)"
        )
        self.on_status(f"replayed {len(self.config.turns)} turn(s) for {len(self.prepared.users)} user(s): {shape}")
        return self._judge(lanes)

    def _trees(self, folder: Path) -> dict[str, tuple[Path, str, str]]:
        trees = {}
        for role, commit in (("candidate", self.prepared.candidate), ("live", self.prepared.live)):
            if commit is None or commit in trees:
                continue
            tree = checkout(commit, folder)
            try:
                python = interpreter(tree, self.ctx.child, self.on_status, self.env)
                start, workdir = own_start(tree, self.env)
                trees[commit] = (workdir, python, start)  # the bot runs in its service's rootDir
            except CannotStart as exc:
                raise _cannot_start(role, commit, str(exc)) from None
        return trees

    async def _cancellable(self, work: Coroutine[Any, Any, None]) -> None:
        """``work``, cancelled by SIGINT or SIGTERM through the loop (a Python-level handler's
        KeyboardInterrupt can land in a ``__del__`` and be swallowed; a cancel cannot). After the
        first, both are ignored while the lanes stop their bots and the copies are removed. One
        swallowed before (while the trees were built: the signals ignored since, so GitHub's next
        one is lost) was recorded, and cancels before any bot starts."""
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        if task is None or threading.current_thread() is not threading.main_thread():
            await work  # signals reach the main thread only
            return
        cancelled: list[int] = []

        def on_signal(signum: int) -> None:
            if not cancelled:
                cancelled.append(signum)
                task.cancel()

        before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in before:
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            if cancel.requested():  # a cancel a __del__ swallowed before this (ci_tools/cancel.py)
                work.close()
                cancelled.append(signal.SIGINT)
                raise asyncio.CancelledError
            await work
        finally:
            for sig, handler in before.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_IGN if cancelled else handler)

    async def _all(
        self,
        lanes: list[_Lane],
        copies: dict[str, tuple[str, CaptureServer]],
        trees: dict[str, tuple[Path, str, str]],
        folder: Path,
    ) -> None:
        headers = {SECRET_HEADER: webhook_secret_for(self.secret, self.token)}
        async with BotSurface(timeout=30) as surface, asyncio.TaskGroup() as group:
            replayer = Replayer(surface, headers, self.config.turns)
            for lane in lanes:
                group.create_task(self._lane(lane, copies[lane.name], trees, folder, surface, replayer))

    async def _lane(
        self,
        lane: _Lane,
        copy: tuple[str, CaptureServer],
        trees: dict[str, tuple[Path, str, str]],
        folder: Path,
        surface: BotSurface,
        replayer: Replayer,
    ) -> None:
        redis_url, capture = copy
        environ = bot_environ(self.ctx.child, self.env, redis_url, capture.url, self.token, self.secret)
        for step, (role, commit) in enumerate(lane.runs):
            tree, python, start = trees[commit]
            log = folder / f"{lane.name}-{step}-{role}.log"
            try:
                bot = await self._started(role, commit, (tree, python, start), environ, log, surface, capture)
            except CannotStart as exc:
                if lane.name == "candidate" and role == "live":  # on what the candidate left
                    lane.cannot_start = str(exc)
                    return
                raise _cannot_start(role, commit, str(exc)) from None
            lane.results.append(await replayer.run(bot, capture, list(self.prepared.users)))
            bot.stop()  # on a failure or a cancel, run() stops every bot at once
            if step == 0:
                lane.keys = await asyncio.to_thread(throwaway.key_state, redis_url)

    async def _started(
        self,
        role: str,
        commit: str,
        built: tuple[Path, str, str],
        environ: dict[str, str],
        log: Path,
        surface: BotSurface,
        capture: CaptureServer,
    ) -> ReplayBot:
        """A bot of ``commit`` answering /healthz. One that exits at start is started once more on
        another port: the free port it was given can be taken before it binds (a busy runner);
        a real crash crashes twice."""
        for attempt in (1, 2):
            tree, python, start = built
            bot = ReplayBot(role, commit, tree, python, environ, start, log)
            self.started.append(bot)
            capture.forget_webhook()
            bot.start()
            try:
                await bot.ready(surface, self.config.start_timeout, capture, self.env.health_path)
                return bot
            except CannotStart as exc:
                bot.stop()
                if attempt == 2 or not exc.exited:
                    raise
        raise AssertionError("unreachable")

    def _judge(self, lanes: list[_Lane]) -> Outcome:
        by_name = {lane.name: lane for lane in lanes}
        candidate = by_name["candidate"]
        users = list(self.prepared.users)
        if self.prepared.live is None:
            return judge(self.config, users, Runs(candidate=candidate.results[0]))
        primary, secondary = by_name["primary"].results, by_name["secondary"].results
        ran = candidate.results

        def visit(results: list[Conversation], index: int) -> Conversation | None:
            return results[index] if len(results) > index else None

        runs = Runs(
            candidate=ran[0],
            primary=primary[0],
            secondary=secondary[0],
            after_candidate=visit(ran, 2),
            after_primary=visit(primary, 2),
            after_secondary=visit(secondary, 2),
            candidate_again=visit(ran, 1),
            primary_again=visit(primary, 1),
            secondary_again=visit(secondary, 1),
        )
        outcome = judge(self.config, users, runs)
        lost = compare_memory(
            by_name["primary"].keys, by_name["secondary"].keys, candidate.keys, self.env.memory_patterns
        )
        if lost is not None:
            outcome.items.append(Item("memory", False, lost, "fix forward on develop; nothing was deployed"))
            outcome.stops.append(lost)
        if candidate.cannot_start is not None:
            line = f"{ROLLBACK_UNSAFE} (the live commit cannot start on what it left: {candidate.cannot_start})"
            outcome.items.append(Item("rollback", False, line, "fix forward on develop; nothing was deployed"))
            outcome.stops.append(line)
        return outcome


def _first_fatal(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first of a TaskGroup's errors that is ours to report; else the group, as it came."""
    for error in group.exceptions:
        if isinstance(error, FatalError):
            return error
        if isinstance(error, BaseExceptionGroup):
            return _first_fatal(error)
    return group


def _cannot_start(role: str, commit: str, why: str) -> FatalError:
    if role == "candidate":
        return VerificationError(
            f"the candidate {commit[:12]} cannot start: {why}; nothing was deployed",
            hint="start it locally with the bot's start command, or look at its last commit; fix forward on develop",
        )
    return VerificationError(
        f"the live commit {commit[:12]} cannot start on this runner, so the replay cannot compare: {why}",
        hint="dispatch production with skip_replay to release without the replay (the run says so)",
    )


# -- resolving what to replay ----------------------------------------------------------------------


def resolve(ref: str, flag: str) -> str:
    """A commit SHA or ref, as the full SHA this checkout knows (exit 2 if it knows none)."""
    found = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        raise InputError(f"{flag} {ref!r} is no commit this checkout knows", hint="fetch it, or pass a full SHA")
    return found.stdout.strip()


def live_commit(ctx: Context) -> str | None:
    """What Render has live (None before the first release, or without the API to ask)."""
    api_key, service_id = ctx.optional("RENDER_API_KEY"), ctx.optional("RENDER_SERVICE_ID")
    if not api_key or not service_id:
        raise ConfigError(
            "the replay needs the live commit: RENDER_API_KEY and RENDER_SERVICE_ID are not set",
            hint="set both (production's), or pass --live <sha>",
        )
    with ctx.render(api_key, service_id, deadline=time.monotonic() + 60) as api:
        live = api.live()
    return live.commit if live else None


def remove(folder: Path) -> None:
    """What ``prepare`` wrote, gone (the run's cleanup; the memory file is gone already), and the
    folder if nothing else is in it: never anything else a person kept beside it."""
    for name in (REQUEST_FILE, MEMORY_FILE):
        (folder / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()
