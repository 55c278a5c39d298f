"""Benchmark: a burst of /remember updates to the real bot and a real Redis — nothing dropped.

N signed updates from U users, C at a time, to the bot as Render runs it (``python -m
mindmate`` under uvicorn, as a process) with a redis-server that keeps an append-only
file. Prints updates/s and the facts stored against the updates sent (they must be
equal). Then the same burst with Redis restarted in the middle of it (stopped once a third
of the updates are taken, back 0.7 s later, so the outage falls inside the burst at any
size): every update answered 5xx is delivered again, as Telegram does, until it is taken;
afterwards every fact is stored exactly once.

    python bench/bot.py [--updates 400] [--users 40] [--concurrency 40] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from mindmate.settings import bot_secret

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _smoke  # noqa: E402
from mindmate.store import claim_env_marker  # noqa: E402
from sandbox.bot import BotProcess  # noqa: E402
from sandbox.ports import free_port  # noqa: E402
from sandbox.redis import RedisServer  # noqa: E402
from sandbox.telegram import FakeTelegram  # noqa: E402

SECRET = "whsec-bench-0123456789"
OUTAGE = 0.7  # seconds Redis stays down in the restart run
PREFIX = "dev:"  # the bot's KEY_PREFIX, set here rather than left to its per-environment default


async def burst(
    url: str,
    updates: list[dict[str, Any]],
    concurrency: int,
    secret: str,
    outage: tuple[Callable[[], None], Callable[[], None]] | None = None,
) -> tuple[float, Counter[int], int]:
    """Deliver every update, redelivering each 5xx (or dropped connection) as Telegram would.

    ``outage`` (stop, start; blocking) begins once a third of the updates are taken: the updates
    not yet sent wait until Redis is down, so the outage meets them (a smoke run's 20 updates were
    all taken before a thread had stopped Redis); the burst ends when every update is taken and
    Redis is back."""
    limit = asyncio.Semaphore(concurrency)
    statuses: Counter[int] = Counter()
    redeliveries = 0
    taken = 0
    outages: list[asyncio.Task[None]] = []
    down = asyncio.Event()

    async def blip(stop: Callable[[], None], start: Callable[[], None]) -> None:
        await asyncio.to_thread(stop)
        down.set()
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(start)

    async def deliver(client: httpx.AsyncClient, update: dict[str, Any]) -> None:
        nonlocal redeliveries, taken
        for attempt in range(200):
            async with limit:
                if outages:  # here, not before the queue: every update was queued before any was taken
                    await down.wait()  # sent once the outage has begun: it meets Redis down
                try:
                    response = await client.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret})
                    status = response.status_code
                except httpx.HTTPError:
                    status = 599
            statuses[status] += 1
            if status < 300:
                taken += 1
                if outage and not outages and taken >= len(updates) // 3:
                    outages.append(asyncio.create_task(blip(*outage)))
                return
            redeliveries += 1
            await asyncio.sleep(min(0.05 * (attempt + 1), 0.5))  # Telegram backs off, then retries
        raise RuntimeError(f"update {update['update_id']} never got through")

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=15) as client:
        await asyncio.gather(*(deliver(client, u) for u in updates))
        await asyncio.gather(*outages)
    return time.perf_counter() - started, statuses, redeliveries


def run(args: argparse.Namespace, *, restart: bool) -> None:
    with (
        tempfile.TemporaryDirectory() as root,
        RedisServer(persist=True) as redis_server,
        FakeTelegram() as telegram,
    ):
        bot = telegram.add_bot("mindmate_bench_bot")
        claim_env_marker(redis_server.client(), PREFIX, "staging")
        port = free_port()
        environ = {
            "ENV": "staging",
            "KEY_PREFIX": PREFIX,
            "TELEGRAM_BOT_TOKEN": bot.token,
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "REDIS_URL": redis_server.url,
            "PORT": str(port),
            "TELEGRAM_API_URL": telegram.url,
            "RENDER_EXTERNAL_URL": f"http://127.0.0.1:{port}",
            "RENDER_GIT_COMMIT": "bench",
        }
        with BotProcess(environ, log_path=Path(root) / "bot.log") as process:
            updates = [telegram.make_update(1000 + i % args.users, f"/remember fact {i}") for i in range(args.updates)]

            seconds, statuses, redeliveries = asyncio.run(
                burst(
                    f"{process.url}/telegram",
                    updates,
                    args.concurrency,
                    bot_secret(SECRET, bot.token),
                    (redis_server.stop, redis_server.start) if restart else None,
                )
            )
        client = redis_server.client(decode_responses=True)
        stored = [fact for user in range(args.users) for fact in client.lrange(f"{PREFIX}memory:{1000 + user}", 0, -1)]
    sent = {f"fact {i}" for i in range(args.updates)}
    twice = [fact for fact, n in Counter(stored).items() if n > 1]
    title = "with Redis restarted mid-burst" if restart else "steady"
    print(
        f"  {title:32} {args.updates / seconds:7.0f} updates/s   sent {len(sent)}, stored {len(stored)} "
        f"({len(set(stored) & sent)} distinct), twice {len(twice)}; answers {dict(sorted(statuses.items()))}, "
        f"redelivered {redeliveries}"
    )
    if set(stored) != sent or twice:
        raise SystemExit(f"  ✗ lost {len(sent - set(stored))}, stored twice {len(twice)}")
    if restart and not redeliveries:
        raise SystemExit("  ✗ no update met the outage: the burst was over before Redis stopped; send more --updates")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=400)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=40)
    args = _smoke.parse(parser, updates=20, users=4, concurrency=4)
    print(
        f"bot burst benchmark: {args.updates} /remember updates from {args.users} users, {args.concurrency} at a time"
    )
    run(args, restart=False)
    run(args, restart=True)
    print("  ✓ every fact stored exactly once")


if __name__ == "__main__":
    main()
