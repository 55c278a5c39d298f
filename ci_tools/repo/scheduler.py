"""Scheduled production work runs ``main``'s code: which workflow a schedule starts, and on which ref.

A schedule runs on the default branch (``develop``: code no reviewer of production saw), so no
scheduled job may hold production's secrets. ``scheduler.yml`` runs on the crons instead, with
nothing but ``GITHUB_TOKEN`` (``actions: write``), and dispatches ``backup.yml`` and ``watch.yml``
on the cutover target's branch: GitHub runs a dispatched workflow from the file at the ref it
names (REST "Create a workflow dispatch event"), in ``production-scheduled``, which admits
``main`` alone. Each cron is the config's (``nightly_at``, ``interval_minutes``); a test keeps
``scheduler.yml``'s crons equal to them.
"""

from __future__ import annotations

from ci_tools.errors import InputError
from ci_tools.settings import Config

SCHEDULER = "scheduler.yml"


def scheduled_workflows(config: Config) -> dict[str, str]:
    """Each workflow the scheduler dispatches, with the cron it runs on."""
    return {"backup.yml": config.memory_backup.cron(), "watch.yml": config.watch.cron()}


def due(config: Config, cron: str) -> list[str]:
    """The workflows a schedule that fired on ``cron`` (``github.event.schedule``) starts."""
    found = [workflow for workflow, at in scheduled_workflows(config).items() if at == cron.strip()]
    if not found:
        crons = ", ".join(f"{at!r} ({workflow})" for workflow, at in scheduled_workflows(config).items())
        raise InputError(
            f"the schedule {cron.strip()!r} starts none of the scheduled workflows",
            hint=f"{SCHEDULER}'s crons must be the config's: {crons}",
        )
    return found


def dispatch_ref(config: Config) -> str:
    """The ref scheduled production work runs on: the cutover target's branch (reviewed code)."""
    return config.role("cutover_target").branch
