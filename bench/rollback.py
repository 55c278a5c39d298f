"""Benchmark: how long a bad production release stays live before its rollback starts.

A release whose build accepts unsigned webhook updates (a definite failure: no
retry can fix it) goes live; the probe fails and the release rolls back. Printed:
the seconds from "live" to "rollback started", with definite failures ending the
probe at once (now) against retrying them until the deadline (the old behaviour),
and their ratio. Target: ≤ 10 s with the default 90 s deadline.

In the bake window after the probe, a plain message whose handler fails: the seconds from that
update to the rollback deploy, against the bake interval (target ≤ interval + 2 s).

Then a transient failure — the public URL serves the old commit for 20 s after
"live" — must still pass; its time is printed too.

    python bench/rollback.py [--deadline 90] [--lag 20] [--skip-baseline] [--bake-interval 30] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _smoke  # noqa: E402
from ci_tools.context import Context, build  # noqa: E402
from ci_tools.errors import VerificationError  # noqa: E402
from ci_tools.pipeline.deploy import deploy  # noqa: E402
from ci_tools.pipeline.release import ReleaseRequest, release  # noqa: E402
from sandbox.world import World  # noqa: E402


@contextlib.contextmanager
def production_with(fault: str, value: object) -> Iterator[tuple[World, Context, str, str]]:
    """A sandbox whose production runs a good release, and a next commit with ``fault``."""
    with tempfile.TemporaryDirectory() as root, World(Path(root), step=0.05) as world:
        ctx = build(world.secrets("production"))
        os.chdir(world.repo)
        deploy(ctx, ctx.config.env("production"), world.commit("main", "good"), timeout=60, poll=0.1)
        sha = world.commit("main", f"the next release ({fault})")
        world.render.fault(world.services["production"], sha, **{fault: value})
        yield world, ctx, sha, world.bots["production"].token


def secret(world: World) -> str:
    return world.secrets("production")["TELEGRAM_WEBHOOK_SECRET"]


def production_release(
    world: World, ctx: Context, sha: str, token: str, deadline: float, *, fail_fast: bool = True
) -> ReleaseRequest:
    return ReleaseRequest(
        ctx.config.env("production"),
        sha,
        token,
        timeout=60,
        deadline=deadline,
        poll=0.1,
        fail_fast=fail_fast,
        webhook_secret=secret(world),
    )


def exposure(deadline: float, fail_fast: bool) -> float:
    """Seconds a bad release is live before its rollback deploy is created."""
    with production_with("open_webhook", True) as (world, ctx, bad, token):
        with contextlib.suppress(VerificationError):  # it must fail: that is the point
            release(ctx, production_release(world, ctx, bad, token, deadline, fail_fast=fail_fast))
        deploys = world.services["production"].deploys
        live = next(d for d in deploys if d["commit"]["id"] == bad)["_live_at"]
        rollback = next(d for d in deploys if d["trigger"] == "rollback")["_created"]
        return float(rollback - live)


def transient(lag: float, deadline: float) -> float:
    """Seconds a release takes to pass when the URL serves the old commit ``lag`` s after live."""
    with production_with("late_switch", lag) as (world, ctx, sha, token):
        started = time.monotonic()
        release(ctx, production_release(world, ctx, sha, token, deadline))
        return time.monotonic() - started


def bake_reaction(interval: float) -> float:
    """Seconds from a failing update inside the bake window to the rollback deploy's creation.

    The threaded bot runs this process's code, so the release's plain-message handler is made to
    fail here (the act scenario does it with a really broken commit)."""
    import dataclasses

    from mindmate.store import MemoryStore

    async def boom(*args: object, **kwargs: object) -> None:
        raise KeyError("a refactor's bug")

    with production_with("slow", 0.0) as (world, ctx, sha, token):
        env = dataclasses.replace(ctx.config.env("production"), bake_minutes=2, bake_interval_seconds=interval)
        ctx = ctx.with_config(
            dataclasses.replace(ctx.config, environments={**ctx.config.environments, "production": env})
        )
        request = dataclasses.replace(production_release(world, ctx, sha, token, 10), env=env)
        failed_at: list[float] = []

        def user_writes_once_live() -> None:
            while not any(
                d["commit"]["id"] == sha and d["status"] == "live" for d in world.services["production"].deploys
            ):
                time.sleep(0.05)
            time.sleep(interval / 2)  # well inside the window, between two looks
            original = MemoryStore.append_history
            MemoryStore.append_history = boom  # type: ignore[method-assign]
            try:
                failed_at.append(time.monotonic())
                world.telegram.send_user_message(world.bots["production"], 4242, "a plain message")
            finally:
                MemoryStore.append_history = original  # type: ignore[method-assign]

        import threading

        user = threading.Thread(target=user_writes_once_live, daemon=True)
        user.start()
        with contextlib.suppress(VerificationError):  # it must fail its bake: that is the point
            release(ctx, request)
        user.join(10)
        rollback = next(d for d in world.services["production"].deploys if d["trigger"] == "rollback")["_created"]
        return float(rollback - failed_at[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deadline", type=float, default=90, help="the probe deadline (default 90)")
    parser.add_argument("--lag", type=float, default=20, help="seconds the old commit stays on the URL")
    parser.add_argument("--skip-baseline", action="store_true", help="do not wait out the old behaviour")
    parser.add_argument("--bake-interval", type=float, default=30, help="bake_interval_seconds (default 30)")
    args = _smoke.parse(parser, deadline=10.0, lag=1.0, bake_interval=2.0)
    now = exposure(args.deadline, fail_fast=True)
    print(f"rollback benchmark: a definite probe failure, probe deadline {args.deadline:.0f} s")
    print(f"  live → rollback started, fail fast (now)     {now:6.1f} s   (target ≤ 10 s)")
    if not args.skip_baseline:
        before = exposure(args.deadline, fail_fast=False)
        print(f"  live → rollback started, retry to deadline   {before:6.1f} s")
        print(f"  ratio now / before                           {now / before:6.3f}")
    took = transient(args.lag, args.deadline)
    print(f"  transient: old commit on the URL for {args.lag:.0f} s → release passed in {took:.1f} s")
    reaction = bake_reaction(args.bake_interval)
    print(
        f"  bake: a failing update → rollback started     {reaction:6.1f} s   "
        f"(target ≤ interval + 2 s = {args.bake_interval + 2:.0f} s; "
        f"ratio to the interval {reaction / args.bake_interval:.2f})"
    )


if __name__ == "__main__":
    main()
