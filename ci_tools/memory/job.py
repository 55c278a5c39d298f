"""Plan, snapshot, back up, write, verify: the one path every memory write takes.

``copy`` reads a user's keys from the source Redis; ``restore`` reads them from a snapshot
file; ``seed`` builds them from a pasted profile. All three then go through ``MemoryJob``:
pass 1 (``planning``) reads the records, writing the snapshot as it goes, compares each with
the target and writes a backup of every target key that will be touched; only then does
pass 2 (``applying``) write, from the snapshot file, so what lands is exactly what was
snapshotted; pass 3 (``verifying``) compares what is on the target with the snapshot. A dry
run stops after pass 1 and writes nothing anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from cryptography.fernet import Fernet

from ci_tools.errors import InputError, RemoteError, VerificationError
from ci_tools.memory.applying import Applier, TargetStopped, Verifier
from ci_tools.memory.choices import Action, Conflict, Stage
from ci_tools.memory.files import RecordFile, RecordWriter
from ci_tools.memory.model import Outcome, show, stamp
from ci_tools.memory.planning import Planner
from ci_tools.memory.records import Record


@dataclass(frozen=True)
class JobOptions:
    """How one write runs: its policy, whether it writes, where its files go, what it says."""

    policy: Conflict = Conflict.FAIL
    apply: bool = False
    out_dir: Path = Path("memory-out")
    label: str = "memory"  # names the snapshot and backup files
    undo_command: Callable[[Path], str] = field(default=lambda path: f"ci-tools memory undo {path}")
    resume_command: str = ""
    on_event: Callable[[str, int], None] = field(default=lambda event, n: None)  # "planned", "batch"
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
        if options.apply:
            if snapshot_file is None:
                assert snapshot_header is not None
                outcome.snapshot = options.out_dir / f"{options.label}-snapshot-{stamp()}.jsonl"
                snapshot = RecordWriter(outcome.snapshot, {"kind": "snapshot", **snapshot_header}, options.fernet)
            else:
                outcome.snapshot = snapshot_file
            outcome.backup = options.out_dir / f"{options.label}-backup-{stamp()}.jsonl"
            backup = RecordWriter(outcome.backup, {"kind": "backup", **backup_header}, options.fernet)
        files = [file for file in (snapshot, backup) if file]
        try:
            outcome.plan = Planner(self.target, self.rewrite, options.policy, backup).run(records, snapshot)
            if backup:
                backup.write_plan(outcome.plan)
        except BaseException:
            for file in files:
                file.abandon()  # no footer: a snapshot or backup cut short never looks complete
            raise
        for file in files:
            file.finish()
        outcome.timings["read_plan_backup"] = time.perf_counter() - started

    def _refuse_conflicts(self) -> None:
        conflicts = [i for i in self.outcome.plan if i.action is Action.CONFLICT]
        if conflicts:
            raise VerificationError(
                f"{len(conflicts)} target key(s) already hold other data: "
                + ", ".join(show(i.target_key) for i in conflicts[:5])
                + ("…" if len(conflicts) > 5 else "")
                + "; nothing was written",
                hint="compare with `ci-tools memory diff`, then rerun with --on-conflict skip "
                "(keep them) or replace (overwrite, reversible from the backup)",
            )

    def _apply(self) -> None:
        options, outcome = self.options, self.outcome
        assert outcome.snapshot is not None and outcome.backup is not None
        options.on_event("planned", len(outcome.plan))
        verifier = Verifier(self.target)
        applier = Applier(
            self.target,
            self.rewrite,
            options.policy,
            verifier,
            outcome.timings,
            on_event=options.on_event,
        )
        try:
            applier.run(RecordFile(outcome.snapshot, options.fernet).records(), outcome.plan)
        except TargetStopped as stopped:
            self._absorb(applier)
            raise RemoteError(
                f"the target stopped answering ({type(stopped.cause).__name__}) after {stopped.written} "
                f"of {stopped.total} keys were written; the source is untouched; snapshot {outcome.snapshot}, "
                f"backup {outcome.backup}",
                hint=f"once the target is back, resume with: {options.resume_command} — "
                f"or undo with: {options.undo_command(outcome.backup)}",
            ) from None
        self._absorb(applier)
        outcome.verified = verifier.verified
        if verifier.mismatches:
            raise VerificationError(
                f"{len(verifier.mismatches)} key(s) differ from the snapshot after writing: "
                + ", ".join(verifier.mismatches[:5])
                + ("…" if len(verifier.mismatches) > 5 else ""),
                hint=f"undo with: {options.undo_command(outcome.backup)}",
            )

    def _absorb(self, applier: Applier) -> None:
        result, outcome = applier.result, self.outcome
        outcome.written, outcome.expired = result.written, result.expired
        outcome.changed, outcome.fallback = result.changed, result.fallback
        outcome.verified = applier.verifier.verified


def _only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise InputError(
            f"--stage write needs exactly one {pattern} in {folder}, found {len(found)}",
            hint="run the same command with --stage plan first, into the same --out",
        )
    return found[0]
