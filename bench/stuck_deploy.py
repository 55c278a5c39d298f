"""Benchmark: how soon a deploy that never gets healthy is named, and that it is then cancelled.

A production release whose service points at a Redis nobody listens on: the new instance
starts, answers ``/healthz`` with 503, and the Render stand-in (health-gated, as Render is)
keeps the deploy at ``update_in_progress`` and reports ``server_failed``. Printed: the
seconds from that event to the pipeline's line naming it, at the default poll (2 s), as a
ratio to the poll interval (the baseline: the earliest a poller can see anything); and the
seconds from the deadline to the deploy's cancellation. Target: named within 60 s of the
event (the issue's bar); the old behaviour named nothing until the 900 s deadline.

    python bench/stuck_deploy.py [--poll 2] [--timeout 20] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _smoke  # noqa: E402
from ci_tools.context import build  # noqa: E402
from ci_tools.errors import VerificationError  # noqa: E402
from ci_tools.pipeline.deploy import deploy  # noqa: E402
from sandbox.world import World  # noqa: E402


def measure(poll: float, timeout: float) -> tuple[float, float, str]:
    with tempfile.TemporaryDirectory() as root, World(Path(root), step=0.05) as world:
        ctx = build(world.secrets("production"))
        os.chdir(world.repo)
        env = ctx.config.env("production")
        deploy(ctx, env, world.commit("main", "good"), timeout=60, poll=0.1)
        service = world.services["production"]
        service.env["REDIS_URL"] = "redis://127.0.0.1:1/0"
        sha = world.commit("main", "a release whose Redis does not answer")
        named: dict[str, float] = {}

        def status(line: str) -> None:
            if "(server_failed)" in line and "at" not in named:
                named["at"], named["line"] = time.monotonic(), line  # type: ignore[assignment]

        started = time.monotonic()
        with contextlib.suppress(VerificationError):  # it must fail: that is the point
            deploy(ctx, env, sha, timeout=timeout, poll=poll, on_status=status)
        given_up = time.monotonic()
        event = next(e for e in reversed(service.events) if e["type"] == "server_failed")["_at"]
        cancelled = service.deploys[0]
        assert cancelled["status"] == "canceled", cancelled["status"]
        assert started + timeout <= given_up
        if "at" not in named:
            raise SystemExit(f"  ✗ server_failed was not named within the {timeout:g} s deadline: raise --timeout")
        return float(named["at"] - event), given_up - (started + timeout), str(named["line"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--poll", type=float, default=2.0, help="the follow's poll interval (default 2, as deploy)")
    parser.add_argument("--timeout", type=float, default=20, help="the deploy deadline (default 900 in the workflows)")
    args = _smoke.parse(parser, poll=0.5, timeout=10.0)
    named, cancel, line = measure(args.poll, args.timeout)
    print(f"stuck deploy benchmark: never-healthy instance, poll {args.poll:.1f} s, deadline {args.timeout:.0f} s")
    print(f"  server_failed → named by the pipeline   {named:6.2f} s   (target ≤ 60 s)")
    print(f"  ratio to the poll interval              {named / args.poll:6.2f}")
    print(f"  deadline → deploy cancelled             {cancel:6.2f} s   (old instance served throughout)")
    print(f"  said: {line.strip()}")


if __name__ == "__main__":
    main()
