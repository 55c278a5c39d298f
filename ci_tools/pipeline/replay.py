"""Before a production release: does the new release still know the daily user?

The probe talks as the reserved probe user, whose memory is empty: it answers "does the bot
work", not "does it still know me". This stage replays each protected user's conversation
(``[tool.ci_tools.replay] turns``) on a private copy of their memory — the snapshot the release
just took, loaded into a Redis of the runner's own — with the live commit and with the
candidate, each started from its own checkout as ``python -m <module>`` and talking to a
capture server instead of Telegram. Diffy's rule sorts signal from noise: the live commit runs
twice on two fresh copies, and the candidate is compared only where those two agreed.

The release stops when the candidate cannot start, fails a turn, answers nothing where the
live commit answered, or answers differently where the live commit is consistent; and when the
live commit, run again on the memory the candidate left, fails or answers differently from its
own first run: then a rollback would land on memory the previous release cannot read.

Nothing of the user's memory or of the replies is printed: a finding names the user's id, the
turn, and the answers' shape (counts, which lines changed, a diff with every letter masked).
The copy, the checkouts and the capture server are gone when the stage ends, failure included.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_tools import redact
from ci_tools.checklist import Item
from ci_tools.clients.capture import CaptureServer
from ci_tools.clients.health import BotSurface, NotTheContract, Unreachable
from ci_tools.clients.telegram import webhook_secret_for
from ci_tools.context import Context
from ci_tools.errors import ConfigError, InputError, VerificationError
from ci_tools.memory import throwaway
from ci_tools.memory.files import RecordFile
from ci_tools.memory.points import find_snapshot
from ci_tools.settings import Environment, Replay

Status = Callable[[str], None]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
ROLLBACK_UNSAFE = "this release writes memory the previous one cannot read — a rollback would not be safe"
NAME = "Friend"  # the first name every replayed turn carries: the same on every side


@dataclass(frozen=True)
class ReplayRequest:
    env: Environment
    snapshot: Path
    candidate: str
    live: str | None  # None: the first release, the candidate runs alone
    users: tuple[int, ...]


@dataclass(frozen=True)
class Answer:
    """One turn as one bot answered it: the webhook's status (None: no answer) and the replies."""

    status: int | None
    replies: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


Conversation = dict[tuple[int, int], Answer]  # (user, turn index) → answer


@dataclass
class Outcome:
    items: list[Item] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)  # why the release stops, one line each (no memory)


class CannotStart(Exception):
    """A bot under replay did not come up; the message is safe to print (no memory in it)."""


# -- the bots ------------------------------------------------------------------------------


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


def interpreter(tree: Path, environ: Mapping[str, str], on_status: Status) -> str:
    """The Python that runs the bot of ``tree``, with the dependencies of its own ``uv.lock``.

    When its lock is this checkout's (the environment this command runs in was installed from
    it), that environment serves: ``python -m`` run in the tree imports the tree's own code
    first. Otherwise ``uv sync --locked --no-default-groups`` builds the tree's own, as Render's
    build does."""
    here, there = Path("uv.lock"), tree / "uv.lock"
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
        cwd=tree,
        env={**environ, "UV_PROJECT_ENVIRONMENT": str(tree / ".venv")},
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        last = (built.stderr.strip().splitlines() or ["uv sync failed"])[-1]
        raise CannotStart(f"its dependencies do not install from its uv.lock ({redact.redact(last)})")
    return str(tree / ".venv" / "bin" / "python")


class ReplayBot:
    """One bot under replay: a process of its own commit, on the private copy, talking to the capture."""

    def __init__(self, role: str, commit: str, tree: Path, python: str, environ: dict[str, str], module: str) -> None:
        self.role, self.commit = role, commit
        self.port = throwaway.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tree.parent / f"{role}.log"  # in the stage's temporary folder: never printed whole
        self._command = [python, "-m", module]
        self._tree = tree
        self._environ = {**environ, "PORT": str(self.port), "RENDER_GIT_COMMIT": commit}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self._command, cwd=self._tree, env=self._environ, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    async def ready(self, surface: BotSurface, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen = "no answer"
        while time.monotonic() < deadline:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                raise CannotStart(f"it exited with status {code} at start: {self.last_line()}")
            try:
                health = await surface.health(f"{self.url}/healthz")
                if health.http_status == 200:
                    return
                seen = f"/healthz answered {health.http_status}"
            except Unreachable:
                pass
            except NotTheContract as exc:
                seen = f"/healthz does not follow the health contract ({exc})"
            await asyncio.sleep(0.05)
        raise CannotStart(f"it did not get healthy within {timeout:.0f} s ({seen})")

    def last_line(self) -> str:
        """The last line it logged (an exception's, at a failed start): redacted, never memory."""
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        return redact.redact(lines[-1].strip())[:200] if lines else "it printed nothing"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            throwaway.terminate(process, grace=10)


def bot_environ(
    child: Mapping[str, str], env: Environment, redis_url: str, capture_url: str, token: str, secret: str
) -> dict[str, str]:
    """What the bot reads (README, "use it with your own bot"), nothing of this process's secrets."""
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


# -- the conversation ------------------------------------------------------------------------


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
    """Sends the turns as each user, through one bot at a time, and keeps what it answered."""

    def __init__(
        self, surface: BotSurface, capture: CaptureServer, headers: dict[str, str], turns: tuple[str, ...]
    ) -> None:
        self.surface, self.capture, self.headers, self.turns = surface, capture, headers, turns
        self._ids = iter(range(900_000_000, 2_000_000_000))

    async def run(self, bot: ReplayBot, users: list[int]) -> Conversation:
        found: Conversation = {}
        for user in users:
            self.capture.take(user)
            for index, text in enumerate(self.turns):
                try:
                    status: int | None = await self.surface.post(
                        f"{bot.url}/telegram", update(next(self._ids), user, text), self.headers
                    )
                except Unreachable:
                    status = None
                found[user, index] = Answer(status, tuple(self.capture.take(user)))
        return found


# -- judging ----------------------------------------------------------------------------------


def masked(replies: tuple[str, ...], ignore: tuple[re.Pattern[str], ...]) -> tuple[str, ...]:
    """The replies with every configured noise pattern (timestamps, ids) replaced alike."""
    out = []
    for reply in replies:
        for pattern in ignore:
            reply = pattern.sub("…", reply)
        out.append(reply)
    return tuple(out)


def _letters_masked(line: str) -> str:
    return re.sub(r"[^\W_]", "x", line)


def shape(expected: tuple[str, ...], got: tuple[str, ...]) -> str:
    """How two answers differ, without their words: counts, the lines that changed, a masked diff."""
    before, after = "\n".join(expected).splitlines(), "\n".join(got).splitlines()
    counts = (
        f"live {len(expected)} message(s), {len(before)} line(s), {sum(map(len, expected))} chars; "
        f"candidate {len(got)} message(s), {len(after)} line(s), {sum(map(len, got))} chars"
    )
    diff = [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if not line.startswith(("---", "+++", "@@"))
    ]
    changed = sorted({i + 1 for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b})
    changed_text = ", ".join(map(str, changed[:8])) or "none of the common ones"
    masked_diff = " | ".join(_letters_masked(line)[:60] for line in diff[:4])
    return f"{counts}; lines changed: {changed_text}; masked diff: {masked_diff}"


def judge(
    replay: Replay,
    users: list[int],
    first: Conversation | None,
    second: Conversation | None,
    candidate: Conversation,
    after: Conversation | None,
) -> Outcome:
    """The verdict per user and turn (see the module's docstring for the rules)."""
    ignore = tuple(re.compile(p) for p in replay.ignore)
    outcome = Outcome()
    for user in users:
        problems: list[str] = []
        noisy: list[int] = []
        for index, text in enumerate(replay.turns):
            turn = f"turn {index + 1} ({text.split()[0]})"
            c = candidate[user, index]
            if not c.ok:
                problems.append(f"{turn}: the candidate failed it ({_status(c)})")
                continue
            if first is None or second is None:  # the first release: it must answer every turn
                if not c.replies:
                    problems.append(f"{turn}: the candidate answered nothing")
                continue
            a, b = first[user, index], second[user, index]
            if not (a.ok and b.ok and masked(a.replies, ignore) == masked(b.replies, ignore)):
                noisy.append(index + 1)
                continue
            if a.replies and not c.replies:
                problems.append(f"{turn}: the candidate answered nothing where the live commit answered")
            elif masked(c.replies, ignore) != masked(a.replies, ignore):
                problems.append(f"{turn}: the candidate answers differently ({shape(a.replies, c.replies)})")
            if after is not None:
                d = after[user, index]
                if not d.ok:
                    problems.append(f"{turn}: {ROLLBACK_UNSAFE} (the live commit failed it: {_status(d)})")
                elif masked(d.replies, ignore) != masked(a.replies, ignore):
                    problems.append(f"{turn}: {ROLLBACK_UNSAFE} ({shape(a.replies, d.replies)})")
        name = f"user {user}"
        if problems:
            outcome.items.append(Item(name, False, "; ".join(problems), "fix forward on develop; nothing was deployed"))
            outcome.stops.extend(f"{name}, {p}" for p in problems)
        elif noisy:
            turns = ", ".join(map(str, noisy))
            outcome.items.append(
                Item(
                    name,
                    True,
                    f"turn(s) {turns}: the live commit answers differently each time, so they were not compared",
                    "add a pattern to [tool.ci_tools.replay] ignore for what changes between runs",
                    warning=True,
                )
            )
        else:
            what = "as the live commit does" if first is not None else "every one (no live release to compare with)"
            outcome.items.append(Item(name, True, f"{len(replay.turns)} turn(s) answered {what}"))
    return outcome


def _status(answer: Answer) -> str:
    return "no answer" if answer.status is None else f"HTTP {answer.status}"


# -- the stage --------------------------------------------------------------------------------


def users_in(snapshot: Path, env: Environment, users: tuple[int, ...], fernet: Any) -> set[int]:
    """Which of ``users`` have any key in the snapshot (by the environment's memory patterns)."""
    wanted = {key.encode(): user for user in users for key in env.memory_keys(user)}
    return {wanted[r.key] for r in RecordFile(snapshot, fernet).records() if r.key in wanted and r.exists}


def replay(ctx: Context, request: ReplayRequest, on_status: Status = lambda line: None) -> Outcome:
    """Run the stage; the items to report and the reasons it stops the release (none: it passes)."""
    config = ctx.config.replay
    if not config.turns:
        raise ConfigError(
            f"{ctx.config.path.name}: [tool.ci_tools.replay] turns is empty, so there is nothing to replay",
            hint='list what the daily user says, e.g. turns = ["/start", "/recall"], or set enabled = false',
        )
    fernet = ctx.snapshot_fernet()
    snapshot = find_snapshot(request.snapshot)
    present = users_in(snapshot, request.env, request.users, fernet)
    outcome = Outcome()
    for user in request.users:
        if user not in present:
            outcome.items.append(
                Item(
                    f"user {user}",
                    True,
                    "has no memory in the snapshot, so nothing of theirs was replayed",
                    "check protected_users: a user who never wrote to this environment has nothing to lose",
                    warning=True,
                )
            )
    users = [u for u in request.users if u in present]
    if not users:
        return outcome
    with _stage(ctx, request, snapshot, fernet, on_status) as run:
        judged = asyncio.run(run(users))
    outcome.items.extend(judged.items)
    outcome.stops.extend(judged.stops)
    return outcome


@contextlib.contextmanager
def _stage(
    ctx: Context, request: ReplayRequest, snapshot: Path, fernet: Any, on_status: Status
) -> Iterator[Callable[[list[int]], Any]]:
    """The private copy, the capture server and the bots; all gone when the block ends."""
    config = ctx.config.replay
    token = f"7000000001:replay{secrets.token_hex(16)}"
    secret = secrets.token_urlsafe(24)
    redact.add_secret(token)
    redact.add_secret(secret)
    with (
        tempfile.TemporaryDirectory(prefix="ci-tools-replay-") as folder,
        throwaway.private_redis(ctx.child) as redis_url,
        CaptureServer(request.env.bot_username) as capture,
    ):
        keys = throwaway.load(redis_url, snapshot, fernet)
        on_status(f"the snapshot ({keys} keys) is loaded into a private Redis on this runner")
        environ = bot_environ(ctx.child, request.env, redis_url, capture.url, token, secret)
        bots: dict[str, ReplayBot] = {}
        try:
            for role, commit in (("candidate", request.candidate), ("live", request.live)):
                if commit is None:
                    continue
                tree = checkout(commit, Path(folder))
                try:
                    python = interpreter(tree, ctx.child, on_status)
                except CannotStart as exc:
                    raise _cannot_start(role, commit, str(exc)) from None
                bots[role] = ReplayBot(role, commit, tree, python, environ, config.module)
            for bot in bots.values():
                bot.start()

            async def run(users: list[int]) -> Outcome:
                headers = {SECRET_HEADER: webhook_secret_for(secret, token)}
                async with BotSurface(timeout=30) as surface:
                    for bot in bots.values():
                        try:
                            await bot.ready(surface, config.start_timeout)
                        except CannotStart as exc:
                            raise _cannot_start(bot.role, bot.commit, str(exc)) from None
                    replayer = Replayer(surface, capture, headers, config.turns)
                    live = bots.get("live")
                    first = second = after = None
                    if live is not None:
                        first = await replayer.run(live, users)
                        throwaway.load(redis_url, snapshot, fernet)
                        second = await replayer.run(live, users)
                        throwaway.load(redis_url, snapshot, fernet)
                    candidate = await replayer.run(bots["candidate"], users)
                    if live is not None:
                        after = await replayer.run(live, users)  # on the memory the candidate left
                on_status(
                    f"replayed {len(config.turns)} turn(s) for {len(users)} user(s): "
                    + ("live ×2, candidate, live again" if live else "candidate alone (no live release)")
                )
                return judge(config, users, first, second, candidate, after)

            yield run
        finally:
            for bot in bots.values():
                bot.stop()


def _cannot_start(role: str, commit: str, why: str) -> VerificationError:
    if role == "candidate":
        return VerificationError(
            f"the candidate {commit[:12]} cannot start: {why}; nothing was deployed",
            hint="run it locally (python -m mindmate) or look at its last commit; fix forward on develop",
        )
    return VerificationError(
        f"the live commit {commit[:12]} cannot start on this runner, so the replay cannot compare: {why}",
        hint="dispatch production with skip_replay to release without the replay (the run says so)",
    )


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
