"""Pass 2 of a memory write: the snapshot goes to the target, batch by batch, exactly as planned.

One read of the snapshot serves writing and verifying: each batch is read back and compared
as soon as it is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

from ci_tools.memory.choices import WRITES, Action, Conflict
from ci_tools.memory.model import CONNECTION_ERRORS, PlanItem, show
from ci_tools.memory.records import BATCH, TTL_TOLERANCE_MS, Record, difference, now_ms, read_by_key, ttl_difference
from ci_tools.memory.writer import Writer, WriteResult

# KEYS: target keys. ARGV: the DUMP payloads they should hold, in order.
# Reply per key: {1 if the key's DUMP equals the payload else 0, pttl}.
SAME_PAYLOAD = """
local out = {}
for i, key in ipairs(KEYS) do
  local dump = redis.call('DUMP', key)
  local same = 0
  if dump and dump == ARGV[i] then same = 1 end
  out[i] = {same, redis.call('PTTL', key)}
end
return out
"""


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


# -- Pass 3 of a memory write: what is on the target now is what the snapshot holds.


class Verifier:
    def __init__(self, target: redis.Redis, rewrite: Callable[[bytes], bytes], resume_command: str) -> None:
        self.target, self.rewrite, self.resume_command = target, rewrite, resume_command
        self.verified = 0
        self.mismatches: list[str] = []  # "<key> (<how it differs>)"
        self._same_payload = target.register_script(SAME_PAYLOAD)

    def batch(self, batch: list[tuple[bytes, Record]], read_back: dict[bytes, tuple[bool, int]] | None = None) -> None:
        """Check written (or identical) small keys; ``read_back`` holds what the write's own
        script read back for the keys it RESTOREd."""
        if not batch:
            return
        self.verified += len(batch)
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
                    self.mismatches.append(f"{show(key)} ({reason})")
        batch = [(k, r) for k, r in batch if k not in read_back]
        with_dump = [(k, r) for k, r in batch if r.dump is not None]
        slow += [(k, r) for k, r in batch if r.dump is None]
        if with_dump:
            slow += self._compare_payloads(with_dump)
        found = read_by_key(self.target, [k for k, _ in slow]) if slow else {}
        for key, expected in slow:
            if reason := difference(expected, found[key]):
                self.mismatches.append(f"{show(key)} ({reason})")

    def _compare_payloads(self, with_dump: list[tuple[bytes, Record]]) -> list[tuple[bytes, Record]]:
        """The target's own DUMP comparison; the keys it could not match (to compare by value)."""
        replies = self._same_payload(
            keys=[k for k, _ in with_dump],
            args=[r.dump for _, r in with_dump if r.dump is not None],
            client=self.target,
        )
        read_at = now_ms()
        slow = []
        for (key, expected), (same, pttl) in zip(with_dump, replies, strict=True):
            if not same:
                slow.append((key, expected))  # another encoding or RDB version: compare values
                continue
            current = Record(key, expected.type, None if pttl < 0 else pttl, read_at)
            if reason := ttl_difference(expected, current):
                self.mismatches.append(f"{show(key)} ({reason})")
        return slow


def _ttl_close(expected: Record, pttl: int, at: int) -> bool:
    """The common case of ``ttl_difference`` without building a Record: no TTL on either side, or
    both within the tolerance. False means "ask ttl_difference", which names the difference."""
    want = expected.remaining_ms(at)
    if want is None:
        return pttl < 0
    return pttl >= 0 and abs(want - pttl) <= TTL_TOLERANCE_MS
