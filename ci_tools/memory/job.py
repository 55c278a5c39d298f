"""Plan, snapshot, back up, write, verify: the one path every memory write (copy, restore, seed) takes.

Pass 1 (``Planner``) reads the records, writing the snapshot as it goes, and backs up every target key
the write will touch, with its guard from the same atomic read and the digest of what the write puts
there (so an undo tells a key the copy wrote from one the user changed since). Only then does pass 2
(``Applier``) write, from the snapshot file, so what lands is exactly what was snapshotted; pass 3
(``Verifier``) compares each batch as soon as it is written. A dry run stops after pass 1.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from cryptography.fernet import Fernet

from ci_tools.errors import InputError, RemoteError, VerificationError
from ci_tools.memory.files import RecordFile, RecordWriter
from ci_tools.memory.model import CONNECTION_ERRORS, WRITES, Action, Conflict, Outcome, PlanItem, Stage, show, stamp
from ci_tools.memory.records import BATCH, Record, difference, now_ms, read_by_key, ttl_difference, value_digest
from ci_tools.memory.writer import ABSENT, Writer, WriteResult, fingerprint

ON_CONFLICT = {Conflict.FAIL: Action.CONFLICT, Conflict.SKIP: Action.SKIP, Conflict.REPLACE: Action.REPLACE}


@dataclass(frozen=True)
class JobOptions:
    """How one write runs: its policy, whether it writes, where its files go, what it says."""

    policy: Conflict = Conflict.FAIL
    apply: bool = False
    out_dir: Path = Path("memory-out")
    label: str = "memory"  # names the snapshot and backup files
    resume_command: str = ""
    on_event: Callable[[str, int], None] | None = None  # told "planned", then each "batch"
    fernet: Fernet | None = None  # MEMORY_SNAPSHOT_KEY's: the snapshot and backup encrypted
    stage: Stage = Stage.ALL  # plan (files only), write (from a plan's files), or both


class MemoryJob:
    """One write of records to one target, under one conflict policy."""

    def __init__(self, target: redis.Redis, rewrite: Callable[[bytes], bytes], options: JobOptions) -> None:
        self.target, self.rewrite, self.options = target, rewrite, options
        self.outcome = Outcome(plan=[], applied=options.apply and options.stage is not Stage.PLAN)
        self.outcome.stage = options.stage if options.apply else Stage.ALL

    def run(
        self,
        records: Iterable[Record],
        *,
        snapshot_header: dict[str, Any] | None,
        backup_header: dict[str, Any],
        snapshot_file: Path | None = None,
    ) -> Outcome:
        """Pass 1 over ``records``; passes 2 and 3 over the snapshot (written now, or given)."""
        if self.options.apply and self.options.stage is Stage.WRITE:
            self._prepared(snapshot_file)
        else:
            self._plan(records, snapshot_header, backup_header, snapshot_file)
        if self.options.apply:
            self._refuse_conflicts()
            if self.options.stage is not Stage.PLAN:
                self._apply()
        return self.outcome

    def _prepared(self, snapshot_file: Path | None) -> None:
        """The snapshot, backup and plan a ``--stage plan`` run left in ``out_dir``."""
        options, outcome = self.options, self.outcome
        outcome.backup = _only(options.out_dir, f"{options.label}-backup-*.jsonl")
        outcome.snapshot = snapshot_file or _only(options.out_dir, f"{options.label}-snapshot-*.jsonl")
        backup = RecordFile(outcome.backup, options.fernet)
        backup.check()
        RecordFile(outcome.snapshot, options.fernet).check()
        outcome.plan = backup.plan()

    def _plan(
        self,
        records: Iterable[Record],
        snapshot_header: dict[str, Any] | None,
        backup_header: dict[str, Any],
        snapshot_file: Path | None,
    ) -> None:
        options, outcome = self.options, self.outcome
        started = time.perf_counter()
        snapshot: RecordWriter | None = None
        backup: RecordWriter | None = None
        with contextlib.ExitStack() as files:  # left on an exception: no footer, so never complete
            if options.apply:
                outcome.snapshot = snapshot_file
                if snapshot_file is None:
                    assert snapshot_header is not None
                    outcome.snapshot = options.out_dir / f"{options.label}-snapshot-{stamp()}.jsonl"
                    header = {"kind": "snapshot", **snapshot_header}
                    snapshot = files.enter_context(RecordWriter(outcome.snapshot, header, options.fernet))
                outcome.backup = options.out_dir / f"{options.label}-backup-{stamp()}.jsonl"
                header = {"kind": "backup", **backup_header}
                backup = files.enter_context(RecordWriter(outcome.backup, header, options.fernet))
            outcome.plan = Planner(self.target, self.rewrite, options.policy, backup).run(records, snapshot)
            if backup:
                backup.write_plan(outcome.plan)
        outcome.timings["read_plan_backup"] = time.perf_counter() - started

    def _refuse_conflicts(self) -> None:
        conflicts = [i for i in self.outcome.plan if i.action is Action.CONFLICT]
        if conflicts:
            raise VerificationError(
                f"{len(conflicts)} target key(s) already hold other data: "
                f"{_first_five([show(i.target_key) for i in conflicts])}; nothing was written",
                hint="compare with `ci-tools memory diff`, then rerun with --on-conflict skip "
                "(keep them) or replace (overwrite, reversible from the backup)",
            )

    def _apply(self) -> None:
        options, outcome = self.options, self.outcome
        assert outcome.snapshot is not None and outcome.backup is not None
        on_event = options.on_event or (lambda event, n: None)
        on_event("planned", len(outcome.plan))
        applier = Applier(self.target, self.rewrite, outcome.timings, on_event=on_event)
        try:
            applier.run(RecordFile(outcome.snapshot, options.fernet).records(), outcome.plan)
        except TargetStopped as stopped:
            self._absorb(applier)
            raise RemoteError(
                f"the target stopped answering ({type(stopped.cause).__name__}) after {stopped.written} "
                f"of {stopped.total} keys were written; the source is untouched; snapshot {outcome.snapshot}, "
                f"backup {outcome.backup}",
                hint=f"once the target is back, resume with: {options.resume_command} — "
                f"or undo with: ci-tools memory undo {outcome.backup}",
            ) from None
        self._absorb(applier)
        mismatches = applier.verifier.mismatches
        if mismatches:
            raise VerificationError(
                f"{len(mismatches)} key(s) differ from the snapshot after writing: {_first_five(mismatches)}",
                hint=f"undo with: ci-tools memory undo {outcome.backup}",
            )

    def _absorb(self, applier: Applier) -> None:
        result, outcome = applier.result, self.outcome
        outcome.written, outcome.expired = result.written, result.expired
        outcome.changed, outcome.fallback = result.changed, result.fallback
        outcome.verified = applier.verifier.verified


def _first_five(names: list[str]) -> str:
    return ", ".join(names[:5]) + ("…" if len(names) > 5 else "")


def _only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise InputError(
            f"--stage write needs exactly one {pattern} in {folder}, found {len(found)}",
            hint="run the same command with --stage plan first, into the same --out",
        )
    return found[0]


class Planner:
    """Pass 1: decides each key's action under one conflict policy; writes the backup as it goes."""

    def __init__(
        self, target: redis.Redis, rewrite: Callable[[bytes], bytes], policy: Conflict, backup: RecordWriter | None
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
        return Action.IDENTICAL if reason is None else ON_CONFLICT[self.policy]

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


class TargetStopped(Exception):
    """The target stopped answering part-way: ``written`` of ``total`` keys landed."""

    def __init__(self, written: int, total: int, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__} after {written} of {total} keys")
        self.written, self.total, self.cause = written, total, cause


class Applier:
    """Pass 2: the snapshot goes to the target batch by batch, exactly as planned; one read of the
    snapshot serves writing and verifying (each batch is read back as soon as it is written)."""

    def __init__(
        self,
        target: redis.Redis,
        rewrite: Callable[[bytes], bytes],
        timings: dict[str, float],
        *,
        on_event: Callable[[str, int], None],
    ) -> None:
        self.rewrite, self.timings, self.on_event = rewrite, timings, on_event
        self.writer, self.verifier = Writer(target), Verifier(target)
        self._to_write: list[tuple[bytes, Record, str]] = []
        self._guards: dict[bytes, str] = {}
        self._to_check: list[tuple[bytes, Record]] = []
        self._batches = 0

    @property
    def result(self) -> WriteResult:
        return self.writer.result

    def run(self, records: Iterator[Record], plan: list[PlanItem]) -> None:
        """Write what the plan says; ``TargetStopped`` if the target stops answering."""
        actions = {item.source_key: item.action for item in plan}
        self._guards = {item.source_key: item.guard for item in plan}
        total = sum(1 for i in plan if i.action in WRITES)
        self.timings["copy"] = self.timings["verify"] = 0.0
        try:
            for record in records:
                action = actions.get(record.key)
                if action in WRITES or action is Action.IDENTICAL:
                    self._take(record, action in WRITES)
            self._flush()
        except CONNECTION_ERRORS as exc:
            raise TargetStopped(len(self.result.written), total, exc) from None

    def _take(self, record: Record, write: bool) -> None:
        target_key = self.rewrite(record.key)
        if write:
            self._to_write.append((target_key, record, self._guards[record.key]))
        self._to_check.append((target_key, record))
        if len(self._to_check) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        started = time.perf_counter()
        if self._to_write:
            self.writer.write_batch(self._to_write)
            self._batches += 1
        middle = time.perf_counter()
        self.timings["copy"] += middle - started
        result = self.writer.result
        skipped = set(result.expired) | set(result.changed)
        self.verifier.batch([(k, r) for k, r in self._to_check if k not in skipped], result.read_back)
        result.read_back.clear()
        self.timings["verify"] += time.perf_counter() - middle
        if self._to_write:
            self.on_event("batch", self._batches)
        self._to_write.clear()
        self._to_check.clear()


class Verifier:
    """Pass 3: what is on the target now is what the snapshot holds."""

    def __init__(self, target: redis.Redis) -> None:
        self.target = target
        self.verified = 0
        self.mismatches: list[str] = []  # "<key> (<how it differs>)"

    def batch(self, batch: list[tuple[bytes, Record]], read_back: dict[bytes, tuple[bool, int]] | None = None) -> None:
        """Check written (or identical) keys; ``read_back`` holds what the write's own script read
        back for the keys it RESTOREd (their DUMP equal to the payload, their TTL)."""
        if not batch:
            return
        self.verified += len(batch)
        read_back = read_back or {}
        slow: list[tuple[bytes, Record]] = []  # read again and compared: payload, else value
        at = now_ms()
        for key, expected in batch:
            same, pttl = read_back.get(key, (False, -1))
            if not same:
                slow.append((key, expected))
            elif reason := ttl_difference(expected, Record(key, expected.type, None if pttl < 0 else pttl, at)):
                self.mismatches.append(f"{show(key)} ({reason})")
        found = read_by_key(self.target, [k for k, _ in slow], with_dump=True) if slow else {}
        for key, expected in slow:
            if reason := difference(expected, found[key]):
                self.mismatches.append(f"{show(key)} ({reason})")
