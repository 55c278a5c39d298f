"""Read keys of every type in pipelined batches, and compare and encode what was read.

A record is one key's type, remaining TTL and value, read atomically (one Lua call
a batch) so that the TTL, the DUMP payload and the typed value describe the same
moment. Round trips grow with keys ÷ batch size: one call a batch. Keys bigger than
``big`` elements are read in chunks and yielded as several parts, so memory stays
flat however big a key is.
"""

from __future__ import annotations

import binascii
import hashlib
import itertools
import math
import time
from collections.abc import Iterable, Iterator
from typing import Any, cast

import orjson
import redis

from ci_tools.errors import RemoteError

TYPES = ("string", "list", "hash", "set", "zset", "stream")
BATCH = 1000  # keys a round trip; also the most a Lua call holds the server (~5 ms)
BIG = 10_000  # elements: a key with more is read and written in chunks of this many


# Server-side Lua for the per-key read, so Python pays per batch instead of per key: the
# read is atomic (TTL, DUMP and value describe one moment) and never writes.
# KEYS: the keys. ARGV[1]: elements above which a key is "big" (value left out, read
# in chunks by the caller). ARGV[2]: "1" to include DUMP payloads.
# Reply per key: {type} for a missing key, {type, pttl} for a big one,
# {type, pttl, value, dump-or-false} otherwise.
READ = """
local big = tonumber(ARGV[1])
local with_dump = ARGV[2] == '1'
local lengths = {hash='HLEN', set='SCARD', zset='ZCARD', stream='XLEN'}
local out = {}
for i, key in ipairs(KEYS) do
  local t = redis.call('TYPE', key)['ok']
  if t == 'none' or not (lengths[t] or t == 'string' or t == 'list') then
    out[i] = {t}
  else
    local pttl = redis.call('PTTL', key)
    local value
    -- strings are never chunked; a list is read up to one past the limit, which says
    -- whether it is big without a separate LLEN (one call a key saved: most keys are lists)
    if t == 'string' then value = redis.call('GET', key)
    elseif t == 'list' then
      value = redis.call('LRANGE', key, 0, big)
      if #value > big then value = nil end
    elseif redis.call(lengths[t], key) <= big then
      if t == 'hash' then value = redis.call('HGETALL', key)
      elseif t == 'set' then value = redis.call('SMEMBERS', key)
      elseif t == 'zset' then value = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
      else value = redis.call('XRANGE', key, '-', '+') end
    end
    if value == nil then
      out[i] = {t, pttl}
    else
      local dump = false
      if with_dump then dump = redis.call('DUMP', key) end
      out[i] = {t, pttl, value, dump}
    end
  end
end
return out
"""


def now_ms() -> int:
    return int(time.time() * 1000)


class Record:
    """One key (or one part of a big key). ``type == "none"`` means the key does not exist.

    ``value`` decodes lazily from a snapshot line: the RESTORE path only needs ``dump``.
    """

    __slots__ = ("_encoded", "_value", "dump", "final", "key", "part", "pttl", "read_at", "type")

    def __init__(
        self,
        key: bytes,
        type: str,
        pttl: int | None = None,
        read_at: int = 0,
        value: Any = None,
        dump: bytes | None = None,
        part: int = 0,
        final: bool = True,
        encoded: Any = None,
    ) -> None:
        self.key, self.type, self.pttl, self.read_at = key, type, pttl, read_at
        self._value, self._encoded = value, encoded
        self.dump, self.part, self.final = dump, part, final

    @property
    def value(self) -> Any:
        if self._value is None and self._encoded is not None:
            self._value, self._encoded = decode_value(self.type, self._encoded), None
        return self._value

    @value.setter
    def value(self, value: Any) -> None:
        self._value, self._encoded = value, None

    def __repr__(self) -> str:
        return f"Record({self.key!r}, {self.type}, part={self.part}, final={self.final})"

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


# -- canonical values: what "equal" means per type ---------------------------


def _pairs(raw: Any) -> list[tuple[Any, Any]]:
    """Field/value pairs from a dict (redis-py) or a flat list (a Lua reply)."""
    if isinstance(raw, dict):
        return list(raw.items())
    if raw and not isinstance(raw[0], tuple | list):
        return list(zip(raw[0::2], raw[1::2], strict=True))
    return [tuple(p) for p in raw]


def canonical(type_: str, raw: Any) -> Any:
    if type_ == "hash":
        return sorted(_pairs(raw))
    if type_ == "set":
        return sorted(raw)
    if type_ == "zset":
        return [(m, float(s)) for m, s in _pairs(raw)]
    if type_ == "stream":
        return [(i, sorted(_pairs(f))) for i, f in raw]
    return raw  # string: bytes; list: list[bytes]


# -- reading --------------------------------------------------------------


def _ttl(pttl: int) -> int | None:
    return None if pttl == -1 else pttl


def read_records(
    client: redis.Redis,
    keys: Iterable[bytes],
    *,
    with_dump: bool = False,
    batch: int = BATCH,
    big: int | None = None,
) -> Iterator[Record]:
    """Yield a record (or parts, for a big key) per key, in the order given; absent keys too."""
    big = big or BIG
    script = client.register_script(READ)
    pending: list[bytes] = []
    for key in keys:
        pending.append(key)
        if len(pending) >= batch:
            yield from _read_batch(client, script, pending, with_dump, big)
            pending = []
    if pending:
        yield from _read_batch(client, script, pending, with_dump, big)


def _read_batch(client: redis.Redis, script: Any, keys: list[bytes], with_dump: bool, big: int) -> Iterator[Record]:
    replies = script(keys=keys, args=[big, "1" if with_dump else "0"], client=client)
    read_at = now_ms()
    for key, reply in zip(keys, replies, strict=True):
        type_ = reply[0].decode()
        if type_ == "none":
            yield Record(key, "none", read_at=read_at)
        elif type_ not in TYPES:
            raise RemoteError(
                f"key {key!r} has type {type_!r}, which memory copy does not handle",
                hint="only string, list, hash, set, sorted set and stream keys are copied",
            )
        elif len(reply) == 2:
            yield from _read_big(client, key, type_, big)
        else:
            value = canonical(type_, reply[2])
            yield Record(key, type_, _ttl(reply[1]), read_at, value, reply[3] or None)


def _read_big(client: redis.Redis, key: bytes, type_: str, chunk: int) -> Iterator[Record]:
    """A big key in parts of ``chunk`` elements; TTL from the first read.

    Not atomic across parts: a key this big is not the bot's (its lists are capped),
    and verification compares the target with exactly what was read.
    """
    pttl = client.pttl(key)
    read_at = now_ms()
    if pttl == -2:
        yield Record(key, "none", read_at=read_at)
        return
    parts = _chunks(client, key, type_, chunk)
    current = next(parts, [])
    index = 0
    for following in parts:
        yield Record(key, type_, _ttl(pttl), read_at, current, part=index, final=False)
        current, index = following, index + 1
    yield Record(key, type_, _ttl(pttl), read_at, current, part=index, final=True)


def _chunks(client: redis.Redis, key: bytes, type_: str, chunk: int) -> Iterator[list[Any]]:
    # redis-py types replies as bytes | str; this client never decodes, so they are bytes.
    if type_ == "list":
        start = 0
        while values := list(client.lrange(key, start, start + chunk - 1)):
            yield values
            start += chunk
    elif type_ == "zset":
        start = 0
        while scored := list(client.zrange(key, start, start + chunk - 1, withscores=True)):
            yield canonical("zset", scored)
            start += chunk
    elif type_ == "stream":
        last = b"-"
        while entries := list(client.xrange(key, last, "+", count=chunk) or []):
            yield canonical("stream", entries)
            last = b"(" + cast(bytes, entries[-1][0])
    elif type_ in ("hash", "set"):
        cursor, scan = 0, client.hscan if type_ == "hash" else client.sscan
        buffer: list[Any] = []
        while True:
            cursor, found = scan(key, cursor, count=chunk)
            buffer.extend(found.items() if isinstance(found, dict) else found)
            while len(buffer) >= chunk:
                yield sorted(buffer[:chunk])
                buffer = buffer[chunk:]
            if cursor == 0:
                break
        if buffer:
            yield sorted(buffer)


# -- JSON encoding (snapshots and backups are portable JSON lines) ------------


def _b(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _u(text: str) -> bytes:
    return binascii.a2b_base64(text)


def _bs(items: Iterable[bytes]) -> list[str]:
    """Base64 of each item, in C: one join and one split instead of a Python call per item."""
    return b"".join(map(binascii.b2a_base64, items)).decode("ascii").split("\n")[:-1]


def _score(score: float) -> str:
    return repr(float(score)) if math.isfinite(score) else ("inf" if score > 0 else "-inf")


def encode_value(type_: str, value: Any) -> Any:
    if type_ == "string":
        return _b(value)
    if type_ in ("list", "set"):
        return _bs(value)
    if type_ == "hash":
        flat = _bs(itertools.chain.from_iterable(value))
        return list(zip(flat[0::2], flat[1::2], strict=True))
    if type_ == "zset":
        return list(zip(_bs(m for m, _ in value), map(_score, (s for _, s in value)), strict=True))
    if type_ == "stream":
        return [[_b(i), [[_b(f), _b(v)] for f, v in fields]] for i, fields in value]
    return None


def decode_value(type_: str, data: Any) -> Any:
    if type_ == "string":
        return _u(data)
    if type_ in ("list", "set"):
        return [_u(v) for v in data]
    if type_ == "hash":
        return [(_u(f), _u(v)) for f, v in data]
    if type_ == "zset":
        return [(_u(m), float(s)) for m, s in data]
    if type_ == "stream":
        return [(_u(i), [(_u(f), _u(v)) for f, v in fields]) for i, fields in data]
    return None


def value_digest(record: Record) -> str:
    """What a key holds, as a digest of its canonical value (not its encoding, not its TTL):
    the same on any server version, so an undo can tell whether a key still holds what a copy
    wrote there."""
    encoded = orjson.dumps([record.type, encode_value(record.type, record.value)])
    return hashlib.sha1(encoded, usedforsecurity=False).hexdigest()


def to_json(record: Record) -> dict[str, Any]:
    line: dict[str, Any] = {"key": _b(record.key), "type": record.type}
    if record.exists:
        line |= {
            "pttl": record.pttl,
            "read_at": record.read_at,
            "value": encode_value(record.type, record.value),
        }
        if record.dump is not None:
            line["dump"] = _b(record.dump)
        if record.part or not record.final:
            line |= {"part": record.part, "final": record.final}
    return line


def from_json(line: dict[str, Any]) -> Record:
    type_ = line["type"]
    if type_ != "none" and type_ not in TYPES:
        raise ValueError(f"unknown type {type_!r}")
    return Record(
        key=_u(line["key"]),
        type=type_,
        pttl=line.get("pttl"),
        read_at=int(line.get("read_at", 0)),
        encoded=line.get("value"),
        dump=_u(line["dump"]) if line.get("dump") else None,
        part=int(line.get("part", 0)),
        final=bool(line.get("final", True)),
    )


# -- What "the same" means for a key: type, value, and TTL within a tolerance.

TTL_TOLERANCE_MS = 2000


def difference(expected: Record, actual: Record, *, tolerance_ms: int = TTL_TOLERANCE_MS) -> str | None:
    """None when ``actual`` holds what ``expected`` says; otherwise what differs."""
    if not actual.exists:
        return "missing"
    if expected.type != actual.type:
        return f"type {actual.type}, expected {expected.type}"
    # Equal DUMP payloads are equal values (same bytes, same checksum): no need to decode.
    same_payload = expected.dump is not None and expected.dump == actual.dump
    if not same_payload and expected.value != actual.value:
        return "value differs"
    return ttl_difference(expected, actual, tolerance_ms)


def ttl_difference(expected: Record, actual: Record, tolerance_ms: int = TTL_TOLERANCE_MS) -> str | None:
    at = now_ms()
    want, got = expected.remaining_ms(at), actual.remaining_ms(at)
    if want is None and got is None:
        return None
    if want is None:
        return "has a TTL, expected none"
    if got is None:
        return "has no TTL, expected one"
    if abs(want - got) > tolerance_ms:
        return f"TTL differs by {abs(want - got) / 1000:.1f}s"
    return None


def part_difference(client: redis.Redis, key: bytes, part: Record, offset: int) -> str | None:
    """Compare one chunk of a big key with the same chunk of ``key`` on ``client``."""
    size = len(part.value)
    if part.type == "list":
        got: Any = client.lrange(key, offset, offset + size - 1)
    elif part.type == "zset":
        got = canonical("zset", client.zrange(key, offset, offset + size - 1, withscores=True))
    elif part.type == "stream":
        first, last = part.value[0][0], part.value[-1][0]
        got = canonical("stream", client.xrange(key, first, last))
    elif part.type == "hash":
        fields = [f for f, _ in part.value]
        got = sorted(zip(fields, client.hmget(key, fields), strict=True))
    elif part.type == "set":
        flags = client.smismember(key, part.value)
        got = sorted(m for m, present in zip(part.value, flags, strict=True) if present)
    else:
        return f"type {part.type} is never chunked"
    return None if got == part.value else f"value differs in part {part.part}"


def length_of(client: redis.Redis, key: bytes, type_: str) -> int:
    return int(
        {
            "list": client.llen,
            "hash": client.hlen,
            "set": client.scard,
            "zset": client.zcard,
            "stream": client.xlen,
            "string": client.strlen,
        }[type_](key)
    )
