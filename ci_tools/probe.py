"""Smoke probes: is the deployed bot the right bot, at the right commit, wired to the right Redis?

Every check runs at once and is retried until it passes or the deadline ends it,
so a probe takes as long as its slowest check, not their sum. A *definite* failure
(the token is another bot; the service reports our commit but another environment,
bot or key prefix; an unsigned update accepted by our commit) cannot pass by waiting:
it ends the whole probe at once, so a bad production release is rolled back in
seconds instead of after the deadline. A failed check says what it saw and the
likely cause in words a person can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ci_tools.config import Config, Environment
from ci_tools.telegram import BotAPI, TelegramError

PENDING_LIMIT = 100


@dataclass
class Check:
    name: str
    ok: bool = False
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


@dataclass
class Probe:
    env: Environment
    commit: str
    config: Config
    token: str  # the bot token the probe asks Telegram about (resolved by the caller)
    since: float | None = None  # epoch seconds: webhook errors before this are history
    deadline: float = 60.0
    interval: float = 1.0
    checks: list[Check] = field(default_factory=list)

    def other_bot(self, username: str) -> Environment | None:
        return next(
            (
                e
                for e in self.config.environments.values()
                if e.bot_username.lower() == username.lower() and e is not self.env
            ),
            None,
        )

    # -- the checks ------------------------------------------------------------------
    async def check_token(self, bot: BotAPI, http: httpx.AsyncClient) -> str:
        try:
            me = await bot.get_me()
        except TelegramError as exc:
            if exc.code == 401:
                raise Failed(
                    "getMe: 401 Unauthorized",
                    "TELEGRAM_BOT_TOKEN is wrong or was revoked in @BotFather",
                    definite=True,
                ) from None
            raise Failed(f"getMe: {exc.code} {exc.description}") from None
        if not me.get("is_bot"):
            raise Failed("getMe: not a bot account")
        username = str(me.get("username", ""))
        if username.lower() != self.env.bot_username.lower():
            other = self.other_bot(username)
            cause = (
                f"TELEGRAM_BOT_TOKEN of the {self.env.name} environment is the {other.name} bot's token"
                if other
                else "TELEGRAM_BOT_TOKEN belongs to another bot"
            )
            raise Failed(
                f"the token is @{username}'s, expected @{self.env.bot_username}",
                cause,
                definite=True,
            )
        return f"@{username} (id {me.get('id')})"

    async def check_webhook(self, bot: BotAPI, http: httpx.AsyncClient) -> str:
        try:
            info = await bot.webhook_info()
        except TelegramError as exc:
            raise Failed(f"getWebhookInfo: {exc.code} {exc.description}") from None
        url = info.get("url") or ""
        if url != self.env.webhook_url:
            cause = (
                "the bot has no webhook: the service never started with this token"
                if not url
                else "another service set this bot's webhook: is this token configured on two services?"
            )
            raise Failed(f"webhook is {url or 'unset'}, expected {self.env.webhook_url}", cause)
        error_at = info.get("last_error_date")
        if error_at and (self.since is None or error_at >= self.since):
            raise Failed(
                f"Telegram reports a webhook error: {info.get('last_error_message')}",
                "the new instance fails to answer Telegram (see its logs)",
            )
        pending = int(info.get("pending_update_count") or 0)
        if pending > PENDING_LIMIT:
            raise Failed(f"{pending} updates are waiting", "the bot is not processing updates")
        return f"{url}, {pending} pending"

    async def check_health(self, bot: BotAPI, http: httpx.AsyncClient) -> str:
        try:
            response = await http.get(self.env.health_url)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Failed(
                f"/healthz: {type(exc).__name__}", "the service is down or still starting"
            ) from None
        problems, causes = [], []
        ours = body.get("commit") == self.commit  # then what it reports is this release's truth
        definite = False
        if body.get("env") != self.env.name:
            definite = ours
            problems.append(f"env {body.get('env')!r}")
            causes.append(f"ENV on the service is {body.get('env')!r}, not {self.env.name!r}")
        if body.get("commit") != self.commit:
            problems.append(f"commit {str(body.get('commit'))[:12]}")
            causes.append("the service still runs another commit: the deploy is not live")
        username = str((body.get("bot") or {}).get("username") or "")
        if username.lower() != self.env.bot_username.lower():
            definite = definite or ours
            problems.append(f"bot @{username}")
            other = self.other_bot(username)
            causes.append(
                f"the {self.env.name} service runs the {other.name} bot's token"
                if other
                else "the service runs another bot's token"
            )
        redis = body.get("redis") or {}
        if not redis.get("ok"):
            problems.append("Redis down")
            causes.append(
                "the service cannot reach its Redis (REDIS_URL, or the Key Value instance is down)"
            )
        elif redis.get("env_marker") != self.env.name:
            problems.append(f"Redis marked {redis.get('env_marker')!r}")
            causes.append(f"REDIS_URL points at the {redis.get('env_marker')} Redis")
        if body.get("key_prefix") != self.env.key_prefix:
            definite = definite or ours
            problems.append(f"key prefix {body.get('key_prefix')!r}")
            causes.append(f"KEY_PREFIX on the service is not {self.env.key_prefix!r}")
        if response.status_code != 200 and not problems:
            problems.append(f"HTTP {response.status_code}")
        if problems:
            raise Failed("/healthz: " + ", ".join(problems), "; ".join(causes), definite=definite)
        return f"{self.env.name} @ {self.commit[:7]}, @{username}, Redis ok"

    async def check_unsigned(self, bot: BotAPI, http: httpx.AsyncClient) -> str:
        try:
            response = await http.post(self.env.webhook_url, json={"update_id": 0})
        except httpx.HTTPError as exc:
            raise Failed(
                f"POST {self.env.webhook_url}: {type(exc).__name__}", "the service is down"
            ) from None
        if response.status_code != 403:
            raise Failed(
                f"an unsigned update got HTTP {response.status_code}, expected 403",
                "the webhook ignores the secret-token header, so anyone can post updates to the bot",
                definite=response.status_code < 500 and await self._serves_our_commit(http),
            )
        return "unsigned update refused (403)"

    async def _serves_our_commit(self, http: httpx.AsyncClient) -> bool:
        """Does the service answer with our commit now? (Then its answers are this release's.)"""
        try:
            body = (await http.get(self.env.health_url)).json()
        except (httpx.HTTPError, ValueError):
            return False
        return isinstance(body, dict) and body.get("commit") == self.commit

    # -- running them ----------------------------------------------------------------
    async def _run(
        self,
        check: Check,
        test: Callable[..., Awaitable[str]],
        bot: BotAPI,
        http: httpx.AsyncClient,
        stop_at: float,
        settled: asyncio.Event,
    ) -> None:
        started = time.monotonic()
        while True:
            check.attempts += 1
            wait = self.interval
            try:
                check.detail, check.ok, check.cause = await test(bot, http), True, ""
                break
            except Failed as exc:
                check.detail, check.cause, check.definite = exc.detail, exc.cause, exc.definite
                if exc.definite:
                    settled.set()  # no retry can fix it: the whole probe ends now
                    break
            except TelegramError as exc:
                check.detail = f"{exc.code} {exc.description}"
                if exc.retry_after:  # flood control: wait what Telegram asks, not our interval
                    wait = max(wait, float(exc.retry_after))
            if settled.is_set() or time.monotonic() + wait >= stop_at:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(settled.wait(), timeout=wait)
            if settled.is_set():
                break
        check.seconds = time.monotonic() - started

    def tests(self) -> list[tuple[str, Callable[..., Awaitable[str]]]]:
        return [
            ("token", self.check_token),
            ("webhook", self.check_webhook),
            ("health", self.check_health),
            ("unsigned webhook refused", self.check_unsigned),
        ]

    async def run(self, only: list[str] | None = None) -> list[Check]:
        stop_at = time.monotonic() + self.deadline
        selected = [(n, t) for n, t in self.tests() if only is None or n in only]
        self.checks = [Check(name) for name, _ in selected]
        settled = asyncio.Event()
        async with httpx.AsyncClient(timeout=10) as http:
            bot = BotAPI(self.token, http)
            await asyncio.gather(
                *(
                    self._run(c, t, bot, http, stop_at, settled)
                    for c, (_, t) in zip(self.checks, selected, strict=True)
                )
            )
        return self.checks


def run_probe(probe: Probe, only: list[str] | None = None) -> list[Check]:
    return asyncio.run(probe.run(only))


def summary_rows(checks: list[Check]) -> list[list[Any]]:
    return [
        [("✓" if c.ok else "✗"), c.name, c.detail, c.cause, f"{c.seconds:.1f}s"] for c in checks
    ]
