"""Benchmark: what the replay stage adds to a production release, at 1k and 10k snapshot keys.

A sandbox whose repository is this project: production runs a release, its Redis holds the
daily user's memory among N keys of other users (mixed types, as bench/memory_copy.py makes
them), and the snapshot production.yml takes before a release is on disk, encrypted. Then, in
one process: the stage as production.yml runs it (the snapshot loaded into three private Redis
copies, the live commit and a harmless candidate each started from its own checkout on a copy of
its own: live twice and the candidate side by side, then the live commit again on each copy),
and the release alone (deploy, wait until live, probe)
as the baseline. Printed: both times and the ratio (release + replay) ÷ release.
Target: ≤ 20 s added at 10k keys on this project's 2-core machine.

    python bench/replay.py [--sizes 1000,10000] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402

from bench import _smoke  # noqa: E402
from ci_tools.context import build  # noqa: E402
from ci_tools.memory import restore_points  # noqa: E402
from ci_tools.pipeline.deploy import deploy  # noqa: E402
from ci_tools.pipeline.release import ReleaseRequest, release  # noqa: E402
from ci_tools.pipeline.replay import ReplayRequest, replay  # noqa: E402
from sandbox.world import SECRETS, World  # noqa: E402

DAILY = 5550001


def fill(client: redis.Redis, size: int) -> None:
    """The daily user's memory and ``size`` keys in all, mostly other users'."""
    client.set("prod:meta:env", "production")
    client.rpush(f"prod:memory:{DAILY}", "my sister is called Mira", "I walk by the river at seven")
    client.hset(f"prod:user:{DAILY}:profile", mapping={"first_seen": "1700000000", "first_name": "Ada"})
    pipe = client.pipeline(transaction=False)
    for i in range(size - 3):
        user = 10_000 + i // 3
        kind = i % 3
        if kind == 0:
            pipe.rpush(f"prod:memory:{user}", *[f"fact {j}" for j in range(5)])
        elif kind == 1:
            pipe.rpush(f"prod:user:{user}:history", *[f'{{"ts": {j}, "text": "message {j}"}}' for j in range(10)])
        else:
            pipe.hset(f"prod:user:{user}:profile", mapping={"first_seen": "1700000000", "first_name": f"U{i}"})
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def measure(size: int) -> tuple[float, float]:
    key = Fernet.generate_key().decode()
    with (
        tempfile.TemporaryDirectory() as root,
        World(Path(root) / "world", step=0.05, source=ROOT) as world,
        contextlib.chdir(world.repo),
    ):
        ctx = build({**world.secrets("production"), "MEMORY_SNAPSHOT_KEY": key})
        env = ctx.config.env("production")
        live = world.commit("main", "live")
        deploy(ctx, env, live, timeout=60, poll=0.1)
        fill(world.redis["production"].client(), size)
        candidate = world.commit("main", "a harmless candidate")
        taken = restore_points.take_snapshot(
            world.redis["production"].client(),
            env,
            Path(root) / "memory-before",
            server="bench",
            max_mb=10_000,
            protected=(DAILY,),
            commit=candidate,
            fernet=Fernet(key),
        )
        started = time.perf_counter()
        outcome = replay(ctx, ReplayRequest(env, taken.path, candidate, live, (DAILY,)))
        replay_s = time.perf_counter() - started
        assert not outcome.stops, outcome.stops
        request = ReleaseRequest(
            env, candidate, world.bots["production"].token, timeout=60, poll=0.1, webhook_secret=SECRETS["production"]
        )
        started = time.perf_counter()
        release(ctx, request)
        release_s = time.perf_counter() - started
        return replay_s, release_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    args = _smoke.parse(parser, sizes="100")
    print("replay benchmark: the stage before a release, against the release alone (deploy, live, probe)")
    print(f"  {'keys':>7}  {'replay':>8}  {'release':>8}  {'(release+replay)/release':>25}")
    for size in (int(s) for s in args.sizes.split(",")):
        replay_s, release_s = measure(size)
        ratio = (release_s + replay_s) / release_s
        print(f"  {size:>7}  {replay_s:>7.2f}s  {release_s:>7.2f}s  {ratio:>25.2f}")
    print("  target: the replay adds ≤ 20 s at 10k keys")


if __name__ == "__main__":
    main()
