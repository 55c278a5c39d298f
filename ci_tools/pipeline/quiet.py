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
asked: there is no wait, and the run says why.
"""

from __future__ import annotations

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


def idle_seconds(health: Health, now: float) -> float | None:
    """Seconds since the bot last handled an update, on its own clock; None: it cannot say.
    ``inf`` when it has handled none since it started."""
    updates = health.updates
    if updates is None or not updates.reports_last_handled:
        return None
    if updates.last_handled_at is None:
        return float("inf")
    served_at = health.served_at if health.served_at is not None else now
    return max(0.0, served_at - updates.last_handled_at)


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
    while True:
        try:
            health = look()
        except Unreachable as exc:
            return Quiet(clock() - started, False, f"no wait: the live bot's health did not answer ({exc.kind})")
        except NotTheContract:
            return Quiet(clock() - started, False, "no wait: the live bot has no health endpoint (base level)")
        now = clock()
        idle = idle_seconds(health, now)
        if idle is None:
            return Quiet(
                now - started,
                False,
                "no wait: the live bot does not say when it last handled an update "
                "(the health contract's updates.last_handled_at; the bot kit gives it)",
            )
        waited = now - started
        if idle >= env.quiet_seconds:
            said = "nothing handled since it started" if idle == float("inf") else f"last update {idle:.0f} s ago"
            return Quiet(waited, False, f"quiet ({said}) after waiting {waited:.0f} s")
        if now >= deadline:
            return Quiet(
                waited,
                True,
                f"went ahead after waiting {waited / 60:.0f} min: the bot was still in a conversation "
                f"(last update {idle:.0f} s ago; quiet_wait_minutes is {env.quiet_wait_minutes:g})",
            )
        pause = min(env.quiet_seconds - idle, deadline - now)
        on_status(f"the bot handled an update {idle:.0f} s ago: waiting {pause:.0f} s for a quiet moment")
        sleep(max(pause, 0.05))
