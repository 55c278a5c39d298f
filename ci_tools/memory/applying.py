"""Pass 2 of a memory write: the snapshot goes to the target, batch by batch, exactly as planned.

One read of the snapshot serves writing and verifying: each batch of small keys is read back
and compared as soon as it is written; big keys are written part by part (into a temporary
key renamed into place) and compared afterwards, in a pass of their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

from ci_tools.memory.choices import WRITES, Action, Conflict
from ci_tools.memory.model import CONNECTION_ERRORS, PlanItem
from ci_tools.memory.records import BATCH, Record
from ci_tools.memory.verifying import Verifier
from ci_tools.memory.writer import Writer, WriteResult


class TargetStopped(Exception):
    """The target stopped answering part-way: ``written`` of ``total`` keys landed."""

    def __init__(self, written: int, total: int, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__} after {written} of {total} keys")
        self.written, self.total, self.cause = written, total, cause


class Applier:
    def __init__(
        self,
        target: redis.Redis,
        rewrite: Callable[[bytes], bytes],
        policy: Conflict,
        verifier: Verifier,
        timings: dict[str, float],
        *,
        on_event: Callable[[str, int], None],
        progress: Callable[[str, int], Any] | None = None,
    ) -> None:
        self.rewrite, self.verifier, self.timings = rewrite, verifier, timings
        self.on_event, self.progress = on_event, progress
        self.writer = Writer(target)
        self.big: set[bytes] = set()  # source keys written (or left) part by part
        self._to_write: list[tuple[bytes, Record, str]] = []
        self._guards: dict[bytes, str] = {}
        self._to_check: list[tuple[bytes, Record]] = []
        self._batches = 0
        self._tick: Callable[[int], None] | None = None

    @property
    def result(self) -> WriteResult:
        return self.writer.result

    def run(self, records: Iterator[Record], plan: list[PlanItem]) -> None:
        """Write what the plan says; ``TargetStopped`` if the target stops answering."""
        actions = {item.source_key: item.action for item in plan}
        self._guards = {item.source_key: item.guard for item in plan}
        total = sum(1 for i in plan if i.action in WRITES)
        self._tick = self.progress("copy", total) if self.progress and total else None
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
        if record.final and record.part == 0:
            if write:
                self._to_write.append((target_key, record, self._guards[record.key]))
            self._to_check.append((target_key, record))
            if len(self._to_write) >= BATCH or len(self._to_check) >= BATCH:
                self._flush()
            return
        self.big.add(record.key)
        if write:
            started = time.perf_counter()
            self.writer.write_part(target_key, record, self._guards[record.key])
            self.timings["copy"] += time.perf_counter() - started
            if self._tick and record.final:
                self._tick(1)

    def _flush(self) -> None:
        started = time.perf_counter()
        if self._to_write:
            self.writer.write_batch(self._to_write)
            self._batches += 1
            if self._tick:
                self._tick(len(self._to_write))
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
