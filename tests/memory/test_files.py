"""Export, diff, restore, seed, undo refusals, and snapshot files (encrypted or not)."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from ci_tools.__main__ import main
from ci_tools.errors import ConfigError, InputError
from ci_tools.memory.files import RecordFile
from ci_tools.memory.ops import copy_user
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
    garbage.write_text("hello\n")
    with pytest.raises(ConfigError, match="is encrypted"):
        RecordFile(garbage, context().snapshot_fernet())
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
    assert "needs {user_id}" in capsys.readouterr().err


def test_progress_bar_on_a_terminal(envs, tmp_path, monkeypatch, capsys):
    dev, prod = envs
    pipe = dev.client().pipeline()
    for i in range(1200):
        pipe.set(f"dev:bulk:{USER}:{i}", i)
    pipe.execute()
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    args = ("copy", *ROUTE, "--pattern", "bulk:{user_id}:*", "--ignore-uncovered")
    assert cli(*args, "--apply", "--out", str(tmp_path)) == 0
    assert "written 1200, verified 1200" in capsys.readouterr().out
    assert prod.client().get(f"prod:bulk:{USER}:1199") == b"1199"
