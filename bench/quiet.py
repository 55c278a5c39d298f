"""Benchmark: what waiting for a quiet moment adds to a release when the bot is quiet.

Before production's deploy, ``ci-tools quiet`` asks the live bot's /healthz when it last
handled an update (ci_tools/pipeline/quiet.py). When the daily user is not talking, that must
cost next to nothing. A real HTTP server answers /healthz (last update 10 minutes ago) after
--latency seconds; the baseline is one plain GET of it, in the same process. Prints both, what
the quiet check adds, and their ratio. Target: it adds at most one second.

    python bench/quiet.py [--latency 0.2] [--repeat 5] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench import _smoke  # noqa: E402
from ci_tools.clients.health import health_of  # noqa: E402
from ci_tools.pipeline.quiet import wait_for_quiet  # noqa: E402
from ci_tools.settings import Environment  # noqa: E402
from sandbox.ports import Answer, AnsweringServer  # noqa: E402


def serve(latency: float) -> AnsweringServer:
    """The live bot's /healthz, answering after ``latency`` seconds: last update 10 minutes ago."""

    def health() -> Answer:
        time.sleep(latency)  # the network and Render's router between the runner and the bot
        body = {
            "status": "ok",
            "env": "production",
            "commit": "0" * 40,
            "bot": {"id": 1, "username": "bench_bot"},
            "redis": {"ok": True, "env_marker": "production"},
            "key_prefix": "prod:",
            "updates": {"handled": 9, "failed": 0, "last_failure": None, "last_handled_at": time.time() - 600},
        }
        return 200, body, {}

    return AnsweringServer(health)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--repeat", type=int, default=5)
    args = _smoke.parse(parser, repeat=1, latency=0.01)
    server = serve(args.latency)
    url = f"{server.url}/healthz"
    env = Environment("production", "main", "svc", "bench_bot", url, "prod:", (), quiet_seconds=120)
    try:
        plain, quiet = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            httpx.get(url, timeout=10).raise_for_status()
            plain.append(time.perf_counter() - started)
            started = time.perf_counter()
            outcome = wait_for_quiet(env, lambda: health_of(url, 10))
            quiet.append(time.perf_counter() - started)
            if outcome.went_ahead_busy or not outcome.detail.startswith("quiet ("):
                raise SystemExit(f"bench: the quiet bot was not found quiet: {outcome.detail}")
        base, measured = statistics.median(plain), statistics.median(quiet)
        print(f"one GET /healthz (baseline): {base:.3f} s (median of {args.repeat}, latency {args.latency} s)")
        print(f"the quiet-moment check:      {measured:.3f} s")
        print(f"what it adds: {measured - base:+.3f} s (ratio {measured / base:.2f}x; target: adds at most 1 s)")
    finally:
        server.close()


if __name__ == "__main__":
    main()
