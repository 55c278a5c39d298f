"""The move's window in act, as the owner lives it: day 1 on the new bot, finish-move dispatched too
early refuses saying when; then a release breaks the daily user's plain messages; send-back.yml puts
them on their old bot with the fact they told the new one since the move, and the old bot answers
them with it; undo puts the old bot's keys back while production never changed; finish-move with
force goes, and says so.

Built world: every deploy runs its commit's own bot as a process, so the broken release really is
broken. The set-up before day 1 (cutover, memory copy) is the runbook's, done outside act here:
test_runbook_workflows.py runs those workflows themselves.
"""

from __future__ import annotations

import re
import time

import pytest
from cryptography.fernet import Fernet

from ci_tools.memory.ops import between, copy_user
from sandbox.breaks import commit_breaking
from tests.support import context, wait_until
from tests.workflows.scenarios import (
    assert_backup_kept_before_the_write,
    assert_no_secret,
    dispatch,
    environment_secrets,
    health,
    start_live,
)

USER = 424242001
OWNER = 7770001
OLD_FACTS = ("I take my tea without sugar", "My sister is called Mia")
NEW_FACT = "I started running on Tuesdays"  # told the new bot on day 1, never the old one


def talk(world, env: str, text: str) -> str | None:
    """The daily user writes; the bot's reply to it, or None when it answered nothing."""
    before = len(world.telegram.replies_to(world.bots[env], USER))
    world.telegram.send_user_message(world.bots[env], USER, text)
    replies = world.telegram.replies_to(world.bots[env], USER)
    return replies[-1] if len(replies) > before else None


def production(world, **extra):
    """The production environment as `ci-tools init` and `github setup` fill it: the old bot's
    Redis (SOURCE_REDIS_URL), token, service and scoped key beside production's own."""
    values = {
        "REDIS_URL": world.external_redis_url("production"),
        "SOURCE_REDIS_URL": world.external_redis_url("staging"),
        "STAGING_TELEGRAM_BOT_TOKEN": world.bots["staging"].token,
        "STAGING_RENDER_SERVICE_ID": world.services["staging"].id,
        "STAGING_RENDER_API_KEY": world.render_keys["staging"],
        "OWNER_CHAT_ID": str(OWNER),
    }
    return environment_secrets(world, "production", **{**values, **extra})


def dumps(client, pattern: str) -> dict[bytes, bytes]:
    return {key: client.dump(key) for key in sorted(client.scan_iter(match=pattern))}


@pytest.fixture
def day_one(world):
    """After runbook step 7: the old bot (staging, legacy keys) still runs; production runs the new
    bot; the daily user's memory was copied there; on day 1 they told the new bot something new."""
    dev = world.redis["staging"].client()
    now = int(time.time())
    dev.hset(f"user:{USER}:profile", mapping={"first_seen": now - 86400 * 90, "last_seen": now - 86400})
    dev.rpush(f"memory:{USER}", *OLD_FACTS)
    world.telegram.start_chat(world.bots["staging"], USER)
    # Bots as processes, on a busy machine: a generous deadline for each to go live.
    start_live(world, "staging", world.commit("develop", "the old bot"), timeout=180)
    start_live(world, "production", world.commit("main", "the new bot"), timeout=180)
    ctx = context(
        CI_TOOLS_CONFIG=str(world.config),
        SOURCE_REDIS_URL=world.redis["staging"].url,
        TARGET_REDIS_URL=world.redis["production"].url,
    )
    copy = between(ctx.config, USER, "staging", "production", world.root / "copy", apply=True, legacy_source=True)
    copy_user(ctx, copy)
    assert "Good to see you again" in (talk(world, "production", "/start") or "")
    assert "I'll remember that" in (talk(world, "production", f"/remember {NEW_FACT}") or "")
    return world


def send_back(world, act, key: str, mode: str, run_id: str = ""):
    payload = dispatch("main", user_id=str(USER), mode=mode, text="", run_id=run_id)
    return act.run(
        "send-back.yml", "workflow_dispatch", secrets=production(world, MEMORY_SNAPSHOT_KEY=key), payload=payload
    )


def finish_move(world, act, force: bool, key: str, legacy_news: str = "keep"):
    payload = dispatch(
        "main", user_id=str(USER), tester_ids="", force="true" if force else "false", legacy_news=legacy_news
    )
    secrets = production(world, MEMORY_SNAPSHOT_KEY=key)
    return act.run("finish-move.yml", "workflow_dispatch", secrets=secrets, payload=payload)


@pytest.mark.built
def test_the_window_send_back_after_a_failing_new_bot_undo_and_a_forced_finish(day_one, act):
    world = day_one
    key = Fernet.generate_key().decode()
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    staging_env = dict(world.services["staging"].env)

    # Day 1: finishing the move now is refused, in one line saying when it may run.
    early = finish_move(world, act, force=False, key=key)
    assert not early.ok
    said = re.search(r"ci-tools: bad input: (the move may finish from .*)", early.log)
    assert said, early.tail()
    line = said.group(1)  # one line: when, from what, and the way on
    assert re.match(r"the move may finish from \d{4}-\d\d-\d\d \d\d:\d\d UTC, 3 days after user 424242001's", line)
    assert "dispatch finish-move again then, or with force" in line
    assert world.services["staging"].env == staging_env

    # The new bot fails them: a release whose plain-message handler breaks (its probe would pass).
    bad = commit_breaking(world, "plain text fails", "refactor: read the message's text")
    start_live(world, "production", bad, timeout=180)
    assert talk(world, "production", "I had a rough night") is None
    wait_until(lambda: health(world, "production")["updates"]["failed"] >= 1, "the new bot's handler failure")
    assert NEW_FACT not in (talk(world, "staging", "/recall") or "")  # the old bot never heard it
    production_before, old_before = dumps(prod, f"prod:*{USER}*"), dumps(dev, f"*{USER}*")
    told_before = len(world.telegram.replies_to(world.bots["staging"], USER))

    applied = send_back(world, act, key, "apply")
    assert applied.ok, applied.tail()
    assert_backup_kept_before_the_write(applied.log)
    assert f"mode undo (after undo-dry-run), run_id {applied.run_id}" in applied.log
    assert world.telegram.replies_to(world.bots["staging"], USER)[told_before:] == ["Let's continue here for now."]
    assert dumps(prod, f"prod:*{USER}*") == production_before  # production read, never written
    recall = talk(world, "staging", "/recall") or ""
    assert NEW_FACT in recall and all(fact in recall for fact in OLD_FACTS)  # the old bot answers with it
    assert "I'm listening" in (talk(world, "staging", "are you there?") or "")  # and serves them plainly

    undone = send_back(world, act, key, "undo", str(applied.run_id))
    assert undone.ok, undone.tail()
    after = dumps(dev, f"*{USER}*")
    assert after[f"memory:{USER}".encode()] == old_before[f"memory:{USER}".encode()]
    assert NEW_FACT not in (talk(world, "staging", "/recall") or "")
    assert dumps(prod, f"prod:*{USER}*") == production_before
    assert NEW_FACT in (talk(world, "production", "/recall") or "")  # commands still work on the new bot
    assert all(kv.ip_allow_list == [] for kv in world.key_values.values())

    legacy = {k for k in dumps(dev, f"*{USER}*") if not k.startswith(b"dev:")}
    assert f"memory:{USER}".encode() in legacy
    if dev.hkeys("meta:sent_back") == [str(USER).encode()]:  # send-back's record of them alone: retired too
        legacy.add(b"meta:sent_back")
    production_now = dumps(prod, f"prod:*{USER}*")  # they wrote to the new bot since the baseline above
    forced = finish_move(world, act, force=True, key=key)
    assert forced.ok, forced.tail()
    # The daily user's legacy keys leave staging's Redis, their backup kept as the run's artifact first.
    kept = forced.log.index("✅  Success - Main Keep the encrypted backup of the daily user's legacy keys")
    assert kept < forced.log.index("⭐ Run Main Remove the daily user's legacy keys")
    left = {k for k in dumps(dev, f"*{USER}*") if not k.startswith(b"dev:")}
    assert f"{len(legacy) - len(left)} retired from the old bot's Redis" in forced.log
    if left:  # what production never got (the old bot's profile after the undo, when it differs): named, kept
        assert "production never got them" in forced.log and all(k.decode() in forced.log for k in left)
        last = finish_move(world, act, force=True, key=key, legacy_news="retire")  # the owner's named choice
        assert last.ok, last.tail()
        assert f"{len(left)} retired from the old bot's Redis" in last.log
        forced = last
    assert {k for k in dumps(dev, f"*{USER}*") if not k.startswith(b"dev:")} == set()
    assert not dev.exists("meta:sent_back")
    assert f"artifact memory-{forced.run_id}" in forced.log
    assert all(fact not in forced.log for fact in OLD_FACTS)  # never a value
    assert dumps(prod, f"prod:*{USER}*") == production_now  # production's memory untouched
    assert "forced (the move's window was not over)" in forced.log
    env = world.services["staging"].env
    assert (env["KEY_PREFIX"], env["TESTER_IDS"]) == ("dev:", str(OWNER))  # OWNER_CHAT_ID: the owner
    assert health(world, "staging")["key_prefix"] == "dev:"
    assert talk(world, "staging", "/recall") == f"https://t.me/{world.bots['production'].username}"
    assert "remove now: SOURCE_REDIS_URL" in forced.log
    for run in (early, applied, undone, forced):
        assert_no_secret(run, world)
