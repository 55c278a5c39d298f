"""What a memory write produces: one plan item per key, and the outcome every command reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from ci_tools.memory.choices import Action, Stage, Uncovered

CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)


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
            "source_key": self.source_key.decode(errors="backslashreplace"),
            "target_key": self.target_key.decode(errors="backslashreplace"),
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
