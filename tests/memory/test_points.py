"""Restore points: production's whole memory snapshotted, then put back for everyone or one user,
dry run first, undoable, and every bad input refused in one line with nothing written."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from ci_tools.__main__ import main
from ci_tools.memory.files import RecordFile
from tests.memory.helpers import OTHER, USER, seed_all_types, seed_user, state
from tests.support import context

DAMAGE = [b"the release overwrote this"]


@pytest.fixture
def prod(redis_pair, monkeypatch, tmp_path):
    """Production's Redis holding two users' memory, wired as both SOURCE (snapshot) and TARGET."""
    _, prod = redis_pair
    seed_user(prod.client(), "prod:")
    seed_all_types(prod.client(), "prod:")
    monkeypatch.setenv("SOURCE_REDIS_URL", prod.url)
    monkeypatch.setenv("TARGET_REDIS_URL", prod.url)
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", Fernet.generate_key().decode())
    return prod.client()


def snapshot(tmp_path, capsys) -> str:
    assert main(["memory", "snapshot", "production", "--out", str(tmp_path / "before"), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["path"]


def damage(client) -> None:
    client.delete(f"prod:memory:{USER}")
    client.rpush(f"prod:memory:{USER}", *DAMAGE)
    client.delete(f"prod:user:{USER}:profile")


def restore(path: str, out, *args: str) -> int:
    return main(
        [
            "memory",
            "restore",
            path,
            "--to",
            "production",
            "--out",
            str(out / "memory-restore"),
            *args,
        ]
    )


def test_a_snapshot_holds_every_key_of_the_environment_encrypted(prod, tmp_path, capsys):
    path = snapshot(tmp_path, capsys)
    with open(path, "rb") as handle:
        assert not handle.readline().startswith(b"{")  # encrypted from the first line
    file = RecordFile(tmp_path / "before" / path.split("/")[-1], context().snapshot_fernet())
    assert (file.header["kind"], file.header["env"], file.header["scope"]) == (
        "snapshot",
        "production",
        "environment",
    )
    keys = {r.key for r in file.records()}
    assert keys == set(prod.scan_iter(match="prod:*"))


def test_dry_run_lists_each_keys_fate_and_changes_nothing(prod, tmp_path, capsys, monkeypatch):
    path = snapshot(tmp_path, capsys)
    damage(prod)
    before = state(prod)
    assert restore(path, tmp_path, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert state(prod) == before
    fate = {i["target_key"]: i["action"] for i in result["plan"]}
    assert fate[f"prod:memory:{USER}"] == "replace" and fate[f"prod:user:{USER}:profile"] == "create"
    assert fate[f"prod:memory:{OTHER}"] == "identical"
    assert result["counts"]["change"] == 1 and result["counts"]["recreate"] == 1


def test_one_user_is_restored_byte_for_byte_and_every_other_key_is_untouched(prod, tmp_path, capsys, monkeypatch):
    original = state(prod)
    path = snapshot(tmp_path, capsys)
    damage(prod)
    prod.rpush(f"prod:memory:{OTHER}", "said after the snapshot")  # another user's new memory
    others = {k: v for k, v in state(prod).items() if str(USER).encode() not in k}
    assert restore(path, tmp_path, "--user-id", str(USER), "--apply") == 0
    out = capsys.readouterr().out
    assert "undo:     ci-tools memory undo" in out
    after = state(prod)
    assert {k: v for k, v in after.items() if str(USER).encode() in k} == {
        k: v for k, v in original.items() if str(USER).encode() in k
    }
    assert {k: v for k, v in after.items() if str(USER).encode() not in k} == others
    assert prod.dump(f"prod:memory:{USER}") is not None and prod.pttl(f"prod:memory:{USER}") > 0  # TTL kept


def test_the_restore_is_itself_undoable(prod, tmp_path, capsys, monkeypatch):
    path = snapshot(tmp_path, capsys)
    damage(prod)
    damaged = state(prod)
    assert restore(path, tmp_path, "--apply") == 0
    capsys.readouterr()
    assert state(prod) != damaged
    [backup] = (tmp_path / "memory-restore").glob("*-backup-*.jsonl")
    assert main(["memory", "undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]) == 0
    assert state(prod) == damaged


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("--user-id", "999"), "user 999 is absent from"),
        (("--pattern", "nothing:*"), "no key of"),
        (("--user-id", "abc"), "user id"),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_written(prod, tmp_path, capsys, monkeypatch, args, problem):
    path = snapshot(tmp_path, capsys)
    damage(prod)
    before = state(prod)
    assert restore(path, tmp_path, *args, "--apply") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and problem in err
    assert state(prod) == before and not (tmp_path / "memory-restore").exists()


def test_the_wrong_key_and_another_environments_snapshot_are_refused(prod, tmp_path, capsys, monkeypatch):
    path = snapshot(tmp_path, capsys)
    before = state(prod)
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", Fernet.generate_key().decode())
    assert restore(path, tmp_path, "--apply") == 3
    assert "cannot be decrypted with this MEMORY_SNAPSHOT_KEY" in capsys.readouterr().err
    monkeypatch.delenv("MEMORY_SNAPSHOT_KEY")
    plain = tmp_path / "plain"
    assert main(["memory", "snapshot", "production", "--out", str(plain)]) == 0
    capsys.readouterr()
    assert main(["memory", "restore", str(plain), "--to", "staging", "--ignore-env-markers", "--apply"]) == 2
    assert "is a snapshot of 'production', not of 'staging'" in capsys.readouterr().err
    assert state(prod) == before


def test_a_folder_without_a_snapshot_is_refused(prod, tmp_path, capsys):
    (tmp_path / "memory-in").mkdir()
    assert restore(str(tmp_path / "memory-in"), tmp_path) == 2
    assert "holds no memory snapshot" in capsys.readouterr().err


def test_over_the_bound_only_the_protected_users_are_kept(prod, tmp_path, capsys, monkeypatch):
    from ci_tools.memory import restore_points
    from ci_tools.settings import Environment, load_config

    env: Environment = load_config().env("production")
    with pytest.raises(Exception, match="no protected users are configured"):
        restore_points.take_snapshot(prod, env, tmp_path, server="s", max_mb=0, protected=())
    taken = restore_points.take_snapshot(prod, env, tmp_path, server="s", max_mb=0, protected=(OTHER,))
    assert taken.scope == "protected users" and "over the bound" in taken.warning
    keys = {r.key for r in RecordFile(taken.path, None).records()}
    assert keys == {f"prod:memory:{OTHER}".encode(), f"prod:user:{OTHER}:profile".encode()}


def test_a_target_marked_for_another_environment_names_the_flag_restore_takes(prod, tmp_path, capsys):
    """The refusal's hint is a flag `memory restore` has (--ignore-env-markers): it said
    `memory snapshot`'s --ignore-env-marker, which argparse took only as an abbreviation."""
    path = snapshot(tmp_path, capsys)
    prod.set("prod:meta:env", "staging")
    before = state(prod)
    assert restore(path, tmp_path, "--apply") == 5  # a verification refusal
    err = capsys.readouterr().err
    assert "--ignore-env-markers" in err and err.strip().count("\n") <= 1
    assert state(prod) == before
    assert restore(path, tmp_path, "--apply", "--ignore-env-markers") == 0
