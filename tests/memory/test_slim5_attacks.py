"""Attacks on the fifth cut of the memory tools (slim5: one guarded swap script for rename and delete,
one value converter, the job writing its own batches, absent keys backed up as records, every read
taking the DUMP payload, undo folded into ops, the header's "not encrypted" check gone), by a helper
who did not build it.

Each test is an attack on a promise the cut said it kept, on real redis-server (Redis 7) and
valkey-server (Valkey 9) processes. The ones that broke carry the fix they led to.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet

from bench._delay_proxy import DelayProxy
from ci_tools.__main__ import main
from ci_tools.errors import RemoteError
from ci_tools.memory.files import RecordFile
from ci_tools.memory.model import Stage
from ci_tools.memory.ops import copy_user, undo_backup
from ci_tools.memory.records import BATCH, Record, decode_value, encode_value, now_ms, read_records, value_digest
from ci_tools.memory.writer import ABSENT, PARTIAL, Writer, fingerprint
from tests.memory.helpers import ROUTE, USER, request, seed_all_types
from tests.support import context, unmeasured, wait_until

pytestmark = pytest.mark.timeout(300)

# Names a Lua KEYS array must carry byte for byte: a hash tag, spaces, NUL, a newline, invalid UTF-8.
NAMES = (b"{tag}:x}", b"with  space ", b"\x00\xff\r\nbin")
ALL = ("all:{user_id}:*",)


def dumps(client: redis.Redis) -> dict[bytes, tuple[bytes | None, int]]:
    """Every key's DUMP payload and whether it has a TTL: equal on one server means equal byte for byte."""
    return {key: (client.dump(key), client.pttl(key) > 0) for key in sorted(client.scan_iter(count=1000))}


def expiries(client: redis.Redis) -> dict[bytes, int]:
    """When each key with a TTL expires (ms since the epoch): a TTL put back exactly keeps its moment."""
    found = {key: client.execute_command("PEXPIRETIME", key) for key in client.scan_iter(count=1000)}
    return {key: when for key, when in found.items() if when > 0}


def leftovers(client: redis.Redis) -> list[bytes]:
    """Temporary keys of the typed write still on the server."""
    return [key for key in client.scan_iter(count=1000) if key.endswith(PARTIAL)]


def typed(client: redis.Redis, prefix: str = "src:") -> list[Record]:
    """One record of every type (binary values, a TTL on the string), without DUMP payloads: the
    writer builds them type by type and swaps them in, as for a target that refuses the payload."""
    seed_all_types(client, prefix)
    keys = sorted(client.scan_iter(match=f"{prefix}*"))
    return [dataclasses.replace(r, dump=None) for r in read_records(client, keys)]


def one_line(err: str) -> None:
    assert "Traceback" not in err, err
    assert len([line for line in err.strip().splitlines() if not line.lstrip().startswith("hint")]) == 1, err


# -- the guarded swap: rename over a key, and delete ------------------------------------------------


def test_the_swap_writes_only_keys_unchanged_since_their_guard_for_every_type_and_odd_name(redis_server):
    """A key changed, deleted or created between the guard and the swap is left as it is now and
    named ``changed``; an unchanged one takes the record's value and TTL. Nothing temporary is left."""
    client = redis_server.client()
    records = typed(client)
    items, expected = [], {}
    for n, name in enumerate(NAMES):
        for i, record in enumerate(records):
            scenario = (n * len(records) + i) % 4
            key = b"t:" + name + b":" + record.type.encode()
            if scenario != 3:  # held something at plan time, with its own TTL (the record's replaces it)
                client.set(key, b"old \xff", px=900_000)
            guard = fingerprint(client.dump(key))
            if scenario == 1:
                client.append(key, b" said since")
            elif scenario == 2:
                client.delete(key)
            elif scenario == 3:
                client.rpush(key, b"created since")
            expected[key] = (scenario, client.dump(key))
            items.append((key, record, guard))
    writer = Writer(client)
    writer.write_batch(items)
    assert sorted(writer.result.written) == sorted(k for k, (s, _) in expected.items() if s == 0)
    assert sorted(writer.result.changed) == sorted(k for k, (s, _) in expected.items() if s != 0)
    assert not leftovers(client)
    for (key, record, _), (scenario, before) in zip(items, expected.values(), strict=True):
        if scenario:
            assert client.dump(key) == before, key  # left exactly as it is now
            continue
        [now] = read_records(client, [key])
        assert (now.type, now.value) == (record.type, record.value), key
        assert (client.pttl(key) > 0) == (record.pttl is not None), key


def test_the_swap_as_delete_removes_an_unchanged_key_of_any_type_and_name_and_leaves_a_changed_one(redis_server):
    """The same script deletes when the key takes its own place (an undo of a key that was absent):
    a RENAME of a key onto itself would leave it; a stale guard must keep what is there."""
    client = redis_server.client()
    seed_all_types(client, "src:")
    deletes, kept = [], {}
    for n, name in enumerate(NAMES):
        for i, source in enumerate(sorted(client.scan_iter(match="src:*"))):
            key = b"d:" + name + b":" + str(i).encode()
            client.copy(source, key)
            client.pexpire(key, 600_000)
            guard = fingerprint(client.dump(key))
            if (n + i) % 2:  # changed since the guard, each type by its own command
                kind = client.type(key)
                if kind == b"string":
                    client.append(key, b"!")
                elif kind == b"list":
                    client.rpush(key, b"!")
                elif kind == b"hash":
                    client.hset(key, b"!", b"!")
                elif kind == b"set":
                    client.sadd(key, b"!")
                elif kind == b"zset":
                    client.zadd(key, {b"!": 1})
                else:
                    client.xadd(key, {b"!": b"!"})
                kept[key] = client.dump(key)
            deletes.append((key, guard))
    deletes.append((b"d:never there", ABSENT))  # absent then and now: nothing to do, nothing made
    writer = Writer(client)
    writer.delete(deletes)
    assert sorted(writer.result.changed) == sorted(kept)
    for key, _ in deletes:
        assert client.dump(key) == kept.get(key), key


def test_a_temporary_key_whose_ttl_runs_out_before_the_swap_is_expired_not_a_failed_batch(redis_server):
    """Broke: over a link as slow as a runner's to Render (40 ms), a key with less TTL left than one
    round trip was built under its temporary name, expired there, and the swap's RENAME failed
    ("no such key"): the script stopped mid-batch, keys after it kept their temporary names, the
    ones before it were written unreported, and the copy died on an unexpected error. Now such a key
    is ``expired`` (never resurrected, as before the write), the rest of the batch is swapped in."""
    client = redis_server.client()
    proxy = DelayProxy(redis_server.port, rtt_ms=40).start()
    try:
        slow = redis.Redis(port=proxy.port)
        keys = [b"k:before", b"k:" + NAMES[2], b"k:after"]
        for key in keys:
            client.set(key, b"old")
        guards = [fingerprint(client.dump(k)) for k in keys]
        slow.ping()
        at = now_ms()
        items = [
            (keys[0], Record(keys[0], "list", None, at, [b"a"]), guards[0]),
            (keys[1], Record(keys[1], "list", 30, at, [b"b"]), guards[1]),  # 30 ms left: less than a round trip
            (keys[2], Record(keys[2], "hash", 600_000, at, [(b"f", b"c")]), guards[2]),
        ]
        writer = Writer(slow)
        writer.write_batch(items)
        slow.close()
    finally:
        proxy.stop()
    assert writer.result.written == [keys[0], keys[2]]
    assert writer.result.expired == [keys[1]] and not writer.result.changed
    assert not leftovers(client)
    assert client.lrange(keys[0], 0, -1) == [b"a"] and client.hgetall(keys[2]) == {b"f": b"c"}
    assert client.get(keys[1]) == b"old"  # left as the backup holds it: never written, never lost


def test_a_temporary_key_without_a_ttl_that_vanishes_before_the_swap_is_an_error_not_expired(redis_server, monkeypatch):
    """Only a TTL lets a temporary key go by itself: one without that is gone (evicted under
    maxmemory, removed by hand) is refused loudly, never reported as a key that expired."""
    client = redis_server.client()
    client.set(b"k", b"old")
    guard = fingerprint(client.dump(b"k"))
    swap = Writer._swap

    def evicted_first(self, swaps):  # type: ignore[no-untyped-def]
        client.delete(*(source for source, key, _ in swaps if source != key))
        swap(self, swaps)

    monkeypatch.setattr(Writer, "_swap", evicted_first)
    writer = Writer(client)
    with pytest.raises(RemoteError, match="vanished before it took"):
        writer.write_batch([(b"k", Record(b"k", "list", None, now_ms(), [b"a"]), guard)])
    assert client.get(b"k") == b"old"


# -- cross-version: Valkey 9 source, Redis 7 target -----------------------------------------------


def _seed_odd_names(client: redis.Redis, prefix: str) -> None:
    for name in NAMES:
        client.hset(f"{prefix}all:{USER}:".encode() + name, mapping={b"f\x00": b"\xfe", b"g": b"2"})
        client.pexpire(f"{prefix}all:{USER}:".encode() + name, 700_000)


def test_valkey_to_redis7_two_stages_leave_what_changed_between_them_and_the_undo_is_byte_exact(
    valkey_to_old_redis, tmp_path
):
    """The payload is refused (fallback), every type and odd name is built and swapped; a target key
    changed and one deleted between the plan and the write are left and named; the undo gives the
    target back byte for byte (DUMP and TTL), deletes the keys that did not exist, leaves the two the
    bot touched, and the source is never written."""
    valkey, old = valkey_to_old_redis
    source, target = valkey.client(), old.client()
    seed_all_types(source, "dev:")
    _seed_odd_names(source, "dev:")
    target.rpush(f"prod:all:{USER}:list", b"the target's own")  # replaced
    target.pexpire(f"prod:all:{USER}:list", 800_000)
    target.set(f"prod:all:{USER}:set", b"the target's own")  # replaced, then deleted between the stages
    target.set(f"prod:all:{USER}:".encode() + NAMES[0], b"the target's own")  # replaced, then changed between
    before_source = dumps(source)
    copy = request(tmp_path, patterns=ALL, uncovered="ignore", policy="replace")
    copy_user(context(), dataclasses.replace(copy, stage=Stage.PLAN))
    target.append(f"prod:all:{USER}:".encode() + NAMES[0], b", and said since")
    target.delete(f"prod:all:{USER}:set")
    between, expiring = dumps(target), expiries(target)
    outcome = copy_user(context(), dataclasses.replace(copy, stage=Stage.WRITE))
    assert outcome.fallback
    changed = {f"prod:all:{USER}:".encode() + NAMES[0], f"prod:all:{USER}:set".encode()}
    assert set(outcome.changed) == changed
    assert outcome.verified == len(outcome.plan) - 2
    assert not leftovers(target)
    for key in changed:
        assert (target.dump(key), target.pttl(key) > 0) == between.get(key, (None, False))
    assert target.lrange(f"prod:all:{USER}:list", 0, -1) == [f"item {i}".encode() for i in range(50)]
    assert target.pttl(f"prod:all:{USER}:string") > 0
    assert outcome.backup is not None
    _, _, left = undo_backup(context(), outcome.backup, tmp_path / "undo")
    assert set(left) == changed
    assert dumps(target) == between  # every key the copy wrote: back byte for byte, or gone again
    now = expiries(target)
    assert now.keys() == expiring.keys()
    assert all(abs(now[key] - when) <= 2000 for key, when in expiring.items()), (now, expiring)
    assert dumps(source) == before_source


# -- the source is never written: a read-only user on it --------------------------------------------


def test_copy_diff_export_and_snapshot_run_as_a_user_the_source_refuses_every_write(memory_envs, tmp_path, capsys):
    """Every read (now with the DUMP payload, always) is a script; a script that wrote, or a write
    beside it, would be refused by the ACL (NOPERM) and fail the command."""
    dev, prod = memory_envs
    source = dev.client()
    seed_all_types(source, "dev:")
    source.execute_command("ACL", "SETUSER", "reader", "on", ">pw", "~*", "&*", "+@all", "-@write")
    reader = f"redis://reader:pw@127.0.0.1:{dev.port}/0"
    before = dumps(source)
    environ = {"SOURCE_REDIS_URL": reader, "TARGET_REDIS_URL": prod.url}
    ctx = context(**environ)
    copy_user(ctx, request(tmp_path, apply=False, patterns=ALL, uncovered="ignore"))
    outcome = copy_user(ctx, request(tmp_path / "copy", patterns=ALL, uncovered="ignore"))
    assert outcome.verified == 6
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        assert main(["memory", "diff", *ROUTE]) in (0, 1)  # 1: the memory patterns' keys differ
        assert main(["memory", "export", "--user-id", str(USER), "--from", "staging", "--out", str(tmp_path)]) == 0
        assert main(["memory", "snapshot", "staging", "--out", str(tmp_path / "before")]) == 0
    capsys.readouterr()
    assert dumps(source) == before
    with pytest.raises(redis.exceptions.NoPermissionError):  # the user can write nothing: the test can fail
        redis.Redis.from_url(reader).set("dev:probe", "x")


# -- encrypted files: wrong key, cut short, in the clear, tampered ----------------------------------


def _damaged(path: Path, how: str, key: str) -> str:
    """``path`` (an encrypted backup) damaged ``how``; the key the undo is given."""
    lines = path.read_bytes().splitlines(keepends=True)
    fernet = Fernet(key)
    if how == "wrong key":
        return Fernet.generate_key().decode()
    if how == "cut mid-line":
        path.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    elif how == "footer gone":
        path.write_bytes(b"".join(lines[:-1]))
    elif how == "tampered line":
        token = bytearray(base64.urlsafe_b64decode(lines[1].strip()))
        token[-40] ^= 1  # inside the ciphertext: the HMAC no longer matches
        lines[1] = base64.urlsafe_b64encode(bytes(token)) + b"\n"
        path.write_bytes(b"".join(lines))
    elif how == "a line in the clear":
        lines[1] = (
            json.dumps(
                {
                    "key": base64.b64encode(f"prod:memory:{USER}".encode()).decode(),
                    "type": "string",
                    "value": base64.b64encode(b"planted").decode(),
                    "pttl": None,
                }
            ).encode()
            + b"\n"
        )
        path.write_bytes(b"".join(lines))
    elif how == "all in the clear":
        path.write_bytes(b"".join(fernet.decrypt(line.strip()) + b"\n" for line in lines))
    return key


@pytest.mark.parametrize("command", ["undo", "restore"])
@pytest.mark.parametrize(
    "how",
    ["intact", "wrong key", "cut mid-line", "footer gone", "tampered line", "a line in the clear", "all in the clear"],
)
def test_a_damaged_or_foreign_encrypted_file_is_refused_in_one_line_and_nothing_is_written(
    memory_envs, tmp_path, capsys, monkeypatch, how, command
):
    """Undo reads the copy's backup, restore its snapshot: each damage refused before any write."""
    _, prod = memory_envs
    target = prod.client()
    target.rpush(f"prod:memory:{USER}", "the target's own")
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", key)
    outcome = copy_user(context(), request(tmp_path, policy="replace"))
    assert outcome.backup is not None and outcome.snapshot is not None
    target.rpush(f"prod:memory:{USER}", "said since")  # a restore would replace it, an undo leave it
    after_copy = dumps(target)
    file = outcome.backup if command == "undo" else outcome.snapshot
    given = _damaged(file, how, key)
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", given)
    capsys.readouterr()
    writes = ["--to", "production", "--on-conflict", "replace"] if command == "restore" else []
    code = main(["memory", command, str(file), *writes, "--apply", "--out", str(tmp_path / "again")])
    printed = capsys.readouterr()
    assert key not in printed.out + printed.err and given not in printed.out + printed.err
    if how == "intact":  # the control: the same command on the file as written does write
        assert code == 0, printed
        assert dumps(target) != after_copy
        return
    assert code != 0, printed
    one_line(printed.err)
    assert dumps(target) == after_copy
    assert not (tmp_path / "again").exists() or not list((tmp_path / "again").iterdir())


def test_restore_writes_its_own_snapshot_that_says_truly_whether_it_is_encrypted(memory_envs, tmp_path):
    """Restore now writes its snapshot from the given file's header: a plaintext export that claims to
    be encrypted must not make the restore's own (plaintext) snapshot claim so too."""
    assert main(["memory", "export", "--user-id", str(USER), "--from", "staging", "--out", str(tmp_path)]) == 0
    [export] = tmp_path.glob("*-export-*.jsonl")
    lines = export.read_bytes().splitlines(keepends=True)
    lines[0] = json.dumps({**json.loads(lines[0]), "encrypted": True}).encode() + b"\n"
    export.write_bytes(b"".join(lines))
    out = tmp_path / "out"
    assert main(["memory", "restore", str(export), "--to", "production", "--apply", "--out", str(out)]) == 0
    [snapshot] = out.glob("*-snapshot-*.jsonl")
    assert RecordFile(snapshot, None).header["encrypted"] is False


# -- a real SIGTERM mid-undo: what was put back is whole, and the same undo again finishes ---------


def test_a_sigterm_mid_undo_in_the_real_process_leaves_a_rerun_to_finish_it_byte_for_byte(memory_envs, tmp_path):
    dev, prod = memory_envs
    source, target = dev.client(), prod.client()
    pipe = source.pipeline(transaction=False)
    for i in range(6 * BATCH):
        pipe.rpush(f"dev:bulk:{USER}:{i}", b"new %d" % i, b"\xff")
    pipe.execute()
    pipe = target.pipeline(transaction=False)
    for i in range(0, 6 * BATCH, 2):
        pipe.rpush(f"prod:bulk:{USER}:{i}", b"old %d" % i)
        if i % 10 == 0:
            pipe.pexpire(f"prod:bulk:{USER}:{i}", 7_200_000)
    pipe.execute()
    before = dumps(target)
    outcome = copy_user(
        context(), request(tmp_path, patterns=("bulk:{user_id}:*",), uncovered="ignore", policy="replace")
    )
    assert outcome.backup is not None
    command = [sys.executable, "-m", "ci_tools", "memory", "undo", str(outcome.backup), "--apply"]
    process = subprocess.Popen(
        [*command, "--out", str(tmp_path / "undo1")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=unmeasured()
    )
    wait_until(
        lambda: target.lindex(f"prod:bulk:{USER}:0", 0) == b"old 0" or process.poll() is not None, "the first put-back"
    )
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=240)
    if process.returncode == 0:
        pytest.skip("the undo finished before the signal arrived")
    assert process.returncode == 130, err
    assert "Traceback" not in err.decode()
    assert not leftovers(target)
    _, _, left = undo_backup(context(), outcome.backup, tmp_path / "undo2")
    assert left == []
    assert dumps(target) == before


# -- restore and seed in two stages: restore's snapshot is now its own copy; seed always swaps -----


def test_a_two_stage_restore_writes_what_it_planned_and_leaves_a_key_changed_between_the_stages(
    memory_envs, tmp_path, capsys
):
    """Restore now copies the given snapshot into its own (the write stage reads that one, not the path
    it is given again): a snapshot file changed between the stages does not change what is written (so
    the backup's digests of what was written hold, and the undo puts it back), a target key the bot
    wrote between them is left and named, and the undo is exact."""
    dev, prod = memory_envs
    target = prod.client()
    assert main(["memory", "export", "--user-id", str(USER), "--from", "staging", "--out", str(tmp_path)]) == 0
    [export] = tmp_path.glob("*-export-*.jsonl")
    target.rpush(f"prod:memory:{USER}", "the target's own")
    target.hset(f"prod:user:{USER}:profile", "name", "the target's own")
    before = dumps(target)
    out, restore = tmp_path / "out", ["memory", "restore", str(export), "--to", "production", "--apply"]
    assert main([*restore, "--on-conflict", "replace", "--stage", "plan", "--out", str(out)]) == 0
    assert dumps(target) == before  # a plan writes nothing
    target.hset(f"prod:user:{USER}:profile", "said", "between the stages")
    dev.client().rpush(f"dev:memory:{USER}", "said after the plan")  # and exported again, over the same path
    assert main(["memory", "export", "--user-id", str(USER), "--from", "staging", "--out", str(tmp_path / "e2")]) == 0
    [again] = (tmp_path / "e2").glob("*-export-*.jsonl")
    export.write_bytes(again.read_bytes())
    between = dumps(target)
    capsys.readouterr()
    assert main([*restore, "--on-conflict", "replace", "--stage", "write", "--out", str(out), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["left_alone_changed"] == [f"prod:user:{USER}:profile"], document
    assert target.hget(f"prod:user:{USER}:profile", "said") == b"between the stages"
    assert target.lrange(f"prod:memory:{USER}", 0, -1) == [b"likes tea", b"sister Mia"]
    [backup] = out.glob("*-backup-*.jsonl")
    _, _, left = undo_backup(context(), backup, tmp_path / "undo")
    assert left == [f"prod:user:{USER}:profile".encode()]
    assert dumps(target) == between


def test_a_two_stage_seed_goes_through_the_swap_and_leaves_a_profile_the_bot_wrote_between(
    memory_envs, tmp_path, capsys
):
    """Seeded records carry no DUMP payload: every seed is built under a temporary name and swapped in.
    A profile the bot created between the plan and the write (guard: absent) is left and named, the
    memory list is written, nothing temporary remains, and the undo deletes only what the seed made."""
    _, prod = memory_envs
    target = prod.client()
    profile = tmp_path / "profile.txt"
    profile.write_text("likes tea\nsister Mia\n")
    out = tmp_path / "out"
    seed = ["memory", "seed", "--to", "production", "--user-id", str(USER), "--profile-file", str(profile)]
    assert main([*seed, "--apply", "--stage", "plan", "--out", str(out)]) == 0
    target.hset(f"prod:user:{USER}:profile", "first_seen", "1")  # the user wrote to the new bot meanwhile
    between = dumps(target)
    capsys.readouterr()
    assert main([*seed, "--apply", "--stage", "write", "--out", str(out), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["left_alone_changed"] == [f"prod:user:{USER}:profile"], document
    assert target.hgetall(f"prod:user:{USER}:profile") == {b"first_seen": b"1"}
    assert target.lrange(f"prod:memory:{USER}", 0, -1) == [b"likes tea", b"sister Mia"]
    assert not leftovers(target)
    [backup] = out.glob("*-backup-*.jsonl")
    _, _, left = undo_backup(context(), backup, tmp_path / "undo")
    assert left == [f"prod:user:{USER}:profile".encode()]
    assert dumps(target) == between


# -- one converter for encoding and decoding: the digests a released backup holds still match ------

RELEASED = {  # value_digest computed by ci-tools at f251b13 (main, before the cut), for each type
    "string": (b"\x00\xffraw", "4db74ca4ea4cf1f94d32c1b8f7ebe59f7f00bfb2"),
    "list": ([b"a", b"\xff"], "184a7ce00c13e5d3d69fd636f9b5dc0e9a492617"),
    "hash": ([(b"f\x00", b"\xfe"), (b"g", b"2")], "d407d54a7d7dddbafdcd72e9cf1785a475589798"),
    "set": ([b"a", b"\xc3\x28"], "c7815c49146b91829e9ce58a5e777663f284faf2"),
    "zset": ([(b"low", -1.5), (b"high", 1e300), (b"inf", float("inf"))], "9e4275e5aa3f85e9a6cfd467f657315edb409b0c"),
    "stream": (
        [(b"1-1", [(b"text", b"hello")]), (b"2-0", [(b"mood", b"ok"), (b"text", b"again")])],
        "294a3c03d83c76729b2cf225b211e55e2ab4af4a",
    ),
}


@pytest.mark.parametrize("kind", list(RELEASED))
def test_each_types_digest_is_the_released_ones_and_its_encoding_round_trips(kind):
    """An undo leaves every key whose digest differs from the backup's ``after`` line: had the one
    converter changed a type's encoding, an undo of a backup the released ci-tools wrote would put
    nothing of that type back. Through JSON and back, the value is the same."""
    value, digest = RELEASED[kind]
    assert value_digest(Record(b"k", kind, None, 0, value)) == digest
    assert decode_value(kind, json.loads(json.dumps(encode_value(kind, value)))) == value
