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

from ci_tools.errors import RemoteError
from ci_tools.memory.records import Record, now_ms
from ci_tools.memory.scripts import RESTORE

ARGS_PER_COMMAND = 1000  # elements per RPUSH/HSET/SADD/ZADD call


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
    # Read back in the same script as the RESTORE: key -> (DUMP equals the payload, pttl).
    read_back: dict[bytes, tuple[bool, int]] = field(default_factory=dict)


class Writer:
    """Writes records to one target; remembers whether RESTORE works there."""

    def __init__(self, client: redis.Redis, *, replace: bool) -> None:
        self.client = client
        self.replace = replace
        self.restore_ok: bool | None = None
        self.result = WriteResult()
        self._restore_script = client.register_script(RESTORE)
        self._big: dict[bytes, bytes] = {}  # final key -> temporary key being built

    # -- small keys ----------------------------------------------------------
    def write_batch(self, items: list[tuple[bytes, Record]]) -> None:
        live: list[tuple[bytes, Record, int]] = []
        at = now_ms()
        for key, record in items:
            remaining = record.remaining_ms(at)
            if remaining is not None and remaining <= 0:
                self.result.expired.append(key)  # never resurrect a key as immortal
                continue
            live.append((key, record, remaining or 0))
        typed = live
        if self.restore_ok is not False:
            restorable = [item for item in live if item[1].dump is not None]
            typed = [item for item in live if item[1].dump is None]
            typed += self._restore(restorable)
        if typed:
            self._typed(typed)

    def _restore(self, items: list[tuple[bytes, Record, int]]) -> list[tuple[bytes, Record, int]]:
        """RESTORE a batch in one atomic script call; return what must be written by type."""
        if not items:
            return []
        args: list[Any] = ["1" if self.replace else "0"]
        for _, record, ttl in items:
            args += [ttl, record.dump]
        replies = self._restore_script(keys=[k for k, _, _ in items], args=args, client=self.client)
        refused = []
        for item, reply in zip(items, replies, strict=True):
            if isinstance(reply, list):
                self.restore_ok = True
                self.result.written.append(item[0])
                self.result.read_back[item[0]] = (reply[1] == 1, int(reply[2]))
                continue
            text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
            if "payload version" in text.lower():
                self.restore_ok, self.result.fallback = False, True
                refused.append(item)
            elif "BUSYKEY" in text:
                self.result.appeared.append(item[0])
            else:
                raise RemoteError(f"RESTORE of {item[0]!r} failed on the target: {text[:200]}")
        return refused

    def _typed(self, items: list[tuple[bytes, Record, int]]) -> None:
        """Type-by-type writes, one MULTI/EXEC for the batch."""
        pipe = self.client.pipeline(transaction=True)
        for key, record, ttl in items:
            if self.replace:
                pipe.delete(key)
            typed_write(pipe, key, record)
            if ttl:
                pipe.pexpire(key, ttl)
        pipe.execute()
        self.result.written.extend(key for key, _, _ in items)

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
