"""Export, diff, restore, seed, undo refusals, and snapshot files (encrypted or not)."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from ci_tools.__main__ import main
from ci_tools.errors import ConfigError, InputError
from ci_tools.memory.files import RecordFile
from ci_tools.memory.ops import copy_user
from sandbox.redis import RedisServer
from tests.memory.helpers import ROUTE, USER, request, state
from tests.support import context


@pytest.fixture
def envs(memory_envs):
    return memory_envs


def cli(*args: str) -> int:
    return main(["memory", *args])


def only_file(directory):
    (path,) = list(directory.iterdir())
    return path


def test_export_then_restore_into_production(envs, tmp_path, capsys):
    _, prod = envs
    assert cli("export", "--user-id", str(USER), "--from", "staging", "--out", str(tmp_path / "e")) == 0
    snapshot = only_file(tmp_path / "e")
    assert oct(snapshot.stat().st_mode & 0o777) == "0o600"
    assert "exported 3 record(s)" in capsys.readouterr().out
    assert cli("restore", str(snapshot), "--to", "production", "--out", str(tmp_path / "r")) == 0
    assert "dry run" in capsys.readouterr().out
    assert not prod.client().exists(f"prod:memory:{USER}")
    assert (
        cli(
            "restore",
            str(snapshot),
            "--to",
            "production",
            "--apply",
            "--out",
            str(tmp_path / "r"),
            "--json",
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["counts"] == {"create": 3}
    assert result["verified"] == 3
    assert prod.client().lrange(f"prod:memory:{USER}", 0, -1) == [b"likes tea", b"sister Mia"]


def test_diff_exit_codes(envs, tmp_path, capsys):
    args = ("diff", *ROUTE, "--out", str(tmp_path))
    assert cli(*args) == 1
    copy_user(context(), request(tmp_path))
    assert cli(*args) == 0
    envs[1].client().rpush(f"prod:memory:{USER}", "new fact said to the new bot")
    capsys.readouterr()
    assert cli(*args, "--json") == 1
    plan = {item["target_key"]: item for item in json.loads(capsys.readouterr().out)["plan"]}
    assert plan[f"prod:memory:{USER}"]["action"] == "conflict"
    assert plan[f"prod:user:{USER}:history"]["action"] == "identical"


def test_encrypted_snapshots_hold_no_plaintext_and_need_the_key(envs, tmp_path, monkeypatch):
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", key)
    outcome = copy_user(context(), request(tmp_path))
    raw = outcome.snapshot.read_bytes()
    assert b"likes tea" not in raw
    assert b"format" not in raw
    assert RecordFile(outcome.snapshot, context().snapshot_fernet()).header["encrypted"] is True
    assert len(list(RecordFile(outcome.snapshot, context().snapshot_fernet()).records())) == 3
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", Fernet.generate_key().decode())
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        RecordFile(outcome.snapshot, context().snapshot_fernet())
    monkeypatch.delenv("MEMORY_SNAPSHOT_KEY")
    with pytest.raises(ConfigError, match="is encrypted"):
        RecordFile(outcome.snapshot, context().snapshot_fernet())
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", "not-a-key")
    with pytest.raises(ConfigError, match="not a Fernet key"):
        copy_user(context(), request(tmp_path))


def test_a_truncated_backup_is_refused_before_anything_is_written(envs, tmp_path, capsys):
    _, prod = envs
    outcome = copy_user(context(), request(tmp_path))
    lines = outcome.backup.read_bytes().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[:-1]))
    before = state(prod.client())
    assert cli("undo", str(cut), "--out", str(tmp_path / "u")) == 5
    assert "is incomplete" in capsys.readouterr().err
    assert state(prod.client()) == before


def test_undo_refuses_snapshots_other_servers_and_garbage(envs, tmp_path, monkeypatch, capsys, redis_server):
    outcome = copy_user(context(), request(tmp_path))
    assert cli("undo", str(outcome.snapshot)) == 2
    assert "not a backup" in capsys.readouterr().err
    monkeypatch.setenv("TARGET_REDIS_URL", redis_server.url)
    assert cli("undo", str(outcome.backup)) == 2
    assert "point TARGET_REDIS_URL at the server the copy wrote to" in capsys.readouterr().err
    garbage = tmp_path / "g.jsonl"
    garbage.write_text("hello\n")  # neither JSON nor a Fernet token: not "set the key", which sends them looking
    with pytest.raises(InputError, match="neither a memory snapshot's JSON nor an encrypted line"):
        RecordFile(garbage, context().snapshot_fernet())
    with pytest.raises(InputError, match="is a folder, not a file"):
        RecordFile(tmp_path, context().snapshot_fernet())
    garbage.write_text('{"format": "other"}\n')
    with pytest.raises(InputError, match="not a memory snapshot"):
        RecordFile(garbage, context().snapshot_fernet())
    with pytest.raises(InputError, match="does not exist"):
        RecordFile(tmp_path / "none.jsonl", context().snapshot_fernet())


PROFILE_TEXT = """\
- Name: Ada, prefers to be called Addie
- Has a sister called Mia
• Drinks tea without sugar

"""


@pytest.mark.parametrize(
    ("content", "facts", "fields"),
    [
        (
            PROFILE_TEXT,
            [
                b"Name: Ada, prefers to be called Addie",
                b"Has a sister called Mia",
                b"Drinks tea without sugar",
            ],
            {},
        ),
        (
            json.dumps({"first_name": "Ada", "facts": ["likes tea"]}),
            [b"likes tea"],
            {b"first_name": b"Ada"},
        ),
    ],
)
def test_seed_a_pasted_profile(envs, tmp_path, capsys, content, facts, fields):
    _, prod = envs
    profile = tmp_path / "profile.txt"
    profile.write_text(content)
    args = (
        "seed",
        "--user-id",
        "777",
        "--to",
        "production",
        "--profile-file",
        str(profile),
        "--out",
        str(tmp_path / "o"),
    )
    assert cli(*args) == 0
    assert not prod.client().exists("prod:memory:777")
    assert cli(*args, "--apply") == 0
    assert prod.client().lrange("prod:memory:777", 0, -1) == facts
    stored = prod.client().hgetall("prod:user:777:profile")
    assert stored[b"source"] == b"seed"
    for key, val in fields.items():
        assert stored[key] == val
    capsys.readouterr()
    assert cli(*args, "--apply", "--json") == 0  # the same profile again: nothing to do
    assert json.loads(capsys.readouterr().out)["written"] == 0
    profile.write_text("something else entirely")
    assert cli(*args, "--apply") == 5  # a different profile: a conflict, never a silent overwrite
    assert "already hold other data" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no facts"),
        ("{not json", "not valid JSON"),
        ('{"facts": "one"}', "must be a list"),
    ],
)
def test_seed_refuses_bad_profiles(envs, tmp_path, capsys, content, message):
    profile = tmp_path / "p.txt"
    profile.write_text(content)
    assert cli("seed", "--user-id", "7", "--to", "production", "--profile-file", str(profile)) == 2
    assert message in capsys.readouterr().err


def test_unknown_environment_and_bad_pattern(envs, capsys):
    assert cli("copy", "--user-id", "1", "--from", "dev", "--to", "production") == 3
    assert "use one of: production, staging" in capsys.readouterr().err
    assert cli("copy", *ROUTE, "--pattern", "user:*") == 2
    assert "must contain {user_id} exactly once" in capsys.readouterr().err


def test_a_plaintext_backup_is_refused_once_a_key_is_set(envs, tmp_path, capsys, monkeypatch):
    _, prod = envs
    monkeypatch.delenv("MEMORY_SNAPSHOT_KEY", raising=False)
    outcome = copy_user(context(), request(tmp_path))  # written in the clear: no key then
    before = state(prod.client())
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", Fernet.generate_key().decode())
    assert cli("undo", str(outcome.backup), "--out", str(tmp_path / "u"), "--apply") == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 1 is not encrypted, though MEMORY_SNAPSHOT_KEY is set" in err
    assert cli("restore", str(outcome.snapshot), "--to", "production", "--out", str(tmp_path / "r"), "--apply") == 5
    assert state(prod.client()) == before and not (tmp_path / "u").exists()


def test_one_line_in_the_clear_inside_an_encrypted_file_refuses_the_whole_file(envs, tmp_path, capsys, monkeypatch):
    _, prod = envs
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", Fernet.generate_key().decode())
    outcome = copy_user(context(), request(tmp_path))
    lines = outcome.snapshot.read_bytes().splitlines(keepends=True)
    forged = b'{"key": "cHJvZDptZW1vcnk6NDI0MjQy", "type": "string", "pttl": null, "read_at": 0, "value": "eA=="}\n'
    planted = tmp_path / "planted.jsonl"
    planted.write_bytes(b"".join([*lines[:2], forged, *lines[2:]]))
    before = state(prod.client())
    assert cli("restore", str(planted), "--to", "production", "--out", str(tmp_path / "r"), "--apply") == 5
    assert "line 3 is not encrypted" in capsys.readouterr().err
    assert state(prod.client()) == before


def test_a_snapshot_cut_off_by_a_dying_source_has_no_footer_and_restores_nothing(
    redis_pair, tmp_path, capsys, monkeypatch
):
    from ci_tools.memory import restore_points

    _, prod = redis_pair
    client = prod.client()
    client.set("prod:meta:env", "production")
    for i in range(3000):
        client.rpush(f"prod:memory:{i}", f"fact {i}")
    monkeypatch.setenv("SOURCE_REDIS_URL", prod.url)
    real = restore_points.read_records

    def dies_after_the_first_batch(*args, **kwargs):  # type: ignore[no-untyped-def]
        for number, record in enumerate(real(*args, **kwargs)):
            if number == 1000:
                prod.close()  # the Redis process is gone mid-snapshot
            yield record

    monkeypatch.setattr(restore_points, "read_records", dies_after_the_first_batch)
    assert cli("snapshot", "production", "--out", str(tmp_path / "s")) == 4
    (cut,) = (tmp_path / "s").glob("*.jsonl")
    with RedisServer() as fresh:  # wherever it would be restored, nothing is written from it
        fresh.client().set("prod:meta:env", "production")
        monkeypatch.setenv("TARGET_REDIS_URL", fresh.url)
        capsys.readouterr()
        assert cli("restore", str(cut), "--to", "production", "--out", str(tmp_path / "r"), "--apply") == 5
        assert "is incomplete: no footer after 2000 records" in capsys.readouterr().err  # of 3001
        assert fresh.client().dbsize() == 1


def test_an_undo_refuses_a_backup_of_another_environment(envs, tmp_path, capsys, monkeypatch, redis_server):
    outcome = copy_user(context(), request(tmp_path))  # a backup of production's keys
    staging = redis_server.client()
    staging.set("prod:meta:env", "staging")  # a Redis another environment claimed under that prefix
    staging.set("prod:memory:424242", "keep me")
    monkeypatch.setenv("TARGET_REDIS_URL", redis_server.url)
    assert cli("undo", str(outcome.backup), "--out", str(tmp_path / "u"), "--apply", "--allow-other-server") == 2
    assert "is a backup of production (prod:), but that Redis is marked staging" in capsys.readouterr().err
    assert staging.get("prod:memory:424242") == b"keep me"
