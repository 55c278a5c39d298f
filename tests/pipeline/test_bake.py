"""The bake window and the owner's messages, against the stand-ins (threaded bots: the code under
test is the pipeline's; act's tests/workflows/test_bake_workflow.py runs a really broken commit)."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import pytest

from ci_tools.__main__ import main
from ci_tools.context import build
from ci_tools.pipeline.bake import BakeResult, bake
from ci_tools.pipeline.deploy import deploy
from sandbox.world import SECRETS
from tests.support import conversations, plain_text_breaks, use, wait_until

OWNER = 7770001
USER = 6660003
FAST = ("--timeout", "30", "--poll", "0.05", "--deadline", "5")


def baking(world, minutes: float, interval: float = 0.2):
    """A context whose production bakes ``minutes``, a look every ``interval`` seconds."""
    ctx = build(world.secrets("production"))
    env = dataclasses.replace(ctx.config.env("production"), bake_minutes=minutes, bake_interval_seconds=interval)
    config = dataclasses.replace(ctx.config, environments={**ctx.config.environments, "production": env})
    return ctx.with_config(config), env


def live(world, ctx, env, message: str) -> str:
    sha = world.commit("main", message)
    deploy(ctx, env, sha, timeout=30, poll=0.05)
    return sha


def baked(world, ctx, env, sha: str, since: float | None = None, **options: Any) -> BakeResult:
    """The bake of ``sha`` on production as release() runs it, its failures counted from ``since``
    (now, by default); ``options`` as bake() takes them (``on_status``, ``newer``)."""
    since = time.time() if since is None else since
    return bake(ctx, env, sha, world.bots["production"].token, since, webhook_secret=SECRETS["production"], **options)


def test_a_quiet_window_passes_with_a_note(world):
    ctx, env = baking(world, 0.02)
    sha = live(world, ctx, env, "quiet")
    result = baked(world, ctx, env, sha)
    assert result.passed and result.handled == 0
    assert result.detail.startswith("no user traffic during the bake: 0 updates")


def test_traffic_that_succeeds_passes_and_is_counted(world):
    ctx, env = baking(world, 0.03)
    sha = live(world, ctx, env, "busy")
    world.telegram.send_user_message(world.bots["production"], USER, "/recall")
    result = baked(world, ctx, env, sha)
    assert result.passed and result.handled == 1 and "1 user update(s) handled" in result.detail


def test_a_handler_failure_of_the_new_commit_fails_the_bake_naming_it(world, monkeypatch):
    ctx, env = baking(world, 0.5)
    sha = live(world, ctx, env, "breaks plain text")
    plain_text_breaks(monkeypatch)  # the threaded bot's code
    world.telegram.send_user_message(world.bots["production"], USER, "a plain message")
    started = time.monotonic()
    result = baked(world, ctx, env, sha)
    assert not result.passed
    assert "1 of 1 update(s) failed in a handler" in result.detail and "KeyError on a message" in result.detail
    assert time.monotonic() - started < env.bake_interval_seconds + 2  # one look, not the whole window


def test_a_delivery_error_after_the_deploy_fails_the_bake(world):
    ctx, env = baking(world, 0.5)
    sha = live(world, ctx, env, "refuses its updates")
    bot = world.bots["production"]
    bot.last_error_date, bot.last_error_message = int(time.time()) + 1, "Wrong response from the webhook: 500"
    result = baked(world, ctx, env, sha)
    assert not result.passed and "Telegram's delivery to it failed after the deploy" in result.detail


def test_a_window_that_redis_is_down_for_throughout_is_inconclusive_and_the_release_stays(world):
    """The user's message meets the bot's deliberate 503 (Telegram: a delivery error, an update
    held): Redis's doing, not the commit's, so no look judges it; the release stays, saying so."""
    ctx, env = baking(world, 0.03, interval=0.5)  # fewer looks than REDIS_LOOKS: an excused stretch
    sha = live(world, ctx, env, "fine, but its Redis is not")
    since = past_a_whole_second()
    world.redis["production"].stop()
    world.telegram.send_user_message(world.bots["production"], USER, "hello?")
    lines: list[str] = []
    try:
        result = baked(world, ctx, env, sha, since, on_status=lines.append)
    finally:
        world.redis["production"].start()
    assert world.bots["production"].last_error_date >= int(since)  # Telegram did record the bot's 503
    assert result.passed and not result.ended_early
    assert result.inconclusive and result.inconclusive.startswith(f"no look could judge {sha[:12]}")
    assert "Redis unreachable (/healthz: redis not ok)" in result.inconclusive
    assert sum("⚠ inconclusive" in line for line in lines) == 1  # said once, not at every look


def past_a_whole_second() -> float:
    """Now, once the clock has passed the next whole second: Telegram dates its errors in whole
    seconds, so an error recorded from here on is dated at or after the moment returned."""
    since = time.time()
    while time.time() < int(since) + 1:
        time.sleep(0.01)
    return since


def test_a_redis_blip_between_two_looks_is_inconclusive(world):
    """Redis is down and back before any look: /healthz never shows it, Telegram's 503 does."""
    ctx, env = baking(world, 0.03)
    sha = live(world, ctx, env, "fine, its Redis blips")
    since = past_a_whole_second()
    world.redis["production"].stop()
    world.telegram.send_user_message(world.bots["production"], USER, "hello?")
    world.redis["production"].start()
    assert "503" in str(world.bots["production"].last_error_message)
    result = baked(world, ctx, env, sha, since)
    assert result.passed, result.detail
    assert result.inconclusive and "Redis unreachable between two looks" in result.inconclusive
    assert world.telegram.wait_delivered(10) and world.bots["production"].pending_update_count == 0


@pytest.mark.timeout(300)  # the verdict comes at Telegram's second 503: later on a busy runner
def test_a_bot_that_keeps_answering_telegram_503_while_redis_answers_is_rolled_back(world):
    """Its Redis answers /healthz but refuses every write: the 503s do not stop, and Telegram keeps
    holding the update. One is excused as a blip; the next is the release's (as a storage bug of
    its own would be)."""
    ctx, env = baking(world, 2.0)  # far longer than the verdict needs: the bake returns at the failure
    sha = live(world, ctx, env, "refuses what Telegram delivers")
    since = past_a_whole_second()
    world.redis["production"].client().config_set("min-replicas-to-write", 1)  # every write refused
    world.telegram.send_user_message(world.bots["production"], USER, "hello?")
    result = baked(world, ctx, env, sha, since)
    assert not result.passed
    # Telegram's second 503, or the conversation's own 503 (the bake's look that comes first)
    assert "Wrong response from the webhook: 503" in result.detail or "answered 503" in result.detail


def test_render_s_edge_not_answering_is_inconclusive_not_a_failure(world):
    """Nothing answers the public URL (connection refused): Render's side, not the commit's. The old
    rule failed the bake after three such looks (each waiting out the conversation's 5 s)."""
    ctx, env = baking(world, 0.3)
    sha = live(world, ctx, env, "fine")
    world.services["production"].router.stop()
    result = baked(world, ctx, env, sha)
    assert result.passed, result.detail
    assert result.inconclusive and "Render's edge did not answer the public URL" in result.inconclusive


def test_telegram_not_answering_getwebhookinfo_is_inconclusive(world):
    ctx, env = baking(world, 0.02)
    sha = live(world, ctx, env, "fine")
    world.telegram.rate_limit(world.bots["production"], calls=1000, retry_after=1)  # 429 to every call
    result = baked(world, ctx, env, sha)
    assert result.passed, result.detail
    assert result.inconclusive and "Telegram's getWebhookInfo did not answer" in result.inconclusive


def test_a_newer_release_ends_the_window_early(world):
    ctx, env = baking(world, 1.0)
    sha = live(world, ctx, env, "first")
    newer = world.commit("main", "second")
    threading.Timer(0.5, lambda: deploy(ctx, env, newer, timeout=30, poll=0.05)).start()
    result = baked(world, ctx, env, sha)
    assert result.passed and result.ended_early
    assert "serves now" in result.detail or "a newer release started" in result.detail


def redis_outage_in_the_window(world, restart: bool) -> threading.Thread:
    """Once the bake has looked once, production's real redis-server stops; the daily user writes
    (the bot answers 503 so Telegram delivers it again: a delivery error, an update held); once
    the bake has looked at it, Redis comes back on the same port (``restart``) or stays down."""
    router, redis_server = world.services["production"].router, world.redis["production"]
    taken = conversations(router)

    def outage() -> None:
        wait_until(lambda: conversations(router) >= taken + 2, "the bake's first look")
        redis_server.stop()
        world.telegram.send_user_message(world.bots["production"], USER, "hello while Redis is down")
        assert world.bots["production"].last_error_date  # Telegram recorded the bot's 503
        looked = sum(1 for m, p in list(router.requests) if (m, p) == ("GET", "/healthz"))
        wait_until(
            lambda: sum(1 for m, p in list(router.requests) if (m, p) == ("GET", "/healthz")) >= looked + 2,
            "a look during the outage",
        )
        if restart:
            redis_server.start()

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    return thread


def test_a_redis_outage_in_the_window_is_inconclusive_not_a_rollback_and_the_owner_is_told_once(
    world, monkeypatch, capsys
):
    use(monkeypatch, {**world.secrets("production"), "OWNER_CHAT_ID": str(OWNER)})
    world.telegram.start_chat(world.bots["production"], OWNER)
    window = "bake_minutes = 0.15\nbake_interval_seconds = 0.3\n"  # 9 s, a look every 0.3 s
    world.config.write_text(world.config.read_text().replace("bake_minutes = 0\n", window))
    good = world.commit("main", "good")
    assert main(["deploy", "production", "--commit", good, "--timeout", "30", "--poll", "0.05"]) == 0
    outage = redis_outage_in_the_window(world, restart=True)
    sha = world.commit("main", "a release whose Redis blips")
    assert main(["release", "production", "--commit", sha, *FAST]) == 0, capsys.readouterr().err
    outage.join(10)
    out = capsys.readouterr().out
    assert "⚠ inconclusive: Redis unreachable" in out
    assert "⚠ baked, partly inconclusive" in out and "nothing was rolled back" in out
    assert not [d for d in world.services["production"].deploys if d["trigger"] == "rollback"]
    [told] = world.telegram.replies_to(world.bots["production"], OWNER)  # one message, and only one
    assert f"{sha[:12]} is live; its bake was inconclusive" in told and "Redis unreachable" in told


@pytest.mark.timeout(300)  # a look while Redis is down spends its conversation deadline: slow when busy
def test_redis_down_past_the_excused_stretch_fails_the_run_for_a_person_and_rolls_nothing_back(
    world, monkeypatch, capsys
):
    """The release step cannot reach the Key Value (README): past REDIS_LOOKS looks in a row of
    "redis not ok" while Telegram answers, the bake cannot tell an outage (a rollback cannot help)
    from a connection the commit broke (a rollback helps). So the run fails, the owner is told
    with the way back, and nothing is rolled back: a person decides."""
    use(monkeypatch, {**world.secrets("production"), "OWNER_CHAT_ID": str(OWNER)})
    world.telegram.start_chat(world.bots["production"], OWNER)
    # A failing bake returns at its verdict (REDIS_LOOKS+1 looks): the long window costs nothing then,
    # and a busy machine that fits only a few looks in 9 s no longer lets the window end first.
    window = "bake_minutes = 2\nbake_interval_seconds = 0.3\n"
    world.config.write_text(world.config.read_text().replace("bake_minutes = 0\n", window))
    good = world.commit("main", "good")
    assert main(["deploy", "production", "--commit", good, "--timeout", "30", "--poll", "0.05"]) == 0
    outage = redis_outage_in_the_window(world, restart=False)
    sha = world.commit("main", "a release whose Redis stays down")
    try:
        code = main(["release", "production", "--commit", sha, *FAST])
        outage.join(10)
    finally:
        world.redis["production"].start()
    err = capsys.readouterr().err
    assert code == 5
    assert f"{sha[:12]} could not be judged in its bake on production" in err and "nothing was rolled back" in err
    assert "roll back (rollback.yml" in err
    assert not [d for d in world.services["production"].deploys if d["trigger"] == "rollback"]
    told = world.telegram.replies_to(world.bots["production"], OWNER)
    assert told and "could not be judged in its bake" in told[-1]


def test_release_with_no_bake_warns(world, monkeypatch, capsys, tmp_path):
    use(monkeypatch, world.secrets("production"))
    config = world.config
    config.write_text(config.read_text().replace("bake_minutes = 0\n", "bake_minutes = 5\n"))
    sha = world.commit("main", "released unwatched")
    assert main(["release", "production", "--commit", sha, "--no-bake", *FAST]) == 0
    assert "--no-bake: nobody watches" in capsys.readouterr().out


def test_notify_tells_the_owner_only(world, monkeypatch, capsys):
    use(monkeypatch, {**world.secrets("production"), "OWNER_CHAT_ID": str(OWNER)})
    bot = world.bots["production"]
    world.telegram.start_chat(bot, OWNER)
    assert main(["notify", "--env", "production", "the nightly job of my own finished"]) == 0
    assert world.telegram.replies_to(bot, OWNER) == [
        "@mindmate_companion_bot (production): the nightly job of my own finished"
    ]
    assert [m["chat_id"] for m in bot.sent] == [OWNER]
    assert "reply_markup" not in bot.sent[0]  # outside Actions there is no page a button could open


def test_the_owners_message_carries_buttons_to_the_run_the_rollback_and_the_hold(world, monkeypatch, capsys):
    """Acting on a message from a phone: each button opens a page of the repository's Actions,
    and the Bot API stand-in checks the keyboard as Telegram does (a bad URL is refused)."""
    actions = {"GITHUB_REPOSITORY": "owner/bot", "GITHUB_RUN_ID": "77", "GITHUB_SERVER_URL": "https://github.com"}
    use(monkeypatch, {**world.secrets("production"), "OWNER_CHAT_ID": str(OWNER), **actions})
    bot = world.bots["production"]
    world.telegram.start_chat(bot, OWNER)
    assert main(["notify", "--env", "production", "rolled back"]) == 0
    [sent] = bot.sent
    assert sent["reply_markup"]["inline_keyboard"] == [
        [{"text": "Open the run", "url": "https://github.com/owner/bot/actions/runs/77"}],
        [
            {"text": "Roll back", "url": "https://github.com/owner/bot/actions/workflows/rollback.yml"},
            {"text": "Hold releases", "url": "https://github.com/owner/bot/actions/workflows/hold.yml"},
        ],
    ]


@pytest.mark.parametrize(
    ("server", "refused"),
    [
        ("http://ghe", "inline keyboard button URL 'http://ghe/owner/bot/actions/runs/77' is invalid: Wrong HTTP URL"),
        ("ftp://ghe.example", "is invalid: Unsupported URL protocol"),
    ],
)
def test_buttons_telegram_refuses_do_not_lose_the_message_it_goes_again_without_them(
    world, monkeypatch, capsys, server, refused
):
    """A GitHub Enterprise host without a dot (or a scheme Telegram does not link) makes Telegram
    refuse the keyboard with a 400: the message itself must still reach the owner, and the run says why."""
    actions = {"GITHUB_REPOSITORY": "owner/bot", "GITHUB_RUN_ID": "77", "GITHUB_SERVER_URL": server}
    use(monkeypatch, {**world.secrets("production"), "OWNER_CHAT_ID": str(OWNER), **actions})
    bot = world.bots["production"]
    world.telegram.start_chat(bot, OWNER)
    assert main(["notify", "--env", "production", "rolled back", "--strict"]) == 0  # told: not a failure
    [sent] = bot.sent
    assert sent["text"].startswith("@mindmate_companion_bot (production): rolled back") and "reply_markup" not in sent
    out = capsys.readouterr().out
    assert "⚠ Telegram refused the message's buttons (400 Bad Request: " in out and refused in out
    assert "the owner was told without them" in out and "not told" not in out


def test_staging_messages_carry_only_the_run_not_productions_rollback_or_hold(world, monkeypatch):
    """Holds are production's alone and the rollback form opens on production: a staging message
    offering them would act on the wrong bot."""
    actions = {"GITHUB_REPOSITORY": "owner/bot", "GITHUB_RUN_ID": "78", "GITHUB_SERVER_URL": "https://github.com"}
    use(monkeypatch, {**world.secrets("staging"), "OWNER_CHAT_ID": str(OWNER), **actions})
    bot = world.bots["staging"]
    world.telegram.start_chat(bot, OWNER)
    assert main(["notify", "--env", "staging", "released"]) == 0
    [sent] = bot.sent
    assert sent["reply_markup"]["inline_keyboard"] == [
        [{"text": "Open the run", "url": "https://github.com/owner/bot/actions/runs/78"}]
    ]


@pytest.mark.parametrize(("strict", "code"), [(False, 0), (True, 4)])
def test_notify_to_an_owner_who_never_started_the_bot(world, monkeypatch, capsys, strict, code):
    use(monkeypatch, {**world.secrets("production"), "OWNER_CHAT_ID": str(OWNER)})
    assert main(["notify", "--env", "production", "hello", *(["--strict"] if strict else [])]) == code
    captured = capsys.readouterr()
    assert "press Start" in captured.out + captured.err
    assert not world.bots["production"].sent


@pytest.mark.parametrize(
    ("seen", "said"),
    [
        (False, "has never seen the chat in OWNER_CHAT_ID (400 Bad Request: chat not found); check that"),
        (True, "Telegram refused (403 Forbidden: bot can't initiate conversation with a user)"),
    ],
)
def test_notify_names_why_the_owner_was_not_told(world, monkeypatch, capsys, seen, said):
    """A bot that never saw the owner gets 400 "chat not found" (a wrong id, or a bot never
    opened), one that knows them but was never started 403: both end in "press Start"."""
    use(monkeypatch, {**world.secrets("production"), "OWNER_CHAT_ID": str(OWNER)})
    if seen:
        world.telegram.meet(world.bots["production"], OWNER)
    assert main(["notify", "--env", "production", "hello"]) == 0
    out = capsys.readouterr()
    assert said in out.out + out.err
    assert "press Start" in out.out + out.err
