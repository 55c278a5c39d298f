"""Smoke probes: is the deployed bot the right bot, at the right commit, wired to the right Redis?

What it checks depends on the contract level the bot meets (``ci_tools.pipeline.levels``), found
first and said in the table's first row with what could not be verified: at **base** the token
(getMe is the expected bot) and the webhook (on this service's ``base_url``, any path; no delivery
error since the bot went live, no backlog piling up); at **health** also ``/healthz`` (environment,
commit, bot, Redis, key prefix); at **conversation** also an unsigned update refused and the
conversation below. A release whose bot is at a lower level than the live release was (``floor``,
asked before the deploy) fails here, naming both levels: definite when the answer is its own.

Every check runs at once and is retried until it passes or the deadline ends it,
so a probe takes as long as its slowest check, not their sum. A *definite* failure
(the token is another bot; the service reports our commit but another environment,
bot or key prefix; an unsigned update accepted by our commit) cannot pass by waiting:
it ends the whole probe at once, so a bad production release is rolled back in
seconds instead of after the deadline. Not-yet answers (the old commit still live,
Redis not ok, 5xx, timeouts, Telegram's 429) are retried, waiting what Telegram asks. A check
Telegram still refuses at the deadline for its own reasons (429 flood control, its 5xx) is not
judged (``ok`` None, ``UNJUDGED``): Telegram's side, not the release's, as in the bake's looks.

The conversation check talks to the release as a user would, through its real
handlers and Redis: signed synthetic updates from the reserved probe user (the turns of
``[tool.ci_tools.probe]``; mindmate's ``/start``, ``/remember probe-<nonce>``, ``/recall``), POSTed
to the webhook URL Telegram reports (whatever its path) with ``X-Probe-Nonce``. The bot keeps the
replies for the probe instead of sending them, and hands them over at ``<probe_path>/<nonce>``,
deleting the probe user's keys. No message reaches Telegram; no real user's data is read.

Each check is a fetch plus a pure verdict function (``judge_*``) that tests call
without servers. A failed check says what it saw and the likely cause in words a
person can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ci_tools.checklist import Item
from ci_tools.clients.health import SCHEMA, BotSurface, Health, NotTheContract, Unreachable
from ci_tools.clients.telegram import AsyncTelegram, BotInfo, TelegramError, WebhookInfo, webhook_secret_for
from ci_tools.context import Context
from ci_tools.errors import RemoteError
from ci_tools.http import FIRST_CONTACT
from ci_tools.pipeline.levels import Found, Level, discover_async, dropped
from ci_tools.settings import Config, Environment, ProbeTalk

PENDING_LIMIT = 100
# Telegram's last_error_message for an HTTP answer: "Wrong response from the webhook: 503 Service
# Unavailable" (tdlib/telegram-bot-api, WebhookActor). 503 is the health contract's "my memory is
# unavailable, deliver again" (mindmate/app.py; a handler's own failure is answered 200 and counted).
ASKED_AGAIN = re.compile(r"\b503\b")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
PROBE_HEADER = "X-Probe-Nonce"
UNJUDGED = "not judged: Telegram refused to the deadline"  # a check's detail, ok None
ANOTHER_COMMIT = "the conversation reached another commit"  # not this commit's answer: the bake skips it


@dataclass
class Check(Item):
    """A probe check: the one row type, with its likely cause, attempts and time."""

    ok: bool | None = False  # None: not checked (said in detail)
    detail: str = "not run"
    cause: str = ""
    attempts: int = 0
    seconds: float = 0.0
    definite: bool = False  # failed in a way no retry can fix


class Failed(Exception):
    """A check's verdict this attempt: what was seen, and the likely cause."""

    def __init__(self, detail: str, cause: str = "", *, definite: bool = False) -> None:
        super().__init__(detail)
        self.detail, self.cause, self.definite = detail, cause, definite


# -- verdicts: pure functions of what was seen ---------------------------------------------
def other_environment(config: Config, env: Environment, username: str) -> Environment | None:
    """The environment, other than ``env``, whose bot is ``username``."""
    return next(
        (e for e in config.environments.values() if e is not env and e.bot_username.lower() == username.lower()),
        None,
    )


def whose_token(config: Config, env: Environment, username: str) -> str | None:
    """None when ``username`` is ``env``'s bot; otherwise the likely cause, in words."""
    if username.lower() == env.bot_username.lower():
        return None
    other = other_environment(config, env, username)
    if other:
        return f"TELEGRAM_BOT_TOKEN of the {env.name} environment is the {other.name} bot's token"
    return f"TELEGRAM_BOT_TOKEN belongs to @{username}, not @{env.bot_username}"


def judge_token(me: BotInfo, env: Environment, config: Config) -> str:
    if not me.is_bot:
        raise Failed("getMe: not a bot account", definite=True)
    cause = whose_token(config, env, me.username)
    if cause:
        raise Failed(f"the token is @{me.username}'s, expected @{env.bot_username}", cause, definite=True)
    return f"@{me.username} (id {me.id})"


def judge_webhook(info: WebhookInfo, env: Environment, since: float | None, level: Level) -> str:
    """Telegram's side: the webhook on this service (any path: the bot chooses it), no delivery
    error since ``since``, no backlog. At the health level and up a 503 is the health contract's
    "deliver again" (its Redis blipped); at base nothing says what a 503 meant, and it counts."""
    if not env.owns_webhook(info.url):
        cause = (
            "the bot has no webhook: the service never started with this token"
            if not info.url
            else "another service set this bot's webhook: is this token configured on two services?"
        )
        raise Failed(f"webhook is {info.url or 'unset'}, expected a URL on {env.base_url}", cause)
    recent_error = info.last_error_date and (since is None or info.last_error_date >= since)
    if (
        recent_error
        and not info.pending_update_count
        and level >= Level.HEALTH
        and ASKED_AGAIN.search(info.last_error_message or "")
    ):
        # The bake's rule for a Redis blip: the bot asked Telegram to deliver again (503, its memory
        # unreachable) and Telegram has since delivered everything it held. Where /healthz exists the
        # health contract reserves 503 for that; the health check judges whether Redis answers now.
        return f"{info.url}, 0 pending (a 503 'deliver again' since the deploy, delivered since: a Redis blip)"
    if recent_error and info.pending_update_count:
        raise Failed(
            f"{info.pending_update_count} updates pending; last error: {info.last_error_message}",
            "Telegram is holding updates the bot refused (it answered them with an error): see its logs",
        )
    if recent_error:
        raise Failed(
            f"Telegram reports a webhook error: {info.last_error_message}",
            "the new instance fails to answer Telegram (see its logs)",
        )
    if info.pending_update_count > PENDING_LIMIT:
        raise Failed(
            f"{info.pending_update_count} updates are waiting",
            "Telegram is holding updates the bot has not taken: is it processing them?",
        )
    return f"{info.url}, {info.pending_update_count} pending"


def judge_health(health: Health, env: Environment, commit: str, config: Config) -> str:
    """What /healthz says, against what this release must be. Definite when it is our commit."""
    ours = health.commit == commit  # then what it reports is this release's truth
    problems: list[str] = []
    causes: list[str] = []
    definite = False
    if health.env != env.name:
        definite = ours
        problems.append(f"env {health.env!r}")
        causes.append(f"ENV on the service is {health.env!r}, not {env.name!r}")
    if not ours:
        problems.append(f"commit {str(health.commit)[:12]}")
        causes.append("the service still runs another commit: the deploy is not live")
    if not health.runs_bot(env.bot_username):
        definite = definite or ours
        problems.append(f"bot @{health.bot_username}")
        other = other_environment(config, env, health.bot_username)
        causes.append(
            f"the {env.name} service runs the {other.name} bot's token"
            if other
            else "the service runs another bot's token"
        )
    if not health.redis_ok:
        problems.append("Redis down")
        causes.append("the service cannot reach its Redis (REDIS_URL, or the Key Value instance is down)")
    elif health.env_marker != env.name:
        problems.append(f"Redis marked {health.env_marker!r}")
        causes.append(f"REDIS_URL points at the {health.env_marker} Redis")
    if health.key_prefix != env.key_prefix:
        definite = definite or ours
        problems.append(f"key prefix {health.key_prefix!r}")
        causes.append(f"KEY_PREFIX on the service is not {env.key_prefix!r}")
    if health.http_status != 200 and not problems:
        problems.append(f"HTTP {health.http_status}")
    if problems:
        raise Failed(f"{env.health_path}: " + ", ".join(problems), "; ".join(causes), definite=definite)
    return f"{env.name} @ {commit[:7]}, @{health.bot_username}, Redis ok"


def said(text: str, nonce: str) -> str:
    """A turn or ``expect`` of ``[tool.ci_tools.probe]`` with this probe's nonce in it."""
    return text.replace("{nonce}", nonce)


def judge_conversation(replies: list[str], nonce: str, talk: ProbeTalk) -> str:
    """Every turn answered, and the last answer holds ``expect`` (with the nonce: this probe's own)."""
    commands = ", ".join(turn.split()[0] for turn in talk.turns)
    if len(replies) < len(talk.turns):
        raise Failed(
            f"{len(replies)} of {len(talk.turns)} replies came back",
            "a handler did not answer: see the bot's log for the failed update",
        )
    expected = said(talk.expect, nonce)
    if expected not in replies[-1]:
        raise Failed(
            f"{talk.turns[-1].split()[0]} did not answer with {expected!r}",
            "the bot lost what an earlier turn told it, or reads memory from another key or Redis "
            "([tool.ci_tools.probe] expect)",
        )
    return f"{commands} answered" + (f"; the last reply holds {talk.expect!r}" if talk.expect else "")


def synthetic_update(user_id: int, text: str, number: int) -> dict[str, Any]:
    """A private-chat message as the Bot API delivers it (``Update``/``Message``)."""
    message: dict[str, Any] = {
        "message_id": number,
        "from": {"id": user_id, "is_bot": False, "first_name": "Probe"},
        "chat": {"id": user_id, "type": "private", "first_name": "Probe"},
        "date": int(time.time()),
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"update_id": number, "message": message}


def judge_unsigned(status: int, serves_ours: bool) -> str:
    if status == 403:
        return "unsigned update refused (403)"
    raise Failed(
        f"an unsigned update got HTTP {status}, expected 403",
        "the webhook ignores the secret-token header, so anyone can post updates to the bot",
        definite=status < 500 and serves_ours,
    )


# -- the probe ----------------------------------------------------------------------------
@dataclass
class Probe:
    ctx: Context
    env: Environment
    commit: str
    token: str  # the bot token the probe asks Telegram about (resolved by the caller)
    since: float | None = None  # epoch seconds: webhook errors before this are history
    deadline: float = 60.0
    interval: float = 1.0
    webhook_secret: str | None = None  # signs the conversation (TELEGRAM_WEBHOOK_SECRET)
    conversation: bool = True
    fail_fast: bool = True  # False: retry definite failures too (the old behaviour; a benchmark's baseline)
    floor: Level | None = None  # the live release's level, asked before the deploy: not to be dropped below
    found: Found | None = None  # the level, when the caller knows it already (the bake's looks); else discovered
    checks: list[Check] = field(default_factory=list)
    _webhook: str | None = None  # the webhook URL Telegram reports, once seen on this service
    _seen: Health | None = None  # the health answer the level was just found by, for the health check

    @property
    def config(self) -> Config:
        return self.ctx.config

    @property
    def level(self) -> Level:
        return self.found.level if self.found else Level.CONVERSATION

    async def check_token(self, bot: AsyncTelegram, http: BotSurface) -> str:
        try:
            me = await bot.get_me()
        except TelegramError as exc:
            if exc.code == 401:
                raise Failed(
                    "getMe: 401 Unauthorized",
                    "TELEGRAM_BOT_TOKEN is wrong or was revoked in @BotFather",
                    definite=True,
                ) from None
            raise
        return judge_token(me, self.env, self.config)

    async def check_webhook(self, bot: AsyncTelegram, http: BotSurface) -> str:
        info = await bot.webhook_info()
        if self._webhook is None and self.env.owns_webhook(info.url):
            self._webhook = info.url  # where the unsigned update and the conversation go
        await self._known.wait()  # asked while the level was found; judged by it (the 503 rule)
        return judge_webhook(info, self.env, self.since, self.level)

    async def webhook(self, bot: AsyncTelegram) -> str:
        """Where Telegram delivers this bot's updates, whatever the path: the probe posts there too.
        Only ever a URL on this service, so the signed probe never goes anywhere else."""
        if self._webhook is None:
            url = (await bot.webhook_info()).url
            if not self.env.owns_webhook(url):
                raise Failed(
                    f"webhook is {url or 'unset'}, not on {self.env.base_url}",
                    "the probe posts where Telegram delivers, and that is not this service (see the webhook check)",
                )
            self._webhook = url
        return self._webhook

    async def check_health(self, bot: AsyncTelegram, http: BotSurface) -> str:
        url = self.env.health_url
        assert url is not None  # only scheduled at the health level, which needs a health path
        seen, self._seen = self._seen, None  # the answer the level was found by: the first look's
        try:
            health = seen or await http.health(url)
        except Unreachable as exc:
            raise Failed(
                f"{self.env.health_path}: {exc.kind}",
                "the service is down or still starting",
            ) from None
        except NotTheContract as exc:
            raise Failed(
                f"{self.env.health_path}: {exc}",
                f"the bot no longer answers the health contract ({SCHEMA}) it answered when the probe began",
            ) from None
        return judge_health(health, self.env, self.commit, self.config)

    async def check_unsigned(self, bot: AsyncTelegram, http: BotSurface) -> str:
        url = await self.webhook(bot)
        try:
            status = await http.post(url, {"update_id": 0})
        except Unreachable as exc:
            raise Failed(f"POST to the webhook: {exc.kind}", "the service is down") from None
        ours = status != 403 and await self._serves_our_commit(http)
        return judge_unsigned(status, ours)

    async def check_conversation(self, bot: AsyncTelegram, http: BotSurface) -> str:
        if not self.webhook_secret:
            raise Failed(
                "not signed: TELEGRAM_WEBHOOK_SECRET is not set",
                "the probe signs its conversation with the webhook secret: set it, or pass --no-conversation",
                definite=True,
            )
        probe_path = self.found.probe_path if self.found else None
        if probe_path is None:
            raise Failed("no probe_path", "the health answer names no contract.probe_path", definite=True)
        url = await self.webhook(bot)
        talk = self.config.probe
        nonce = secrets.token_hex(6)
        signed = {SECRET_HEADER: webhook_secret_for(self.webhook_secret, self.token)}  # this bot's own
        try:
            for number, turn in enumerate(talk.turns, start=int(time.time()) % 2**30):
                text = said(turn, nonce)
                update = synthetic_update(self.env.probe_user_id, text, number)
                status = await http.post(url, update, {**signed, PROBE_HEADER: nonce})
                if status == 503:
                    raise Failed(
                        f"{text.split()[0]} answered 503",
                        "the bot could not write to its Redis: the turn did not take effect",
                    )
                if status != 200:
                    raise Failed(
                        f"{text.split()[0]} answered HTTP {status}",
                        "the bot's webhook refused the probe's update",
                    )
            # DELETE answers with the replies and removes the probe user's keys: one round trip.
            status, answer = await http.take(f"{self.env.base_url}{probe_path}/{nonce}", signed)
            if status == 404:
                raise Failed(
                    f"{probe_path}/<nonce> answered 404",
                    "the bot claims the conversation level but does not hand over the probe's replies "
                    "(docs/CONTRACT.md), or pass --no-conversation",
                )
        except Unreachable as exc:
            raise Failed(f"the conversation: {exc.kind}", "the service is down or still starting") from None
        if not isinstance(answer, dict):
            raise Failed(f"{probe_path}/<nonce> is not JSON", "the bot does not implement the probe user")
        if answer.get("commit") not in (None, self.commit):
            raise Failed(ANOTHER_COMMIT, "the deploy is not live at the public URL yet")
        return judge_conversation([str(r) for r in answer.get("replies", [])], nonce, talk)

    async def _serves_our_commit(self, http: BotSurface) -> bool:
        """Does the service answer with our commit now? (Then its answers are this release's.)"""
        if self.env.health_url is None:
            return False
        with contextlib.suppress(Unreachable, NotTheContract):
            return (await http.health(self.env.health_url)).commit == self.commit
        return False

    # -- the level ------------------------------------------------------------------
    async def _level(self, http: BotSurface, stop_at: float, settled: asyncio.Event) -> Check:
        """Find the level the bot meets. No answer (or a 5xx) is not a level: it is looked at again,
        as is one below the floor (the old instance may still answer for a moment), until the
        deadline, unless the answer is this commit's own word (then no retry can change it)."""
        check = Check("level")
        started = time.monotonic()
        while True:
            check.attempts += 1
            self.found = seen = await discover_async(http, self.env)
            self._seen = seen.health
            drop = dropped(seen, self.floor, self.commit)
            if drop is None and seen.definite:
                check.ok, check.detail, check.warning = True, seen.line(), bool(seen.unverified())
                break
            if drop is not None:
                check.detail, check.definite = f"{seen.level}, below the live release's {self.floor}", drop[1]
                check.cause = f"{drop[0]}: a release may not drop a contract level"
            else:
                check.detail = f"unknown: {seen.why}"
                check.cause = "the service gave no answer of its own: it is down or still starting"
            if (check.definite and self.fail_fast) or time.monotonic() + self.interval >= stop_at:
                break
            with contextlib.suppress(TimeoutError):  # another check's definite failure ends the look too
                await asyncio.wait_for(settled.wait(), timeout=self.interval)
            if settled.is_set():
                break
        check.seconds = time.monotonic() - started
        return check

    # -- running them ----------------------------------------------------------------
    async def _run(
        self,
        check: Check,
        test: Callable[..., Awaitable[str]],
        bot: AsyncTelegram,
        http: BotSurface,
        stop_at: float,
        settled: asyncio.Event,
    ) -> None:
        started = time.monotonic()
        while True:
            check.attempts += 1
            wait = self.interval
            telegram_side = False  # this attempt: Telegram's flood control or its own 5xx
            try:
                check.detail, check.ok, check.cause = await test(bot, http), True, ""
                check.remote = False
                self._answered = True
                break
            except Failed as exc:
                check.detail, check.cause, check.definite = exc.detail, exc.cause, exc.definite
                check.remote = False
                if exc.definite and self.fail_fast:
                    settled.set()  # no retry can fix it: the whole probe ends now
                    break
            except TelegramError as exc:
                self._answered = True  # a refusal is an answer: Telegram is up
                check.detail, check.cause = f"{exc.code} {exc.description}", "Telegram refused"
                telegram_side = exc.code == 429 or exc.code >= 500
                if exc.retry_after:  # flood control: wait what Telegram asks, not our interval
                    wait = max(wait, float(exc.retry_after))
                    check.cause = f"Telegram's flood control (retry after {exc.retry_after}s)"
            except RemoteError as exc:
                check.detail, check.cause, check.remote = (
                    exc.message,
                    "Telegram did not answer",
                    True,
                )
                if not self._answered and time.monotonic() - started >= FIRST_CONTACT:
                    settled.set()  # never answered since the probe began: down, not "not yet"
                    break
            if settled.is_set() or time.monotonic() + wait >= stop_at:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(settled.wait(), timeout=wait)
            if settled.is_set():
                break
        if telegram_side and not check.ok:
            # Telegram refused for its own reasons to the deadline (core.telegram.org/bots/faq: flood
            # control answers 429 with retry_after): nothing was judged, as in the bake's looks.
            check.ok, check.detail = None, f"{UNJUDGED}: {check.detail} ({check.cause})"
        check.seconds = time.monotonic() - started

    def tests(self, level: Level | None = None) -> list[tuple[str, Callable[..., Awaitable[str]]]]:
        """The checks of ``level`` (default: the one found, else conversation), in table order."""
        level = self.level if level is None else level
        tests: list[tuple[str, Callable[..., Awaitable[str]]]] = [
            ("token", self.check_token),
            ("webhook", self.check_webhook),
        ]
        if level >= Level.HEALTH:
            tests.append(("health", self.check_health))
        if level >= Level.CONVERSATION:
            tests.append(("unsigned webhook refused", self.check_unsigned))
            if self.conversation:
                tests.append(("conversation", self.check_conversation))
        return tests

    async def run(self, only: list[str] | None = None) -> list[Check]:
        """The level first (unless known), its checks then; every level's own checks (token,
        webhook) start at once beside the level's look, so finding it costs no time of its own."""
        stop_at = time.monotonic() + self.deadline
        self._answered = False  # has Telegram answered anything yet in this probe?
        self._known = asyncio.Event()  # the level is known: the checks that depend on it may judge
        settled = asyncio.Event()
        wanted = [(n, t) for n, t in self.tests(Level.BASE) if only is None or n in only]
        async with BotSurface(timeout=self.ctx.request_timeout(10)) as http:
            bot = AsyncTelegram(self.token, http.pool, base_url=self.ctx.services.telegram)
            base = [Check(name) for name, _ in wanted]
            running = [
                asyncio.create_task(self._run(c, t, bot, http, stop_at, settled))
                for c, (_, t) in zip(base, wanted, strict=True)
            ]
            level = await self._level(http, stop_at, settled) if self.found is None else None
            self._known.set()
            more = [(n, t) for n, t in self.tests()[len(self.tests(Level.BASE)) :] if only is None or n in only]
            higher = [Check(name) for name, _ in more]
            if level is not None and level.definite and level.ok is False and self.fail_fast:
                settled.set()  # the level dropped for good: nothing else to wait for
                for check in higher:
                    check.ok, check.detail = None, "not run: the level dropped"
            else:
                running += [
                    asyncio.create_task(self._run(c, t, bot, http, stop_at, settled))
                    for c, (_, t) in zip(higher, more, strict=True)
                ]
            await asyncio.gather(*running)
        self.checks = base + higher
        if only is None:
            if level is not None:
                self.checks.insert(0, level)
            if self.level >= Level.CONVERSATION and not self.conversation:
                self.checks.append(Check("conversation", None, "not checked: --no-conversation", ""))
        return self.checks


def run_probe(probe: Probe, only: list[str] | None = None) -> list[Check]:
    return asyncio.run(probe.run(only))


def failures(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.ok is False]


def summary_rows(checks: list[Check]) -> list[list[Any]]:
    return [[c.mark, c.name, c.detail, c.cause, f"{c.seconds:.1f}s"] for c in checks]
