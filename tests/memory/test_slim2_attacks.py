"""Attacks on the second slimming of the memory tools (merge 20eff0b): files written by the code before
it (ce2ef98) read by this one, every subcommand's bad input, encrypted files and a wrong key, the
Valkey 9 → Redis 7 path undone exactly, and TTLs that ran out inside a file.

``old_files/`` was written by ci-tools at ce2ef98 (``old_files/make.py.txt``, run with that tree on
PYTHONPATH): a user's copy (its snapshot and backup, plain and encrypted with ``KEY``) and
production's restore point after it. The source held the seeded user, ``memory:{user}:\\xff\\xfe``
(not UTF-8), ``…:gone`` (a string), an empty stream and 300 one-element lists (more lines than the old
writer's 256-line blocks); the target held ``memory:{user}`` = ["old prod"] and ``…:gone`` with a 60 s
TTL (long run out now: an undo must not bring it back)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from cryptography.fernet import Fernet

from ci_tools.__main__ import main
from ci_tools.memory.servers import label, server_id
from tests.memory.helpers import ROUTE, USER, state
from tests.support import unmeasured, wait_until

OLD = Path(__file__).parent / "old_files"
KEY = "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg="  # the old files' MEMORY_SNAPSHOT_KEY (test data only)
OTHER_KEY = "Yr1YHbhmlPp3Mvb6RvrWT1vJYJqTVhOgfG3SgVr9p_s="
PRE_COPY = {  # the target before the old copy, as its undo must leave it (…:gone's TTL ran out)
    b"prod:meta:env": (("string", b"production"), False),
    f"prod:memory:{USER}".encode(): (("list", [b"old prod"]), False),
}


def as_the_old_copy_left_it(client) -> None:
    """The target as the old copy wrote it: what its backup's 'after' digests name."""
    client.set("prod:meta:env", "production")
    client.rpush(f"prod:memory:{USER}", b"likes tea", b"sister Mia")
    client.pexpire(f"prod:memory:{USER}", 600_000)
    client.rpush(f"prod:memory:{USER}:\xff\xfe".encode("latin-1"), b"\x80")
    client.set(f"prod:memory:{USER}:gone", b"new")
    client.xadd(f"prod:memory:{USER}:stream", {"a": "1"}, id="1-1")
    client.xdel(f"prod:memory:{USER}:stream", "1-1")
    for i in range(300):
        client.rpush(f"prod:memory:{USER}:n{i}", b"v%d" % i)
    client.hset("prod:meta:moved", str(USER), "{}")


def moved_here(name: str, tmp_path: Path, url: str, key: str | None = None, folder: Path = OLD) -> Path:
    """An old file whose header names the server ``url`` reaches (as if written against it): the undo
    writes only where the write was. Every other line is kept byte for byte."""
    lines = (folder / name).read_bytes().splitlines()
    fernet = Fernet(key) if key else None
    header = orjson.loads(fernet.decrypt(lines[0]) if fernet else lines[0])
    header |= {"server": label(url), "server_id": server_id(url)}
    data = orjson.dumps(header)
    lines[0] = fernet.encrypt(data) if fernet else data
    path = tmp_path / "here" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    assert err.count("\n") == 0, err
    return err


# -- Files written by the code before the merge ------------------------------------------------------


@pytest.mark.parametrize(("name", "key"), [("copy-backup-plain.jsonl", None), ("copy-backup-encrypted.jsonl", KEY)])
def test_an_old_copys_backup_undoes_it_exactly(memory_envs, tmp_path, monkeypatch, capsys, name, key):
    _, prod = memory_envs
    target = prod.client()
    target.flushall()
    as_the_old_copy_left_it(target)
    if key:
        monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", key)
    backup = moved_here(name, tmp_path, prod.url, key)
    assert main(["memory", "undo", str(backup), "--json", "--out", str(tmp_path / "dry")]) == 0  # a dry run first
    assert json.loads(capsys.readouterr().out) == {
        "applied": False,
        "records": 304,
        "backup_of_previous_state": None,
        "left_alone_changed": [],
    }
    assert main(["memory", "undo", str(backup), "--apply", "--json", "--out", str(tmp_path / "undo")]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["records"], document["left_alone_changed"]) == (304, [])
    assert state(target) == PRE_COPY


def test_an_old_backup_with_a_key_changed_since_leaves_that_key_and_names_it(memory_envs, tmp_path, capsys):
    _, prod = memory_envs
    target = prod.client()
    target.flushall()
    as_the_old_copy_left_it(target)
    target.rpush(f"prod:memory:{USER}", b"said after the copy")
    backup = moved_here("copy-backup-plain.jsonl", tmp_path, prod.url)
    assert main(["memory", "undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]) == 0
    out = capsys.readouterr().out
    assert f"prod:memory:{USER} changed since the write" in out
    assert target.lrange(f"prod:memory:{USER}", 0, -1) == [b"likes tea", b"sister Mia", b"said after the copy"]
    assert not target.exists(f"prod:memory:{USER}:n0")


@pytest.mark.parametrize(("given", "message"), [(OTHER_KEY, "cannot be decrypted"), (None, "is encrypted")])
def test_an_old_encrypted_backup_with_a_wrong_or_no_key_is_refused_in_one_line(
    memory_envs, tmp_path, monkeypatch, capsys, given, message
):
    _, prod = memory_envs
    target = prod.client()
    target.flushall()
    as_the_old_copy_left_it(target)
    before = state(target)
    backup = moved_here("copy-backup-encrypted.jsonl", tmp_path, prod.url, KEY)
    if given:
        monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", given)
    assert main(["memory", "undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]) == 3
    err = one_line_error(capsys)
    assert message in err and "MEMORY_SNAPSHOT_KEY" in err
    assert KEY not in err and OTHER_KEY not in err  # no secret in the output
    assert state(target) == before


def test_an_old_copys_snapshot_restores_and_its_restore_undoes(memory_envs, tmp_path, capsys):
    """The old snapshot's TTL'd key (memory:{user}, 600 s when read) ran out long ago: not resurrected."""
    _, prod = memory_envs
    target = prod.client()
    target.flushall()
    target.set("prod:meta:env", "production")
    target.rpush(f"prod:memory:{USER}", b"old prod")
    target.set(f"prod:memory:{USER}:gone", b"kept until replaced")
    before = state(target)
    args = ["memory", "restore", str(OLD / "copy-snapshot-plain.jsonl"), "--to", "production"]
    args += ["--on-conflict", "replace", "--apply", "--json", "--out", str(tmp_path / "restore")]
    assert main(args) == 0, capsys.readouterr().err
    document = json.loads(capsys.readouterr().out)
    assert document["counts"] == {"create": 302, "expired": 1, "replace": 1}
    assert target.lrange(f"prod:memory:{USER}", 0, -1) == [b"old prod"]  # expired in the file: left alone
    assert target.get(f"prod:memory:{USER}:gone") == b"new"
    assert target.lrange(f"prod:memory:{USER}:\xff\xfe".encode("latin-1"), 0, -1) == [b"\x80"]
    assert target.type(f"prod:memory:{USER}:stream") == b"stream" and target.xlen(f"prod:memory:{USER}:stream") == 0
    assert main(["memory", "undo", document["backup"], "--apply", "--out", str(tmp_path / "undo")]) == 0
    assert state(target) == before


@pytest.mark.parametrize("user_id", ["", str(USER)])
def test_an_old_encrypted_restore_point_restores_one_user_or_all(memory_envs, tmp_path, monkeypatch, capsys, user_id):
    _, prod = memory_envs
    target = prod.client()
    target.flushall()
    target.set("prod:meta:env", "production")
    target.set(f"prod:user:{USER}:said-later", b"kept: the point does not hold it")
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", KEY)
    args = ["memory", "restore", str(OLD / "production-memory-encrypted.jsonl"), "--to", "production", "--apply"]
    assert main([*args, "--user-id", user_id, "--out", str(tmp_path / "r"), "--json"]) == 0, capsys.readouterr().err
    document = json.loads(capsys.readouterr().out)
    assert not target.exists(f"prod:memory:{USER}")  # its TTL ran out inside the file
    assert target.get(f"prod:memory:{USER}:gone") == b"new"
    assert target.llen(f"prod:memory:{USER}:n299") == 1
    assert target.get(f"prod:user:{USER}:said-later") == b"kept: the point does not hold it"
    # the user's 303 keys (one ran out), and for every user the move record too (meta:env is identical)
    assert document["written"] == (303 if user_id else 304)
    assert bool(target.exists("prod:meta:moved")) == (not user_id)
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", OTHER_KEY)
    assert main([*args, "--out", str(tmp_path / "r2")]) == 3
    assert "cannot be decrypted" in one_line_error(capsys)


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_backup_written_in_parts_is_refused_by_undo_in_one_line(
    memory_envs, tmp_path, monkeypatch, capsys, encrypted
):
    """records.from_json lost its own "part" check in the slimming: the file reader's must still hold
    for an undo (and for an encrypted file, where the line is seen only once decrypted)."""
    _, prod = memory_envs
    target = prod.client()
    target.rpush(f"prod:memory:{USER}", b"now")
    before = state(target)
    header = {"format": "mindmate-memory", "version": 1, "encrypted": encrypted, "kind": "backup"}
    header |= {"user_id": USER, "env": "production", "prefix": "prod:", "server": label(prod.url)}
    header |= {"server_id": server_id(prod.url)}
    key = "cHJvZDptZW1vcnk6NDI0MjQy"  # prod:memory:424242
    lines = [
        header,
        {"key": key, "type": "list", "pttl": None, "read_at": 0, "value": ["YQ=="], "part": 0, "final": False},
        {"key": key, "type": "list", "pttl": None, "read_at": 0, "value": ["Yg=="], "part": 1, "final": True},
        {"end": True, "records": 2},
    ]
    fernet = Fernet(KEY) if encrypted else None
    path = tmp_path / "old-backup.jsonl"
    path.write_bytes(b"\n".join(fernet.encrypt(orjson.dumps(x)) if fernet else orjson.dumps(x) for x in lines) + b"\n")
    if encrypted:
        monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", KEY)
    for apply in ([], ["--apply"]):
        assert main(["memory", "undo", str(path), *apply, "--out", str(tmp_path / "undo")]) == 2
        err = one_line_error(capsys)
        assert "written in parts" in err and "nothing was written" in err
    monkeypatch.setenv("STAGING_REDIS_URL", prod.url)
    assert main(["send-back", "--undo", str(path), "--apply", "--out", str(tmp_path / "sb")]) == 2
    assert "written in parts" in one_line_error(capsys)
    assert state(target) == before


# -- Cut short ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key", "cut"),
    [
        ("copy-backup-encrypted.jsonl", KEY, "mid-line"),
        ("copy-backup-encrypted.jsonl", KEY, "after a line"),
        ("copy-backup-plain.jsonl", None, "mid-line"),
    ],
)
def test_a_backup_cut_short_is_refused_and_not_blamed_on_the_key(
    memory_envs, tmp_path, monkeypatch, capsys, name, key, cut
):
    """A runner killed mid-write leaves a file without its footer, perhaps mid-line (the writer no
    longer writes whole blocks of lines). It must be refused, and the line must say the file is cut
    short: the owner holds the right key and must not go looking for another."""
    _, prod = memory_envs
    target = prod.client()
    target.flushall()
    as_the_old_copy_left_it(target)
    before = state(target)
    full = moved_here(name, tmp_path, prod.url, key).read_bytes()
    lines = full.splitlines(keepends=True)
    cut_at = len(b"".join(lines[:3])) + (len(lines[3]) // 2 if cut == "mid-line" else 0)
    path = tmp_path / "cut-backup.jsonl"
    path.write_bytes(full[:cut_at])
    if key:
        monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", key)
    for apply in ([], ["--apply"]):
        assert main(["memory", "undo", str(path), *apply, "--out", str(tmp_path / "undo")]) in (2, 5)
        err = one_line_error(capsys)
        assert "cut short" in err, err
        assert "use the key it was written with" not in err
    assert state(target) == before
    assert not (tmp_path / "undo").exists()  # not even the undo's own backup


# -- Bad input, each subcommand ------------------------------------------------------------------------

SEND_BACK_SECRETS = {
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "STAGING_REDIS_URL": "redis://127.0.0.1:1/0",
    "STAGING_TELEGRAM_BOT_TOKEN": "1:x",
    "STAGING_RENDER_SERVICE_ID": "srv-x",
    "RENDER_API_KEY": "rnd_x",
}


def _profile(tmp_path: Path) -> str:
    path = tmp_path / "profile.txt"
    path.write_text("name: Ada\nlikes tea\n")
    return str(path)


def _snapshot(tmp_path: Path) -> str:
    return str(OLD / "copy-snapshot-plain.jsonl")


def _backup(tmp_path: Path) -> str:
    return str(OLD / "copy-backup-plain.jsonl")


COMMANDS = {
    "copy": lambda tmp: ["memory", "copy", *ROUTE],
    "restore": lambda tmp: ["memory", "restore", _snapshot(tmp), "--to", "production"],
    "undo": lambda tmp: ["memory", "undo", _backup(tmp)],
    "seed": lambda tmp: [
        "memory",
        "seed",
        "--user-id",
        str(USER),
        "--to",
        "production",
        "--profile-file",
        _profile(tmp),
    ],
    "send-back": lambda tmp: ["send-back", "--user-id", str(USER)],
    "send-back --undo": lambda tmp: ["send-back", "--undo", _backup(tmp)],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_apply_with_mode_dry_run_is_refused_in_one_line_before_anything(
    memory_envs, tmp_path, monkeypatch, capsys, command
):
    dev, prod = memory_envs
    for name, value in SEND_BACK_SECRETS.items():
        monkeypatch.setenv(name, value)
    before = state(dev.client()), state(prod.client())
    out = ["--out", str(tmp_path / "out")]
    assert main([*COMMANDS[command](tmp_path), "--apply", "--mode", "dry-run", *out]) == 2
    assert one_line_error(capsys) == "ci-tools: bad input: --apply contradicts --mode dry-run — pass one of them"
    assert (state(dev.client()), state(prod.client())) == before
    assert not (tmp_path / "out").exists()


BAD_IDS = ["abc", "", " 42", "4*", "1.5", "9" * 60, "٤٢", "42,43"]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("command", ["copy", "export", "diff", "seed", "restore", "send-back"])
def test_a_bad_user_id_is_one_line_for_every_subcommand(memory_envs, tmp_path, monkeypatch, capsys, command, bad):
    _, prod = memory_envs
    for name, value in SEND_BACK_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SOURCE_REDIS_URL", prod.url)
    if command == "restore":  # --user-id selects within an environment's restore point
        assert main(["memory", "snapshot", "production", "--out", str(tmp_path / "point")]) == 0
        capsys.readouterr()
        argv = ["memory", "restore", str(tmp_path / "point"), "--to", "production", "--apply"]
    elif command == "send-back":
        argv = ["send-back"]
    elif command == "seed":
        argv = ["memory", "seed", "--to", "production", "--profile-file", _profile(tmp_path)]
    else:
        argv = ["memory", command, "--from", "staging", *(["--to", "production"] if command != "export" else [])]
    before = state(prod.client())
    code = main([*argv, "--user-id", bad, "--out", str(tmp_path / "out")])
    err = one_line_error(capsys)
    if command == "restore" and (not bad or bad.strip() != bad):
        # a workflow's input, stripped: '' is every user, ' 42' user 42 (absent from this point)
        assert code in (0, 2) and ("absent from" in err or not bad.strip()), err
    elif command == "send-back" and not bad:
        assert code == 2 and "send-back needs --user-id" in err, err
    else:
        assert code == 2, err
        assert "is not a Telegram user id" in err
    assert state(prod.client()) == before or command == "restore"


@pytest.mark.parametrize(
    ("command", "variable", "code", "message"),
    [
        ("copy", "SOURCE_REDIS_URL", 3, "missing secret SOURCE_REDIS_URL"),
        ("copy", "TARGET_REDIS_URL", 3, "missing secret TARGET_REDIS_URL"),
        ("restore", "TARGET_REDIS_URL", 3, "missing secret TARGET_REDIS_URL"),
        ("undo", "TARGET_REDIS_URL", 3, "missing secret TARGET_REDIS_URL"),
        ("seed", "TARGET_REDIS_URL", 3, "missing secret TARGET_REDIS_URL"),
        ("copy", "unreachable", 4, "cannot reach the target Redis at 127.0.0.1:1/0"),
        ("restore", "unreachable", 4, "cannot reach the target Redis at 127.0.0.1:1/0"),
        ("undo", "unreachable", 4, "cannot reach the target Redis at 127.0.0.1:1/0"),
        ("seed", "unreachable", 4, "cannot reach the target Redis at 127.0.0.1:1/0"),
        ("copy", "malformed", 3, "the target Redis URL is malformed"),
    ],
)
def test_missing_secrets_and_an_unreachable_redis_are_one_line(
    memory_envs, tmp_path, monkeypatch, capsys, command, variable, code, message
):
    if variable == "unreachable":
        monkeypatch.setenv("TARGET_REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")
    elif variable == "malformed":
        monkeypatch.setenv("TARGET_REDIS_URL", "htp://:hunter2@nowhere")
    else:
        monkeypatch.delenv(variable)
    argv = COMMANDS[command](tmp_path)
    if command == "undo" and variable == "unreachable":  # an undo writes only where its backup was taken
        argv = ["memory", "undo", str(moved_here("copy-backup-plain.jsonl", tmp_path, os.environ["TARGET_REDIS_URL"]))]
    assert main([*argv, "--apply", "--out", str(tmp_path / "out")]) == code
    err = one_line_error(capsys)
    assert message in err, err
    assert "hunter2" not in err


# -- Plan, then write; encryption across the two stages ---------------------------------------------------


def test_plan_then_write_with_another_key_is_refused_and_writes_nothing(memory_envs, tmp_path, monkeypatch, capsys):
    dev, prod = memory_envs
    before = state(prod.client()), state(dev.client())
    common = ["memory", "copy", *ROUTE, "--ignore-uncovered", "--apply", "--out", str(tmp_path / "out")]
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", KEY)
    assert main([*common, "--stage", "plan"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", OTHER_KEY)
    assert main([*common, "--stage", "write"]) == 3
    assert "cannot be decrypted" in one_line_error(capsys)
    monkeypatch.delenv("MEMORY_SNAPSHOT_KEY")
    assert main([*common, "--stage", "write"]) == 3
    assert "is encrypted" in one_line_error(capsys)
    assert (state(prod.client()), state(dev.client())) == before
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", KEY)
    assert main([*common, "--stage", "write"]) == 0
    assert prod.client().lrange(f"prod:memory:{USER}", 0, -1) == [b"likes tea", b"sister Mia"]
    assert state(dev.client()) == before[1]  # the source never changes


# -- Valkey 9 → Redis 7: the typed fallback, undone exactly ---------------------------------------------


def test_cross_version_copy_through_the_cli_is_verified_and_undone_exactly(
    valkey_to_old_redis, tmp_path, monkeypatch, capsys
):
    valkey, old = valkey_to_old_redis
    source, target = valkey.client(), old.client()
    source.rpush(f"dev:memory:{USER}:\xff".encode("latin-1"), b"\x80")
    source.xadd(f"dev:memory:{USER}:stream", {"a": "1"}, id="1-1")
    source.xdel(f"dev:memory:{USER}:stream", "1-1")
    target.rpush(f"prod:memory:{USER}", b"old")
    target.pexpire(f"prod:memory:{USER}", 900_000)
    before, source_before = state(target), state(source)
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", KEY)
    args = ["memory", "copy", *ROUTE, "--on-conflict", "replace", "--include-uncovered", "--apply", "--json"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    document = json.loads(capsys.readouterr().out)
    assert document["fallback_typed_writes"] is True
    assert document["verified"] == document["written"] == 5
    assert target.type(f"prod:memory:{USER}:stream") == b"stream"
    assert target.pttl(f"prod:memory:{USER}") > 500_000  # the source's TTL, not the old one's
    assert state(source) == source_before
    assert main(["memory", "undo", document["backup"], "--apply", "--out", str(tmp_path / "undo")]) == 0
    after = state(target)
    after.pop(b"prod:meta:moved", None)
    assert after == before


def test_an_old_stage_plan_is_written_by_this_stage_write_and_undone(memory_envs, tmp_path, monkeypatch, capsys):
    """A migrate-memory run planned by the old ci-tools (encrypted, as in Actions) and written by this
    one: the plan's guards hold against the target it read, and the backup undoes the write."""
    _, prod = memory_envs
    target = prod.client()
    server = target.info("server")
    if "valkey_version" in server or server.get("server_name") == "valkey":
        # The old plan's guards are SHA-1s of DUMPs taken on Redis 7 (make_plan.py.txt); a Valkey
        # target serialises the same value differently, so the write rightly leaves those keys alone.
        pytest.skip("the old plan's guards were taken on a Redis 7 target; this target is Valkey")
    target.flushall()
    target.set("prod:meta:env", "production")
    target.rpush(f"prod:memory:{USER}", b"old prod")
    target.set(f"prod:memory:{USER}:gone", b"x")  # its DUMP (the guard) holds no TTL
    out = tmp_path / "out"
    out.mkdir()
    for path in (OLD / "plan").glob("*.jsonl"):
        (out / path.name).write_bytes(path.read_bytes())
    args = ["memory", "copy", *ROUTE, "--pattern", "memory:{user_id}*", "--ignore-uncovered", "--on-conflict"]
    args += ["replace", "--apply", "--stage", "write", "--out", str(out), "--json"]
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", OTHER_KEY)
    assert main(args) == 3
    assert "cannot be decrypted with this MEMORY_SNAPSHOT_KEY" in one_line_error(capsys)
    assert target.get(f"prod:memory:{USER}:gone") == b"x"
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", KEY)
    assert main(args) == 0, capsys.readouterr().err
    document = json.loads(capsys.readouterr().out)
    assert document["stage"] == "write" and document["left_alone_changed"] == []
    assert target.get(f"prod:memory:{USER}:gone") == b"new"
    assert target.lrange(f"prod:memory:{USER}:\xff\xfe".encode("latin-1"), 0, -1) == [b"\x80"]
    assert target.llen(f"prod:memory:{USER}:n299") == 1
    assert target.type(f"prod:memory:{USER}:stream") == b"stream"
    backup = moved_here(Path(document["backup"]).name, tmp_path, prod.url, KEY, folder=out)
    assert main(["memory", "undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]) == 0
    assert state(target) == PRE_COPY


@pytest.mark.timeout(300)  # its process may take 120 s to answer on a busy runner
def test_a_plan_cancelled_mid_snapshot_leaves_files_that_never_look_complete(
    memory_envs, tmp_path, monkeypatch, capsys
):
    """SIGTERM (a cancelled workflow) while the snapshot is being written, encrypted, line by line:
    whatever reached the disk is refused by restore and undo, and the target is untouched."""
    dev, prod = memory_envs
    source = dev.client()
    pipe = source.pipeline(transaction=False)
    for i in range(20_000):
        pipe.rpush(f"dev:bulk:{USER}:{i}", *[b"new %d" % j for j in range(50)])
    pipe.execute()
    before = state(prod.client())
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", KEY)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "ci_tools", "memory", "copy", *ROUTE, "--pattern", "bulk:{user_id}:*"]
    command += ["--ignore-uncovered", "--apply", "--stage", "plan", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=unmeasured())
    wait_until(
        lambda: any(p.stat().st_size > 100_000 for p in out.glob("*-snapshot-*.jsonl")) or process.poll() is not None,
        "the snapshot to grow",
    )
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the plan finished before the signal arrived")
    assert b"Traceback" not in err, err
    (snapshot,) = out.glob("*-snapshot-*.jsonl")
    (backup,) = out.glob("*-backup-*.jsonl")
    restore = ["memory", "restore", str(snapshot), "--to", "production", "--apply", "--out", str(tmp_path / "r")]
    write = [*command[3:-4], "--stage", "write", "--out", str(out)]
    undo = ["memory", "undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]
    for argv in (restore, write, undo):
        assert main(argv) == 5, argv
        assert "cut short" in capsys.readouterr().err
    assert state(prod.client()) == before
    assert not (tmp_path / "r").exists() and not (tmp_path / "undo").exists()
