"""Read keys of every type in pipelined batches, and compare and encode what was read.

A record is one key's type, remaining TTL and value, read atomically (one Lua call
a batch) so that the TTL, the DUMP payload and the typed value describe the same
moment: the guard a write checks comes from the same read as the backup it protects.
"""

from __future__ import annotations

import binascii
import hashlib
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import redis

from ci_tools.errors import RemoteError

TYPES = ("string", "list", "hash", "set", "zset", "stream")
# Keys a round trip. A Lua call holds the server while it reads them whole (~5 ms for a bot's small
# keys; 850k elements took 1.4 s, and past 5 s the live bot gets BUSY): one user's keys are few and capped.
BATCH = 1000
T = TypeVar("T")


# KEYS: the keys. Never writes. Reply per key: {type} for a missing key (or a type not copied), else
# {type, pttl, value, dump}.
READ = """
local out = {}
for i, key in ipairs(KEYS) do
  local t = redis.call('TYPE', key)['ok']
  local value
  if t == 'string' then value = redis.call('GET', key)
  elseif t == 'list' then value = redis.call('LRANGE', key, 0, -1)
  elseif t == 'hash' then value = redis.call('HGETALL', key)
  elseif t == 'set' then value = redis.call('SMEMBERS', key)
  elseif t == 'zset' then value = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  elseif t == 'stream' then value = redis.call('XRANGE', key, '-', '+') end
  if value == nil then
    out[i] = {t}
  else
    out[i] = {t, redis.call('PTTL', key), value, redis.call('DUMP', key)}
  end
end
return out
"""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class Record:
    """One key. ``type == "none"`` means the key does not exist. Its value is never in its repr."""

    key: bytes
    type: str
    pttl: int | None = None
    read_at: int = 0
    value: Any = field(default=None, repr=False)
    dump: bytes | None = field(default=None, repr=False)

    @property
    def exists(self) -> bool:
        return self.type != "none"

    def remaining_ms(self, at: int | None = None) -> int | None:
        """Remaining TTL now (None = no TTL); ≤ 0 means it has expired since it was read."""
        if self.pttl is None:
            return None
        return self.read_at + self.pttl - (now_ms() if at is None else at)

    def size(self) -> int:
        return len(self.value) if self.value is not None else 0


def _pairs(flat: list[Any]) -> list[tuple[Any, Any]]:
    """Field/value pairs from a flat list, as a Lua reply gives them."""
    return list(zip(flat[0::2], flat[1::2], strict=True))


def canonical(type_: str, raw: Any) -> Any:
    """A Lua reply as the value every comparison and encoding uses."""
    if type_ == "hash":
        return sorted(_pairs(raw))
    if type_ == "set":
        return sorted(raw)
    if type_ == "zset":
        return [(m, float(s)) for m, s in _pairs(raw)]
    if type_ == "stream":
        return [(i, sorted(_pairs(f))) for i, f in raw]
    return raw  # string: bytes; list: list[bytes]


def batches(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), read as they are needed."""
    rest = iter(items)
    return iter(lambda: list(itertools.islice(rest, size)), [])


def read_records(client: redis.Redis, keys: Iterable[bytes]) -> Iterator[Record]:
    """Yield a record per key, in the order given, with its DUMP payload (its guard's source); absent keys too."""
    script = client.register_script(READ)
    for batch in batches(keys):
        # Taken before the call: a remaining TTL counted from here never claims more life than the key had.
        read_at = now_ms()
        for key, reply in zip(batch, script(keys=batch, client=client), strict=True):
            type_ = reply[0].decode()
            if type_ == "none":
                yield Record(key, "none", read_at=read_at)
            elif type_ not in TYPES:
                raise RemoteError(
                    f"key {key!r} has type {type_!r}, which memory copy does not handle",
                    hint="only string, list, hash, set, sorted set and stream keys are copied",
                )
            else:
                value = canonical(type_, reply[2])
                yield Record(key, type_, None if reply[1] == -1 else reply[1], read_at, value, reply[3] or None)


def read_by_key(client: redis.Redis, keys: list[bytes]) -> dict[bytes, Record]:
    return {record.key: record for record in read_records(client, keys)}


# -- JSON encoding: snapshots and backups are portable JSON lines.


def b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


from_b64 = binascii.a2b_base64  # takes the ASCII text too


def _convert(type_: str, value: Any, blob: Callable[[Any], Any], score: Callable[[Any], Any]) -> Any:
    """A value's bytes through ``blob`` and its scores through ``score``: encoding or decoding."""
    if type_ == "string":
        return blob(value)
    if type_ in ("list", "set"):
        return [blob(v) for v in value]
    if type_ in ("hash", "zset"):
        return [(blob(f), (blob if type_ == "hash" else score)(v)) for f, v in value]
    if type_ == "stream":
        return [(blob(i), [(blob(f), blob(v)) for f, v in fields]) for i, fields in value]
    return None


def encode_value(type_: str, value: Any) -> Any:
    return _convert(type_, value, b64, lambda score: repr(float(score)))  # repr: 'inf' too


def decode_value(type_: str, data: Any) -> Any:
    return _convert(type_, data, from_b64, float)


def value_digest(record: Record) -> str:
    """A digest of a key's canonical value (not its encoding or TTL): the same on any server version,
    so an undo can tell whether a key still holds what a copy wrote there."""
    encoded = orjson.dumps([record.type, encode_value(record.type, record.value)])
    return hashlib.sha1(encoded, usedforsecurity=False).hexdigest()


def to_json(record: Record) -> dict[str, Any]:
    line: dict[str, Any] = {"key": b64(record.key), "type": record.type}
    if record.exists:
        line |= {"pttl": record.pttl, "read_at": record.read_at, "value": encode_value(record.type, record.value)}
        if record.dump is not None:
            line["dump"] = b64(record.dump)
    return line


def from_json(line: dict[str, Any]) -> Record:
    type_ = line["type"]
    if type_ != "none" and type_ not in TYPES:
        raise ValueError(f"unknown type {type_!r}")
    value, dump = decode_value(type_, line.get("value")), from_b64(line["dump"]) if line.get("dump") else None
    return Record(from_b64(line["key"]), type_, line.get("pttl"), int(line.get("read_at", 0)), value, dump)


# -- What "the same" means for a key: type, value, and TTL within a tolerance.

TTL_TOLERANCE_MS = 2000


def difference(expected: Record, actual: Record) -> str | None:
    """None when ``actual`` holds what ``expected`` says; otherwise what differs."""
    if not actual.exists:
        return "missing"
    if expected.type != actual.type:
        return f"type {actual.type}, expected {expected.type}"
    # Equal DUMP payloads are equal values (same bytes, same checksum): no need to decode.
    same_payload = expected.dump is not None and expected.dump == actual.dump
    if not same_payload and expected.value != actual.value:
        return "value differs"
    return ttl_difference(expected, actual)


def ttl_difference(expected: Record, actual: Record) -> str | None:
    at = now_ms()
    want, got = expected.remaining_ms(at), actual.remaining_ms(at)
    if want is None and got is None:
        return None
    if want is None:
        return "has a TTL, expected none"
    if got is None:
        return "has no TTL, expected one"
    if abs(want - got) > TTL_TOLERANCE_MS:
        return f"TTL differs by {abs(want - got) / 1000:.1f}s"
    return None
