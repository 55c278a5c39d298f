"""Plan, snapshot, back up, write, verify: the one path every memory write (copy, restore, seed) takes.

Pass 1 (``MemoryJob._plan``) reads the records, writing the snapshot as it goes, and backs up every target key
the write will touch, with its guard from the same atomic read and the digest of what the write puts
there (so an undo tells a key the copy wrote from one the user changed since). Only then does pass 2
(``MemoryJob._write``) write, from the snapshot file, so what lands is exactly what was snapshotted; pass 3
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

from ci_tools import cancel
from ci_tools.errors import InputError, RemoteError, VerificationError
from ci_tools.memory.files import RecordFile, RecordWriter, plan_row
from ci_tools.memory.model import CONNECTION_ERRORS, WRITES, Action, Conflict, Outcome, PlanItem, Stage, show, stamp
from ci_tools.memory.records import Record, b64, batches, difference, now_ms, read_by_key, ttl_difference, value_digest
from ci_tools.memory.writer import Writer, fingerprint

ON_CONFLICT = {Conflict.FAIL: Action.CONFLICT, Conflict.SKIP: Action.SKIP, Conflict.REPLACE: Action.REPLACE}
Header = dict[str, Any]
Rewrite = Callable[[bytes], bytes]  # a source key's name on the target
OnEvent = Callable[[str, int], None]


@dataclass(kw_only=True)
class JobOptions:
    """How one write runs: its policy, whether it writes, where its files go, what it says."""

    policy: Conflict = Conflict.FAIL
    apply: bool = False
    out_dir: Path = Path("memory-out")
    resume_command: str = ""
    # How a backup is undone, as the hints print it: ``memory undo`` without --apply is a dry run that
    # changes nothing, and a send-back's undo (which keeps its record true) is its own command.
    undo_command: str = "ci-tools memory undo {backup} --apply"
    stage: Stage = Stage.ALL  # plan (files only), write (from a plan's files), or both
    on_event: OnEvent = lambda event, n: None  # told "planned", then each "batch"


class MemoryJob:
    """One write of records to one target, under one conflict policy; ``label`` names its files,
    ``fernet`` (MEMORY_SNAPSHOT_KEY's) encrypts them."""

    def __init__(
        self, target: redis.Redis, rewrite: Rewrite, options: JobOptions, label: str, fernet: Fernet | None
    ) -> None:
        self.target, self.rewrite, self.options, self.label, self.fernet = target, rewrite, options, label, fernet
        stage = options.stage if options.apply else Stage.ALL
        self.outcome = Outcome(plan=[], applied=options.apply and stage is not Stage.PLAN, stage=stage)

    def run(self, records: Iterable[Record], *, snapshot_header: Header, backup_header: Header) -> Outcome:
        """Pass 1 over ``records``, into a snapshot; passes 2 and 3 over that snapshot."""
        options, outcome = self.options, self.outcome
        if options.apply and options.stage is Stage.WRITE:  # the files a ``--stage plan`` run left
            outcome.backup = _only(options.out_dir, f"{self.label}-backup-*.jsonl")
            outcome.snapshot = _only(options.out_dir, f"{self.label}-snapshot-*.jsonl")
            backup = RecordFile(outcome.backup, self.fernet)
            backup.check()
            RecordFile(outcome.snapshot, self.fernet).check()
            outcome.plan = backup.plan()
        else:
            self._plan(records, snapshot_header, backup_header)
        conflicts = [show(i.target_key) for i in outcome.plan if i.action is Action.CONFLICT]
        if options.apply and conflicts:
            # a write stage follows its plan's policy, and finds this refused plan's files in --out
            elsewhere = f", from --stage plan into an --out other than {options.out_dir}"
            raise VerificationError(
                f"{len(conflicts)} target key(s) already hold other data: {_first_five(conflicts)}; "
                "nothing was written",
                hint="compare with `ci-tools memory diff`, then rerun with --on-conflict skip (keep them) or replace "
                "(overwrite, reversible from the backup)" + (elsewhere if options.stage is not Stage.ALL else ""),
            )
        if outcome.applied:
            self._apply()
        return outcome

    def _plan(self, records: Iterable[Record], snapshot_header: Header, backup_header: Header) -> None:
        options, outcome = self.options, self.outcome
        started = time.perf_counter()
        snapshot: RecordWriter | None = None
        backup: RecordWriter | None = None
        with contextlib.ExitStack() as files:  # left on an exception: no footer, so never complete
            if options.apply:
                outcome.snapshot = options.out_dir / f"{self.label}-snapshot-{stamp()}.jsonl"
                header = {"kind": "snapshot", **snapshot_header}
                snapshot = files.enter_context(RecordWriter(outcome.snapshot, header, self.fernet))
                outcome.backup = options.out_dir / f"{self.label}-backup-{stamp()}.jsonl"
                header = {"kind": "backup", **backup_header}
                backup = files.enter_context(RecordWriter(outcome.backup, header, self.fernet))
            after: list[list[Any]] = []  # target key, digest of what the write puts there
            for batch in batches(records):
                if snapshot:
                    for record in batch:
                        snapshot.write(record)
                cancel.checkpoint()  # a cancel a finalizer swallowed stops here (ci_tools/cancel.py)
                self._plan_batch(batch, backup, after)
            if backup:
                backup.write_rows("after", after)
                backup.write_rows("plan", map(plan_row, outcome.plan))
        outcome.timings["read_plan_backup"] = time.perf_counter() - started

    def _plan_batch(self, batch: list[Record], backup: RecordWriter | None, after: list[list[Any]]) -> None:
        """One read of the batch's target keys, with their payloads: each key's action and guard; the
        keys the write will touch are backed up."""
        target_keys = [self.rewrite(r.key) for r in batch]
        targets = read_by_key(self.target, target_keys)
        at = now_ms()  # one clock read a batch: TTLs are compared to the second, not the µs
        for source, target_key in zip(batch, target_keys, strict=True):
            current = targets[target_key]
            reason = difference(source, current)
            remaining = source.remaining_ms(at)
            if not source.exists:
                action = Action.VANISHED
            elif remaining is not None and remaining <= 0:
                action = Action.EXPIRED
            elif not current.exists:
                action = Action.CREATE
            else:
                action = Action.IDENTICAL if reason is None else ON_CONFLICT[self.options.policy]
            said = (reason or "") if action not in (Action.IDENTICAL, Action.CREATE) else ""
            guard = fingerprint(current.dump)
            self.outcome.plan.append(
                PlanItem(source.key, target_key, source.type, source.size(), remaining, action, said, guard)
            )
            if backup and action in WRITES:
                after.append([b64(target_key), value_digest(source)])
                backup.write(current)  # absent too: undo deletes it

    def _apply(self) -> None:
        options, outcome = self.options, self.outcome
        assert outcome.snapshot is not None and outcome.backup is not None
        undo = options.undo_command.format(backup=outcome.backup)
        options.on_event("planned", len(outcome.plan))
        writer, verifier = Writer(self.target), Verifier(self.target)
        try:
            self._write(RecordFile(outcome.snapshot, self.fernet).records(), writer, verifier)
        except CONNECTION_ERRORS as exc:
            stopped = f"the target stopped answering ({type(exc).__name__}) after {len(writer.result.written)} of "
            raise RemoteError(
                f"{stopped}{sum(1 for i in outcome.plan if i.action in WRITES)} keys were written; the source is "
                f"untouched; snapshot {outcome.snapshot}, backup {outcome.backup}",
                hint=f"once the target is back, resume with: {options.resume_command} — or undo with: {undo}",
            ) from None
        finally:
            outcome.written, outcome.expired = writer.result.written, writer.result.expired
            outcome.changed, outcome.fallback = writer.result.changed, writer.result.fallback
            outcome.verified = verifier.verified
        if mismatches := verifier.mismatches:
            raise VerificationError(
                f"{len(mismatches)} key(s) differ from the snapshot after writing: {_first_five(mismatches)}",
                hint=f"undo with: {undo}",
            )

    def _write(self, records: Iterator[Record], writer: Writer, verifier: Verifier) -> None:
        """Pass 2: the snapshot goes to the target batch by batch, exactly as planned; one read of the
        snapshot serves writing and verifying (each batch is read back as soon as it is written). A
        connection error propagates: ``_apply`` names how far it got."""
        planned, timings = {item.source_key: item for item in self.outcome.plan}, self.outcome.timings
        wanted = (r for r in records if r.key in planned and planned[r.key].action in (*WRITES, Action.IDENTICAL))
        timings["copy"] = timings["verify"] = 0.0
        written_batches, result = 0, writer.result
        for batch in batches(wanted):
            cancel.checkpoint()  # between batches: the one before is whole, the backup undoes it
            started = time.perf_counter()
            pairs = [(self.rewrite(r.key), r) for r in batch]
            to_write = [(key, r, planned[r.key].guard) for key, r in pairs if planned[r.key].action in WRITES]
            if to_write:
                writer.write_batch(to_write)
            middle = time.perf_counter()
            timings["copy"] += middle - started
            skipped = {*result.expired, *result.changed}
            verifier.batch([(k, r) for k, r in pairs if k not in skipped], result.read_back)
            result.read_back.clear()
            timings["verify"] += time.perf_counter() - middle
            if to_write:
                written_batches += 1
                self.options.on_event("batch", written_batches)


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


class Verifier:
    """Pass 3: what is on the target now is what the snapshot (for an undo, the backup) holds."""

    def __init__(self, target: redis.Redis) -> None:
        self.target, self.verified = target, 0
        self.mismatches: list[str] = []  # "<key> (<how it differs>)"

    def batch(self, batch: list[tuple[bytes, Record]], read_back: dict[bytes, tuple[bool, int]] | None = None) -> None:
        """Check written (or identical) keys; ``read_back`` holds what the write's own script read
        back for the keys it RESTOREd (their DUMP equal to the payload, their TTL)."""
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
        found = read_by_key(self.target, [k for k, _ in slow]) if slow else {}
        for key, expected in slow:
            # Counted from after the read, not from ``at`` before it: a key whose TTL ran out while the
            # read was on its way is gone as it should be, not "missing" (undo's own check counted so).
            actual, remaining = found[key], expected.remaining_ms()
            # Absent as it should be: never there, or its TTL ran out (one still there is compared with the
            # TTL's tolerance: the write set it a moment after the snapshot's clock).
            if not expected.exists or (not actual.exists and remaining is not None and remaining <= 0):
                reason = "should be absent" if actual.exists else None
            else:
                reason = difference(expected, actual)
            if reason:
                self.mismatches.append(f"{show(key)} ({reason})")
