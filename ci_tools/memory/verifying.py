"""Pass 3 of a memory write: what is on the target now is what the snapshot holds.

Small keys are checked batch by batch right after they are written (the target compares
DUMP payloads itself, so only a key whose payload differs is read back); big keys are
compared part by part once they are in place. Every difference is kept, named, for the
one error that lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import redis

from ci_tools.errors import RemoteError
from ci_tools.memory.compare import TTL_TOLERANCE_MS, difference, length_of, part_difference, ttl_difference
from ci_tools.memory.model import CONNECTION_ERRORS, group_parts, show
from ci_tools.memory.records import Record, now_ms, read_records
from ci_tools.memory.scripts import SAME_PAYLOAD


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
        if slow:
            found = group_parts(read_records(self.target, [k for k, _ in slow]))
        for key, expected in slow:
            parts = found[key]
            reason = "target is a big key" if len(parts) > 1 else difference(expected, parts[0])
            if reason:
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

    def big_keys(self, records: Iterator[Record], big: set[bytes], not_written: set[bytes]) -> None:
        """Compare each big key (source keys in ``big``), part by part, with the target."""
        offsets: dict[bytes, int] = {}
        failed: set[bytes] = set()
        try:
            for record in records:
                target_key = self.rewrite(record.key)
                if record.key not in big or target_key in not_written:
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
                    self.verified += 1
                if reason and target_key not in failed:
                    failed.add(target_key)
                    self.mismatches.append(f"{show(target_key)} ({reason})")
        except CONNECTION_ERRORS as exc:
            raise RemoteError(
                f"the target stopped answering during verification ({type(exc).__name__})",
                hint=f"rerun to verify: {self.resume_command}",
            ) from None


def _ttl_close(expected: Record, pttl: int, at: int) -> bool:
    """The common case of ``ttl_difference`` without building a Record: no TTL on either side, or
    both within the tolerance. False means "ask ttl_difference", which names the difference."""
    want = expected.remaining_ms(at)
    if want is None:
        return pttl < 0
    return pttl >= 0 and abs(want - pttl) <= TTL_TOLERANCE_MS
