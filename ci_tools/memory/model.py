"""A memory write's words (``StrEnum``s: they print as people read them in tables, flags and
``--json``, and the type checker holds every comparison to a known value), its plan and its outcome."""

from __future__ import annotations

from collections import Counter
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
    """``--stage``: a write in two steps, so the backup leaves the runner before it: ``plan`` writes
    the snapshot and backup (with the plan and every guard) and a workflow uploads them; ``write``
    writes from exactly those. A runner lost in the write still leaves the undo in the artifact."""

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
        shown = {"source_key": show(self.source_key), "target_key": show(self.target_key), "action": str(self.action)}
        names = ("source_key", "target_key", "type", "size", "ttl_ms", "action", "reason")
        return {name: shown.get(name, getattr(self, name)) for name in names}


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
        return dict(Counter(str(item.action) for item in self.plan))


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def show(key: bytes) -> str:
    return key.decode(errors="backslashreplace")


def target_header(user_id: Any, env: str, prefix: str, server: str, server_id: str) -> dict[str, Any]:
    """Where a backup was taken: what an undo matches before it writes anything."""
    return {"user_id": user_id, "env": env, "prefix": prefix, "server": server, "server_id": server_id}
