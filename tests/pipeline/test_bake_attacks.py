"""A reviewer's attacks on the bake-blame change (probe and bake count only the new commit's own
failures, from the moment it serves). Each test states what the change promises and fails while
the promise does not hold. Real stand-ins and redis-server processes; the production service runs
the worktree's bot in threads, so a "bad release" is its code patched the way a refactor breaks it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from ci_tools.__main__ import main
from ci_tools.context import build
from ci_tools.pipeline.bake import BakeResult
from ci_tools.pipeline.deploy import DeployResult, deploy
from ci_tools.pipeline.probe import Probe, run_probe
from ci_tools.pipeline.release import _newer_release
from sandbox.ports import free_port
from sandbox.world import SECRETS

# the bake tests' own set-up: a production that bakes for a given window, a commit made live
from tests.pipeline.test_bake import FAST, OWNER, USER, baked, baking, live
from tests.support import conversations, plain_text_breaks, use, wait_until


def healthz_looks(router) -> int:
    return sum(1 for m, p in list(router.requests) if (m, p) == ("GET", "/healthz"))


def baked_while(world, ctx, env, sha: str, ours: DeployResult, meanwhile: Callable[[], None]) -> BakeResult:
    """The bake of ``sha`` as release() runs it (``ours``, its deploy, tells _newer_release what is
    newer): once the bake has looked once, ``meanwhile`` runs, then the daily user writes a plain
    message."""
    router = world.services["production"].router
    taken = conversations(router)

    def then() -> None:
        wait_until(lambda: conversations(router) >= taken + 1, "the bake's first look")
        meanwhile()
        world.telegram.send_user_message(world.bots["production"], USER, "a plain message")

    thread = threading.Thread(target=then, daemon=True)
    thread.start()
    result = baked(world, ctx, env, sha, newer=lambda: _newer_release(ctx, ours))  # as release() passes it
    thread.join(30)
    return result


# -- false negatives ----------------------------------------------------------------------------
def test_a_release_that_breaks_its_own_redis_connection_is_not_excused_as_redis_down(world, monkeypatch):
    """The new commit's reconnect helper re-reads REDIS_URL wrongly on the first plain message: from
    then on its client points at a port nothing listens on. /healthz says "redis not ok", every
    update is answered 503, the daily user's memory is unreachable — while the Key Value instance
    answers anyone else perfectly well. The bake calls every look "Redis unreachable" and keeps the
    release: a rollback (the old commit's client) would have fixed it at once."""
    # A window far longer than the verdict needs (REDIS_LOOKS + 1 looks, a look every 0.2 s): a
    # failing bake returns at its verdict, and a busy runner only makes each look slower.
    ctx, env = baking(world, 2.0)
    sha = live(world, ctx, env, "reconnects to a REDIS_URL it misread")
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    from mindmate.store import MemoryStore

    original = MemoryStore.append_history

    async def misread(self, user_id, text, update_id=None):  # type: ignore[no-untyped-def]
        self.client = aioredis.from_url(nowhere, decode_responses=True, socket_connect_timeout=1)
        await original(self, user_id, text, update_id)

    monkeypatch.setattr("mindmate.store.MemoryStore.append_history", misread)
    world.telegram.send_user_message(world.bots["production"], USER, "a plain message")
    assert "503" in str(world.bots["production"].last_error_message)  # the bot refused it
    result = baked(world, ctx, env, sha)
    assert world.redis["production"].client().ping()  # Redis itself answered throughout
    assert not result.passed, f"kept a release that lost its own Redis connection: {result.detail}"


def test_a_conversation_that_loses_the_fact_while_redis_answers_fails_the_bake(world, monkeypatch):
    """The change's promise: "a failed conversation probe while Redis is fine still rolls back".
    The bake keeps only *definite* conversation failures, and judge_conversation never raises one:
    a release whose /recall forgets what /remember stored (Redis answering, /healthz all green)
    passes every look."""
    ctx, env = baking(world, 2.0)  # far longer than the verdict needs: it returns at the first failing look
    sha = live(world, ctx, env, "recall reads nothing back")

    async def forgets(self, user_id):  # type: ignore[no-untyped-def]
        return []

    monkeypatch.setattr("mindmate.store.MemoryStore.recall", forgets)
    token = world.bots["production"].token
    probe = Probe(ctx, env, sha, token, since=time.time(), deadline=2, webhook_secret=SECRETS["production"])
    [check] = run_probe(probe, only=["conversation"])
    assert check.ok is False and "/recall did not answer with" in check.detail  # it does fail...
    assert not check.definite  # ...but never "definitely", and the bake keeps only definite ones
    result = baked(world, ctx, env, sha)
    assert world.redis["production"].client().ping()
    assert not result.passed, f"a conversation that loses its fact passed the bake: {result.detail}"


@pytest.mark.timeout(300)  # a look while Redis is down spends its conversation deadline: slow when busy
def test_a_commit_that_dies_after_a_redis_blip_is_not_excused_forever(world):
    """Redis goes down, a look sees it (redis_down), Redis comes back — and the new instance is gone
    (a crash on reconnect: Render's URL answers 502 "instance unreachable"). The bake goes on
    excusing every unanswered /healthz as "after it said Redis was down", to the end of the window:
    the instance that no longer answers is never counted towards UNANSWERED_LOOKS."""
    # A window far longer than the verdict needs: the bake fails at the look past REDIS_LOOKS /
    # UNANSWERED_LOOKS and returns then; a busy runner only makes each look slower.
    ctx, env = baking(world, 2.0, interval=0.2)
    sha = live(world, ctx, env, "dies when its Redis comes back")
    service, redis_server = world.services["production"], world.redis["production"]
    router = service.router
    started = healthz_looks(router)

    def blip_then_crash() -> None:
        wait_until(lambda: healthz_looks(router) >= started + 1, "the bake's first look")
        redis_server.stop()
        seen = healthz_looks(router)
        wait_until(lambda: healthz_looks(router) >= seen + 2, "a look while Redis is down")
        service.instance.stop()  # the new commit's crash
        redis_server.start()

    thread = threading.Thread(target=blip_then_crash, daemon=True)
    thread.start()
    result = baked(world, ctx, env, sha)
    thread.join(10)
    assert redis_server.client().ping()  # Redis answers again: nothing excuses the silence
    assert not result.passed, f"a dead instance was excused as Redis's outage: {result.detail}"


# -- concurrency and the owner ---------------------------------------------------------------
def test_a_rollback_dispatched_during_the_bake_is_not_told_as_live_and_baked(world, monkeypatch, capsys):
    """A person rolls back from the dashboard (or `ci-tools rollback`) while the release bakes.
    _newer_release ignores a deploy triggered by "rollback", the next look sees the old commit and
    ends the window "early", passed: the owner is told "✓ <sha> is live and baked" about a commit
    that no longer serves."""
    use(monkeypatch, {**world.secrets("production"), "OWNER_CHAT_ID": str(OWNER)})
    world.telegram.start_chat(world.bots["production"], OWNER)
    # A window far longer than the rollback takes, busy runner or not: the bake ends at the look
    # that sees the old commit serve, so a long window costs nothing when the code is right.
    window = "bake_minutes = 2\nbake_interval_seconds = 0.3\n"
    world.config.write_text(world.config.read_text().replace("bake_minutes = 0\n", window))
    good = world.commit("main", "good")
    assert main(["deploy", "production", "--commit", good, "--timeout", "30", "--poll", "0.05"]) == 0
    previous = world.services["production"].deploys[0]["id"]  # newest first: the good commit's
    router = world.services["production"].router
    taken = conversations(router)

    def roll_back_by_hand() -> None:
        from ci_tools.pipeline.rollback import rollback

        wait_until(lambda: conversations(router) >= taken + 2, "the bake's first look")
        ctx = build(world.secrets("production"))
        rollback(ctx, ctx.config.env("production"), to=previous, timeout=30, poll=0.05)

    thread = threading.Thread(target=roll_back_by_hand, daemon=True)
    thread.start()
    sha = world.commit("main", "released, then rolled back by hand")
    code = main(["release", "production", "--commit", sha, *FAST])
    thread.join(30)
    told = world.telegram.replies_to(world.bots["production"], OWNER)
    assert world.services["production"].deploys[0]["trigger"] == "rollback"  # the old commit serves
    assert not any(f"{sha[:12]} is live and baked" in m for m in told), (code, told)


# -- false positives: the probe, which the bake's rules do not reach --------------------------
def past(moment: float) -> None:
    """Clock alignment, not synchronisation: Telegram dates errors in whole seconds, so an error
    recorded after this returns is dated at or after ``moment``."""
    while time.time() < int(moment) + 1:
        time.sleep(0.01)


def test_a_redis_blip_over_before_the_probe_looks_does_not_roll_back_a_good_release(world, monkeypatch, capsys):
    """Once the new commit serves, Redis blips: the daily user's message meets the bot's deliberate
    503, Redis is back, Telegram delivers the message again and holds nothing. Then the probe
    looks: /healthz says Redis ok, pending is 0, but last_error_date >= since, so judge_webhook
    fails its webhook check at every retry and production rolls a good release back. The bake
    excuses exactly this 503 (REDIS_BETWEEN); the probe, which runs first, does not."""
    use(monkeypatch, world.secrets("production"))
    good = world.commit("main", "good")
    assert main(["deploy", "production", "--commit", good, "--timeout", "30", "--poll", "0.05"]) == 0
    new = world.commit("main", "new, and fine; its Redis blips")
    from ci_tools.pipeline import release as pipeline

    original, blipped = pipeline.probe_or_fail, threading.Event()

    def blip_first(ctx, request, commit, since, title, report):  # type: ignore[no-untyped-def]
        if commit == new and not blipped.is_set():  # the new commit serves: since is decided
            past(since)
            # Render's paid Key Value persists across a restart (render.com/docs/key-value, "Data
            # persistence"; render.yaml's starter plan): the world's server keeps nothing on disk,
            # so it saves first, or the bot's env marker is gone and the probe fails for that.
            world.redis["production"].client().save()
            world.redis["production"].stop()
            world.telegram.send_user_message(world.bots["production"], USER, "hello?")
            world.redis["production"].start()
            assert "503" in str(world.bots["production"].last_error_message)
            assert world.telegram.wait_delivered(20) and world.bots["production"].pending_update_count == 0
            blipped.set()
        return original(ctx, request, commit, since, title, report)

    monkeypatch.setattr(pipeline, "probe_or_fail", blip_first)
    code = main(["release", "production", "--commit", new, *FAST])
    out = capsys.readouterr()
    assert blipped.is_set()
    rolled = [d for d in world.services["production"].deploys if d["trigger"] == "rollback"]
    assert code == 0 and not rolled, f"a good release was rolled back for a Redis blip: {out.err[-600:]}"


def test_telegram_s_flood_control_during_the_probe_does_not_roll_back_a_good_release(world, monkeypatch, capsys):
    """As the new commit goes live, Telegram answers the bot's next two calls (the probe's getMe
    and getWebhookInfo) 429 "retry after 10": longer than the probe's deadline. Telegram's side,
    which the change calls inconclusive in the bake, fails the probe and rolls a good release
    back (the rollback's own probe then passes: Telegram answers again)."""
    use(monkeypatch, world.secrets("production"))
    good = world.commit("main", "good")
    assert main(["deploy", "production", "--commit", good, "--timeout", "30", "--poll", "0.05"]) == 0
    new = world.commit("main", "new, and fine")
    limited = threading.Event()

    def at_live(deploy: dict, status: str) -> None:
        if deploy["commit"]["id"] == new and status == "live":
            world.telegram.rate_limit(world.bots["production"], calls=2, retry_after=10)
            limited.set()

    world.services["production"].on_status = at_live
    code = main(["release", "production", "--commit", new, *FAST])
    out = capsys.readouterr()
    assert limited.is_set()
    rolled = [d for d in world.services["production"].deploys if d["trigger"] == "rollback"]
    assert code == 0 and not rolled, f"a good release was rolled back for Telegram's 429: {out.err[-600:]}"


def test_a_redeploy_of_the_same_commit_does_not_end_its_window_as_passed(world, monkeypatch):
    """While a bad commit bakes, Render deploys the same commit again (a deploy hook, a blueprint
    sync, an environment variable changed in the dashboard, "deploying again anyway"). It is no
    newer release: nobody else will bake this commit. _newer_release calls any other deploy id
    "a newer release started", the window ends early, passed — and the fresh instance's handler
    failures, which /healthz counts from 0 again, are never looked at."""
    ctx, env = baking(world, 0.25, interval=0.3)  # 15 s
    sha = world.commit("main", "breaks plain text")
    ours = deploy(ctx, env, sha, timeout=30, poll=0.05)  # what release() keeps, and gives _newer_release
    plain_text_breaks(monkeypatch)  # the threaded bot's code

    def redeploy() -> None:  # the same commit again (a deploy hook, a Blueprint sync)
        deploy(build(world.secrets("production")), env, sha, timeout=30, poll=0.05)

    result = baked_while(world, ctx, env, sha, ours, redeploy)
    assert not result.passed, f"the same commit's redeploy ended its window: {result.detail}"


def test_telegram_lagging_behind_with_no_delivery_error_is_not_the_new_commit_s(world):
    """Telegram's side slows: pending_update_count rises look after look (1, 2, 3), and Telegram
    reports no delivery error at all — it has not even tried the webhook (a bot that hangs or
    refuses gets "Read timeout expired" or "Wrong response" in last_error_*). /healthz answers,
    Redis ok, no handler failed, the conversation passes. _confirmed asks only Redis, so the bake
    calls Telegram's lag the new commit's and production rolls it back."""
    ctx, env = baking(world, 0.1, interval=0.3)  # 6 s, ~15 looks
    sha = live(world, ctx, env, "fine; Telegram lags")
    bot = world.bots["production"]
    path = f"/bot{bot.token}/getWebhookInfo"

    def looks() -> int:
        return sum(1 for m, p in list(world.telegram.requests) if p == path)

    stop = threading.Event()

    def telegram_lags() -> None:  # after each of the bake's looks, one more update waits at Telegram
        seen = looks()
        while not stop.is_set():
            wait_until(lambda seen=seen: looks() > seen or stop.is_set(), "the bake's next look at getWebhookInfo")
            seen = looks()
            with world.telegram.lock:
                bot.pending_update_count += 1

    thread = threading.Thread(target=telegram_lags, daemon=True)
    thread.start()
    try:
        result = baked(world, ctx, env, sha)
    finally:
        stop.set()
        thread.join(5)
    assert not bot.last_error_date  # Telegram never tried the bot: nothing failed
    assert result.passed, f"Telegram's own lag rolled a good release back: {result.detail}"


def test_a_newer_release_that_fails_to_build_does_not_end_the_window_of_the_commit_that_still_serves(
    world, monkeypatch
):
    """While a bad commit bakes, a newer commit is released and fails its build: Render keeps the
    baking commit live (zero-downtime: the old instance serves on). _newer_release said "a newer
    release started" as soon as the deploy existed and the window ended early, passed. The newer
    release's run fails at its deploy and never bakes anything: the commit that serves is judged
    by nobody, and its handler failures go unseen."""
    ctx, env = baking(world, 0.25, interval=0.3)  # 15 s
    sha = world.commit("main", "breaks plain text")
    ours = deploy(ctx, env, sha, timeout=30, poll=0.05)
    plain_text_breaks(monkeypatch)  # the threaded bot's code
    newer = world.commit("main", "a newer commit that does not build")
    world.render.fault(world.services["production"], newer, build_failed=True)
    outcome: list[str] = []

    def newer_release() -> None:
        try:
            deploy(build(world.secrets("production")), env, newer, timeout=30, poll=0.05)
        except Exception as exc:  # the newer release's run fails here
            outcome.append(type(exc).__name__)

    result = baked_while(world, ctx, env, sha, ours, newer_release)
    assert outcome, "the newer commit's deploy did not fail"
    assert not result.passed, f"a failed newer deploy ended the window of the commit that serves: {result.detail}"
