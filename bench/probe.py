"""Benchmark: a full probe runs its checks at once, so it costs its slowest check, not their sum.

Every request to the Telegram stand-in and to the service (through its router) is
delayed by --latency seconds (default 0.2). Prints the wall time of a full probe,
the sum of its checks run one by one, and their ratio. Target: ratio ≤ 0.35.
Then what the conversation check (three signed updates through the real handlers and
Redis, the replies read back, the probe user deleted) adds to a healthy probe against
the same probe without it. Target: at most one second.

    python bench/probe.py [--latency 0.2] [--repeat 3] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _smoke  # noqa: E402
from ci_tools.context import build  # noqa: E402
from ci_tools.pipeline.probe import Probe, run_probe  # noqa: E402
from sandbox.world import World  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--repeat", type=int, default=3)
    args = _smoke.parse(parser, repeat=1, latency=0.05)
    with (
        tempfile.TemporaryDirectory() as root,
        World(Path(root), latency=args.latency, step=0.05) as world,
    ):
        ctx = build(world.secrets("production"))
        os.chdir(world.repo)
        sha = world.commit("main", "bench")
        from ci_tools.pipeline.deploy import deploy

        env = ctx.config.env("production")
        deploy(ctx, env, sha, timeout=60, poll=0.1)
        token = world.bots["production"].token
        secret = world.secrets("production")["TELEGRAM_WEBHOOK_SECRET"]

        def probe(conversation: bool = True) -> Probe:
            return Probe(
                ctx,
                env,
                sha,
                token,
                deadline=10,
                webhook_secret=secret,
                conversation=conversation,
            )

        names = [name for name, _ in probe().tests()]
        full, alone, quiet = [], [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            checks = run_probe(probe())
            full.append(time.perf_counter() - started)
            assert all(c.ok for c in checks), [c.detail for c in checks if not c.ok]
            started = time.perf_counter()
            run_probe(probe(conversation=False))
            quiet.append(time.perf_counter() - started)
            total = 0.0
            for name in names:
                started = time.perf_counter()
                run_probe(probe(), only=[name])
                total += time.perf_counter() - started
            alone.append(total)
    best_full, best_alone = min(full), min(alone)
    print(f"probe benchmark: {len(names)} checks, {args.latency * 1000:.0f} ms on every stand-in request")
    print(f"  full probe (concurrent)      {best_full:6.3f} s")
    print(f"  checks one by one (sum)      {best_alone:6.3f} s")
    print(f"  ratio                        {best_full / best_alone:6.2f}   (target ≤ 0.35)")
    print(f"  without the conversation     {min(quiet):6.3f} s")
    print(f"  the conversation adds        {best_full - min(quiet):6.3f} s   (target ≤ 1 s)")


if __name__ == "__main__":
    main()
