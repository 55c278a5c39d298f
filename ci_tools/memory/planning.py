"""Pass 1 of a memory write: compare every record with the target, decide its action, and back
up every target key the write will touch — before anything is written.

Each backed-up key gets its guard (``writer.fingerprint``), read in the same atomic call as
its backup, so a write can check that the key still holds exactly what was backed up. A big
target key is read in parts, so its guard is taken before and after: if the two differ, the
key changed while it was being backed up, and the write leaves it alone. The backup ends with
the digest of what the write puts in each key (``after``), so an undo can tell a key the copy
wrote from one the user changed since.

Small keys go in batches, their target keys read in one call a batch; a big
key's parts arrive one by one and are compared part by part, so no key is ever held whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import redis

from ci_tools.memory.choices import WRITES, Action, Conflict
from ci_tools.memory.files import RecordWriter
from ci_tools.memory.model import PlanItem, group_parts
from ci_tools.memory.records import (
    BATCH,
    Record,
    difference,
    length_of,
    now_ms,
    part_difference,
    read_records,
    ttl_difference,
    value_digest,
)
from ci_tools.memory.writer import ABSENT, fingerprint, guarded_read

ON_CONFLICT = {Conflict.FAIL: Action.CONFLICT, Conflict.SKIP: Action.SKIP, Conflict.REPLACE: Action.REPLACE}
Batch = tuple[list[Record], list[bytes], dict[bytes, list[Record]]]


@dataclass
class BigKey:
    """A key too big for one batch, planned part by part: where its parts stand so far."""

    target_key: bytes
    exists: bool  # the target already holds this key
    same: bool  # of the same type, and equal in every part compared so far
    guard: str  # the target key's fingerprint when backed up
    offset: int = 0  # elements planned so far


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
        self._big: BigKey | None = None  # the big key whose parts are being planned
        self._after: list[tuple[bytes, str]] = []  # target key, digest of what the write puts there

    def run(self, records: Iterable[Record], snapshot: RecordWriter | None) -> list[PlanItem]:
        """Plan every record (and copy it into ``snapshot`` when one is being written)."""
        for item in self._with_targets(records):
            if isinstance(item, Record):
                if snapshot:
                    snapshot.write(item)
                self._plan_part(item)
                continue
            batch, target_keys, targets = item
            if snapshot:
                for record in batch:
                    snapshot.write(record)
            self._plan_small(batch, target_keys, targets)
        if self.backup and self._after:
            self.backup.write_after(self._after)
        return self.plan

    def _with_targets(self, records: Iterable[Record]) -> Iterator[Batch | Record]:
        """Source batches with their target keys already read; big keys' parts one by one."""
        batch: list[Record] = []

        def complete() -> Batch:
            keys = [self.rewrite(r.key) for r in batch]
            return list(batch), keys, group_parts(read_records(self.target, keys, with_dump=True))

        for record in records:
            if record.final and record.part == 0:
                batch.append(record)
                if len(batch) >= BATCH:
                    yield complete()
                    batch = []
            else:
                yield record
        if batch:
            yield complete()

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

    def _plan_small(self, batch: list[Record], target_keys: list[bytes], targets: dict[bytes, list[Record]]) -> None:
        absent: list[bytes] = []
        at = now_ms()  # one clock read a batch: TTLs are compared to the second, not the µs
        for source, target_key in zip(batch, target_keys, strict=True):
            parts = targets[target_key]
            if len(parts) > 1:  # a big target key: read again with a guard around it
                parts, guard = guarded_read(self.target, target_key)
            else:
                guard = fingerprint(parts[0].dump) if parts[0].exists else ABSENT
            current = parts[0]
            reason = "target is a big key" if len(parts) > 1 else difference(source, current)
            remaining = source.remaining_ms(at)
            action = self._decide(source, remaining, reason, current.exists)
            said = (reason or "") if action not in (Action.IDENTICAL, Action.CREATE) else ""
            self._note(source, target_key, action, said, remaining, guard=guard)
            if self.backup and action in WRITES:
                self._after.append((target_key, value_digest(source)))
                if not current.exists:
                    absent.append(target_key)
                    continue
                for part in parts:
                    self.backup.write(part)
        if self.backup and absent:
            self.backup.write_absent(absent)

    def _plan_part(self, record: Record) -> None:
        if record.part == 0:
            target_key = self.rewrite(record.key)
            parts, guard = guarded_read(self.target, target_key)
            exists = parts[0].exists
            self._big = BigKey(target_key, exists, same=parts[0].type == record.type, guard=guard)
            if self.backup and (not exists or self.policy is Conflict.REPLACE):
                for part in parts:
                    self.backup.write(part)
        state = self._big
        assert state is not None
        if state.exists and state.same and part_difference(self.target, state.target_key, record, state.offset):
            state.same = False
        state.offset += len(record.value)
        if not record.final:
            return
        reason: str | None = None if state.same else "value differs"
        if state.exists and state.same:
            if length_of(self.target, state.target_key, record.type) != state.offset:
                reason = "length differs"
            else:
                target_ttl = self.target.pttl(state.target_key)
                current = Record(state.target_key, record.type, None if target_ttl < 0 else target_ttl, now_ms())
                reason = ttl_difference(record, current)
        remaining = record.remaining_ms()
        action = self._decide(record, remaining, reason, state.exists)
        self._note(record, state.target_key, action, reason or "", remaining, size=state.offset, guard=state.guard)
        self._big = None

    def _note(
        self,
        source: Record,
        target_key: bytes,
        action: Action,
        reason: str,
        remaining: int | None,
        size: int | None = None,
        guard: str = ABSENT,
    ) -> None:
        size = source.size() if size is None else size
        self.plan.append(PlanItem(source.key, target_key, source.type, size, remaining, action, reason, guard))
