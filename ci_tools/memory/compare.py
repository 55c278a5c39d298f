"""What "the same" means for a key: type, value, and TTL within a tolerance."""

from __future__ import annotations

from typing import Any

import redis

from ci_tools.memory.records import Record, canonical, now_ms

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
