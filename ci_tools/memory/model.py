"""A memory write's words and its outcome: what a plan may decide for a key, the policies a person
chooses, one plan item per key, and the outcome every command reports.

The words are ``StrEnum``s: they print and serialise as people read them in the tables, the flags
and the ``--json`` documents, while the type checker holds every comparison to a known value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import redis

CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)


class Action(StrEnum):
    """What the plan does with one key."""

    CREATE = "create"  # absent on the target: written
    IDENTICAL = "identical"  # the target already holds the same: left alone, verified
    CONFLICT = "conflict"  # the target holds other data and the policy is fail: nothing is written
    REPLACE = "replace"  # the target holds other data and the policy is replace: overwritten
    SKIP = "skip"  # the target holds other data and the policy is skip: left alone
    EXPIRED = "expired"  # its TTL ran out while it was read: not resurrected
    VANISHED = "vanished"  # deleted at the source while it was read


WRITES = frozenset({Action.CREATE, Action.REPLACE})


class Conflict(StrEnum):
    """``--on-conflict``: what to do with a target key that already holds other data."""

    FAIL = "fail"
    SKIP = "skip"
    REPLACE = "replace"


class Stage(StrEnum):
    """``--stage``: a write in one step, or in two, so the backup leaves the runner before it.

    ``plan`` writes the snapshot and the backup (with every key's guard and the plan) and nothing
    to the target; a workflow uploads them; ``write`` then writes from exactly that plan and those
    guards. A runner lost in the write still leaves the undo in the run's artifact.
    """

    ALL = "all"
    PLAN = "plan"
    WRITE = "write"


class Uncovered(StrEnum):
    """Keys that name the user but match no memory pattern: an apply refuses them unless told."""

    REFUSE = "refuse"
    INCLUDE = "include"
    IGNORE = "ignore"


@dataclass(slots=True)  # one per key: the only part of a copy that grows with N
class PlanItem:
    source_key: bytes
    target_key: bytes
    type: str
    size: int
    ttl_ms: int | None
    action: Action
    reason: str = ""
    guard: str = ""  # the target key's fingerprint when backed up ('' = absent): writes check it

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_key": show(self.source_key),
            "target_key": show(self.target_key),
            "type": self.type,
            "size": self.size,
            "ttl_ms": self.ttl_ms,
            "action": str(self.action),
            "reason": self.reason,
        }


@dataclass
class Outcome:
    plan: list[PlanItem]
    applied: bool
    snapshot: Path | None = None
    backup: Path | None = None
    written: list[bytes] = field(default_factory=list)
    expired: list[bytes] = field(default_factory=list)
    changed: list[bytes] = field(default_factory=list)  # changed since the backup: left alone
    verified: int = 0
    fallback: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    uncovered: list[bytes] = field(default_factory=list)  # the user's keys no pattern covers, left
    uncovered_policy: Uncovered = Uncovered.REFUSE
    stage: Stage = Stage.ALL
    warnings: list[str] = field(default_factory=list)  # ⚠ lines the report must show (one each)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.plan:
            counts[str(item.action)] = counts.get(str(item.action), 0) + 1
        return counts


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def show(key: bytes) -> str:
    return key.decode(errors="backslashreplace")
