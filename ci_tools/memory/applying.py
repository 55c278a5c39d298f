"""Pass 2 of a memory write: the snapshot goes to the target, batch by batch, exactly as planned.

One read of the snapshot serves writing and verifying: each batch is read back and compared
as soon as it is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import redis

from ci_tools.memory.choices import WRITES, Action, Conflict
from ci_tools.memory.model import CONNECTION_ERRORS, PlanItem, show
from ci_tools.memory.records import BATCH, Record, difference, now_ms, read_by_key, ttl_difference
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
    ) -> None:
        self.rewrite, self.verifier, self.timings, self.on_event = rewrite, verifier, timings, on_event
        self.writer = Writer(target)
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


# -- Pass 3 of a memory write: what is on the target now is what the snapshot holds.


class Verifier:
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
