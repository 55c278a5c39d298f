"""After the probe: the bake window, where the new release meets the daily user.

The probe speaks as the probe user with ``/start``, ``/remember`` and ``/recall``. A release
that breaks something else the user does — a plain message, a photo, an edited message —
passes it, and the bot answers 200 for a handler's exception (a retry would fail the same
way), so neither Telegram's ``last_error`` nor ``/healthz``'s status shows anything. For
``bake_minutes`` (production: 10) the pipeline therefore watches the new commit's own signals
every ``bake_interval_seconds``:

- ``/healthz``'s ``updates``: the updates a handler of *this instance* failed on (it started
  with this commit, so every count is the new commit's);
- Telegram's ``getWebhookInfo``: a delivery error after the deploy, pending updates growing;
- the read-only conversation probe.

A failure of the new commit rolls it back exactly as a failed probe does (the caller's rule).
No traffic is inconclusive, not a failure (Kayenta's NODATA): the release passes with a note.
A newer release ends the window early: it is that release's window now.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ci_tools.clients.health import Health, NotTheContract, Unreachable, Updates, health_of
from ci_tools.clients.telegram import TelegramError
from ci_tools.context import Context
from ci_tools.errors import RemoteError
from ci_tools.pipeline.probe import Probe, failures, run_probe
from ci_tools.settings import Environment

Status = Callable[[str], None]
UNANSWERED_LOOKS = 3  # /healthz not answering this many looks in a row is a failure, not a blip
GROWING_LOOKS = 3  # pending updates rising over this many looks: Telegram holds what the bot refuses


@dataclass(frozen=True)
class BakeResult:
    passed: bool
    detail: str  # what failed and when; or what was seen
    handled: int = 0  # user updates the new instance handled during the window
    ended_early: bool = False


@dataclass
class BakeWatch:
    """One release's window: what it has seen so far."""

    ctx: Context
    env: Environment
    commit: str
    token: str
    since: float  # epoch seconds the deploy went live: delivery errors before it are history
    webhook_secret: str | None
    unanswered: int = 0
    pending: tuple[int, ...] = ()
    first: Updates | None = None
    last: Updates | None = None
    uncounted_said: bool = False

    def look(self, on_status: Status) -> str | None:
        """One look; what failed (None: nothing did). Raises ``Newer`` when another commit serves."""
        for check in (self._health, self._webhook, self._conversation):
            failed = check(on_status)
            if failed:
                return failed
        return None

    def _health(self, on_status: Status) -> str | None:
        if self.env.health_url is None:
            return None
        try:
            health = health_of(self.env.health_url, self.ctx.request_timeout(10))
        except (Unreachable, NotTheContract) as exc:
            self.unanswered += 1
            if self.unanswered >= UNANSWERED_LOOKS:
                return f"{self.env.health_path} did not answer {self.unanswered} looks in a row ({exc})"
            return None
        self.unanswered = 0
        if health.commit and health.commit != self.commit:
            raise Newer(f"{health.commit[:12]} serves now")
        return self._counts(health, on_status)

    def _counts(self, health: Health, on_status: Status) -> str | None:
        if health.updates is None:
            if not self.uncounted_said:
                on_status("⚠ the bot's /healthz has no update counts: a handler's failure cannot be seen (README)")
                self.uncounted_said = True
            return None
        self.first = self.first or health.updates
        self.last = health.updates
        if health.updates.failed:
            return (
                f"{health.updates.failed} of {health.updates.handled} update(s) failed in a handler of "
                f"{self.commit[:12]} (last: {health.updates.last()})"
            )
        return None

    def _webhook(self, on_status: Status) -> str | None:
        try:
            with self.ctx.telegram(self.token, budget=self.ctx.request_timeout(10)) as telegram:
                info = telegram.webhook_info()
        except (TelegramError, RemoteError) as exc:
            on_status(f"getWebhookInfo did not answer this look ({exc.message})")
            return None
        if info.last_error_date and info.last_error_date >= self.since:
            return f"Telegram's delivery to it failed after the deploy: {info.last_error_message}"
        self.pending = (*self.pending, info.pending_update_count)[-GROWING_LOOKS:]
        rising = all(a < b for a, b in zip(self.pending, self.pending[1:], strict=False))
        if len(self.pending) == GROWING_LOOKS and rising:
            return f"Telegram is holding more and more updates ({' → '.join(map(str, self.pending))})"
        return None

    def _conversation(self, on_status: Status) -> str | None:
        probe = Probe(
            self.ctx,
            self.env,
            self.commit,
            self.token,
            since=self.since,
            deadline=max(5.0, self.env.bake_interval_seconds),
            webhook_secret=self.webhook_secret,
        )
        failed = [c for c in failures(run_probe(probe, only=["conversation"])) if c.definite]
        if failed:
            return f"the conversation probe failed: {failed[0].cause or failed[0].detail}"
        return None

    def handled(self) -> int:
        if self.last is None:
            return 0
        return self.last.handled


class Newer(Exception):
    """Another release serves now: the window is its own."""


def bake(
    ctx: Context,
    env: Environment,
    commit: str,
    token: str,
    since: float,
    *,
    webhook_secret: str | None,
    newer: Callable[[], str | None] = lambda: None,
    on_status: Status = lambda line: None,
) -> BakeResult:
    """Watch ``commit`` for ``env.bake_minutes``; the verdict, with what failed and when."""
    minutes, interval = env.bake_minutes, env.bake_interval_seconds
    watch = BakeWatch(ctx, env, commit, token, since, webhook_secret)
    started = time.monotonic()
    end = started + minutes * 60
    on_status(f"baking {commit[:12]} for {minutes:g} min, a look every {interval:g} s")
    while (now := time.monotonic()) < end:
        time.sleep(min(interval, end - now))
        elapsed = time.monotonic() - started
        started_by = newer()
        if started_by:
            return BakeResult(True, f"ended after {elapsed:.0f} s: {started_by}", watch.handled(), ended_early=True)
        try:
            failed = watch.look(on_status)
        except Newer as other:
            return BakeResult(True, f"ended after {elapsed:.0f} s: {other}", watch.handled(), ended_early=True)
        if failed:
            return BakeResult(False, f"{failed}, {elapsed:.0f} s into the bake", watch.handled())
    handled = watch.handled()
    if handled == 0:
        note = f"no user traffic during the bake: 0 updates in {minutes:g} min (inconclusive, not a failure)"
    else:
        note = f"{handled} user update(s) handled in {minutes:g} min, none failed"
    return BakeResult(True, note, handled)
