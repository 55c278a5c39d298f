"""finish-move retires the daily user's legacy keys from the old bot's Redis (staging's): backed up
first (encrypted), removed only where they still match the backup, put back exactly by the memory
package's undo; production's memory never touched; a refused finish-move removes nothing.

The world is test_move_window's: after runbook step 7, the daily user on the new bot, their legacy
unprefixed keys still in staging's Redis, where every develop and feature/* job reads.
"""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from ci_tools.__main__ import main
from ci_tools.errors import ConfigError
from ci_tools.memory.moved import keep as keep_move_record
from ci_tools.memory.servers import server_id
from ci_tools.memory.writer import fingerprints
from ci_tools.pipeline import retire_legacy
from tests.pipeline.test_move_window import USER, arrived, finish, keys, moved  # noqa: F401 (the fixture)
from tests.support import context, use

OTHER = 777001  # another person on the old bot: never theirs to retire
FACT = b"I take my tea without sugar"


@pytest.fixture
def legacy(moved, monkeypatch, tmp_path):  # noqa: F811 (the fixture imported above)
    """The old bot's Redis as the move left it, and more of the user than the patterns name: a key
    only the coverage audit finds, the kit's arrival record, send-back's record of them; beside them
    another user's keys, keys under dev: (the testers' prefix) naming them, and MEMORY_SNAPSHOT_KEY."""
    world = moved
    dev = world.redis["staging"].client()
    dev.set(f"mood:{USER}:today", "calm")  # no pattern names it: the audit's
    dev.hset(f"kit:arrival:{USER}", mapping={"bot_id": 1, "since": 1, "last": 1})
    dev.hset("meta:sent_back", str(USER), json.dumps({"at": 1, "guards": {}}))
    dev.rpush(f"memory:{OTHER}", "someone else's")
    dev.hset("meta:moved", str(OTHER), "{}")  # shared with nobody of theirs: left
    dev.set(f"dev:memory:{USER}", "a tester's key under dev:")  # another namespace
    production_got(world)  # as if the move's copy read mood:…:today too (--include-uncovered)
    arrived(world, 4)  # the window is over
    use(monkeypatch, {"MEMORY_SNAPSHOT_KEY": Fernet.generate_key().decode()})
    return world


def production_got(world, old: str = "staging") -> None:
    """Production's record of the move's copy (``meta:moved``) names every memory key of the user
    in ``old``'s Redis as it is now: what the retirement may take, since production got it."""
    source = world.redis[old]
    client = source.client()
    names = [k for k in legacy_of_user(client) if not k.startswith((b"meta:", b"kit:arrival:", b"prod:"))]
    guards = dict(zip(names, fingerprints(client, names), strict=True))
    keep_move_record(world.redis["production"].client(), "prod:", USER, server_id(source.url), guards)


def legacy_of_user(client) -> dict[bytes, bytes]:
    found = {k: v for k, v in keys(client, "*").items() if not k.startswith(b"dev:")}
    return {k: v for k, v in found.items() if str(USER).encode() in k or k == b"meta:sent_back"}


def not_theirs(client) -> dict[bytes, bytes]:
    """Everything in the old bot's Redis but the user's legacy keys (and the dev: bot's own marker)."""
    mine = legacy_of_user(client)
    return {k: v for k, v in keys(client, "*").items() if k not in mine and not k.startswith(b"dev:meta:")}


def test_finish_move_retires_their_legacy_keys_behind_a_backup_that_undo_puts_back_exactly(
    legacy, capsys, tmp_path, monkeypatch
):
    world = legacy
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    theirs, others, production = legacy_of_user(dev), not_theirs(dev), keys(prod, "*")
    assert {f"memory:{USER}".encode(), f"mood:{USER}:today".encode(), b"meta:sent_back"} <= set(theirs)
    out_dir = tmp_path / "out"
    assert finish("--out", str(out_dir)) == 0
    out = capsys.readouterr().out
    assert legacy_of_user(dev) == {}  # all gone
    assert not_theirs(dev) == others  # another user's, the shared record, dev:'s: left
    assert keys(prod, "*") == production  # production's memory untouched
    backup = retire_legacy.find_backup(out_dir, USER)
    assert f"{len(theirs)} retired from the old bot's Redis, 'no prefix'" in out
    assert str(backup) in out and "ci-tools memory undo" in out
    assert FACT.decode() not in out and "calm" not in out  # never a value
    assert all(line.startswith(b"gAAAA") for line in backup.read_bytes().splitlines())  # encrypted

    use(monkeypatch, {"TARGET_REDIS_URL": world.redis["staging"].url})
    assert main(["memory", "undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]) == 0
    assert legacy_of_user(dev) == theirs  # exactly, byte for byte
    assert keys(prod, "*") == production


def test_send_back_s_undo_puts_them_back_too_while_production_holds_the_old_bots_redis(legacy, capsys, tmp_path):
    """In Actions: send-back.yml's undo with the finish-move run's id (its artifact holds the one backup)."""
    world = legacy
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    theirs, production = legacy_of_user(dev), keys(prod, "*")
    assert finish("--out", str(tmp_path / "out")) == 0
    assert legacy_of_user(dev) == {}
    assert main(["send-back", "--undo", str(tmp_path / "out"), "--apply", "--out", str(tmp_path / "undo")]) == 0
    back = legacy_of_user(dev)
    assert {k: v for k, v in back.items() if k != b"meta:sent_back"} == {
        k: v for k, v in theirs.items() if k != b"meta:sent_back"
    }  # their keys exactly; send-back's record of them rewritten as its undo does
    assert keys(prod, "*") == production


def test_a_refused_finish_move_removes_nothing(legacy, capsys, tmp_path):
    world = legacy
    arrived(world, 1)  # the window is not over
    dev = world.redis["staging"].client()
    before = keys(dev, "*")
    assert finish("--out", str(tmp_path / "out")) == 2
    assert "the move may finish from" in capsys.readouterr().err
    assert keys(dev, "*") == before
    assert not (tmp_path / "out").exists()


def test_a_key_they_change_between_backup_and_removal_is_left_and_named(legacy, capsys, tmp_path):
    world = legacy
    dev = world.redis["staging"].client()
    out_dir = tmp_path / "out"
    theirs = legacy_of_user(dev)
    assert finish("--stage", "plan", "--out", str(out_dir)) == 0
    assert legacy_of_user(dev) == theirs  # backed up, nothing removed yet
    assert "none removed yet" in capsys.readouterr().out
    dev.rpush(f"memory:{USER}", "said after the backup")
    assert main(["finish-move", "--user-id", str(USER), "--stage", "write", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert set(legacy_of_user(dev)) == {f"memory:{USER}".encode()}  # left, with what they said
    assert dev.lrange(f"memory:{USER}", -1, -1) == [b"said after the backup"]
    assert f"{len(theirs) - 1} retired" in out
    assert "1 left: changed since the backup" in out and f"memory:{USER}" in out


def test_the_old_bots_redis_down_midway_says_so_in_one_line_and_keeps_the_backup(legacy, capsys, tmp_path, monkeypatch):
    world = legacy
    dev = world.redis["staging"].client()
    out_dir = tmp_path / "out"
    assert finish("--stage", "plan", "--out", str(out_dir)) == 0
    capsys.readouterr()
    backup = retire_legacy.find_backup(out_dir, USER)
    monkeypatch.setattr(retire_legacy, "BATCH", 1)  # one key a round trip: the server goes after the first

    class StopsAfterOne(retire_legacy.Writer):
        def delete(self, targets):
            super().delete(targets)
            world.redis["staging"].stop()

    monkeypatch.setattr(retire_legacy, "Writer", StopsAfterOne)
    before = dev.dbsize()
    code = main(["finish-move", "--user-id", str(USER), "--stage", "write", "--out", str(out_dir)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and before > 1
    assert len(err.splitlines()) == 1, err
    assert "stopped answering while the daily user's legacy keys were removed" in err and "1 of " in err
    assert str(backup) in err and backup.is_file()
    assert "redis://" not in err


def test_nothing_to_retire_when_the_old_prefix_is_the_testers_already(legacy, tmp_path):
    ctx = context()
    done = retire_legacy.back_up(ctx, USER, ctx.config.move.old_bot_prefix, tmp_path / "out")
    assert done.backup is None and "was 'dev:' already" in done.nothing
    assert not (tmp_path / "out").exists()


def test_in_actions_finish_move_without_the_snapshot_key_changes_nothing(legacy, capsys, tmp_path, monkeypatch):
    world = legacy
    dev = world.redis["staging"].client()
    before, service = keys(dev, "*"), dict(world.services["staging"].env)
    use(monkeypatch, {"GITHUB_ACTIONS": "true"}, drop=("MEMORY_SNAPSHOT_KEY",))
    assert finish("--out", str(tmp_path / "out")) != 0
    assert "finish-move needs MEMORY_SNAPSHOT_KEY" in capsys.readouterr().err
    assert keys(dev, "*") == before and world.services["staging"].env == service


def test_production_s_own_redis_as_the_old_bot_s_on_production_s_prefix_is_never_retired(legacy, tmp_path):
    """SOURCE_REDIS_URL pasted with production's Redis and the old prefix production's: refused, nothing read."""
    world = legacy
    prod = world.redis["production"].client()
    before = keys(prod, "*")
    ctx = context(STAGING_REDIS_URL=world.redis["production"].url, REDIS_URL=world.redis["production"].url)
    with pytest.raises(ConfigError, match="those keys are production's memory, so none was retired"):
        retire_legacy.back_up(ctx, USER, "prod:", tmp_path / "out")
    assert keys(prod, "*") == before and not (tmp_path / "out").exists()


def test_without_the_old_bot_s_redis_a_forced_finish_says_the_keys_stay(legacy, tmp_path, monkeypatch):
    use(monkeypatch, {}, drop=("STAGING_REDIS_URL",))
    done = retire_legacy.back_up(context(), USER, "", tmp_path / "out")
    assert done.backup is None and "run finish-move again with it" in done.unreached


@pytest.mark.parametrize("key", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_in_actions_every_send_back_and_finish_move_write_without_the_key_is_refused_before_it_reads(
    legacy, capsys, tmp_path, monkeypatch, key
):
    """Each way in that keeps a backup (send-back --apply, --stage plan, --undo --apply; finish-move,
    --stage plan, --stage write): one line, exit 3, nothing read (a backup that is not there is not
    looked for), nothing written, no message to the user."""
    world = legacy
    dev, prod = world.redis["staging"].client(), world.redis["production"].client()
    before, service = (keys(dev, "*"), keys(prod, "*")), dict(world.services["staging"].env)
    use(monkeypatch, {"GITHUB_ACTIONS": "true"}, drop=("MEMORY_SNAPSHOT_KEY",))
    if key is not None:
        monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", key)
    missing = str(tmp_path / "no-such-backup")
    ways = {
        "send-back": ["send-back", "--user-id", str(USER), "--apply"],
        "send-back plan": ["send-back", "--user-id", str(USER), "--apply", "--stage", "plan"],
        "send-back undo": ["send-back", "--undo", missing, "--apply"],
        "finish-move": ["finish-move", "--user-id", str(USER), "--poll", "0.1"],
        "finish-move plan": ["finish-move", "--user-id", str(USER), "--poll", "0.1", "--stage", "plan"],
        "finish-move write": ["finish-move", "--user-id", str(USER), "--stage", "write"],
    }
    seen = {}
    for way, argv in ways.items():
        out = tmp_path / way.replace(" ", "-")
        code = main([*argv, "--out", str(out)])
        err = capsys.readouterr().err
        seen[way] = (code, out.exists(), err.strip().count("\n") <= 1, "Traceback" in err, "init makes one" in err)
    assert seen == dict.fromkeys(ways, (3, False, True, False, True))
    assert (keys(dev, "*"), keys(prod, "*")) == before and world.services["staging"].env == service
    assert len(world.telegram.replies_to(world.bots["staging"], USER)) == 0
