"""Pass 1 of a memory write: compare every record with the target, decide its action, and back
up every target key the write will touch — before anything is written.

Each backed-up key gets its guard (``writer.fingerprint``), read in the same atomic call as
its backup, so a write can check that the key still holds exactly what was backed up. The
backup ends with the digest of what the write puts in each key (``after``), so an undo can
tell a key the copy wrote from one the user changed since.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import redis

from ci_tools.memory.choices import WRITES, Action, Conflict
from ci_tools.memory.files import RecordWriter
from ci_tools.memory.model import PlanItem
from ci_tools.memory.records import BATCH, Record, difference, now_ms, read_by_key, value_digest
from ci_tools.memory.writer import ABSENT, fingerprint

ON_CONFLICT = {Conflict.FAIL: Action.CONFLICT, Conflict.SKIP: Action.SKIP, Conflict.REPLACE: Action.REPLACE}


class Planner:
    """Decides each key's action under one conflict policy; writes the backup as it goes."""

    def __init__(
        self,
        target: redis.Redis,
        rewrite: Callable[[bytes], bytes],
        policy: Conflict,
        backup: RecordWriter | None,
    ) -> None:
        self.target, self.rewrite, self.policy, self.backup = target, rewrite, policy, backup
        self.plan: list[PlanItem] = []
        self._after: list[tuple[bytes, str]] = []  # target key, digest of what the write puts there

    def run(self, records: Iterable[Record], snapshot: RecordWriter | None) -> list[PlanItem]:
        """Plan every record (and copy it into ``snapshot`` when one is being written)."""
        batch: list[Record] = []
        for record in records:
            if snapshot:
                snapshot.write(record)
            batch.append(record)
            if len(batch) >= BATCH:
                self._plan_batch(batch)
                batch = []
        self._plan_batch(batch)
        if self.backup and self._after:
            self.backup.write_after(self._after)
        return self.plan

    def _decide(self, source: Record, remaining: int | None, reason: str | None, exists: bool) -> Action:
        if not source.exists:
            return Action.VANISHED
        if remaining is not None and remaining <= 0:
            return Action.EXPIRED
        if not exists:
            return Action.CREATE
        if reason is None:
            return Action.IDENTICAL
        return ON_CONFLICT[self.policy]

    def _plan_batch(self, batch: list[Record]) -> None:
        """One read of the batch's target keys, with their payloads: each key's state and guard."""
        if not batch:
            return
        target_keys = [self.rewrite(r.key) for r in batch]
        targets = read_by_key(self.target, target_keys, with_dump=True)
        absent: list[bytes] = []
        at = now_ms()  # one clock read a batch: TTLs are compared to the second, not the µs
        for source, target_key in zip(batch, target_keys, strict=True):
            current = targets[target_key]
            guard = fingerprint(current.dump) if current.exists else ABSENT
            reason = difference(source, current)
            remaining = source.remaining_ms(at)
            action = self._decide(source, remaining, reason, current.exists)
            said = (reason or "") if action not in (Action.IDENTICAL, Action.CREATE) else ""
            self.plan.append(
                PlanItem(source.key, target_key, source.type, source.size(), remaining, action, said, guard)
            )
            if self.backup and action in WRITES:
                self._after.append((target_key, value_digest(source)))
                if current.exists:
                    self.backup.write(current)
                else:
                    absent.append(target_key)
        if self.backup and absent:
            self.backup.write_absent(absent)
