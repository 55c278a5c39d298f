# ruff: noqa: F811 (the fixtures imported below are the tests' arguments)
"""Attacks on finish-move's retirement of the daily user's legacy keys (runbook step 9).

Each test tries one way to make the retirement take what is not the daily user's, lose what it
removed, touch production, or answer bad input with anything but one line and nothing removed. The
world is test_retire_legacy's ``legacy`` (real redis-server processes, the sandbox's stand-ins).
"""

from __future__ import annotations

import os
import re
import time

import pytest
from cryptography.fernet import Fernet

from ci_tools.__main__ import main
from ci_tools.memory.writer import Writer
from ci_tools.pipeline import retire_legacy
from tests.pipeline.test_move_window import USER, finish, keys, moved  # noqa: F401 (the fixture)
from tests.pipeline.test_retire_legacy import legacy, legacy_of_user, production_got  # noqa: F401 (the fixture)
from tests.support import context, use, wait_until

NEIGHBOURS = (USER * 10, int(f"1{USER}"), USER + 1, int(str(USER)[:-1]), -USER)  # ids that share digits with theirs


def write(out_dir) -> int:
    return main(["finish-move", "--user-id", str(USER), "--stage", "write", "--out", str(out_dir)])


def one_line_refusal(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err + captured.out and "redis://" not in err + captured.out
    secret = os.environ.get("MEMORY_SNAPSHOT_KEY")
    assert not secret or secret not in err + captured.out
    return err


def test_users_whose_ids_share_digits_with_theirs_keep_every_key(legacy, tmp_path):
    world = legacy
    dev = world.redis["staging"].client()
    for other in NEIGHBOURS:
        dev.rpush(f"memory:{other}", "theirs")
        dev.set(f"mood:{other}:today", "theirs")  # the audit's kind of key
        dev.set(f"x:{other}{USER}:y", "theirs")
        dev.hset(f"kit:arrival:{other}", "since", 1)
        dev.hset(f"user:{other}:profile", "first_seen", 1)
    dev.set(f"note:{USER}x", "a key the id does not name as a segment")
    dev.set(f"pre{USER}:note", "nor this")
    segment = re.compile(rb"(?:^|:)" + str(USER).encode() + rb"(?::|$)")
    theirs = {k for k in keys(dev, "*") if segment.search(k) and not k.startswith(b"dev:")} | {b"meta:sent_back"}
    before = {k: v for k, v in keys(dev, "*").items() if k not in theirs}
    assert finish("--out", str(tmp_path / "out")) == 0
    after = keys(dev, "*")
    assert not theirs & set(after)  # theirs gone
    assert {k: v for k, v in after.items() if k in before} == before  # not one of the others' removed


def test_their_field_in_a_record_other_users_share_is_left_and_named_and_the_others_untouched(legacy, capsys, tmp_path):
    world = legacy
    dev = world.redis["staging"].client()
    dev.hset("meta:moved", str(USER), '{"theirs": 1}')  # meta:moved holds OTHER's field too
    dev.delete("meta:sent_back")
    dev.hset("meta:sent_back", mapping={str(USER): "{}", str(USER * 10): "{}"})
    shared_before = {k: dev.hgetall(k) for k in (b"meta:moved", b"meta:sent_back")}
    assert finish("--out", str(tmp_path / "out")) == 0
    out = capsys.readouterr().out
    assert {k: dev.hgetall(k) for k in shared_before} == shared_before
    assert "meta:moved left" in out and "meta:sent_back left" in out


def test_a_bots_own_string_key_named_like_the_pipelines_record_is_not_taken(legacy, tmp_path):
    world = legacy
    dev = world.redis["staging"].client()
    dev.delete("meta:sent_back")
    dev.set("meta:sent_back", f"the bot's own, naming {USER}")
    assert finish("--out", str(tmp_path / "out")) == 0
    assert dev.get("meta:sent_back") == f"the bot's own, naming {USER}".encode()


def test_one_key_value_for_both_bots_production_under_prod_the_old_bot_unprefixed(legacy, tmp_path):
    """A Hobby owner's one Key Value: SOURCE_REDIS_URL is production's own Redis, the old prefix ''."""
    world = legacy
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    for key in dev.scan_iter():  # the old bot's keys, moved onto production's server
        prod.restore(key, 0, dev.dump(key), replace=True)
    production_got(world, old="production")  # the move's copy read them there
    prod.set(f"prod:mood:{USER}:today", "production's, only the audit would name it")
    production = keys(prod, "prod:*")
    assert production and {k for k in legacy_of_user(prod) if not k.startswith(b"prod:")}
    ctx = context(STAGING_REDIS_URL=world.redis["production"].url)
    planned = retire_legacy.back_up(ctx, USER, "", tmp_path / "out")
    assert planned.backup is not None
    done = retire_legacy.delete(ctx, planned.backup, USER)
    assert done.deleted and not done.changed
    assert {k for k in legacy_of_user(prod) if not k.startswith(b"prod:")} == set()
    assert keys(prod, "prod:*") == production  # not one production key, not even one naming them


def test_an_old_prefix_that_begins_the_testers_never_takes_the_testers_keys(legacy, tmp_path):
    world = legacy
    dev = world.redis["staging"].client()
    dev.set(f"dev:mood:{USER}:today", "a tester-side key naming them")
    dev.rpush(f"dmemory:{USER}", "the old bot's under 'd'")
    production_got(world)
    before = keys(dev, "dev:*")
    ctx = context()
    planned = retire_legacy.back_up(ctx, USER, "d", tmp_path / "out")
    assert planned.backup is not None
    done = retire_legacy.delete(ctx, planned.backup, USER)
    assert done.deleted == [f"dmemory:{USER}".encode()]
    assert keys(dev, "dev:*") == before


def test_a_key_they_create_between_plan_and_write_stays(legacy, tmp_path):
    world = legacy
    dev = world.redis["staging"].client()
    out_dir = tmp_path / "out"
    assert finish("--stage", "plan", "--out", str(out_dir)) == 0
    dev.set(f"mood:{USER}:tomorrow", "written after the backup")  # in no backup: never deleted
    assert write(out_dir) == 0
    assert dev.get(f"mood:{USER}:tomorrow") == b"written after the backup"


def test_after_finish_move_the_old_bot_keeps_no_key_of_the_daily_user_under_the_old_prefix(legacy, tmp_path):
    """The old bot serves testers only (under dev:) once finish-move redeployed it: the daily user
    writing to it afterwards leaves nothing under the retired prefix."""
    from tests.pipeline.test_move_window import talk

    world = legacy
    dev = world.redis["staging"].client()
    assert finish("--out", str(tmp_path / "out")) == 0
    reply = talk(world, "staging", "/remember something for the old bot")
    assert "t.me/" in reply  # the link to the new bot
    assert legacy_of_user(dev) == {}
    # nor under dev: (staging's jobs read it): no arrival record of a non-tester before the link
    assert {k for k in keys(dev, "dev:*") if str(USER).encode() in k} == {f"dev:memory:{USER}".encode()}


@pytest.mark.parametrize(
    "damage", ["other user", "truncated", "tampered", "wrong key", "no key", "other server", "header only"]
)
def test_write_refuses_a_backup_it_cannot_trust_in_one_line_removing_nothing(
    legacy, capsys, tmp_path, monkeypatch, damage
):
    world = legacy
    dev = world.redis["staging"].client()
    out_dir = tmp_path / "out"
    assert finish("--stage", "plan", "--out", str(out_dir)) == 0
    capsys.readouterr()
    backup = retire_legacy.find_backup(out_dir, USER)
    lines = backup.read_bytes().splitlines(keepends=True)
    before = keys(dev, "*")
    if damage == "other user":  # a backup of another user's keys, named as theirs
        use(monkeypatch, {}, drop=())
        planned = retire_legacy.back_up(context(), 777001, "", tmp_path / "other")
        assert planned.backup is not None
        backup.unlink()
        planned.backup.rename(out_dir / backup.name)
    elif damage == "header only":  # cut after its first line: the records gone, the header intact
        backup.write_bytes(lines[0])
    elif damage == "truncated":
        backup.write_bytes(b"".join(lines[:-1]))
    elif damage == "tampered":
        last = bytearray(lines[-1])
        last[20] = ord("A") if last[20] != ord("A") else ord("B")
        backup.write_bytes(b"".join([*lines[:-1], bytes(last)]))
    elif damage == "wrong key":
        use(monkeypatch, {"MEMORY_SNAPSHOT_KEY": Fernet.generate_key().decode()})
    elif damage == "no key":
        use(monkeypatch, {}, drop=("MEMORY_SNAPSHOT_KEY",))
    elif damage == "other server":
        use(monkeypatch, {"STAGING_REDIS_URL": world.redis["production"].url})
    assert write(out_dir) != 0
    one_line_refusal(capsys)
    assert keys(dev, "*") == before


def test_write_run_twice_says_they_are_gone_already_not_that_they_are_still_there(legacy, capsys, tmp_path):
    world = legacy
    dev = world.redis["staging"].client()
    out_dir = tmp_path / "out"
    assert finish("--stage", "plan", "--out", str(out_dir)) == 0
    assert write(out_dir) == 0
    capsys.readouterr()
    assert legacy_of_user(dev) == {}
    assert write(out_dir) == 0
    out = capsys.readouterr().out
    assert "changed since the backup" not in out and "still there" not in out, out
    assert "0 retired" in out and "gone already" in out


def test_a_cancel_mid_removal_then_a_rerun_and_undo_put_back_every_key_exactly(legacy, capsys, tmp_path, monkeypatch):
    world = legacy
    dev = world.redis["staging"].client()
    out_dir = tmp_path / "out"
    theirs = legacy_of_user(dev)
    assert finish("--stage", "plan", "--out", str(out_dir)) == 0
    backup = retire_legacy.find_backup(out_dir, USER)
    monkeypatch.setattr(retire_legacy, "BATCH", 1)

    class CancelledAfterOne(retire_legacy.Writer):
        def delete(self, targets):
            super().delete(targets)
            raise KeyboardInterrupt  # what SIGTERM / SIGINT become (ci_tools.__main__)

    monkeypatch.setattr(retire_legacy, "Writer", CancelledAfterOne)
    capsys.readouterr()
    assert write(out_dir) != 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert len(legacy_of_user(dev)) == len(theirs) - 1  # one removed, the rest untouched
    monkeypatch.setattr(retire_legacy, "Writer", Writer)
    capsys.readouterr()
    assert write(out_dir) == 0
    assert legacy_of_user(dev) == {}
    out = capsys.readouterr().out
    assert f"{len(theirs) - 1} retired" in out and "1 gone already" in out and "still there" not in out, out
    use(monkeypatch, {"TARGET_REDIS_URL": world.redis["staging"].url})
    assert main(["memory", "undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]) == 0
    assert legacy_of_user(dev) == theirs


def test_ttls_survive_undo_and_a_key_that_expired_meanwhile_is_not_resurrected(legacy, tmp_path, monkeypatch):
    world = legacy
    dev = world.redis["staging"].client()
    dev.set(f"mood:{USER}:today", "calm", ex=3600)
    dev.set(f"mood:{USER}:now", "brief", px=1500)
    production_got(world)
    out_dir = tmp_path / "out"
    assert finish("--out", str(out_dir)) == 0
    assert legacy_of_user(dev) == {}
    backup = retire_legacy.find_backup(out_dir, USER)
    gone_by = time.time() + 1.6
    wait_until(lambda: time.time() > gone_by, "the brief key's TTL ran out")
    use(monkeypatch, {"TARGET_REDIS_URL": world.redis["staging"].url})
    assert main(["memory", "undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]) == 0
    assert 3500_000 < dev.pttl(f"mood:{USER}:today") <= 3600_000  # its TTL, not immortal
    assert not dev.exists(f"mood:{USER}:now")  # expired since: not resurrected
    assert dev.exists(f"memory:{USER}")


def test_big_keys_and_non_utf8_key_names_go_and_come_back_byte_for_byte(legacy, capsys, tmp_path, monkeypatch):
    world = legacy
    dev = world.redis["staging"].client()
    dev.rpush(f"memory:{USER}", *[f"fact {i} " * 20 for i in range(50_000)])  # ~8 MB
    dev.set(f"blob:{USER}:raw".encode() + b"\xff\xfe", b"\x00\x81" * 1_000_000)
    odd = b"\xc3(:" + str(USER).encode() + b":\xff"
    dev.set(odd, "an odd name")
    production_got(world)
    theirs = legacy_of_user(dev)
    assert odd in theirs
    out_dir = tmp_path / "out"
    assert finish("--out", str(out_dir)) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert legacy_of_user(dev) == {}
    backup = retire_legacy.find_backup(out_dir, USER)
    use(monkeypatch, {"TARGET_REDIS_URL": world.redis["staging"].url})
    assert main(["memory", "undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]) == 0
    assert legacy_of_user(dev) == theirs


def test_undo_aimed_at_production_s_redis_is_refused_in_one_line(legacy, capsys, tmp_path, monkeypatch):
    world = legacy
    prod = world.redis["production"].client()
    out_dir = tmp_path / "out"
    assert finish("--out", str(out_dir)) == 0
    production = keys(prod, "*")
    backup = retire_legacy.find_backup(out_dir, USER)
    capsys.readouterr()
    use(monkeypatch, {"TARGET_REDIS_URL": world.redis["production"].url})
    assert main(["memory", "undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]) != 0
    one_line_refusal(capsys)
    assert keys(prod, "*") == production


def test_send_back_s_undo_after_source_redis_url_was_removed_says_what_to_do_in_one_line(
    legacy, capsys, tmp_path, monkeypatch
):
    world = legacy
    dev = world.redis["staging"].client()
    out_dir = tmp_path / "out"
    assert finish("--out", str(out_dir)) == 0
    after = keys(dev, "*")
    capsys.readouterr()
    use(monkeypatch, {}, drop=("STAGING_REDIS_URL",))  # the report said: remove SOURCE_REDIS_URL now
    assert main(["send-back", "--undo", str(out_dir), "--apply", "--out", str(tmp_path / "undo")]) != 0
    err = one_line_refusal(capsys)
    assert "STAGING_REDIS_URL" in err or "SOURCE_REDIS_URL" in err, err
    assert keys(dev, "*") == after


@pytest.mark.parametrize("how", ["told after the copy", "only the audit names it"])
def test_a_legacy_key_holding_what_production_never_got_is_not_retired(legacy, tmp_path, how):
    world = legacy
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    if how == "told after the copy":  # between steps 6 and 7
        dev.rpush(f"memory:{USER}", "told the old bot after the move's copy")
        key = f"memory:{USER}"
    else:
        key = f"diary:{USER}:today"  # no pattern names it, and no copy carried it
        dev.set(key, "written on the old bot, never copied")
    assert not prod.exists(f"prod:{key}") or prod.dump(f"prod:{key}") != dev.dump(key)  # production lacks it
    kept = dev.dump(key)
    assert finish("--out", str(tmp_path / "out")) == 0
    assert dev.dump(key) == kept


@pytest.mark.parametrize(
    "argv",
    [
        ["--user-id", str(USER), "--stage", "write", "--out", "nowhere"],  # no plan ran
        ["--user-id", f"{USER}*", "--stage", "write", "--out", "nowhere"],  # a glob for an id
        ["--user-id", str(USER * 10), "--stage", "write", "--out", "OUT"],  # another user's run of the plan
    ],
)
def test_write_with_bad_input_says_so_in_one_line_and_removes_nothing(legacy, capsys, tmp_path, monkeypatch, argv):
    world = legacy
    dev = world.redis["staging"].client()
    out_dir = tmp_path / "out"
    assert finish("--stage", "plan", "--out", str(out_dir)) == 0
    capsys.readouterr()
    before = keys(dev, "*")
    monkeypatch.chdir(tmp_path)
    assert main(["finish-move", *[str(out_dir) if a == "OUT" else a for a in argv]]) != 0
    one_line_refusal(capsys)
    assert keys(dev, "*") == before


def test_a_bot_that_is_not_ours_on_the_same_key_value_keeps_its_keys_of_the_same_person(legacy, tmp_path):
    """The owner's other bot (tests/fixtures/owner_bot's layout: memory:{id} a hash, user:{id}:history)
    runs on staging's Key Value under its own prefix, ``ava:``, and the daily user talks to it too: its
    keys are that live bot's memory of them, named by no config of ours."""
    world = legacy
    dev = world.redis["staging"].client()
    dev.hset(f"ava:memory:{USER}", "fact:1", "Ava's, still read by Ava")
    dev.rpush(f"ava:user:{USER}:history", "Ava's conversation")
    ava = keys(dev, "ava:*")
    assert finish("--out", str(tmp_path / "out")) == 0
    assert keys(dev, "ava:*") == ava


def test_a_plain_backup_from_a_run_without_the_key_is_refused_once_the_key_is_set(
    legacy, capsys, monkeypatch, tmp_path
):
    """A plan run on a laptop without MEMORY_SNAPSHOT_KEY (plain backup), its write with the key set:
    refused in one line (a plain file is not one this pipeline wrote), nothing removed."""
    world = legacy
    dev = world.redis["staging"].client()
    out_dir = tmp_path / "out"
    key = context().optional("MEMORY_SNAPSHOT_KEY") or ""
    use(monkeypatch, {}, drop=("MEMORY_SNAPSHOT_KEY",))
    theirs = legacy_of_user(dev)
    assert finish("--stage", "plan", "--out", str(out_dir)) == 0
    capsys.readouterr()
    use(monkeypatch, {"MEMORY_SNAPSHOT_KEY": key})
    assert write(out_dir) != 0
    assert "is not encrypted, though MEMORY_SNAPSHOT_KEY is set" in one_line_refusal(capsys)
    assert legacy_of_user(dev) == theirs


def test_a_rerun_after_init_staging_prefix_still_retires_what_the_first_run_left(legacy, capsys, tmp_path):
    """A finish-move stopped before its removal, then the report's next step (init --staging-prefix dev:,
    committed), then finish-move again: the service and the config both say dev:, the first run's note
    in MOVE_FINISHED names the legacy prefix."""
    world = legacy
    dev = world.redis["staging"].client()
    assert finish("--stage", "plan", "--out", str(tmp_path / "first")) == 0  # the removal never ran
    assert legacy_of_user(dev)
    config = world.config
    text = config.read_text()
    assert text.count('key_prefix = ""\n') == 1  # staging's, the legacy keys'
    config.write_text(text.replace('key_prefix = ""\n', 'key_prefix = "dev:"\n'))
    capsys.readouterr()
    assert finish("--out", str(tmp_path / "again")) == 0
    assert "nothing to retire" not in capsys.readouterr().out
    assert legacy_of_user(dev) == {}
