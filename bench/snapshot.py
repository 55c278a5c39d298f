"""Benchmark: what the memory snapshot before a release costs, at 1k, 10k and 100k keys.

A real redis-server holds production's memory (mixed types, a third with TTLs, under
production's key prefix); ``memory snapshot`` reads every key and writes the encrypted restore point, as
production.yml does before it deploys. Printed beside the same keys copied by ``memory copy
--apply`` into an empty second server (snapshot, backup, write, verify), the job whose
machinery the snapshot reuses, as the ratio snapshot ÷ copy. Targets: ≤ 2 s at 10k keys, and
no change to the memory code may make it slower by more than a fifth (at 10k and 100k keys).

    python bench/snapshot.py [--sizes 1000,10000,100000] [--smoke]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from bench import _smoke  # noqa: E402
from bench.memory_copy import CONFIG, TARGET, USER, populate  # noqa: E402
from ci_tools.context import build  # noqa: E402
from ci_tools.memory import restore_points  # noqa: E402
from ci_tools.memory.ops import between, copy_user  # noqa: E402
from sandbox.redis import RedisServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = _smoke.parse(parser, sizes="100")
    key = Fernet.generate_key().decode()  # production's MEMORY_SNAPSHOT_KEY: both are encrypted
    print("snapshot benchmark: every key of production's memory, encrypted, against copying them")
    print(f"  {'keys':>7}  {'snapshot':>9}  {'copy':>9}  {'ratio':>6}")
    for size in (int(s) for s in args.sizes.split(",")):
        with RedisServer() as dev, RedisServer() as prod, tempfile.TemporaryDirectory() as out:
            populate(dev.client(), size, 0)  # one user's keys under staging's prefix, the copy's source
            prod.client().set(f"{TARGET}meta:env", "production")
            ctx = build({"SOURCE_REDIS_URL": dev.url, "TARGET_REDIS_URL": prod.url, "MEMORY_SNAPSHOT_KEY": key})
            request = between(
                CONFIG, USER, "staging", "production", Path(out) / "copy", patterns=("bench:{user_id}:*",), apply=True
            )
            started = time.perf_counter()
            copied = copy_user(ctx, request)
            copy_s = time.perf_counter() - started
            assert copied.verified == size, copied.verified
            started = time.perf_counter()
            taken = restore_points.take_snapshot(
                prod.client(),
                CONFIG.env("production"),
                Path(out) / "before",
                server="bench",
                max_mb=10_000,
                protected=(),
                fernet=ctx.snapshot_fernet(),
            )
            snapshot_s = time.perf_counter() - started
            assert taken.keys == size + 2, taken.keys  # and the marker, and the copy's move record
        print(
            f"  {size:>7}  {snapshot_s:>8.2f}s  {copy_s:>8.2f}s  {snapshot_s / copy_s:>6.2f}"
            + ("   (target ≤ 2 s)" if size == 10_000 else "")
        )


if __name__ == "__main__":
    main()
