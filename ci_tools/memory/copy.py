"""Plan, snapshot, back up, write, verify: the one path every memory write takes.

``copy`` reads a user's keys from the source Redis; ``restore`` reads them from a
snapshot file; ``seed`` builds them from a pasted profile. All three then go
through ``MemoryJob``: pass 1 reads the records (writing the snapshot as it goes),
compares each with the target and writes a backup of every target key that will
be touched; only then does pass 2 write, from the snapshot file, so what lands is
exactly what was snapshotted; pass 3 reads everything back and compares it with
the snapshot. A dry run stops after pass 1 and writes nothing anywhere.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from cryptography.fernet import Fernet

from ci_tools.errors import RemoteError, VerificationError
from ci_tools.memory.compare import (
    TTL_TOLERANCE_MS,
    difference,
    length_of,
    part_difference,
    ttl_difference,
)
from ci_tools.memory.files import RecordFile, RecordWriter
from ci_tools.memory.prefetch import prefetch, prefetch_flat
from ci_tools.memory.records import BATCH, Record, now_ms, read_records
from ci_tools.memory.scripts import SAME_PAYLOAD
from ci_tools.memory.writer import Writer

POLICIES = ("fail", "skip", "replace")
WRITES = ("create", "replace")
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)


@dataclass(slots=True)  # one per key: the only part of a copy that grows with N
class PlanItem:
    source_key: bytes
    target_key: bytes
    type: str
    size: int
    ttl_ms: int | None
    action: str  # create | identical | conflict | replace | skip | expired | vanished
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_key": self.source_key.decode(errors="backslashreplace"),
            "target_key": self.target_key.decode(errors="backslashreplace"),
            "type": self.type,
            "size": self.size,
            "ttl_ms": self.ttl_ms,
            "action": self.action,
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
    appeared: list[bytes] = field(default_factory=list)
    verified: int = 0
    fallback: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    uncovered: list[bytes] = field(default_factory=list)  # the user's keys no pattern covers, left
    uncovered_policy: str = "refuse"

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.plan:
            counts[item.action] = counts.get(item.action, 0) + 1
        return counts


def group_parts(records: Iterable[Record]) -> dict[bytes, list[Record]]:
    grouped: dict[bytes, list[Record]] = {}
    for record in records:
        grouped.setdefault(record.key, []).append(record)
    return grouped


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


@dataclass
class BigKey:
    """A key too big for one batch, planned part by part: where its parts stand so far."""

    target_key: bytes
    exists: bool  # the target already holds this key
    same: bool  # of the same type, and equal in every part compared so far
    offset: int = 0  # elements planned so far


class MemoryJob:
    """One write of records to one target, under one conflict policy."""

    def __init__(
        self,
        target: redis.Redis,
        rewrite: Callable[[bytes], bytes],
        *,
        policy: str = "fail",
        apply: bool = False,
        out_dir: Path = Path("memory-out"),
        label: str = "memory",
        undo_command: Callable[[Path], str] = lambda path: f"ci-tools memory undo {path}",
        resume_command: str = "",
        on_event: Callable[[str, int], None] | None = None,
        progress: Callable[[str, int], Any] | None = None,
        fernet: Fernet | None = None,  # MEMORY_SNAPSHOT_KEY's: the snapshot and backup encrypted
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(policy)
        self.target = target
        self.rewrite = rewrite
        self.policy = policy
        self.apply = apply
        self.out_dir = out_dir
        self.label = label
        self.undo_command = undo_command
        self.resume_command = resume_command
        self.on_event = on_event or (lambda event, n: None)
        self.progress = progress
        self.fernet = fernet
        self.outcome = Outcome(plan=[], applied=apply)
        self._backup: RecordWriter | None = None
        self._big: BigKey | None = None  # the big key whose parts are being planned
        self._big_keys: set[bytes] = set()
        self._mismatches: list[str] = []
        self._same_payload = target.register_script(SAME_PAYLOAD)

    # -- the three passes ------------------------------------------------------
    def run(
        self,
        records: Iterable[Record],
        *,
        snapshot_header: dict[str, Any] | None,
        backup_header: dict[str, Any],
        snapshot_file: Path | None = None,
    ) -> Outcome:
        """Pass 1 over ``records``; passes 2 and 3 over the snapshot (written now or given)."""
        with _gc_paused():
            return self._run(records, snapshot_header, backup_header, snapshot_file)

    def _run(
        self,
        records: Iterable[Record],
        snapshot_header: dict[str, Any] | None,
        backup_header: dict[str, Any],
        snapshot_file: Path | None,
    ) -> Outcome:
        started = time.perf_counter()
        snapshot: RecordWriter | None = None
        if self.apply:
            if snapshot_file is None:
                assert snapshot_header is not None
                path = self.out_dir / f"{self.label}-snapshot-{stamp()}.jsonl"
                snapshot = RecordWriter(path, {"kind": "snapshot", **snapshot_header}, self.fernet)
                self.outcome.snapshot = path
            else:
                self.outcome.snapshot = snapshot_file
            backup_path = self.out_dir / f"{self.label}-backup-{stamp()}.jsonl"
            self._backup = RecordWriter(backup_path, {"kind": "backup", **backup_header}, self.fernet)
            self.outcome.backup = backup_path
        try:
            self._plan_pass(records, snapshot)
        finally:
            if snapshot:
                snapshot.close()
            if self._backup:
                self._backup.close()
        self.outcome.timings["read_plan_backup"] = time.perf_counter() - started
        conflicts = [i for i in self.outcome.plan if i.action == "conflict"]
        if not self.apply:
            return self.outcome
        if conflicts:
            raise VerificationError(
                f"{len(conflicts)} target key(s) already hold other data: "
                + ", ".join(_show(i.target_key) for i in conflicts[:5])
                + ("…" if len(conflicts) > 5 else "")
                + "; nothing was written",
                hint="compare with `ci-tools memory diff`, then rerun with --on-conflict skip "
                "(keep them) or replace (overwrite, reversible from the backup)",
            )
        assert self.outcome.snapshot is not None
        self.on_event("planned", len(self.outcome.plan))
        self._apply_pass(prefetch_flat(RecordFile(self.outcome.snapshot, self.fernet).records()))
        if self._big_keys:
            started = time.perf_counter()
            self._verify_big(RecordFile(self.outcome.snapshot, self.fernet).records())
            self.outcome.timings["verify"] += time.perf_counter() - started
        if self._mismatches:
            assert self.outcome.backup is not None
            raise VerificationError(
                f"{len(self._mismatches)} key(s) differ from the snapshot after writing: "
                + ", ".join(self._mismatches[:5])
                + ("…" if len(self._mismatches) > 5 else ""),
                hint=f"undo with: {self.undo_command(self.outcome.backup)}",
            )
        return self.outcome

    # -- pass 1: plan and back up ---------------------------------------------------
    def _with_targets(
        self, records: Iterable[Record]
    ) -> Iterator[tuple[list[Record], list[bytes], dict[bytes, list[Record]]] | Record]:
        """Source batches with their target keys already read (run ahead in the prefetch thread).

        Big keys' parts pass through one by one; they are compared part by part.
        """
        batch: list[Record] = []

        def complete() -> tuple[list[Record], list[bytes], dict[bytes, list[Record]]]:
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

    def _plan_pass(self, records: Iterable[Record], snapshot: RecordWriter | None) -> None:
        for item in prefetch(self._with_targets(records), depth=4):
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

    def _decide(self, source: Record, remaining: int | None, reason: str | None, exists: bool) -> str:
        if not source.exists:
            return "vanished"
        if remaining is not None and remaining <= 0:
            return "expired"
        if not exists:
            return "create"
        if reason is None:
            return "identical"
        return {"fail": "conflict", "skip": "skip", "replace": "replace"}[self.policy]

    def _plan_small(self, batch: list[Record], target_keys: list[bytes], targets: dict[bytes, list[Record]]) -> None:
        absent: list[bytes] = []
        at = now_ms()  # one clock read a batch: TTLs are compared to the second, not the µs
        for source, target_key in zip(batch, target_keys, strict=True):
            parts = targets[target_key]
            current = parts[0]
            reason = "target is a big key" if len(parts) > 1 else difference(source, current)
            remaining = source.remaining_ms(at)
            action = self._decide(source, remaining, reason, current.exists)
            self._note(
                source,
                target_key,
                action,
                (reason or "") if action not in ("identical", "create") else "",
                remaining,
            )
            if self._backup and action in WRITES:
                if not current.exists:
                    absent.append(target_key)
                    continue
                for part in parts:
                    self._backup.write(part)
        if self._backup and absent:
            self._backup.write_absent(absent)

    def _plan_part(self, record: Record) -> None:
        if record.part == 0:
            target_key = self.rewrite(record.key)
            raw_type = self.target.type(target_key)
            target_type = raw_type.decode() if isinstance(raw_type, bytes) else str(raw_type)
            exists = target_type != "none"
            self._big = BigKey(target_key, exists, same=target_type == record.type)
            if self._backup and (not exists or self.policy == "replace"):
                for part in read_records(self.target, [target_key], with_dump=True):
                    self._backup.write(part)
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
        self._note(record, state.target_key, action, reason or "", remaining, size=state.offset)
        self._big = None

    def _note(
        self,
        source: Record,
        target_key: bytes,
        action: str,
        reason: str,
        remaining: int | None,
        size: int | None = None,
    ) -> None:
        self.outcome.plan.append(
            PlanItem(
                source.key,
                target_key,
                source.type,
                source.size() if size is None else size,
                remaining,
                action,
                reason,
            )
        )

    # -- pass 2: write, and verify each batch as soon as it is written -----------------
    def _apply_pass(self, records: Iterator[Record]) -> None:
        """Snapshot → target, batch by batch; each batch is then read back and compared.

        One read of the snapshot serves both; big keys are compared in a pass of their
        own once they are renamed into place.
        """
        actions = {item.source_key: item.action for item in self.outcome.plan}
        total = sum(1 for i in self.outcome.plan if i.action in WRITES)
        writer = Writer(self.target, replace=self.policy == "replace")
        tick = self.progress("copy", total) if self.progress and total else None
        to_write: list[tuple[bytes, Record]] = []
        to_check: list[tuple[bytes, Record]] = []
        timings = self.outcome.timings
        timings["copy"] = timings["verify"] = 0.0
        batches = 0

        def flush() -> None:
            nonlocal batches
            started = time.perf_counter()
            if to_write:
                writer.write_batch(to_write)
                batches += 1
                if tick:
                    tick(len(to_write))
            middle = time.perf_counter()
            timings["copy"] += middle - started
            skipped = set(writer.result.expired) | set(writer.result.appeared)
            self._verify_batch([(k, r) for k, r in to_check if k not in skipped], writer.result.read_back)
            writer.result.read_back.clear()
            timings["verify"] += time.perf_counter() - middle
            if to_write:
                self.on_event("batch", batches)
            to_write.clear()
            to_check.clear()

        try:
            for record in records:
                action = actions.get(record.key)
                if action not in (*WRITES, "identical"):
                    continue
                target_key = self.rewrite(record.key)
                if record.final and record.part == 0:
                    if action in WRITES:
                        to_write.append((target_key, record))
                    to_check.append((target_key, record))
                    if len(to_write) >= BATCH or len(to_check) >= BATCH:
                        flush()
                    continue
                self._big_keys.add(record.key)
                if action in WRITES:
                    started = time.perf_counter()
                    writer.write_part(target_key, record)
                    timings["copy"] += time.perf_counter() - started
                    if tick and record.final:
                        tick(1)
            flush()
        except CONNECTION_ERRORS as exc:
            self._absorb(writer)
            assert self.outcome.backup is not None
            raise RemoteError(
                f"the target stopped answering ({type(exc).__name__}) after {len(writer.result.written)} "
                f"of {total} keys were written; the source is untouched; snapshot {self.outcome.snapshot}, "
                f"backup {self.outcome.backup}",
                hint=f"once the target is back, resume with: {self.resume_command} — "
                f"or undo with: {self.undo_command(self.outcome.backup)}",
            ) from None
        self._absorb(writer)

    def _absorb(self, writer: Writer) -> None:
        result = writer.result
        self.outcome.written, self.outcome.expired = result.written, result.expired
        self.outcome.appeared, self.outcome.fallback = result.appeared, result.fallback

    def _verify_batch(
        self,
        batch: list[tuple[bytes, Record]],
        read_back: dict[bytes, tuple[bool, int]] | None = None,
    ) -> None:
        """The target compares payloads itself; only keys whose payload differs are read back.

        Keys just RESTOREd were read back by the same script (``read_back``).
        """
        if not batch:
            return
        self.outcome.verified += len(batch)
        read_back = read_back or {}
        slow: list[tuple[bytes, Record]] = []
        at = now_ms()
        for key, expected in batch:
            if key in read_back:
                same, pttl = read_back[key]
                if not same:
                    slow.append((key, expected))
                elif not _ttl_close(expected, pttl, at) and (
                    reason := ttl_difference(expected, Record(key, expected.type, None if pttl < 0 else pttl, at))
                ):
                    self._mismatches.append(f"{_show(key)} ({reason})")
        batch = [(k, r) for k, r in batch if k not in read_back]
        with_dump = [(k, r) for k, r in batch if r.dump is not None]
        slow += [(k, r) for k, r in batch if r.dump is None]
        if with_dump:
            replies = self._same_payload(
                keys=[k for k, _ in with_dump],
                args=[r.dump for _, r in with_dump if r.dump is not None],
                client=self.target,
            )
            read_at = now_ms()
            for (key, expected), (same, pttl) in zip(with_dump, replies, strict=True):
                if not same:
                    slow.append((key, expected))  # another encoding or RDB version: compare values
                    continue
                current = Record(key, expected.type, None if pttl < 0 else pttl, read_at)
                if reason := ttl_difference(expected, current):
                    self._mismatches.append(f"{_show(key)} ({reason})")
        if slow:
            found = group_parts(read_records(self.target, [k for k, _ in slow]))
        for key, expected in slow:
            parts = found[key]
            reason = "target is a big key" if len(parts) > 1 else difference(expected, parts[0])
            if reason:
                self._mismatches.append(f"{_show(key)} ({reason})")

    def _verify_big(self, records: Iterator[Record]) -> None:
        """Compare each big key, part by part, with what is now on the target."""
        not_written = set(self.outcome.expired) | set(self.outcome.appeared)
        offsets: dict[bytes, int] = {}
        failed: set[bytes] = set()
        try:
            for record in records:
                target_key = self.rewrite(record.key)
                if record.key not in self._big_keys or target_key in not_written:
                    continue
                offset = offsets.get(target_key, 0)
                reason = part_difference(self.target, target_key, record, offset)
                offsets[target_key] = offset + len(record.value)
                if record.final and not reason:
                    if length_of(self.target, target_key, record.type) != offsets[target_key]:
                        reason = "length differs"
                    else:
                        ttl = self.target.pttl(target_key)
                        now = Record(target_key, record.type, None if ttl < 0 else ttl, now_ms())
                        reason = ttl_difference(record, now)
                if record.final:
                    self.outcome.verified += 1
                if reason and target_key not in failed:
                    failed.add(target_key)
                    self._mismatches.append(f"{_show(target_key)} ({reason})")
        except CONNECTION_ERRORS as exc:
            raise RemoteError(
                f"the target stopped answering during verification ({type(exc).__name__})",
                hint=f"rerun to verify: {self.resume_command}",
            ) from None


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The passes make many short-lived objects and no cycles; collecting them is wasted time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _ttl_close(expected: Record, pttl: int, at: int) -> bool:
    """The common case of ``ttl_difference`` without building a Record: no TTL on either side, or
    both within the tolerance. False means "ask ttl_difference", which names the difference."""
    want = expected.remaining_ms(at)
    if want is None:
        return pttl < 0
    return pttl >= 0 and abs(want - pttl) <= TTL_TOLERANCE_MS


def _show(key: bytes) -> str:
    return key.decode(errors="backslashreplace")
