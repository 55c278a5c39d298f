"""Benchmark: what `ci-tools memory copy --apply` costs for one user, phase by phase.

Two real redis-server processes on loopback; N keys of one user (mixed types, a third
with TTLs) among M keys of other users, which discovery and the coverage audit scan past.
Prints the end-to-end time and each phase's (discover, audit, read/plan/backup, copy,
verify). `--rtt-ms X` puts a delay proxy between the tool and both servers. The keys carry
staging's and production's key prefixes as pyproject.toml sets them (staging's may be empty).

No target: one user's memory is a handful of keys, and the copy's guarantees (snapshot,
backup, compare-and-set, read-back) are what it is for. The speed targets against a naive
DUMP/RESTORE loop and server-side MIGRATE, set when the copy moved 20k-key memories, were
retired with the machinery that served them (issue 44). What stays measured against a
target is the snapshot of production's whole memory: bench/snapshot.py.

    python bench/memory_copy.py [--keys N] [--others M] [--rtt-ms X] [--smoke]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _smoke  # noqa: E402
from bench._delay_proxy import DelayProxy  # noqa: E402
from ci_tools.context import build  # noqa: E402
from ci_tools.memory.model import Conflict  # noqa: E402
from ci_tools.memory.ops import between, copy_user  # noqa: E402
from ci_tools.settings import load_config  # noqa: E402
from sandbox.redis import RedisServer  # noqa: E402

USER = 5150
PATTERN = "bench:{user_id}:*"
CONFIG = load_config(ROOT / "pyproject.toml")
# The copy's two sides, as the project's config names them: the source's keys and marker carry
# staging's prefix (empty while staging keeps the legacy unprefixed keys), the target's production's.
SOURCE = CONFIG.env("staging").key_prefix
TARGET = CONFIG.env("production").key_prefix


def populate(client: redis.Redis, n: int, m: int) -> None:
    """N keys of USER among M keys of others, under staging's prefix, and staging's marker."""
    client.set(f"{SOURCE}meta:env", "staging")
    pipe = client.pipeline(transaction=False)
    for i in range(n + m):
        user = USER if i < n else 10_000 + i
        key = f"{SOURCE}bench:{user}:k{i}"
        kind = i % 6
        if kind == 0:
            pipe.set(key, f"value {i} " * 4)
        elif kind == 1:
            pipe.rpush(key, *[f"message {j}" for j in range(10)])
        elif kind == 2:
            pipe.hset(key, mapping={f"f{j}": f"v{j}" for j in range(5)})
        elif kind == 3:
            pipe.sadd(key, *[f"m{j}" for j in range(5)])
        elif kind == 4:
            pipe.zadd(key, {f"m{j}": j for j in range(5)})
        else:
            pipe.xadd(key, {"text": f"entry {i}"}, id="1-1")
        if i % 3 == 0:
            pipe.expire(key, 3600)
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()


def reset_target(client: redis.Redis) -> None:
    client.flushall()
    client.set(f"{TARGET}meta:env", "production")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=20, help="N: the user's keys")
    parser.add_argument("--others", type=int, default=20_000, help="M: other users' keys")
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    # The smoke goes through the delay proxy too, so the --rtt-ms path keeps working.
    args = _smoke.parse(parser, keys=20, others=200, rtt_ms=1.0)
    with RedisServer() as dev, RedisServer() as prod, tempfile.TemporaryDirectory() as out:
        populate(dev.client(), args.keys, args.others)
        reset_target(prod.client())
        proxies = [DelayProxy(s.port, args.rtt_ms).start() for s in (dev, prod)] if args.rtt_ms else []
        source_port, target_port = (p.port for p in proxies) if proxies else (dev.port, prod.port)
        ctx = build(
            {
                "SOURCE_REDIS_URL": f"redis://127.0.0.1:{source_port}/0",
                "TARGET_REDIS_URL": f"redis://127.0.0.1:{target_port}/0",
            }
        )
        request = between(
            CONFIG, USER, "staging", "production", Path(out), patterns=(PATTERN,), apply=True, policy=Conflict.REPLACE
        )
        started = time.perf_counter()
        outcome = copy_user(ctx, request)
        total = time.perf_counter() - started
        assert outcome.verified == len(outcome.plan) == args.keys, "the copy did not verify"
        for proxy in proxies:
            proxy.stop()
    print(f"memory copy benchmark: {args.keys} user keys among {args.keys + args.others} keys, RTT {args.rtt_ms:g} ms")
    print(f"  end to end {total:.3f} s; phases (s): " + ", ".join(f"{k} {v:.3f}" for k, v in outcome.timings.items()))


if __name__ == "__main__":
    main()
