"""Write records to the target so that every key is either untouched or complete.

Small keys go in pipelined MULTI/EXEC batches (a dropped connection applies a
batch whole or not at all); a big key is built under a temporary name and
RENAMEd into place, so a crash mid-copy never leaves a half-written key that a
re-run would mistake for the user's data. RESTORE is the fast path; when the
target refuses the payload's RDB version (a newer server's DUMP), keys are
written type by type instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from ci_tools.memory.records import Record

ARGS_PER_COMMAND = 1000  # elements per RPUSH/HSET/SADD/ZADD call


def _is_payload_error(reply: Any) -> bool:
    return isinstance(reply, redis.ResponseError) and "payload version" in str(reply).lower()


def _is_busy(reply: Any) -> bool:
    return isinstance(reply, redis.ResponseError) and "BUSYKEY" in str(reply)


def _chunks(items: list[Any], size: int = ARGS_PER_COMMAND) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def typed_write(pipe: Any, key: bytes, record: Record) -> None:
    """Append ``record``'s value to ``key`` with one command per chunk of elements."""
    value = record.value
    if record.type == "string":
        pipe.append(key, value)
    elif record.type == "list":
        for chunk in _chunks(value):
            pipe.rpush(key, *chunk)
    elif record.type == "hash":
        for chunk in _chunks(value):
            pipe.hset(key, mapping=dict(chunk))
    elif record.type == "set":
        for chunk in _chunks(value):
            pipe.sadd(key, *chunk)
    elif record.type == "zset":
        for chunk in _chunks(value):
            pipe.zadd(key, dict(chunk))
    elif record.type == "stream":
        for entry_id, fields in value:
            pipe.xadd(key, dict(fields), id=entry_id)


@dataclass
class WriteResult:
    written: list[bytes] = field(default_factory=list)
    expired: list[bytes] = field(default_factory=list)  # ran out of time before being written
    appeared: list[bytes] = field(default_factory=list)  # created by someone else meanwhile
    fallback: bool = False  # the target refused DUMP payloads: typed writes were used


class Writer:
    """Writes records to one target; remembers whether RESTORE works there."""

    def __init__(self, client: redis.Redis, *, replace: bool) -> None:
        self.client = client
        self.replace = replace
        self.restore_ok: bool | None = None
        self.result = WriteResult()
        self._big: dict[bytes, bytes] = {}  # final key -> temporary key being built

    # -- small keys ----------------------------------------------------------
    def write_batch(self, items: list[tuple[bytes, Record]]) -> None:
        live: list[tuple[bytes, Record, int]] = []
        for key, record in items:
            remaining = record.remaining_ms()
            if remaining is not None and remaining <= 0:
                self.result.expired.append(key)  # never resurrect a key as immortal
                continue
            live.append((key, record, remaining or 0))
        if not live:
            return
        use_restore = self.restore_ok is not False
        pipe = self.client.pipeline(transaction=True)
        for key, record, ttl in live:
            self._queue(pipe, key, record, ttl, use_restore and record.dump is not None)
        replies = pipe.execute(raise_on_error=False)
        redo: list[tuple[bytes, Record]] = []
        position = 0
        for key, record, _ttl in live:
            count = self._commands(record, use_restore and record.dump is not None)
            mine = replies[position : position + count]
            position += count
            if any(_is_payload_error(r) for r in mine):
                self.restore_ok = False
                self.result.fallback = True
                redo.append((key, record))
            elif any(_is_busy(r) for r in mine):
                self.result.appeared.append(key)
            elif errors := [r for r in mine if isinstance(r, Exception)]:
                raise errors[0]
            else:
                if use_restore and record.dump is not None:
                    self.restore_ok = True
                self.result.written.append(key)
        if redo:
            self.write_batch(redo)

    def _queue(self, pipe: Any, key: bytes, record: Record, ttl: int, restore: bool) -> None:
        if restore:
            if self.replace:
                pipe.restore(key, ttl, record.dump, replace=True)
            else:
                pipe.restore(key, ttl, record.dump)
            return
        if self.replace:
            pipe.delete(key)
        typed_write(pipe, key, record)
        if ttl:
            pipe.pexpire(key, ttl)

    def _commands(self, record: Record, restore: bool) -> int:
        """How many replies ``_queue`` produces for this record (to split EXEC's replies)."""
        if restore:
            return 1
        counter = _Counter()
        typed_write(counter, b"", record)
        return int(self.replace) + counter.n + int(bool(record.pttl is not None))

    # -- big keys: built under a temporary name, renamed into place ------------
    def write_part(self, key: bytes, record: Record) -> None:
        temp = self._big.get(key)
        if temp is None:
            temp = key + b"\x00ci-tools-partial"
            self._big[key] = temp
            self.client.delete(temp)  # a leftover from an interrupted run
        pipe = self.client.pipeline(transaction=True)
        typed_write(pipe, temp, record)
        pipe.execute()
        if record.final:
            del self._big[key]
            remaining = record.remaining_ms()
            if remaining is not None and remaining <= 0:
                self.client.delete(temp)
                self.result.expired.append(key)
                return
            pipe = self.client.pipeline(transaction=True)
            if remaining is not None:
                pipe.pexpire(temp, remaining)
            if self.replace:
                pipe.rename(temp, key)
            else:
                pipe.renamenx(temp, key)
            replies = pipe.execute()
            if replies[-1] in (False, 0):
                self.client.delete(temp)
                self.result.appeared.append(key)
            else:
                self.result.written.append(key)


class _Counter:
    """Counts the commands ``typed_write`` would queue."""

    def __init__(self) -> None:
        self.n = 0

    def __getattr__(self, name: str) -> Any:
        def count(*args: Any, **kwargs: Any) -> None:
            self.n += 1

        return count
