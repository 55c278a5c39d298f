"""Attacks on the slimmed memory tools (e381c2a..f660680): undo verified through the job's Verifier
(keys that must be absent, TTLs that ran out), batches by islice (lazy, cancel checkpoints between
batches), JSON of infinite scores (old backups' digests), all through real redis-server processes."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ci_tools import cancel
from ci_tools.__main__ import main
from ci_tools.errors import VerificationError
from ci_tools.memory import job as job_module
from ci_tools.memory.files import RecordFile
from ci_tools.memory.job import JobOptions, MemoryJob, Verifier
from ci_tools.memory.records import BATCH, Record, batches, encode_value, from_json, now_ms, to_json, value_digest
from ci_tools.memory.throwaway import private_redis
from tests.memory.helpers import ROUTE, USER, seed_all_types, value
from tests.support import wait_until

ALL = ["--pattern", "all:{user_id}:*", "--ignore-uncovered"]


def _exact(client, keys: list[bytes]) -> dict[bytes, tuple[object, bool]]:
    """Each key's type and exact bytes (None: absent) and whether it has a TTL. Not its DUMP: a set's
    payload on Redis 7.0 follows its hash table's history, so the same members may dump differently."""
    return {key: (value(client, key) if client.exists(key) else None, client.pttl(key) > 0) for key in keys}


def test_cli_copy_then_undo_puts_every_key_back_byte_for_byte(memory_envs, tmp_path, capsys):
    """Replace over keys with TTLs and infinite scores, then undo: each value as before, the keys the
    copy created gone again, and the TTLs as the backup recorded them (within the tolerance)."""
    dev, prod = memory_envs
    seed_all_types(dev.client())
    target = prod.client()
    target.zadd(f"prod:all:{USER}:zset", {"x": float("-inf"), "y": float("inf"), "z": -0.0})
    target.pexpire(f"prod:all:{USER}:zset", 900_000)
    target.set(f"prod:all:{USER}:string", b"old", px=600_000)
    keys = [f"prod:all:{USER}:{kind}".encode() for kind in ("string", "list", "hash", "set", "zset", "stream")]
    before, ttls = _exact(target, keys), {key: target.pttl(key) for key in keys}
    out = tmp_path / "out"
    assert main(["memory", "copy", *ROUTE, *ALL, "--on-conflict", "replace", "--apply", "--out", str(out)]) == 0
    assert _exact(target, keys) != before
    (backup,) = out.glob("*-backup-*.jsonl")
    capsys.readouterr()
    assert main(["memory", "undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]) == 0, capsys.readouterr()
    assert _exact(target, keys) == before
    for key, ttl in ttls.items():
        assert ttl < 0 or abs(target.pttl(key) - ttl) < 5_000


def test_undo_of_a_key_whose_backed_up_ttl_ran_out_leaves_it_absent(memory_envs, tmp_path, capsys):
    """The backup holds a key that expires soon; once it would have expired, undo must not bring it
    back (nor keep the copy's value): the key ends absent, and the undo's verification agrees."""
    dev, prod = memory_envs
    seed_all_types(dev.client())
    target = prod.client()
    key = f"prod:all:{USER}:string".encode()
    target.set(key, b"old", px=3_000)
    out = tmp_path / "out"
    only = ["--pattern", "all:{user_id}:string", "--ignore-uncovered"]
    assert main(["memory", "copy", *ROUTE, *only, "--on-conflict", "replace", "--apply", "--out", str(out)]) == 0
    (backup,) = out.glob("*-backup-*.jsonl")
    (record,) = RecordFile(backup, None).records()
    assert record.key == key and record.pttl is not None
    expiry = record.read_at + record.pttl
    wait_until(lambda: now_ms() > expiry + 50, "the backed-up key's TTL running out")
    assert target.exists(key)  # the copy's value, with the source's long TTL
    capsys.readouterr()
    assert main(["memory", "undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]) == 0, capsys.readouterr()
    assert not target.exists(key)


def _expired(key: bytes, value: bytes, *, ago_ms: int) -> Record:
    """A string record whose TTL ran out ``ago_ms`` ago."""
    return Record(key, "string", 1_000, now_ms() - 1_000 - ago_ms, value)


def test_the_verifier_flags_every_key_that_should_be_absent_but_is_there(redis_server):
    """The check undo now verifies through: a key that should be absent (never there, or its TTL ran
    out) yet is present is a mismatch unless it holds the same value with a TTL ending within the TTL
    tolerance of the backup's (the write's own latency; 2 s, as every TTL compare allows); absent as it
    should be is not."""
    client = redis_server.client()
    client.set(b"never", b"v")
    client.set(b"no-ttl", b"v")
    client.set(b"long-ttl", b"v", px=60_000)
    client.set(b"other-value", b"w", px=1_000)
    client.set(b"ends-later", b"v", px=3_000)  # would end 3.5 s after the backup's: outside the tolerance
    client.set(b"ends-with-it", b"v", px=1_000)  # 1.5 s after: within TTL_TOLERANCE_MS, as any TTL is
    expected = [
        (b"never", Record(b"never", "none", read_at=now_ms())),
        (b"no-ttl", _expired(b"no-ttl", b"v", ago_ms=5_000)),
        (b"long-ttl", _expired(b"long-ttl", b"v", ago_ms=5_000)),
        (b"other-value", _expired(b"other-value", b"v", ago_ms=500)),
        (b"gone", _expired(b"gone", b"v", ago_ms=5_000)),
        (b"ends-later", _expired(b"ends-later", b"v", ago_ms=500)),
        (b"ends-with-it", _expired(b"ends-with-it", b"v", ago_ms=500)),
        (b"never-either", Record(b"never-either", "none", read_at=now_ms())),
    ]
    verifier = Verifier(client)
    verifier.batch(expected)
    flagged = {mismatch.split(" ", 1)[0] for mismatch in verifier.mismatches}
    assert flagged == {"never", "no-ttl", "long-ttl", "other-value", "ends-later"}, verifier.mismatches
    assert "never (should be absent)" in verifier.mismatches


def test_batches_are_lazy_and_never_end_on_an_empty_batch():
    assert next(batches(itertools.count(), 3)) == [0, 1, 2]  # an endless source: read as needed
    pulled: list[int] = []

    def source() -> Iterator[int]:
        for i in range(10):
            pulled.append(i)
            yield i
        raise AssertionError("read past the end")  # pragma: no cover - a generator's end

    first = batches(source(), 4)
    assert next(first) == [0, 1, 2, 3] and len(pulled) == 4
    assert list(batches(range(2 * BATCH))) == [list(range(BATCH)), list(range(BATCH, 2 * BATCH))]
    assert list(batches([])) == []
    assert list(batches(range(5), 2)) == [[0, 1], [2, 3], [4]]


def test_a_cancel_recorded_during_planning_stops_at_the_next_batch(redis_server, tmp_path):
    """islice'd batches still reach the plan's checkpoint: a cancel recorded while the second batch
    is read stops the job before it plans it; nothing is read beyond that batch, nothing written, and
    the backup is left without a footer (never taken for complete)."""
    target = redis_server.client()
    pulled: list[int] = []

    def records() -> Iterator[Record]:
        for i in range(4 * BATCH):
            if i == BATCH:
                cancel.request()  # as a signal handler whose KeyboardInterrupt a finalizer swallowed
            pulled.append(i)
            yield Record(b"k%d" % i, "string", None, now_ms(), b"v")

    job = MemoryJob(target, lambda key: b"t:" + key, JobOptions(apply=True, out_dir=tmp_path), "attack", None)
    try:
        with pytest.raises(KeyboardInterrupt):
            job.run(records(), snapshot_header={"scope": "attack"}, backup_header={"scope": "attack"})
    finally:
        cancel.clear()
    assert len(pulled) == 2 * BATCH
    assert len(job.outcome.plan) == BATCH
    assert target.dbsize() == 0
    assert job.outcome.backup is not None
    with pytest.raises(VerificationError, match="incomplete"):
        RecordFile(job.outcome.backup, None).check()


def test_infinite_and_odd_scores_encode_as_before_so_old_digests_match():
    """The digest an undo compares with a backup's ``after`` line, for scores the old ``_score``
    spelled out (inf, -inf) and ones repr alone decides (-0.0, 1e300, the smallest subnormal):
    computed with ci-tools at 7f60f08, before the change."""
    value = [(b"a", float("-inf")), (b"b", -0.0), (b"c", 0.1), (b"d", 1e300), (b"e", float("inf")), (b"f", 5e-324)]
    record = Record(b"k", "zset", None, 0, value)
    assert encode_value("zset", value) == [
        ("YQ==", "-inf"),
        ("Yg==", "-0.0"),
        ("Yw==", "0.1"),
        ("ZA==", "1e+300"),
        ("ZQ==", "inf"),
        ("Zg==", "5e-324"),
    ]
    assert value_digest(record) == "bc15c804f6750dc47ea086eeaf3477168ceb345f"
    assert from_json(to_json(record)).value == value


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_private_redis_runs_in_its_own_session_and_is_stopped_even_when_the_body_raises():
    """stop_session now stops it: it must lead its own session (or the SIGTERM to its session would
    reach ours), and be gone after the block, also when the block raises."""
    pids: list[int] = []

    def body_that_fails() -> None:
        with private_redis(os.environ) as url:
            pid = int(redis.Redis.from_url(url).info()["process_id"])
            pids.append(pid)
            assert os.getsid(pid) == pid != os.getsid(0)
            raise RuntimeError("the body failed")

    with pytest.raises(RuntimeError, match="the body failed"):
        body_that_fails()
    assert pids and not _alive(pids[0])
    with private_redis(os.environ) as url:
        pid = int(redis.Redis.from_url(url).info()["process_id"])
    assert not _alive(pid)


def test_an_environment_restore_into_a_redis_marked_for_another_environment_is_refused(
    memory_envs, tmp_path, monkeypatch, capsys
):
    """open_side without an environment reads no marker: the restore point's own check must still
    refuse a Redis whose marker names another environment, before anything is written."""
    _, prod = memory_envs
    target = prod.client()
    target.rpush(f"prod:memory:{USER}", b"likes tea")
    monkeypatch.setenv("SOURCE_REDIS_URL", prod.url)
    assert main(["memory", "snapshot", "production", "--out", str(tmp_path / "in")]) == 0
    target.rpush(f"prod:memory:{USER}", b"said later")
    target.set("prod:meta:env", "staging")
    capsys.readouterr()
    args = ["memory", "restore", str(tmp_path / "in"), "--to", "production", "--apply", "--out", str(tmp_path / "o")]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "staging" in err and "Traceback" not in err
    assert target.lrange(f"prod:memory:{USER}", 0, -1) == [b"likes tea", b"said later"]


def test_undo_twice_then_undo_the_undo_each_verified_exactly(memory_envs, tmp_path, capsys):
    """The same undo run again changes nothing and leaves nothing behind; undoing the undo (a backup
    with no ``after`` digests: the guard alone decides) brings back what the copy wrote, exactly."""
    dev, prod = memory_envs
    seed_all_types(dev.client())
    target = prod.client()
    target.zadd(f"prod:all:{USER}:zset", {"x": float("-inf"), "y": float("inf")})
    target.set(f"prod:all:{USER}:string", b"old", px=600_000)
    keys = [f"prod:all:{USER}:{kind}".encode() for kind in ("string", "list", "hash", "set", "zset", "stream")]
    before = _exact(target, keys)
    out = tmp_path / "out"
    assert main(["memory", "copy", *ROUTE, *ALL, "--on-conflict", "replace", "--apply", "--out", str(out)]) == 0
    copied = _exact(target, keys)
    (backup,) = out.glob("*-backup-*.jsonl")
    undone = []
    for n in range(2):
        capsys.readouterr()
        args = ["memory", "undo", str(backup), "--apply", "--json", "--out", str(tmp_path / f"undo{n}")]
        assert main(args) == 0
        document = json.loads(capsys.readouterr().out)
        assert document["left_alone_changed"] == []
        assert _exact(target, keys) == before
        undone.append(Path(document["backup_of_previous_state"]))
    assert main(["memory", "undo", str(undone[0]), "--apply", "--out", str(tmp_path / "redo")]) == 0
    assert _exact(target, keys) == copied


def test_a_key_whose_ttl_runs_out_while_the_verifier_reads_is_not_called_missing(redis_server, monkeypatch):
    """The Verifier takes its clock before reading; a read slow to arrive (1000 big keys, a busy
    runner: here 300 ms, by a clock that lags) must not turn a key that expired meanwhile into
    "missing". undo's own check, before it used the Verifier, counted from after the read."""
    client = redis_server.client()
    real = job_module.now_ms
    monkeypatch.setattr(job_module, "now_ms", lambda: real() - 300)  # the clock read 300 ms before the read
    verifier = Verifier(client)
    verifier.batch([(b"ran-out", _expired(b"ran-out", b"v", ago_ms=100))])
    assert verifier.mismatches == []
