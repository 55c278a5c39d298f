"""Every rule of the memory copy, on real redis-server processes."""

from __future__ import annotations

import json

import pytest
import redis

from ci_tools.__main__ import main
from ci_tools.errors import InputError, RemoteError, VerificationError
from ci_tools.memory.files import RecordFile
from ci_tools.memory.keys import parse_user_id
from ci_tools.memory.ops import copy_user, undo_backup
from ci_tools.memory.records import BATCH
from sandbox.redis import RedisServer
from tests.memory.helpers import (
    OTHER,
    ROUTE,
    USER,
    request,
    seed_all_types,
    seed_user,
    state,
    value,
)
from tests.support import context, wait_until


@pytest.fixture
def envs(memory_envs):
    return memory_envs


def cli(*args: str) -> int:
    return main(["memory", *args])


COPY = ("copy", *ROUTE)


@pytest.mark.parametrize(
    "bad", ["*", "1*", "[1]", "1 2", "1\\", "", " 1", "01", "+1", "1.0", "abc", "0", "-", "9" * 20]
)
def test_each_bad_user_id_is_refused_before_any_redis_is_touched(bad, envs, capsys, tmp_path):
    before = state(envs[1].client())
    assert cli(*COPY[:1], "--user-id", bad, *COPY[3:], "--apply", "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "is not a Telegram user id" in err
    assert err.count("\n") == 1
    assert state(envs[1].client()) == before
    assert not list(tmp_path.iterdir())


def test_good_ids():
    assert parse_user_id("123456789") == 123456789
    assert parse_user_id("-1001234567890") == -1001234567890
    with pytest.raises(InputError):
        parse_user_id(None)
    for bad in ("42\n", "42 ", " 42", "4*", "042"):  # "$" in the pattern let "42\n" through as 42
        with pytest.raises(InputError):
            parse_user_id(bad)


def test_copy_all_types_binary_safe_with_prefix_rewrite_and_ttl(envs, tmp_path):
    dev, prod = envs
    seed_all_types(dev.client())
    outcome = copy_user(
        context(), request(tmp_path, patterns=("all:{user_id}:*", "memory:{user_id}"), uncovered="ignore")
    )
    assert outcome.counts() == {"create": 7}
    assert outcome.verified == 7
    source, target = dev.client(), prod.client()
    for kind in ("string", "list", "hash", "set", "zset", "stream"):
        src, dst = f"dev:all:{USER}:{kind}", f"prod:all:{USER}:{kind}"
        assert value(target, dst.encode()) == value(source, src.encode()), kind
    assert abs(target.pttl(f"prod:all:{USER}:string") - source.pttl(f"dev:all:{USER}:string")) < 1000
    assert abs(target.pttl(f"prod:memory:{USER}") - source.pttl(f"dev:memory:{USER}")) < 1000
    assert target.pttl(f"prod:all:{USER}:list") == -1
    assert not target.exists(f"prod:memory:{OTHER}")


def test_source_is_never_written(envs, tmp_path):
    dev, _ = envs
    before = state(dev.client())
    copy_user(context(), request(tmp_path, policy="replace"))
    copy_user(context(), request(tmp_path, policy="replace"))
    assert state(dev.client()) == before


def test_dry_run_leaves_the_target_untouched_and_writes_no_files(envs, tmp_path, capsys):
    _, prod = envs
    before = state(prod.client())
    assert cli(*COPY, "--out", str(tmp_path / "out")) == 0
    out = capsys.readouterr().out
    assert "dry run" in out
    assert f"prod:user:{USER}:history" in out
    assert state(prod.client()) == before
    assert not (tmp_path / "out").exists()


def test_second_apply_is_a_no_op(envs, tmp_path, capsys):
    _, prod = envs
    assert cli(*COPY, "--apply", "--out", str(tmp_path), "--json") == 0
    capsys.readouterr()
    # The first copy ran a day ago: a second one over the same keys keeps the move's time (a CI
    # run once failed here when the two applies fell in two seconds and the record took the second's).
    record = json.loads(prod.client().hget("prod:meta:moved", "424242"))
    prod.client().hset("prod:meta:moved", "424242", json.dumps({**record, "at": record["at"] - 86400}, sort_keys=True))
    after_first = state(prod.client())
    assert cli(*COPY, "--apply", "--out", str(tmp_path), "--json") == 0
    second = json.loads(capsys.readouterr().out)
    assert second["counts"] == {"identical": 3}
    assert second["written"] == 0
    assert second["verified"] == 3
    assert state(prod.client()) == after_first
    assert set(second["timings_s"]) == {"discover", "audit", "read_plan_backup", "copy", "verify"}


def test_conflict_fail_writes_nothing_and_names_the_key(envs, tmp_path):
    _, prod = envs
    prod.client().rpush(f"prod:memory:{USER}", "a different fact")
    before = state(prod.client())
    with pytest.raises(VerificationError) as error:
        copy_user(context(), request(tmp_path))
    assert f"prod:memory:{USER}" in str(error.value)
    assert "--on-conflict skip" in str(error.value)
    assert state(prod.client()) == before


def test_conflict_skip_leaves_it_alone_and_copies_the_rest(envs, tmp_path):
    _, prod = envs
    prod.client().rpush(f"prod:memory:{USER}", "a different fact")
    outcome = copy_user(context(), request(tmp_path, policy="skip"))
    assert outcome.counts() == {"create": 2, "skip": 1}
    assert prod.client().lrange(f"prod:memory:{USER}", 0, -1) == [b"a different fact"]
    assert prod.client().exists(f"prod:user:{USER}:history")


def test_conflict_replace_is_reversible_byte_for_byte(envs, tmp_path):
    _, prod = envs
    prod.client().rpush(f"prod:memory:{USER}", "a different fact")
    prod.client().set(f"prod:user:{USER}:history", "wrong type even")
    before = state(prod.client())
    outcome = copy_user(context(), request(tmp_path, policy="replace"))
    assert outcome.counts() == {"replace": 2, "create": 1}
    assert prod.client().lrange(f"prod:memory:{USER}", 0, -1) == [b"likes tea", b"sister Mia"]
    backup = list(RecordFile(outcome.backup, context().snapshot_fernet()).records())
    assert {r.key for r in backup} == {
        f"prod:{k}".encode() for k in (f"memory:{USER}", f"user:{USER}:history", f"user:{USER}:profile")
    }
    undo_backup(context(), outcome.backup, tmp_path / "undo")
    assert state(prod.client()) == before


def test_undo_of_a_create_removes_exactly_what_was_created(envs, tmp_path, capsys):
    _, prod = envs
    prod.client().set("prod:unrelated", "keep me")
    before = state(prod.client())
    outcome = copy_user(context(), request(tmp_path))
    assert cli("undo", str(outcome.backup), "--out", str(tmp_path / "u"), "--apply") == 0
    assert "put back 3 key(s)" in capsys.readouterr().out
    assert state(prod.client()) == before


def test_snapshot_and_backup_exist_before_the_first_target_write(envs, tmp_path):
    _, prod = envs
    before = state(prod.client())
    seen = {}

    def on_event(event, n):
        if event == "planned":
            seen["state"] = state(prod.client())
            out = tmp_path / "out"
            seen["files"] = {kind for p in out.iterdir() for kind in ("snapshot", "backup") if f"-{kind}-" in p.name}
            for path in out.iterdir():
                list(RecordFile(path, context().snapshot_fernet()).records())  # complete: a footer, readable

    copy_user(context(), request(tmp_path, on_event=on_event))
    assert seen["state"] == before
    assert seen["files"] == {"snapshot", "backup"}


def test_a_key_that_expires_mid_copy_is_not_resurrected(envs, tmp_path):
    dev, prod = envs
    dev.client().pexpire(f"dev:memory:{USER}", 300)

    def slow(event, n):
        if event == "planned":  # the key expires between the plan and the write
            wait_until(lambda: not dev.client().exists(f"dev:memory:{USER}"), "the key to expire")

    outcome = copy_user(context(), request(tmp_path, on_event=slow))
    assert outcome.expired == [f"prod:memory:{USER}".encode()]
    assert not prod.client().exists(f"prod:memory:{USER}")
    assert prod.client().exists(f"prod:user:{USER}:history")


def test_markers_must_match_unless_overridden(envs, tmp_path, capsys):
    _, prod = envs
    prod.client().set("prod:meta:env", "staging")
    assert cli(*COPY, "--apply", "--out", str(tmp_path)) == 5
    assert "prod:meta:env says 'staging'" in capsys.readouterr().err
    prod.client().delete("prod:meta:env")
    assert cli(*COPY, "--apply", "--out", str(tmp_path)) == 5
    assert "is not set" in capsys.readouterr().err
    assert cli(*COPY, "--apply", "--out", str(tmp_path), "--ignore-env-markers") == 0


def test_the_same_server_is_refused(redis_server, monkeypatch, tmp_path, capsys):
    seed_user(redis_server.client())
    monkeypatch.setenv("SOURCE_REDIS_URL", redis_server.url)
    monkeypatch.setenv("TARGET_REDIS_URL", redis_server.url.replace("127.0.0.1", "localhost"))
    assert cli(*COPY, "--target-prefix", "dev:", "--apply", "--out", str(tmp_path)) == 2
    assert "the target is the source" in capsys.readouterr().err


def test_no_keys_for_the_user_is_a_clear_error(envs, capsys, tmp_path):
    nobody = ("--user-id", "999", *ROUTE[2:])
    assert cli("copy", *nobody, "--out", str(tmp_path)) == 2
    assert "no memory for user 999 under 'dev:'" in capsys.readouterr().err


def test_target_killed_mid_copy_then_resumed_and_verified(redis_pair, monkeypatch, tmp_path):
    dev, _ = redis_pair
    with RedisServer(persist=True) as prod:
        prod.client().set("prod:meta:env", "production")
        source = dev.client()
        source.set("dev:meta:env", "staging")
        pipe = source.pipeline()
        total = 3 * BATCH + 200
        for i in range(total):
            pipe.hset(f"dev:bulk:{USER}:{i}", mapping={"n": i, "text": "x" * 20})
        pipe.execute()
        monkeypatch.setenv("SOURCE_REDIS_URL", dev.url)
        monkeypatch.setenv("TARGET_REDIS_URL", prod.url)
        before_source = state(source)

        def kill(event, n):
            if event == "batch" and n == 1:
                prod.kill()

        with pytest.raises(RemoteError) as error:
            copy_user(context(), request(tmp_path, patterns=("bulk:{user_id}:*",), uncovered="ignore", on_event=kill))
        message = str(error.value)
        assert f"after {BATCH} of {total} keys were written" in message
        assert "resume with: ci-tools memory copy" in message
        assert "ci-tools memory undo" in message
        prod.start()
        assert prod.client().dbsize() == BATCH + 1  # the marker and the first batch, whole
        outcome = copy_user(context(), request(tmp_path, patterns=("bulk:{user_id}:*",), uncovered="ignore"))
        assert outcome.counts() == {"identical": BATCH, "create": total - BATCH}
        assert outcome.verified == total
        assert state(source) == before_source


def test_cross_version_fallback_from_valkey_9_to_redis_7(valkey_to_old_redis, tmp_path):
    valkey, old = valkey_to_old_redis
    seed_all_types(valkey.client())
    with pytest.raises(redis.ResponseError, match="payload version"):
        old.client().restore("probe", 0, valkey.client().dump(f"dev:memory:{USER}"))
    outcome = copy_user(
        context(), request(tmp_path, patterns=("all:{user_id}:*", "memory:{user_id}"), uncovered="ignore")
    )
    assert outcome.fallback
    assert outcome.verified == 7
    target = old.client()
    assert target.zrange(f"prod:all:{USER}:zset", 0, -1, withscores=True) == [
        (b"low", -1.5),
        (b"high", 1e300),
        (b"inf", float("inf")),
    ]
    assert target.xrange(f"prod:all:{USER}:stream")[1] == (
        b"2-0",
        {b"text": b"again", b"mood": b"ok"},
    )
    assert target.pttl(f"prod:memory:{USER}") > 590_000


def test_keys_of_many_elements_are_copied_and_verified(envs, tmp_path):
    dev, prod = envs
    source = dev.client()
    source.rpush(f"dev:big:{USER}:list", *[f"{i}".encode() for i in range(250)])
    source.hset(f"dev:big:{USER}:hash", mapping={f"f{i}": i for i in range(250)})
    source.sadd(f"dev:big:{USER}:set", *range(250))
    source.zadd(f"dev:big:{USER}:zset", {f"m{i}": i for i in range(250)})
    for i in range(1, 121):
        source.xadd(f"dev:big:{USER}:stream", {"i": i}, id=f"{i}-0")
    source.expire(f"dev:big:{USER}:list", 3600)
    outcome = copy_user(context(), request(tmp_path, patterns=("big:{user_id}:*",), uncovered="ignore"))
    assert outcome.counts() == {"create": 5}
    assert outcome.verified == 5
    target = prod.client()
    for kind in ("list", "hash", "set", "zset", "stream"):
        assert target.dump(f"prod:big:{USER}:{kind}") is not None
    assert target.lrange(f"prod:big:{USER}:list", 0, -1) == source.lrange(f"dev:big:{USER}:list", 0, -1)
    assert target.hgetall(f"prod:big:{USER}:hash") == source.hgetall(f"dev:big:{USER}:hash")
    assert target.smembers(f"prod:big:{USER}:set") == source.smembers(f"dev:big:{USER}:set")
    assert 3590_000 < target.pttl(f"prod:big:{USER}:list") <= 3600_000
    assert not [k for k in target.scan_iter() if b"ci-tools-partial" in k]
    again = copy_user(context(), request(tmp_path, patterns=("big:{user_id}:*",), uncovered="ignore"))
    assert again.counts() == {"identical": 5}
    target.rpush(f"prod:big:{USER}:list", "extra")
    with pytest.raises(VerificationError, match="already hold other data"):
        copy_user(context(), request(tmp_path, patterns=("big:{user_id}:*",), uncovered="ignore"))


def test_passwords_never_printed(redis_pair, monkeypatch, tmp_path, capsys):
    dev, _ = redis_pair
    with RedisServer(password="Sup3rSecretDevPw") as secured:
        seed_user(secured.client())
        monkeypatch.setenv("SOURCE_REDIS_URL", secured.url)
        monkeypatch.setenv("TARGET_REDIS_URL", dev.url)
        dev.client().set("prod:meta:env", "production")
        assert cli(*COPY, "--apply", "--out", str(tmp_path)) == 0
        assert cli(*COPY, "--apply", "--out", str(tmp_path), "--json") == 0
        monkeypatch.setenv("SOURCE_REDIS_URL", secured.url.replace("Sup3rSecretDevPw", "WrongPassw0rd99"))
        assert cli(*COPY, "--out", str(tmp_path)) == 3
        monkeypatch.setenv("SOURCE_REDIS_URL", "redis://:Sup3rSecretDevPw@127.0.0.1:1/0")
        assert cli(*COPY, "--out", str(tmp_path)) == 4
    out, err = capsys.readouterr()
    assert "refused the password" in err
    assert "cannot reach the source Redis at 127.0.0.1:1/0" in err
    for secret in ("Sup3rSecretDevPw", "WrongPassw0rd99"):
        assert secret not in out + err
        for path in tmp_path.iterdir():
            assert secret not in path.read_text()


def test_missing_url_names_the_variable(monkeypatch, capsys, tmp_path):
    assert cli(*COPY, "--out", str(tmp_path)) == 3
    err = capsys.readouterr().err
    assert "missing secrets SOURCE_REDIS_URL, TARGET_REDIS_URL" in err
