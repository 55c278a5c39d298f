"""From when a release answers for what Telegram reports: the moment the new commit serves.

Render's zero-downtime deploy keeps the old instance serving while the new one builds and boots
(``build_in_progress``, ``update_in_progress``), and switches the public URL only once the new one
passes its health check (render.com/docs/deploys#zero-downtime-deploys). A delivery error Telegram
records in that overlap (``getWebhookInfo.last_error_date``) is the old instance's, and must not
roll the new one back. So the probe and the bake count Telegram's errors only from ``since``, the
latest of what the pipeline can observe:

- the moment the deploy went ``live`` (Render's ``finishedAt``, on Render's clock);
- the moment the pipeline saw it ``live`` (the runner's clock);
- at the health level, the moment the public URL's ``/healthz`` first reported the new commit
  and the environment's bot (the runner's clock; the URL has switched by then). The bot is part
  of it for the cutover, which redeploys the same commit with another bot's token. A bot that
  answers the health path with a 4xx (it has none: the base level) has nothing more to say, and
  Render's word stands at once rather than after the wait.

Clocks: ``last_error_date`` is whole epoch seconds on Telegram's clock, truncated (an error at
100.9 s reads 100). An error counts when ``last_error_date >= since``: it then happened at or after
``since``. No slack is allowed for clock skew, as any slack re-admits the old instance's errors.
What that can miss — an error of the new commit in the same second as ``since``, or within the
skew between Telegram's clock and the runner's (NTP keeps both well under a second) — is seen at
its next delivery, as a failing commit keeps failing. A request the old instance still had in
flight at the switch (Render lets it finish during its shutdown delay) and failed after the
pipeline saw the new commit would count against the new one: the window is milliseconds wide.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from ci_tools.clients.health import NotTheContract, Unreachable, health_of
from ci_tools.context import Context
from ci_tools.settings import Environment

POLL = 0.5  # seconds between looks at /healthz while the URL switches


def epoch(stamp: str | None) -> float | None:
    """Render's ISO 8601 time (``finishedAt``) as epoch seconds; None when absent or unreadable."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def serving_since(
    ctx: Context,
    env: Environment,
    commit: str,
    *,
    live_at: float,
    within: float,
    on_status: Callable[[str], None] = lambda line: None,
) -> float:
    """Epoch seconds from which ``commit`` serves ``env``: ``live_at`` (the later of Render's
    ``finishedAt`` and the moment the pipeline saw ``live``), or later, once ``/healthz`` reports
    the commit and the environment's bot. Waits up to ``within`` seconds for that; if it never
    comes, the moment it gave up (the probe's health check then says what serves instead)."""
    if env.health_url is None:  # the base level: Render's word is all there is
        return live_at
    stop = time.monotonic() + within
    while True:
        try:
            health = health_of(env.health_url, ctx.request_timeout(10))
            if health.commit == commit and health.runs_bot(env.bot_username):
                return max(live_at, time.time())
        except NotTheContract as exc:
            if exc.http_status is not None and exc.http_status < 500:  # no health endpoint: the base level
                return live_at
        except Unreachable:
            pass
        if time.monotonic() >= stop:
            on_status(
                f"{env.health_path} did not report {commit[:12]} in {within:g} s: "
                "Telegram's errors count from now, and the probe judges what serves"
            )
            return max(live_at, time.time())
        time.sleep(min(POLL, max(0.0, stop - time.monotonic())))
