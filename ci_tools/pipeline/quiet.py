"""A quiet moment: production's deploy waits while the daily user is mid-conversation.

A deploy's overlap and switch can fall between a question and its answer. For a one-person bot
the kindest release is one that waits for its user to pause: before production's deploy (after
the replay), the bot's ``/healthz`` is asked when it last handled an update
(``updates.last_handled_at``, a time, never a user or a word). While that was less than
``quiet_seconds`` ago, the release waits — re-asking, since a conversation goes on — for at most
``quiet_wait_minutes``, then goes ahead and says it did. A hotfix skips the wait.

The gap is measured on the bot's own clock: the health answer's HTTP ``Date`` header (RFC 9110
§6.6.1, which every server sends) minus ``last_handled_at``, so a runner whose clock is off does
not make a conversation look older or newer than it is.

A bot below the health level (no health endpoint, or one without ``last_handled_at``) cannot be
asked: there is no wait, and the run says why. Nor can one whose time is not a time (NaN, an
infinity, a moment after its own answer's Date): waiting the full ``quiet_wait_minutes`` on a broken
clock helps nobody, so it reads as "cannot say" and the release goes ahead at once, saying why. A
health answer that is a server's failure (a 5xx, say Render's 502 while an instance restarts) says
so, not "base level"; one that fails after the bot was seen busy ends the wait saying how long ago
that update was when last seen.

A bot that restarted has handled nothing (``last_handled_at`` null), yet the user may have written
seconds before the restart. When it says when it started (``updates.started_at``, the kit gives it),
a start less than ``quiet_seconds`` ago counts as the last update: the wait runs until
``quiet_seconds`` past the start, bounded as any wait. Without ``started_at`` nothing handled reads
as quiet, as before.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ci_tools.clients.health import Health, NotTheContract, Unreachable
from ci_tools.settings import Environment


@dataclass(frozen=True)
class Quiet:
    """What the wait came to: ``waited`` seconds, and the line the run says."""

    waited: float
    went_ahead_busy: bool  # the wait ran out while the bot was still in a conversation
    detail: str


@dataclass(frozen=True)
class Gap:
    """How long the bot has been quiet, on its own clock. ``idle`` None: it cannot say, and
    ``why`` is the run's line. ``since_start``: nothing handled yet, and ``idle`` counts from the
    instance's start (a restart may have cut a conversation: the user may have written seconds
    before it)."""

    idle: float | None
    why: str = ""
    since_start: bool = False


# The HTTP Date header is whole seconds (RFC 9110 §5.6.7), so an update handled in the second the
# answer was served may read as up to a second "after" it: later than that is a clock gone wrong.
DATE_RESOLUTION = 1.0


def _moment(value: float | None, served_at: float, field: str, clock: str) -> tuple[float | None, str]:
    """``value`` as a time the bot can have recorded, or (None, why it cannot be one)."""
    if value is None:
        return None, ""
    if not math.isfinite(value):
        return None, f"no wait: the live bot's updates.{field} is not a time ({value!r}), so it cannot say"
    if value > served_at + DATE_RESOLUTION:
        return None, (
            f"no wait: the live bot's updates.{field} is {value - served_at:.0f} s in the future on {clock}, "
            "so it cannot say"
        )
    return value, ""


def quiet_gap(health: Health, now: float) -> Gap:
    """Seconds since the bot last handled an update (or, having handled none, since it started
    when it says so), on its own clock; ``inf`` when it handled none and gives no start."""
    updates = health.updates
    if updates is None or not updates.reports_last_handled:
        return Gap(
            None,
            "no wait: the live bot does not say when it last handled an update "
            "(the health contract's updates.last_handled_at; the bot kit gives it)",
        )
    served_at = health.served_at if health.served_at is not None else now
    # No Date header (RFC 9110 requires one of a server with a clock, but a server can be told not to
    # send it): the runner's clock stands in, and the run says whose clock found a time impossible.
    clock = "its own clock" if health.served_at is not None else "the runner's clock (its answer had no Date header)"
    last, why = _moment(updates.last_handled_at, served_at, "last_handled_at", clock)
    if why:
        return Gap(None, why)
    if last is not None:
        return Gap(max(0.0, served_at - last))
    started, why = _moment(updates.started_at, served_at, "started_at", clock)
    if why:
        return Gap(None, why)
    if started is None:  # a bot that gives no start: nothing handled reads as quiet, as before
        return Gap(float("inf"))
    return Gap(max(0.0, served_at - started), since_start=True)


def wait_for_quiet(
    env: Environment,
    look: Callable[[], Health],
    *,
    hotfix: bool = False,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    on_status: Callable[[str], None] = lambda line: None,
) -> Quiet:
    """Wait until the bot has handled nothing for ``env.quiet_seconds``, at most
    ``env.quiet_wait_minutes``; ``look`` reads its health (raising Unreachable / NotTheContract)."""
    if hotfix:
        return Quiet(0.0, False, "hotfix: released without waiting for a quiet moment")
    if env.quiet_seconds <= 0:
        return Quiet(0.0, False, f"no wait: quiet_seconds is 0 for {env.name}")
    started = clock()
    deadline = started + env.quiet_wait_minutes * 60
    seen: tuple[float, float] | None = None  # the last busy reading: (the runner's time then, its idle)
    while True:
        try:
            health = look()
        except (Unreachable, NotTheContract) as exc:
            if seen is None:
                return Quiet(clock() - started, False, _unanswered(exc))
            # It answered busy before this pause: the run says how long ago that update was, not
            # that the bot has no health endpoint after minutes of waiting for it.
            now = clock()
            idle, waited = seen[1] + (now - seen[0]), now - started
            return Quiet(
                waited,
                idle < env.quiet_seconds,
                f"went ahead after waiting {waited:.0f} s: the bot's last update was {idle:.0f} s ago when "
                f"last seen, and its health stopped answering since ({_what(exc)})",
            )
        now = clock()
        gap = quiet_gap(health, now)
        waited = now - started
        if gap.idle is None:
            return Quiet(waited, False, gap.why)
        idle = gap.idle
        said = _said(gap)
        if idle >= env.quiet_seconds:
            return Quiet(waited, False, f"quiet ({said}) after waiting {waited:.0f} s")
        if now >= deadline:
            return Quiet(
                waited,
                True,
                f"went ahead after waiting {waited / 60:.0f} min: the bot was still in a conversation "
                f"({said}; quiet_wait_minutes is {env.quiet_wait_minutes:g})",
            )
        seen = (now, idle)
        pause = min(env.quiet_seconds - idle, deadline - now)
        if gap.since_start:
            on_status(
                f"the bot started {idle:.0f} s ago and has handled nothing since: the daily user may be "
                f"mid-conversation, waiting {pause:.0f} s for a quiet moment"
            )
        else:
            on_status(f"the bot handled an update {idle:.0f} s ago: waiting {pause:.0f} s for a quiet moment")
        sleep(max(pause, 0.05))


def _what(exc: Unreachable | NotTheContract) -> str:
    if isinstance(exc, Unreachable):
        return exc.kind
    return f"HTTP {exc.http_status}" if exc.http_status is not None else str(exc)


def _unanswered(exc: Unreachable | NotTheContract) -> str:
    """Why there is no wait when the first look gets no health answer."""
    if isinstance(exc, Unreachable):
        return f"no wait: the live bot's health did not answer ({exc.kind})"
    if exc.http_status is not None and exc.http_status >= 500:  # a failing server, not a missing endpoint
        return f"no wait: the live bot's health answered HTTP {exc.http_status}, so it cannot say"
    if exc.http_status is not None and 200 <= exc.http_status < 300 and not str(exc).startswith("HTTP "):
        # JSON that is not the contract (a field of another type, say): the endpoint is there, and
        # the owner is told what in it is wrong rather than sent looking for an endpoint.
        return f"no wait: the live bot's health answer is not the health contract ({exc}), so it cannot say"
    return "no wait: the live bot has no health endpoint (base level)"


def _said(gap: Gap) -> str:
    idle = gap.idle
    if idle == float("inf"):
        return "nothing handled since it started"
    if gap.since_start:
        return f"started {idle:.0f} s ago, nothing handled since"
    return f"last update {idle:.0f} s ago"
