"""``ci-tools status``: what is live in each environment, and is it healthy — one screen.

The answer used to be spread over Render's dashboard (the deploy), Telegram's
``getWebhookInfo`` (pending updates, the last error), ``/healthz`` (commit, Redis, prefix) and
the Key Value allow list. It also says the contract level the bot meets (``pipeline/levels.py``)
and what that level leaves unverified. Every check here is read-only and they all run at once, each with
a short budget (a refused connection is retried for a few seconds, not for a deploy's
deadline), so a service that is down is said in seconds. What it finds is a checklist:
exit 0 healthy, 5 something is wrong, 4 a service did not answer.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ci_tools.checklist import BUDGET, TELEGRAM_DOWN, Item, unanswered
from ci_tools.clients.render import RenderAPI
from ci_tools.clients.telegram import TelegramError
from ci_tools.context import Context
from ci_tools.errors import FatalError, RemoteError
from ci_tools.pipeline import blueprint_sync
from ci_tools.pipeline import safety_net as net
from ci_tools.pipeline.cutover import read_window
from ci_tools.pipeline.hold import LIFT, Hold, read_hold
from ci_tools.pipeline.levels import Found, discover
from ci_tools.settings import Environment

RECENT_ERROR = timedelta(hours=1)  # a webhook error this recent means updates are failing now
OURS = re.compile(r"^ci-tools run \S+ at (?P<at>\S+) ")  # the allow-list note keyvalue open writes


def secret(ctx: Context, env: Environment, name: str, single: bool) -> str | None:
    """``<ENV>_<NAME>`` (several environments at once), else ``<NAME>`` for a single one."""
    return ctx.env_secret(env, name) or (ctx.optional(name) if single else None)


COMMIT_ID = re.compile(r"[0-9a-fA-F]{4,64}")


def subject(commit: str, root: Path) -> str:
    """The commit's subject when this checkout knows it ("" otherwise). Only a commit id reaches
    git: the commit comes from a health answer or Render's deploy list, and one that starts with a
    dash would be an option to git (``--output=<file>`` writes a file), not a commit."""
    if not COMMIT_ID.fullmatch(commit):
        return ""
    done = subprocess.run(
        ["git", "log", "-1", "--format=%s", commit], cwd=root, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def ago(stamp: str | int | None, now: datetime) -> str:
    if stamp is None:
        return "?"
    when = (
        datetime.fromtimestamp(stamp, UTC)
        if isinstance(stamp, int)
        else datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    )
    minutes = int((now - when).total_seconds() // 60)
    return (
        f"{minutes} min ago"
        if minutes < 120
        else f"{minutes // 60} h ago"
        if minutes < 2880
        else f"{minutes // 1440} days ago"
    )


class EnvStatus:
    """The checks of one environment; each returns one checklist Item."""

    def __init__(self, ctx: Context, env: Environment, single: bool, now: datetime) -> None:
        self.ctx, self.config, self.env, self.now = ctx, ctx.config, env, now
        self.token = secret(ctx, env, "TELEGRAM_BOT_TOKEN", single)
        self.service_id = secret(ctx, env, "RENDER_SERVICE_ID", single)
        self.api_key = ctx.optional("RENDER_API_KEY")
        self.root = Path.cwd()  # the checkout: git knows the commits' subjects there
        self.live_commit: str | None = None  # what the deploy check found live
        self._found: Found | None = None  # the level, asked once for the level and health rows
        self._asking = threading.Lock()

    def name(self, what: str) -> str:
        return f"{self.env.name}: {what}"

    def checks(self) -> list[Callable[[], Item]]:
        found = [self.bot, self.deploy, self.level, self.health, self.webhook, self.allow_list, self.blueprint]
        if self.env.name == self.config.role("cutover_target").name:
            found.append(self.hold)
        if self.env.name == self.config.memory_backup.environment:
            found += [
                self.rollback_window,
                lambda: net.durability(self.ctx, budget=BUDGET),
                lambda: net.last_snapshot(self.ctx, budget=BUDGET),
            ]
        return found

    def _render(self) -> RenderAPI:
        assert self.api_key
        return self.ctx.render(self.api_key, self.service_id or "", deadline=time.monotonic() + BUDGET, timeout=BUDGET)

    def bot(self) -> Item:
        name = self.name(f"the bot is @{self.env.bot_username}")
        if not self.token:
            return Item(
                name,
                None,
                "no TELEGRAM_BOT_TOKEN",
                "export it (prefixed with the environment for several)",
            )
        try:
            with self.ctx.telegram(self.token, budget=BUDGET) as telegram:
                me = telegram.get_me()
        except TelegramError as exc:
            if exc.code == 401:
                return Item(
                    name,
                    False,
                    "Telegram: 401 Unauthorized",
                    "the token was revoked or is wrong: "
                    "take the bot's token from @BotFather and update the secret and the service",
                )
            return Item(name, False, f"getMe: {exc.code} {exc.description}", "look at @BotFather")
        except RemoteError as exc:
            return unanswered(name, exc, TELEGRAM_DOWN)
        if not me.is_named(self.env.bot_username):
            return Item(
                name,
                False,
                f"the token is @{me.username}'s",
                "put the right bot's token in the secret",
            )
        return Item(name, True, f"@{me.username} (id {me.id})")

    def deploy(self) -> Item:
        name = self.name("a deploy is live")
        if not self.api_key or not self.service_id:
            return Item(
                name,
                None,
                "no RENDER_API_KEY or RENDER_SERVICE_ID",
                "export both to read the deploys",
            )
        try:
            with self._render() as api:
                live = api.live()
        except FatalError as exc:
            return Item(name, False, exc.message, exc.hint or "", remote=isinstance(exc, RemoteError))
        if live is None:
            return Item(name, False, "no live deploy", "deploy: ci-tools release")
        commit = live.commit or "?"
        self.live_commit = live.commit
        said = subject(commit, self.root)
        return Item(
            name,
            True,
            f"{live.id} {commit[:7]}{f' {said!r}' if said else ''} by {live.trigger}, "
            f"{ago(live.finished_at or live.created_at, self.now)}",
        )

    def found(self) -> Found:
        """The bot's contract level: one look at the health path, shared by the rows that need it."""
        with self._asking:
            if self._found is None:
                self._found = discover(self.env, BUDGET)
            return self._found

    def level(self) -> Item:
        name = self.name("contract level")
        found = self.found()
        if not found.definite:  # no answer is no level: the health row says the service is down
            return Item(name, True, f"unknown: {found.why}", warning=True)
        if not found.unverified():
            return Item(name, True, found.line())
        return Item(name, True, found.line(), "what each level takes: docs/CONTRACT.md", warning=True)

    def health(self) -> Item:
        name = self.name("/healthz: this environment, Redis ok")
        url = self.env.health_url
        if not url:
            return Item(name, True, "no health path configured", warning=True)
        found = self.found()
        health = found.health
        if not found.answered:
            return unanswered(name, RemoteError(found.why), "the service is down or unreachable")
        if health is None and not found.definite:  # a 5xx: the service answers, with an error
            return Item(name, False, found.why, "the service fails: look at its logs")
        if health is None:  # it answers, but not the health contract: the base level
            return Item(name, True, f"not verified at the base level: {found.why}")
        redis_state = "ok" if health.redis_ok else "DOWN"
        seen = (
            f"env {health.env}, commit {(health.commit or '?')[:7]}, prefix {health.key_prefix!r}, Redis {redis_state}"
        )
        if not health.redis_ok:
            return Item(name, False, seen, "the bot cannot reach its Redis: look at the Key Value instance")
        if health.env != self.env.name or health.key_prefix != self.env.key_prefix:
            return Item(
                name,
                False,
                seen,
                "the service runs another environment's settings: check ENV and KEY_PREFIX",
            )
        return Item(name, True, seen)

    def webhook(self) -> Item:
        name = self.name("the webhook is ours and delivering")
        if not self.token:
            return Item(name, None, "no TELEGRAM_BOT_TOKEN", "export it")
        try:
            with self.ctx.telegram(self.token, budget=BUDGET) as telegram:
                info = telegram.webhook_info()
        except TelegramError as exc:
            return Item(name, False, f"getWebhookInfo: {exc.code} {exc.description}", "check the token")
        except RemoteError as exc:
            return unanswered(name, exc, TELEGRAM_DOWN)
        if not self.env.owns_webhook(info.url):
            return Item(
                name,
                False,
                f"set to {info.url or 'nothing'}",
                f"the webhook must be on {self.env.base_url} (any path): redeploy",
            )
        seen = f"{info.pending_update_count} pending"
        if info.last_error_date:
            seen += f"; last error {ago(info.last_error_date, self.now)}: {info.last_error_message}"
            when = datetime.fromtimestamp(info.last_error_date, UTC)
            if self.now - when < RECENT_ERROR:
                return Item(name, False, seen, "Telegram cannot deliver updates: look at the service's logs")
        return Item(name, True, seen)

    def allow_list(self) -> Item:
        name = self.name("the Key Value is private")
        if not self.api_key:
            return Item(name, None, "no RENDER_API_KEY", "export it to read the allow list")
        try:
            with self._render() as api:
                kv = api.find_key_value(self.env.key_value)
        except FatalError as exc:
            return Item(name, False, exc.message, exc.hint or "", remote=isinstance(exc, RemoteError))
        entries = list(kv.get("ipAllowList") or [])
        if not entries:
            return Item(name, True, f"{self.env.key_value}: allow list empty")
        shown = ", ".join(f"{e.get('cidrBlock')} ({e.get('description') or 'no note'})" for e in entries)
        return Item(
            name,
            True,
            f"{self.env.key_value} admits {shown}",
            "an entry a cancelled run left is closed by the watch after an hour (ci-tools keyvalue sweep)",
            warning=True,
        )

    def blueprint(self) -> Item:
        name = self.name("Blueprint auto-sync")
        if not self.api_key:
            return Item(name, None, "no RENDER_API_KEY", "export it to read the Blueprints")
        with self._render() as api:
            syncing, line = blueprint_sync.describe(api, self.env.branch)
        return Item(name, syncing is not None, line, "", warning=bool(syncing), remote=syncing is None)

    def hold(self) -> Item:
        """Are production's releases held (hold.yml)? Said as a warning: a person chose it."""
        name = self.name("releases")
        token, repo = self.ctx.github_token(), self.ctx.runner.repository
        if not token or not repo:
            return Item(
                name,
                True,
                "not checked: no GITHUB_TOKEN and GITHUB_REPOSITORY",
                "export both to see a hold",
                warning=True,
            )
        try:
            with self.ctx.github(token, repo, budget=BUDGET) as api:
                hold = Hold.decode(read_hold(api))
        except FatalError as exc:
            return Item(name, False, exc.message, exc.hint or "", remote=isinstance(exc, RemoteError))
        if hold is None:
            return Item(name, True, "not held")
        return Item(name, True, hold.line(), LIFT, warning=True)

    def rollback_window(self) -> Item:
        name = self.name("the rollback window")
        if not self.api_key or not self.service_id:
            return Item(name, None, "no RENDER_API_KEY or RENDER_SERVICE_ID", "export both")
        try:
            with self._render() as api:
                window = read_window(api, self.config)
        except FatalError as exc:
            return Item(name, False, exc.message, exc.hint or "", remote=isinstance(exc, RemoteError))
        previous, ends, finished = window.previous, window.ends, window.finished
        if finished and not previous:
            return Item(name, True, f"rollback window closed on {finished}")
        if not previous or ends is None:
            return Item(name, True, "no old bot kept (no cutover yet)")
        state = "open" if ends > self.now else "over: finish the plan"
        return Item(name, True, f"{previous.split()[0]} kept until {ends:%Y-%m-%d} ({state})")


def status(ctx: Context, names: list[str], now: datetime | None = None) -> tuple[list[Item], dict[str, str]]:
    """Every check of every named environment, at once, in a stable order; and what is live."""
    moment = now or datetime.now(UTC)
    config = ctx.config
    envs = [config.env(n) for n in names] or list(config.environments.values())
    looks = [EnvStatus(ctx, env, len(envs) == 1, moment) for env in envs]
    checks = [c for look in looks for c in look.checks()]
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        items = list(pool.map(lambda check: check(), checks))
    return items, {look.env.name: look.live_commit for look in looks if look.live_commit}


def stale_entry(description: str, now: datetime, older_than: timedelta) -> bool:
    """Is this allow-list entry one of ours (keyvalue open's note) and older than ``older_than``?"""
    match = OURS.match(description or "")
    if not match:
        return False
    try:
        at = datetime.fromisoformat(match["at"].replace("Z", "+00:00"))
    except ValueError:
        return False
    return now - at > older_than
