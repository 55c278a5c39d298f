"""Is the safety net there? Two checklist items for preflight and acceptance.

1. Production's Key Value keeps its data across a restart: a paid plan, persistence not Off
   (Render's free plan keeps nothing; ``render.yaml`` asks for ``starter``, but an instance
   made by hand may differ). Read from Render's API.
2. A recent snapshot of production's memory exists: the newest ``memory-before-<sha>`` or
   ``memory-nightly-<date>`` artifact and its age, read from GitHub's API. Older than two
   days is a warning: the nightly backup has stopped (GitHub pauses schedules in a repository
   without activity for 60 days).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ci_tools.checklist import Item
from ci_tools.clients.render import monotonic_deadline
from ci_tools.context import Context
from ci_tools.errors import FatalError, RemoteError

SNAPSHOT_PREFIXES = ("memory-before-", "memory-nightly-")
STALE = timedelta(days=2)


def durability(ctx: Context, *, budget: float = 30) -> Item:
    config = ctx.config
    env = config.env(config.memory_backup.environment)
    name = f"{env.name}'s Key Value keeps its data across a restart"
    api_key = ctx.optional("RENDER_API_KEY")
    if not api_key:
        return Item(name, None, "RENDER_API_KEY not set", "export it to read the plan and persistence")
    try:
        with ctx.render(api_key, deadline=monotonic_deadline(budget), timeout=min(budget, 30)) as api:
            kv = api.find_key_value(env.key_value)
    except FatalError as exc:
        return Item(name, False, exc.message, exc.hint or "", remote=isinstance(exc, RemoteError))
    plan = str(kv.get("plan"))
    mode = (kv.get("options") or {}).get("persistenceMode")
    seen = f"{env.key_value}: plan {plan}, persistence {mode or 'not reported'}"
    if plan == "free":
        return Item(
            name,
            False,
            seen,
            f"the free plan keeps nothing across a restart: move {env.key_value} "
            "to starter or above (render.yaml asks for starter)",
        )
    if mode == "off":
        return Item(
            name,
            False,
            seen,
            "persistence Off keeps nothing across a restart: set it to Journal + "
            "Snapshot in the dashboard (switching from Off restarts it empty: snapshot first)",
        )
    return Item(name, True, seen)


def last_snapshot(ctx: Context, now: datetime | None = None, *, budget: float | None = None) -> Item:
    env = ctx.config.memory_backup.environment
    name = f"a recent snapshot of {env}'s memory is kept"
    token, repo = ctx.github_token(), ctx.runner.repository
    if not token or not repo:
        return Item(
            name,
            True,
            "not checked: no GITHUB_TOKEN and GITHUB_REPOSITORY",
            "export both to see the last snapshot's age",
            warning=True,
        )
    try:
        with ctx.github(token, repo, budget=budget) as api:
            kept = [a for a in api.artifacts() if a["name"].startswith(SNAPSHOT_PREFIXES) and not a["expired"]]
    except FatalError as exc:
        return Item(name, False, exc.message, exc.hint or "", remote=isinstance(exc, RemoteError))
    if not kept:
        return Item(
            name,
            False,
            "no memory-before-<sha> or memory-nightly-<date> artifact",
            "run backup.yml now (Actions → backup → Run workflow from main); releases take one too",
        )
    newest = max(kept, key=lambda a: str(a["created_at"]))
    taken = datetime.fromisoformat(str(newest["created_at"]).replace("Z", "+00:00"))
    age = (now or datetime.now(UTC)) - taken
    hours = age.total_seconds() / 3600
    seen = f"{newest['name']}, {hours:.0f} h old" if hours < 48 else f"{newest['name']}, {age.days} days old"
    if age > STALE:
        return Item(
            name,
            True,
            seen,
            "the nightly backup has not run: check scheduler.yml, which dispatches it on main (GitHub "
            "pauses schedules after 60 days without repository activity)",
            warning=True,
        )
    return Item(name, True, seen)
