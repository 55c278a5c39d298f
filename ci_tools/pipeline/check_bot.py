"""``ci-tools check-bot``: which level of the bot contract does the owner's bot reach, before any deploy?

The bot is built and started from a copy of the owner's tree with its own render.yaml commands
(``ci_tools/botrun``), against a Telegram stand-in, a private Redis, a throwaway token and a
fake RENDER_EXTERNAL_URL that points at the bot's own port, so nothing outside this machine is
touched. Then each contract item is looked at, in levels (the levels are discovered, never
configured; docs/CHECK-BOT.md):

- base: it starts; it called getMe with its token; it set a webhook at its own URL (any path);
  a user's message delivered there is answered 2xx and replied to through sendMessage
  (a Redis write is reported, not required);
- health: GET <health path> answers the health JSON (clients/health.schema.json) for the ENV
  and commit it was given;
- conversation: the health JSON says ``contract.level == "conversation"``; the webhook has a
  secret; an unsigned POST is refused 403; a probe turn (``X-Probe-Nonce``, from the probe user)
  is answered into ``GET <probe_path>/<nonce>`` and never sent to Telegram; ``DELETE`` cleans it
  up; with Redis stopped an update is answered 503 (Telegram delivers it again).

What the stand-ins are is the caller's (``StandIns``): the command wires ``sandbox/``'s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import shutil
import subprocess
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from ci_tools import botrun, redact
from ci_tools.botrun.listening import listening_on, reachable_from_outside
from ci_tools.checklist import Item
from ci_tools.clients.health import SCHEMA, BotSurface, Health, NotTheContract, Unreachable, health_json
from ci_tools.clients.telegram import webhook_secret_for
from ci_tools.errors import BotRunError, ConfigError
from ci_tools.pipeline.probe import said
from ci_tools.settings import DEFAULT_PROBE_USER_ID, ProbeTalk, read_table

LEVELS = ("base", "health", "conversation")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
PROBE_HEADER = "X-Probe-Nonce"
DEFAULT_TURNS = ("/start",)
USER_ID = 777_000_001  # the check's one user: a private chat with the bot
SKIPPED = (".git", ".venv", "__pycache__", "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache")
Status = Callable[[str], None]
# Without a single call seen, check-bot cannot tell "no call" from "a call it could not see".
UNSEEN = (
    "read TELEGRAM_BOT_TOKEN and call the Bot API with it; only calls made with httpx or aiohttp "
    "(python-telegram-bot, aiogram) reach the stand-in: another client's (requests, urllib) went "
    "to api.telegram.org unseen, and nothing after them could be checked here"
)


@dataclass
class StandIns:
    """What check-bot needs of the stand-ins: a Telegram for one throwaway bot, a private Redis."""

    telegram_url: str
    token: str
    calls: Callable[[], list[str]]  # the Bot API methods called with the token, in order
    webhook: Callable[[], tuple[str, str | None]]  # the webhook's URL and secret as the bot set them
    deliver: Callable[[int, str], int | None]  # a user's message delivered as Telegram does: the status
    replies: Callable[[int], list[str]]  # what the bot sent that user through sendMessage
    redis_url: str
    stop_redis: Callable[[], None]
    start_redis: Callable[[], None]


@dataclass(frozen=True)
class CheckRequest:
    tree: Path
    service: str | None = None
    health_path: str | None = None  # None: the service's healthCheckPath, else /healthz
    timeout: float = 30.0  # per wait (start, webhook, a reply)


@dataclass
class Check(Item):
    level: str = "base"
    info: bool = False  # reported, never required


@dataclass
class Outcome:
    checks: list[Check] = field(default_factory=list)
    level: str | None = None  # the highest level whose items (and the lower levels') all hold
    service: str = ""
    log_tail: tuple[str, ...] = ()

    def add(
        self, level: str, name: str, ok: bool | None, detail: str = "", fix: str = "", *, info: bool = False
    ) -> bool:
        self.checks.append(Check(name, ok, redact.redact(detail), fix, level=level, info=info))
        return ok is True

    def reached(self) -> str | None:
        reached = None
        for level in LEVELS:
            if not all(c.ok is True for c in self.checks if c.level == level and not c.info):
                break
            if not any(c.level == level for c in self.checks):
                break
            reached = level
        return reached


def copy_tree(source: Path, into: Path) -> Path:
    """The owner's files as a push would carry them (git's tracked and untracked-not-ignored files;
    a folder that is no repository is copied whole, less caches and virtualenvs)."""
    target = into / (source.resolve().name or "bot")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(*SKIPPED), symlinks=True)
        return target
    for name in filter(None, listed.stdout.decode().split("\0")):
        origin = source / name
        if origin.is_file() and not any(part in SKIPPED for part in Path(name).parts):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / name, follow_symlinks=False)
    return target


def only_root(tree: Path, commands: botrun.BotCommands, work: Path) -> Path:
    """The service's rootDir of the copied ``tree``, on its own: on Render, files outside a
    service's root directory are available neither to its build nor at runtime."""
    root = tree / commands.root
    if not root.is_dir() or not root.resolve().is_relative_to(tree.resolve()):
        raise ConfigError(f"the service's rootDir {commands.root!r} is not a folder of {tree.name}", hint="fix rootDir")
    alone = work / "root" / root.name
    alone.parent.mkdir()
    shutil.move(root, alone)
    shutil.rmtree(tree, ignore_errors=True)
    return alone


def head_commit(tree: Path) -> str:
    """The commit the tree is at (what Render would report), else a stand-in SHA."""
    found = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, text=True, check=False)
    sha = found.stdout.strip()
    return sha if found.returncode == 0 and len(sha) == 40 else "c0ffee" + "0" * 34


def probe_settings(tree: Path) -> tuple[tuple[str, ...], str]:
    """``[tool.ci_tools.probe]`` turns and expect of the owner's pyproject.toml, read as the pipeline
    reads them (a misspelt key or a turn that is no message: one ConfigError); without the file or
    the table, the defaults: ``/start``, and any reply."""
    try:
        document = tomllib.loads((tree / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return DEFAULT_TURNS, ""
    tool = document.get("tool")
    section = tool.get("ci_tools") if isinstance(tool, dict) else None
    table = section.get("probe", {}) if isinstance(section, dict) else {}
    talk = read_table(ProbeTalk, table, "pyproject.toml: [tool.ci_tools.probe]")
    return talk.turns, talk.expect


def check_bot(
    request: CheckRequest,
    stand_ins: StandIns,
    child: Mapping[str, str],
    work: Path,
    on_status: Status = lambda line: None,
) -> Outcome:
    """Build, start and look at the bot of ``request.tree``; everything started is stopped before
    it returns (or raises, Ctrl-C included). ``child`` is what the bot inherits of this process."""
    redact.add_secret(stand_ins.token)
    probe_settings(request.tree)  # a bad [tool.ci_tools.probe] is one line before anything is built
    outcome = Outcome()
    tree = copy_tree(request.tree, work)
    commands = botrun.commands_of(tree, request.service)  # ConfigError: one line, nothing started
    if commands.root:  # render.com/docs/monorepo-support: nothing outside rootDir is there
        tree, commands = only_root(tree, commands, work), dataclasses.replace(commands, root="")
    outcome.service = commands.service or "(detected)"
    on_status(f"building with its own command: {commands.build or '(none)'}")
    try:
        botrun.build(tree, commands, dict(child), cache=botrun.default_cache(), log=work / "build.log")
    except BotRunError as exc:
        outcome.log_tail = tuple(redact.redact(line) for line in exc.log_tail)
        outcome.add("base", "the bot builds", False, exc.message, "make the build command pass in a fresh clone")
        return outcome
    port = botrun.running.free_port()
    url = f"http://127.0.0.1:{port}"
    commit = head_commit(request.tree)
    webhook_secret = secrets.token_urlsafe(24)
    env_name = commands.env.get("ENV") or "staging"  # the service's, else staging's (the kit's prefix follows)
    generated = {name: secrets.token_urlsafe(24) for name in commands.generated}  # as Render's generateValue
    for value in generated.values():
        redact.add_secret(value)
    environ = {
        **child,
        **generated,
        **commands.env,
        "ENV": env_name,
        "PORT": str(port),
        "RENDER_EXTERNAL_URL": url,
        "RENDER_GIT_COMMIT": commit,
        "TELEGRAM_BOT_TOKEN": stand_ins.token,
        "TELEGRAM_WEBHOOK_SECRET": webhook_secret,
        "REDIS_URL": stand_ins.redis_url,
        "PROBE_USER_ID": str(DEFAULT_PROBE_USER_ID),
    }
    redact.add_secret(webhook_secret)
    on_status(f"starting with its own command: {commands.start}")
    try:
        bot = botrun.start(
            tree, commands, environ, stand_ins.telegram_url, log=work / "bot.log", timeout=request.timeout
        )
    except BotRunError as exc:
        outcome.log_tail = tuple(redact.redact(line) for line in exc.log_tail)
        unset = [f"{name} ({how})" for name, how in commands.asked.items() if name not in environ]
        fix = "run its start command with $PORT and fix it"
        if unset:
            fix += f"; the service also asks for {', '.join(unset)}, which check-bot does not set: does it need them?"
        outcome.add("base", "the bot starts", False, exc.message, fix)
        return outcome
    try:
        looks = Looks(request, stand_ins, commands, bot, outcome, env_name, commit, webhook_secret)
        asyncio.run(looks.run())
    finally:
        outcome.log_tail = tuple(redact.redact(line) for line in bot.log_tail())
        bot.stop()
    outcome.level = outcome.reached()
    return outcome


@dataclass
class Looks:
    """The contract items, looked at in order against the running bot."""

    request: CheckRequest
    stand_ins: StandIns
    commands: botrun.BotCommands
    bot: botrun.RunningBot
    outcome: Outcome
    env_name: str
    commit: str
    webhook_secret: str

    async def run(self) -> None:
        self.outcome.add("base", "the bot starts", True, f"{self.commands.start} answers on port {self.bot.port}")
        self.listens()
        async with BotSurface(timeout=10) as http:
            health = await self.health(http) if await self.base(http) else self._not_checked("health")
            if health is not None:
                await self.conversation(http, health)
            else:
                self._not_checked("conversation")

    def listens(self) -> None:
        """Render's proxy reaches the bot at 0.0.0.0:$PORT: bound to loopback it answers here alone."""
        addresses = listening_on(self.bot.port)
        name = "it listens on all interfaces"
        if addresses is None:
            self.outcome.add("base", name, None, "not checked: no /proc/net/tcp on this system", info=True)
            return
        where = ", ".join(f"{a}:{self.bot.port}" for a in addresses) or "nothing found listening"
        self.outcome.add(
            "base",
            name,
            reachable_from_outside(addresses),
            f"listens on {where}",
            "listen on host 0.0.0.0 (all interfaces), as Render requires: its proxy cannot reach 127.0.0.1",
        )

    def _not_checked(self, level: str) -> dict[str, Any] | None:
        self.outcome.add(level, f"{level} level", None, "not checked: a lower level is not met")
        return None

    async def _until(self, condition: Callable[[], Any], timeout: float | None = None) -> Any:
        deadline = time.monotonic() + (timeout or self.request.timeout)
        while True:
            found = condition()
            if found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)

    async def base(self, http: BotSurface) -> bool:
        add, stand_ins = self.outcome.add, self.stand_ins
        called = bool(await self._until(lambda: "getMe" in stand_ins.calls()))
        seen = ", ".join(dict.fromkeys(stand_ins.calls()))
        ok = add(
            "base",
            "getMe called with its token",
            called,
            seen or "no Bot API call reached the stand-in",
            "the bot must read TELEGRAM_BOT_TOKEN and call the Bot API with it (PTB does at start)" if seen else UNSEEN,
        )
        hooked = await self._until(lambda: at_service(stand_ins.webhook()[0], self.bot.url))
        seen = stand_ins.webhook()[0].replace(stand_ins.token, "<token>")
        ok &= add(
            "base",
            "webhook set at its own URL",
            bool(hooked),
            seen or "no setWebhook",
            "set the webhook at RENDER_EXTERNAL_URL + any path (PTB: run_webhook(webhook_url=...))",
        )
        if not hooked:
            return False
        status = await asyncio.to_thread(stand_ins.deliver, USER_ID, "/start")
        answered = status is not None and 200 <= status < 300
        ok &= add(
            "base",
            "a user's message is answered 2xx",
            answered,
            f"HTTP {status}" if status is not None else "the webhook did not answer",
            "the webhook must answer Telegram's POST with 2xx once the update is handled",
        )
        replied = await self._until(lambda: stand_ins.replies(USER_ID)) if answered else []
        ok &= add(
            "base",
            "it replies through sendMessage",
            bool(replied),
            f"{len(replied)} message(s)" if replied else "no reply",
            "answer the user (update.message.reply_text) through the Bot API",
        )
        wrote = await asyncio.to_thread(_redis_keys, stand_ins.redis_url)
        add("base", "it wrote to Redis", wrote > 0, f"{wrote} key(s)", "(information only)", info=True)
        return ok

    async def health(self, http: BotSurface) -> dict[str, Any] | None:
        path = self.request.health_path or self.commands.health_path or "/healthz"
        try:
            status, body = await health_json(http, self.bot.url + path)
            parsed = Health.from_json(status, body)
        except Unreachable as exc:
            self.outcome.add("health", f"GET {path} answers the health JSON", False, exc.kind, "")
            return None
        except NotTheContract as exc:
            self.outcome.add(
                "health",
                f"GET {path} answers the health JSON",
                False,
                str(exc),
                f"answer {path} as {SCHEMA} says (the kit's Kit.run_webhook(health_path=...) does)",
            )
            return None
        ok = self.outcome.add("health", f"GET {path} answers the health JSON", True, f"HTTP {status}")
        same = parsed.env == self.env_name and parsed.commit == self.commit
        ok &= self.outcome.add(
            "health",
            "env and commit are what it was given",
            same,
            f"env {parsed.env!r}, commit {(parsed.commit or 'null')[:12]}",
            f"report ENV ({self.env_name!r}) and RENDER_GIT_COMMIT ({self.commit[:12]}) as given",
        )
        if parsed.contract_error:  # the health JSON holds; its claim to the conversation level does not
            self.outcome.add(
                "conversation",
                "the health JSON's contract is the schema's",
                False,
                parsed.contract_error,
                f"answer contract as {SCHEMA} says (the kit's health answer does)",
            )
            return None
        return body if ok and isinstance(body, dict) else None

    async def conversation(self, http: BotSurface, health: dict[str, Any]) -> None:
        add = self.outcome.add
        found = health.get("contract")
        contract: dict[str, Any] = found if isinstance(found, dict) else {}
        level = contract.get("level")
        add(
            "conversation",
            'health says contract.level "conversation"',
            level == "conversation",
            f"contract.level {level!r}" if level else "no contract in the health JSON",
            "adopt the kit (ci-tools adopt): its health JSON says the level",
        )
        url, secret = self.stand_ins.webhook()
        bound = secret == webhook_secret_for(self.webhook_secret, self.stand_ins.token)
        add(
            "conversation",
            "the webhook has a secret",
            bool(secret),
            ("bound to the bot" if bound else "set") if secret else "no secret_token",
            "set the webhook with TELEGRAM_WEBHOOK_SECRET bound to the bot (the kit does)",
        )
        unsigned = await self._post(http, url, {"update_id": 1}, {})
        add(
            "conversation",
            "an unsigned POST is refused 403",
            unsigned == 403,
            f"HTTP {unsigned}",
            "check X-Telegram-Bot-Api-Secret-Token on every update, 403 when it differs",
        )
        probe_path = contract.get("probe_path")
        if isinstance(probe_path, str) and probe_path.startswith("/"):  # the bot's own choice, never ours
            await self.probe(http, url, {SECRET_HEADER: secret or ""}, probe_path)
        else:
            add(
                "conversation",
                "a probe turn is answered into GET <probe_path>/<nonce>",
                False,
                "the health JSON names no contract.probe_path",
                "name where the probe's replies are read in the health JSON (the kit's says probe_path)",
            )
        await self.redis_down(http, url, {SECRET_HEADER: secret or ""})

    async def probe(self, http: BotSurface, url: str, signed: dict[str, str], probe_path: str) -> None:
        add, stand_ins = self.outcome.add, self.stand_ins
        turns, expect = probe_settings(self.request.tree)
        nonce = secrets.token_hex(6)
        sends_before = stand_ins.calls().count("sendMessage")
        statuses = []
        for number, text in enumerate(turns, start=1):
            update = _update(
                10_000 + number, DEFAULT_PROBE_USER_ID, said(text, nonce)
            )  # as the release's probe says it
            statuses.append(await self._post(http, url, update, {**signed, PROBE_HEADER: nonce}))
        where = f"{self.bot.url}{probe_path}/{nonce}"
        status, answer = await _look(http, where, signed)
        replies = [str(r) for r in answer.get("replies", [])] if isinstance(answer, dict) else []
        wanted = said(expect, nonce)
        kept = all(s == 200 for s in statuses) and bool(replies) and (not wanted or wanted in replies[-1])
        add(
            "conversation",
            f"a probe turn is answered into GET {probe_path}/<nonce>",
            kept,
            f"turns {statuses}, GET {status}, {len(replies)} repl(ies)",
            "keep the probe user's replies for GET <probe_path>/<nonce> (the kit's Kit.builder() does)",
        )
        sent = stand_ins.calls().count("sendMessage") - sends_before  # tried, whether Telegram took it or not
        add(
            "conversation",
            "the probe's replies are not sent to Telegram",
            sent == 0,
            f"{sent} sendMessage call(s)" if sent else "no sendMessage call",
            "a probe turn's replies must stay in the bot (the kit's Kit.builder() keeps them)",
        )
        taken, _ = await _take(http, where, signed)
        again, rest = await _look(http, where, signed)
        gone = 200 <= taken < 300 and (again == 404 or not (isinstance(rest, dict) and rest.get("replies")))
        add(
            "conversation",
            f"DELETE {probe_path}/<nonce> cleans up",
            gone,
            f"DELETE {taken}, then GET {again}",
            "DELETE must answer the replies and remove the probe user's keys",
        )

    async def redis_down(self, http: BotSurface, url: str, signed: dict[str, str]) -> None:
        await asyncio.to_thread(self.stand_ins.stop_redis)
        try:
            status = await self._post(http, url, _update(20_000, USER_ID, "are you there?"), signed)
        finally:
            await asyncio.to_thread(self.stand_ins.start_redis)
        self.outcome.add(
            "conversation",
            "with Redis down an update is answered 503",
            status == 503,
            f"HTTP {status}",
            "answer 503 when memory cannot be written, so Telegram delivers the update again",
        )

    async def _post(self, http: BotSurface, url: str, update: dict[str, Any], headers: dict[str, str]) -> int | None:
        try:
            return await http.post(url, update, headers)
        except Unreachable:
            return None


async def _look(http: BotSurface, url: str, headers: dict[str, str]) -> tuple[int | None, Any]:
    try:
        return await http.look(url, headers)
    except Unreachable:
        return None, None


async def _take(http: BotSurface, url: str, headers: dict[str, str]) -> tuple[int, Any]:
    try:
        return await http.take(url, headers)
    except Unreachable:
        return 0, None


def at_service(webhook: str, base_url: str) -> bool:
    """Whether ``webhook`` is at ``base_url`` under any path, the bare URL (root) included."""
    return webhook == base_url or webhook.startswith(base_url.rstrip("/") + "/")


def _update(update_id: int, user_id: int, text: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": update_id,
        "from": {"id": user_id, "is_bot": False, "first_name": "Check"},
        "chat": {"id": user_id, "type": "private", "first_name": "Check"},
        "date": int(time.time()),
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"update_id": update_id, "message": message}


def _redis_keys(url: str) -> int:
    try:
        with redis.Redis.from_url(url, socket_timeout=5) as client:
            return int(client.dbsize())
    except redis.RedisError:
        return 0
