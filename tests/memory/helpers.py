"""Shared helpers for the memory tests: seeding a realistic user and reading a server's state."""

from __future__ import annotations

from pathlib import Path

import redis

from ci_tools.memory.model import Conflict, Uncovered
from ci_tools.memory.ops import CopyRequest
from ci_tools.settings import load_config

USER = 424242
OTHER = 4242  # a prefix of USER's id: must never be copied along
# USER from staging to production, as the memory commands take it
ROUTE = ("--user-id", str(USER), "--from", "staging", "--to", "production")


def seed_user(client: redis.Redis, prefix: str = "dev:", user: int = USER) -> None:
    """One key of every type, binary values, a TTL, and another user's keys beside them."""
    client.set(f"{prefix}meta:env", "staging" if prefix == "dev:" else "production")
    client.rpush(f"{prefix}user:{user}:history", b'{"ts":1,"text":"hi"}', b"\xff\x00\x01 binary")
    client.hset(f"{prefix}user:{user}:profile", mapping={"first_seen": "1", "last_seen": "2", "name": "Ada"})
    client.rpush(f"{prefix}memory:{user}", "likes tea", "sister Mia")
    client.pexpire(f"{prefix}memory:{user}", 600_000)
    client.rpush(f"{prefix}memory:{OTHER}", "someone else")
    client.hset(f"{prefix}user:{OTHER}:profile", "name", "Bob")


def seed_all_types(client: redis.Redis, prefix: str = "dev:", user: int = USER) -> None:
    client.set(f"{prefix}all:{user}:string", b"\x00\xffraw", px=900_000)
    client.rpush(f"{prefix}all:{user}:list", *[f"item {i}".encode() for i in range(50)])
    client.hset(f"{prefix}all:{user}:hash", mapping={b"f\x00": b"\xfe", "g": "2"})
    client.sadd(f"{prefix}all:{user}:set", "a", "b", b"\xc3\x28")
    client.zadd(f"{prefix}all:{user}:zset", {"low": -1.5, "high": 1e300, "inf": float("inf")})
    client.xadd(f"{prefix}all:{user}:stream", {"text": "hello"}, id="1-1")
    client.xadd(f"{prefix}all:{user}:stream", {"text": "again", "mood": "ok"}, id="2-0")


def value(client: redis.Redis, key: bytes) -> object:
    """A key's type and exact bytes, read with plain commands (independent of ci_tools' reader)."""
    kind = client.type(key).decode()
    reads = {
        "string": lambda: client.get(key),
        "list": lambda: client.lrange(key, 0, -1),
        "hash": lambda: sorted(client.hgetall(key).items()),
        "set": lambda: sorted(client.smembers(key)),
        "zset": lambda: client.zrange(key, 0, -1, withscores=True),
        "stream": lambda: client.xrange(key),
    }
    return kind, reads[kind]()


def state(client: redis.Redis) -> dict[bytes, tuple[object, bool]]:
    """Every key's type, bytes and whether it has a TTL: equal states are equal byte for byte."""
    return {key: (value(client, key), client.pttl(key) > 0) for key in sorted(client.scan_iter(count=1000))}


def request(tmp_path: Path, **changes: object) -> CopyRequest:
    config = load_config()
    fields = {
        "user_id": USER,
        "source_env": config.env("staging"),
        "target_env": config.env("production"),
        "source_prefix": "dev:",
        "target_prefix": "prod:",
        "patterns": config.env("staging").memory_patterns,
        "apply": True,
        "policy": "fail",
        "out_dir": tmp_path / "out",
        "resume_command": "ci-tools memory copy --user-id 424242 --from staging --to production --apply",
    }
    fields.update(changes)
    fields["policy"] = Conflict(fields["policy"])  # the words a person types
    fields["uncovered"] = Uncovered(fields.get("uncovered", "refuse"))
    return CopyRequest(**fields)  # type: ignore[arg-type]


def seed_bulk(source: redis.Redis, target: redis.Redis, keys: int) -> None:
    """``keys`` lists of 200 items in the source, the target holding every other one ("old"): a
    copy long enough to cancel mid-write, whose backup must put the replaced keys back."""
    pipe = source.pipeline(transaction=False)
    for i in range(keys):
        pipe.rpush(f"dev:bulk:{USER}:{i}", *[b"new %d" % j for j in range(200)])
    pipe.execute()
    pipe = target.pipeline(transaction=False)
    for i in range(0, keys, 2):
        pipe.rpush(f"prod:bulk:{USER}:{i}", b"old")
    pipe.execute()
