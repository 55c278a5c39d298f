"""``ci-tools history``: the releases and rollbacks of an environment, from Render's deploy list.

Beside the releases: the moments a user said something was off (the bot kit's ``/oops``, read
from the health answer's ``reports.oops``), each with the commit that was live, so "the daily
user said so at 14:02, ten minutes after abc1234 went live" reads off one table.

A rollback deploy carries the commit it went back to; it is linked to the newest earlier
deploy of that commit that went live, so "rollback → dep-…" reads as what happened. So is a
rollback's rebuild (Render no longer kept the build, so the commit was deployed again: trigger
``api``), where release order lets ``release_order.rebuilds`` tell it apart; its trigger reads
"rebuild", and the deploy it replaced is thereby rejected, as after any rollback.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ci_tools.clients.render import Deploy, RenderAPI
from ci_tools.pipeline.release_order import WENT_LIVE, rebuilds
from ci_tools.pipeline.status import subject

TRIGGERS = {"api": "api", "deploy_hook": "deploy hook", "rollback": "rollback"}


@dataclass(frozen=True)
class Release:
    deploy: str
    commit: str
    subject: str
    trigger: str
    status: str
    started: str
    seconds: float | None
    back_to: str | None  # a rollback: the deploy it went back to

    def row(self) -> list[str]:
        went_back = "rollback (rebuild)" if self.trigger == "rebuild" else "rollback"
        trigger = f"{went_back} → {self.back_to}" if self.back_to else self.trigger
        took = "-" if self.seconds is None else f"{self.seconds:.0f}s"
        return [self.deploy, f"{self.commit[:7]} {self.subject}".strip(), trigger, self.status, self.started, took]


def _time(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


def history(api: RenderAPI, limit: int, root: Path, *, ordered: bool = False) -> list[Release]:
    """The newest ``limit`` deploys, following Render's cursors page by page.

    ``ordered``: the environment keeps release order, so a rollback's rebuild can be recognised.
    """
    page = max(1, min(100, limit))
    deploys: list[Deploy] = list(
        itertools.islice(api.deploys(page_size=page, max_pages=math.ceil(limit / page)), limit)
    )
    rebuilt = rebuilds(deploys, ordered=ordered)
    subjects: dict[str, str] = {}
    releases = []
    for index, deploy in enumerate(deploys):
        commit = deploy.commit or "?"
        if commit not in subjects:
            subjects[commit] = subject(commit, root) if deploy.commit else ""
        back_to = None
        if deploy.trigger == "rollback" or deploy.id in rebuilt:
            back_to = next(
                (d.id for d in deploys[index + 1 :] if d.commit == deploy.commit and d.status in WENT_LIVE),
                "an older deploy",
            )
        started, finished = _time(deploy.created_at), _time(deploy.finished_at)
        releases.append(
            Release(
                deploy.id,
                commit,
                subjects[commit],
                "rebuild" if deploy.id in rebuilt else TRIGGERS.get(str(deploy.trigger), "other"),
                deploy.status,
                started.strftime("%Y-%m-%d %H:%M") if started else "?",
                (finished - started).total_seconds() if started and finished else None,
                back_to,
            )
        )
    return releases


def said_off(moments: tuple[tuple[float, str | None], ...], root: Path) -> list[Release]:
    """The /oops moments as rows of the same table: no deploy, the commit that was live."""
    rows = []
    for at, commit in moments:
        try:
            when = datetime.fromtimestamp(at, UTC)
        except (ValueError, OverflowError, OSError):
            continue  # not a time (NaN, an infinity, past year 9999): no moment to show, and no traceback
        rows.append(
            Release(
                "-",
                commit or "?",
                subject(commit, root) if commit else "",
                "a user said something is off",
                "reported",
                when.strftime("%Y-%m-%d %H:%M"),
                None,
                None,
            )
        )
    return rows


def interleaved(releases: list[Release], moments: list[Release]) -> list[Release]:
    """Both, newest first (the table's order), by the minute each started or was said."""
    return sorted([*releases, *moments], key=lambda r: r.started if r.started != "?" else "", reverse=True)
