"""Attacks on the slim3 refactor of the memory tools (one batching helper, the planner folded into the
job, TargetStopped gone, diff as copy's dry run, send-back's guards computed client-side, the move
record's guards from the snapshot, RestoreRequest on JobOptions), by a helper who did not build it.

Each test is an attack on a promise the refactor said it kept, on real redis-server processes. The
ones that broke carry the fix they led to (see the commit that added them).
"""

from __future__ import annotations

import json
import math

import pytest
import redis
from cryptography.fernet import Fernet

from ci_tools.__main__ import main
from ci_tools.errors import ConfigError, RemoteError
from ci_tools.memory import moved, restore_points
from ci_tools.memory.files import RecordFile
from ci_tools.memory.model import Conflict, Stage
from ci_tools.memory.ops import copy_user, undo_backup
from ci_tools.memory.records import BATCH, read_records
from ci_tools.memory.writer import Writer, fingerprint, fingerprints
from sandbox.redis import RedisServer, server_available
from tests.memory.helpers import OTHER, ROUTE, USER, request, seed_all_types, seed_user, state
from tests.pipeline import test_move_window as move_window
from tests.support import context

BULK = ("bulk:{user_id}:*",)
moved_world = move_window.moved  # the world after the runbook's step 7 (the fixture, shared)


def bulk_name(prefix: str, i: int) -> bytes:
    """Every third name is not UTF-8: the batches carry raw bytes, not text."""
    return f"{prefix}bulk:{USER}:".encode() + (b"\xff\xfe" if i % 3 == 0 else b"") + str(i).encode()


def seed_bulk(source: redis.Redis, target: redis.Redis, n: int) -> None:
    """``n`` keys of the user in the source (some with a TTL); every seventh already in the target,
    with other data and its own TTL (replaced, so the backup must give it back exactly)."""
    pipe, theirs = source.pipeline(transaction=False), target.pipeline(transaction=False)
    for i in range(n):
        pipe.hset(bulk_name("dev:", i), mapping={"n": i, "raw": b"\x00\xff"})
        if i % 5 == 0:
            pipe.pexpire(bulk_name("dev:", i), 600_000)
        if i % 7 == 0:
            theirs.set(bulk_name("prod:", i), b"older \xff", px=900_000)
    pipe.execute()
    theirs.execute()


def one_line(err: str) -> None:
    assert "Traceback" not in err, err
    assert len([line for line in err.strip().splitlines() if not line.startswith("hint")]) <= 1, err


# -- batch boundaries: exactly 1,000, 1,001 and 2,000 keys -----------------------------------------


@pytest.mark.parametrize("n", [BATCH, BATCH + 1, 2 * BATCH])
def test_a_copy_of_exactly_a_batch_or_one_more_is_written_verified_and_undone_exactly(memory_envs, tmp_path, n):
    """Held: reads, plans, writes, verifies and the backup's plan lines all cut at 1,000; each key is
    planned, written and verified once, and the undo gives back the target byte for byte, TTLs too."""
    dev, prod = memory_envs
    seed_bulk(dev.client(), prod.client(), n)
    before_source, before_target = state(dev.client()), state(prod.client())
    events: list[tuple[str, int]] = []
    outcome = copy_user(
        context(),
        request(
            tmp_path, patterns=BULK, uncovered="ignore", policy="replace", on_event=lambda e, k: events.append((e, k))
        ),
    )
    replaced = len(range(0, n, 7))
    assert outcome.counts() == {"create": n - replaced, "replace": replaced}
    assert len(outcome.written) == n and outcome.verified == n and not outcome.changed
    assert events == [("planned", n)] + [("batch", k) for k in range(1, math.ceil(n / BATCH) + 1)]
    assert outcome.backup is not None and outcome.snapshot is not None
    backup = RecordFile(outcome.backup, None)
    assert len(backup.plan()) == n and backup.check() == n  # the replaced keys and the absent ones
    assert RecordFile(outcome.snapshot, None).check() == n
    assert state(dev.client()) == before_source
    _, _, left = undo_backup(context(), outcome.backup, tmp_path / "undo")
    assert not left
    assert state(prod.client()) == before_target


# -- the target drops mid-write: the message, the counts, the hint, and the undo it names ----------


@pytest.mark.parametrize(("event", "at", "written"), [("planned", 2 * BATCH, 0), ("batch", 1, BATCH)])
def test_a_target_that_drops_mid_write_is_named_with_its_counts_and_the_undo_it_names_works(
    redis_pair, monkeypatch, tmp_path, capsys, event, at, written
):
    """The job now catches the connection error itself: the same message with the same counts, the
    source untouched. The hint's undo must act as printed: ``memory undo`` without ``--apply`` is a
    dry run (broke: the hint left ``--apply`` out, so the command it gave changed nothing)."""
    dev, _ = redis_pair
    total = 2 * BATCH
    with RedisServer(persist=True, password="s3cret-target-pw") as prod:
        prod.client().set("prod:meta:env", "production")
        dev.client().set("dev:meta:env", "staging")
        seed_bulk(dev.client(), prod.client(), total)
        monkeypatch.setenv("SOURCE_REDIS_URL", dev.url)
        monkeypatch.setenv("TARGET_REDIS_URL", prod.url)
        monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", Fernet.generate_key().decode())
        before_source, before_target = state(dev.client()), state(prod.client())

        def drop(name: str, n: int) -> None:
            if (name, n) == (event, at):
                prod.kill()

        copy = request(tmp_path, patterns=BULK, uncovered="ignore", policy="replace", on_event=drop)
        with pytest.raises(RemoteError) as error:
            copy_user(context(), copy)
        failure = error.value
        assert f"the target stopped answering (ConnectionError) after {written} of {total} keys were written" in str(
            failure.message
        )
        assert "the source is untouched" in failure.message
        [backup] = (tmp_path / "out").glob("*-backup-*.jsonl")
        assert f"ci-tools memory undo {backup} --apply" in (failure.hint or "")
        assert state(dev.client()) == before_source
        assert not backup.read_bytes().startswith(b"{")  # encrypted, the plan lines too
        assert "s3cret-target-pw" not in f"{failure.message} {failure.hint}"
        prod.start()
        assert main(["memory", "undo", str(backup), "--out", str(tmp_path / "dry")]) == 0
        assert (state(prod.client()) == before_target) == (written == 0)  # without --apply: a dry run
        assert main(["memory", "undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]) == 0
        printed = capsys.readouterr()
        assert "s3cret-target-pw" not in printed.out + printed.err
        assert state(prod.client()) == before_target


def test_the_resume_after_a_drop_finishes_the_copy_and_its_backup_undoes_only_the_rest(
    redis_pair, monkeypatch, tmp_path
):
    """Held: the resume plans the written batch as identical and writes the rest; undoing the resume's
    backup and then the first one's brings the target back exactly."""
    dev, _ = redis_pair
    total = BATCH + 1
    with RedisServer(persist=True) as prod:
        prod.client().set("prod:meta:env", "production")
        dev.client().set("dev:meta:env", "staging")
        seed_bulk(dev.client(), prod.client(), total)
        monkeypatch.setenv("SOURCE_REDIS_URL", dev.url)
        monkeypatch.setenv("TARGET_REDIS_URL", prod.url)
        before_target = state(prod.client())

        def drop(name: str, n: int) -> None:
            if name == "batch" and n == 1:
                prod.kill()

        first = tmp_path / "first"
        with pytest.raises(RemoteError, match=f"after {BATCH} of {total} keys"):
            copy_user(context(), request(first, patterns=BULK, uncovered="ignore", policy="replace", on_event=drop))
        prod.start()
        resumed = copy_user(context(), request(tmp_path / "again", patterns=BULK, uncovered="ignore", policy="replace"))
        assert resumed.counts() == {"identical": BATCH, **({"create": 1} if BATCH % 7 else {"replace": 1})}
        assert resumed.verified == total
        assert resumed.backup is not None
        undo_backup(context(), resumed.backup, tmp_path / "undo1")
        [backup] = (first / "out").glob("*-backup-*.jsonl")
        _, _, left = undo_backup(context(), backup, tmp_path / "undo2")
        assert not left
        assert state(prod.client()) == before_target


# -- memory diff is copy's dry run: its output and exit codes against copy's, policy by policy ------


def _plan(capsys, *args: str) -> tuple[int, list[tuple[str, str]]]:
    code = main(["memory", *args, "--json"])
    document = json.loads(capsys.readouterr().out)
    return code, [(row["target_key"], row["action"]) for row in document["plan"]]


def test_diff_says_what_copys_fail_policy_dry_run_says_and_exits_one_only_when_something_differs(
    memory_envs, tmp_path, capsys
):
    _, prod = memory_envs
    prod.client().rpush(f"prod:memory:{USER}", "something else")  # a conflict
    prod.client().hset(f"prod:user:{USER}:profile", mapping={"first_seen": "1", "last_seen": "2", "name": "Ada"})
    before = state(prod.client())
    out = tmp_path / "out"
    code, diff = _plan(capsys, "diff", *ROUTE)
    assert code == 1
    actions = dict(diff)
    assert actions[f"prod:memory:{USER}"] == "conflict"
    assert actions[f"prod:user:{USER}:profile"] == "identical"
    assert actions[f"prod:user:{USER}:history"] == "create"
    for policy, word in (("fail", "conflict"), ("skip", "skip"), ("replace", "replace")):
        code, copied = _plan(capsys, "copy", *ROUTE, "--on-conflict", policy, "--out", str(out))
        assert code == 0  # a dry run of copy never fails on what it would do
        assert copied == [(k, word if a == "conflict" else a) for k, a in diff]
    # diff takes no policy: it is always the fail policy's view
    with pytest.raises(SystemExit) as usage:
        main(["memory", "diff", *ROUTE, "--on-conflict", "replace"])
    assert usage.value.code == 2
    capsys.readouterr()
    assert state(prod.client()) == before
    assert not out.exists() or not list(out.iterdir())
    copy_user(context(), request(tmp_path, policy="replace"))
    code, diff = _plan(capsys, "diff", *ROUTE)
    assert code == 0 and {a for _, a in diff} == {"identical"}


# -- two stages, the source and the target changing between ---------------------------------------


def test_a_two_stage_copy_writes_its_plans_snapshot_though_the_source_changed_and_records_those_guards(
    memory_envs, tmp_path
):
    """Held: the write stage writes what the plan read, never the source as it is now; the move record
    vouches for the snapshot's payloads (read from the file in every stage), so the source's change
    shows as a difference afterwards, and the source is never written by the copy."""
    dev, prod = memory_envs
    source = dev.client()
    planned = source.dump(f"dev:memory:{USER}")
    copy_user(context(), request(tmp_path, stage=Stage.PLAN))
    assert prod.client().dbsize() == 1  # only the marker: a plan writes nothing
    source.rpush(f"dev:memory:{USER}", "said after the plan")
    source.rpush(f"dev:user:{USER}:history", "a message after the plan")
    after_change = state(source)
    outcome = copy_user(context(), request(tmp_path, stage=Stage.WRITE))
    assert outcome.counts() == {"create": 3}
    assert prod.client().lrange(f"prod:memory:{USER}", 0, -1) == [b"likes tea", b"sister Mia"]
    assert prod.client().llen(f"prod:user:{USER}:history") == 2
    record = moved.read(prod.client(), "prod:", USER)
    assert record is not None
    assert record.guards[f"dev:memory:{USER}".encode()] == fingerprint(planned)
    assert state(source) == after_change


def test_a_two_stage_copy_leaves_a_target_key_changed_between_its_stages_and_names_it(memory_envs, tmp_path):
    """Held: the compare-and-set guards come from the plan's backup; a key the bot wrote between the
    stages is left, named, kept out of the move record, and the undo leaves it too."""
    _, prod = memory_envs
    target = prod.client()
    copy_user(context(), request(tmp_path, stage=Stage.PLAN))
    target.rpush(f"prod:memory:{USER}", "the new bot heard this between the stages")
    between = state(target)
    outcome = copy_user(context(), request(tmp_path, stage=Stage.WRITE))
    assert outcome.changed == [f"prod:memory:{USER}".encode()]
    assert target.lrange(f"prod:memory:{USER}", 0, -1) == [b"the new bot heard this between the stages"]
    record = moved.read(target, "prod:", USER)
    assert record is not None and f"dev:memory:{USER}".encode() not in record.guards
    assert outcome.backup is not None
    _, _, left = undo_backup(context(), outcome.backup, tmp_path / "undo")
    assert left == [f"prod:memory:{USER}".encode()]
    assert state(target) == between


# -- send-back's guards: fingerprint(DUMP) through the reader vs the server's own SHA-1 ------------

SERVER_SHA1 = """
local out = {}
for i, key in ipairs(KEYS) do
  local dump = redis.call('DUMP', key)
  if dump == false then out[i] = '' else out[i] = redis.sha1hex(dump) end
end
return out
"""


@pytest.mark.parametrize("kind", ["redis", "valkey"])
def test_the_client_side_guard_equals_the_servers_for_every_type_a_stream_with_groups_and_a_big_key(kind):
    """Held: the guard send-back records is the one the write's Lua compares (``redis.sha1hex`` of the
    DUMP), for every type, an absent key, a stream with a consumer group and pending entries, and a
    key of 200,000 elements (past one read batch of payload)."""
    if not server_available(kind):
        pytest.skip(f"no {kind} server here")
    with RedisServer(kind=kind) as server:
        client = server.client()
        seed_all_types(client)
        stream = f"dev:all:{USER}:stream"
        client.xgroup_create(stream, "bots", id="0")
        client.xreadgroup("bots", "old-bot", {stream: ">"}, count=1)
        big = f"dev:all:{USER}:big"
        for start in range(0, 200_000, 20_000):
            client.rpush(big, *(b"m%d" % i for i in range(start, start + 20_000)))
        keys = [*sorted(client.scan_iter(match=f"dev:all:{USER}:*")), b"dev:absent"]
        expected = [g.decode() for g in client.eval(SERVER_SHA1, len(keys), *keys)]
        assert fingerprints(client, keys) == expected
        assert expected[-1] == ""


def test_a_consumer_group_change_alone_moves_the_guard_and_the_write_leaves_that_key(redis_server):
    """Held: the reader compares a stream by its entries (XRANGE), but the guard is the DUMP's, which
    holds the groups: a stream whose only change is a consumer reading it is 'changed', not overwritten."""
    client = redis_server.client()
    client.xadd("s", {"text": "hello"}, id="1-1")
    client.xgroup_create("s", "bots", id="0")
    [guard] = fingerprints(client, [b"s"])
    client.xreadgroup("bots", "old-bot", {"s": ">"}, count=1)  # the old bot read it: its PEL changed
    [after] = fingerprints(client, [b"s"])
    assert after != guard
    writer = Writer(client)
    [record] = read_records(client, [b"s"])
    writer.write_batch([(b"s", record, guard)])
    assert writer.result.changed == [b"s"] and not writer.result.written


# -- a restore point, restored through the rehearsal's RestoreRequest, and undone ------------------


def test_a_restore_point_restored_as_the_rehearsal_builds_its_request_is_exact_and_undoes(redis_server, tmp_path):
    """Held: RestoreRequest is JobOptions now, its policy a field defaulting to replace; the rehearsal's
    keyword construction restores one user's damaged keys DUMP-equal (TTL kept), leaves the other
    user's damage alone, and the restore's backup undoes it exactly. Encrypted files throughout."""
    client = redis_server.client()
    seed_user(client, "prod:")
    seed_all_types(client, "prod:")
    config = context().config
    env = config.env("production")
    key = Fernet.generate_key().decode()  # production's MEMORY_SNAPSHOT_KEY
    fernet = Fernet(key)
    mine = sorted(k for k in client.scan_iter(match="prod:*") if str(USER).encode() in k)
    before = {k: client.dump(k) for k in mine}
    max_mb = config.memory_backup.max_mb
    taken = restore_points.take_snapshot(
        client, env, tmp_path / "before", server="sandbox", max_mb=max_mb, protected=(), fernet=fernet
    )
    assert not taken.path.read_bytes().startswith(b"{")
    client.delete(f"prod:memory:{USER}")
    client.rpush(f"prod:memory:{USER}", "the release overwrote this")
    client.set(f"prod:all:{USER}:string", "overwritten")  # its TTL gone too
    client.rpush(f"prod:memory:{OTHER}", "their own damage")
    damaged = state(client)
    request = restore_points.RestoreRequest(
        snapshot=taken.path, env=env, out_dir=tmp_path / "restore", apply=True, user_id=USER
    )
    assert request.policy is Conflict.REPLACE
    outcome = restore_points.restore_point(request, client, "sandbox", fernet)
    assert {k: client.dump(k) for k in mine} == before
    assert client.pttl(f"prod:all:{USER}:string") > 0
    assert client.lrange(f"prod:memory:{OTHER}", 0, -1)[-1] == b"their own damage"
    assert sorted(outcome.written) == sorted([f"prod:memory:{USER}".encode(), f"prod:all:{USER}:string".encode()])
    assert outcome.backup is not None
    with pytest.raises(ConfigError, match="is encrypted"):
        undo_backup(context(TARGET_REDIS_URL=redis_server.url), outcome.backup, tmp_path / "undo-without-key")
    ctx = context(TARGET_REDIS_URL=redis_server.url, MEMORY_SNAPSHOT_KEY=key)
    undo_backup(ctx, outcome.backup, tmp_path / "undo", allow_other_server=True)
    assert state(client) == damaged


# -- send-back: its undo hint, and a write to the old bot between the plan and the write -----------


def _send_back_with_hook(monkeypatch, out, hook) -> int:
    from ci_tools.pipeline import send_back

    real_between = send_back.ops.between
    monkeypatch.setattr(send_back.ops, "between", lambda *a, **k: real_between(*a, **k, on_event=hook))
    return main(["send-back", "--user-id", str(USER), "--apply", "--out", str(out)])


def test_a_send_back_whose_old_bot_redis_drops_mid_write_names_send_backs_own_undo(
    moved_world, monkeypatch, tmp_path, capsys
):
    """Broke: the job's hint named ``ci-tools memory undo <backup>`` for a send-back, whose undo is
    ``send-back --undo <backup> --apply`` (it keeps the send-back record true; memory undo would
    also need TARGET_REDIS_URL, which production's environment does not hold for the old bot)."""
    old = moved_world.redis["staging"]

    def drop(event: str, n: int) -> None:
        if event == "planned":
            old.kill()

    try:
        assert _send_back_with_hook(monkeypatch, tmp_path, drop) == 4
    finally:
        old.start()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "the target stopped answering" in err and "the source is untouched" in err
    [backup] = tmp_path.glob("*-backup-*.jsonl")
    assert f"ci-tools send-back --undo {backup} --apply" in err
    assert "memory undo" not in err


def test_a_message_to_the_old_bot_after_send_backs_last_check_is_left_and_named(
    moved_world, monkeypatch, tmp_path, capsys
):
    """Held: the guards of the old bot's keys come from the backup's read (client-side now); the user
    writing to the old bot after the last check (between the backup and the write) is left by the
    compare-and-set, named, and the undo leaves it too."""
    world = moved_world
    said = "told the old bot between the plan and the write"

    def meanwhile(event: str, n: int) -> None:
        if event == "planned":
            move_window.talk(world, "staging", f"/remember {said}")

    code = _send_back_with_hook(monkeypatch, tmp_path / "back", meanwhile)
    out = capsys.readouterr().out
    assert code == 0, out
    dev = world.redis["staging"].client()
    assert said.encode() in b"".join(dev.lrange(f"memory:{USER}", 0, -1))
    assert f"memory:{USER}" in out
    [backup] = (tmp_path / "back").glob("*-backup-*.jsonl")
    assert main(["send-back", "--undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]) == 0
    assert said.encode() in b"".join(dev.lrange(f"memory:{USER}", 0, -1))


def test_a_two_stage_restore_point_leaves_a_key_the_bot_changed_between_its_stages(redis_server, tmp_path):
    """Held: RestoreRequest's stage is JobOptions' now; the write stage follows the plan's backup, so a
    key the bot wrote between the stages is left and named, the rest restored DUMP-equal."""
    client = redis_server.client()
    seed_user(client, "prod:")
    config = context().config
    env = config.env("production")
    taken = restore_points.take_snapshot(
        client, env, tmp_path / "before", server="sandbox", max_mb=config.memory_backup.max_mb, protected=()
    )
    history = client.dump(f"prod:user:{USER}:history")
    client.rpush(f"prod:user:{USER}:history", "the bad release wrote this")
    client.rpush(f"prod:memory:{USER}", "the bad release wrote this too")

    def restore(stage: Stage) -> object:
        request = restore_points.RestoreRequest(
            snapshot=taken.path, env=env, out_dir=tmp_path / "restore", apply=True, user_id=USER, stage=stage
        )
        return restore_points.restore_point(request, client, "sandbox", None)

    restore(Stage.PLAN)
    client.rpush(f"prod:memory:{USER}", "the user, between the stages")
    outcome = restore(Stage.WRITE)
    assert outcome.changed == [f"prod:memory:{USER}".encode()]  # type: ignore[attr-defined]
    assert client.lrange(f"prod:memory:{USER}", 0, -1)[-1] == b"the user, between the stages"
    assert client.dump(f"prod:user:{USER}:history") == history


# -- cross-version (Valkey 9 → Redis 7): the typed path at a batch boundary, dropped, resumed, undone --


def test_a_cross_version_copy_dropped_after_its_first_batch_resumes_and_undoes_exactly(monkeypatch, tmp_path):
    """Held: the fallback (typed writes under a temporary name, renamed over a guarded key) cuts at the
    same 1,000 as the RESTORE path; a target killed after the first batch leaves whole keys only (no
    temporary name behind), the resume writes the one left, and the two undos give the target back."""
    for kind in ("valkey", "redis"):
        if not server_available(kind):
            pytest.skip(f"needs a Valkey and a Redis server; no {kind} server here")
    total = BATCH + 1
    with RedisServer(kind="valkey") as valkey, RedisServer(kind="redis", persist=True) as old:
        if old.version() >= "7.4":
            pytest.skip(f"redis-server {old.version()} may accept Valkey 9 payloads")
        valkey.client().set("dev:meta:env", "staging")
        old.client().set("prod:meta:env", "production")
        seed_bulk(valkey.client(), old.client(), total)
        monkeypatch.setenv("SOURCE_REDIS_URL", valkey.url)
        monkeypatch.setenv("TARGET_REDIS_URL", old.url)
        before_source, before_target = state(valkey.client()), state(old.client())

        def drop(name: str, n: int) -> None:
            if (name, n) == ("batch", 1):
                old.kill()

        first = tmp_path / "first"
        with pytest.raises(RemoteError, match=f"after {BATCH} of {total} keys were written"):
            copy_user(context(), request(first, patterns=BULK, uncovered="ignore", policy="replace", on_event=drop))
        old.start()
        assert not [k for k in old.client().scan_iter() if k.endswith(b"ci-tools-partial")]
        resumed = copy_user(context(), request(tmp_path / "again", patterns=BULK, uncovered="ignore", policy="replace"))
        assert resumed.fallback and resumed.verified == total and len(resumed.written) == 1
        assert resumed.backup is not None
        undo_backup(context(), resumed.backup, tmp_path / "undo1")
        [backup] = (first / "out").glob("*-backup-*.jsonl")
        _, _, left = undo_backup(context(), backup, tmp_path / "undo2")
        assert not left
        assert state(old.client()) == before_target
        assert state(valkey.client()) == before_source


def test_a_cross_version_batch_dropped_between_its_build_and_its_rename_is_undone_exactly(monkeypatch, tmp_path):
    """The target dies mid-batch: the typed values are built under their temporary names, the guarded
    rename never runs. The message counts none of that batch written; the undo must leave the target
    exactly as before (no temporary key of the user's left on it)."""
    for kind in ("valkey", "redis"):
        if not server_available(kind):
            pytest.skip(f"needs a Valkey and a Redis server; no {kind} server here")
    with RedisServer(kind="valkey") as valkey, RedisServer(kind="redis", persist=True) as old:
        if old.version() >= "7.4":
            pytest.skip(f"redis-server {old.version()} may accept Valkey 9 payloads")
        valkey.client().set("dev:meta:env", "staging")
        old.client().set("prod:meta:env", "production")
        seed_bulk(valkey.client(), old.client(), 20)
        monkeypatch.setenv("SOURCE_REDIS_URL", valkey.url)
        monkeypatch.setenv("TARGET_REDIS_URL", old.url)
        before_target = state(old.client())
        real_rename = Writer._swap

        def dies_before_the_rename(self, swaps):
            old.kill()
            return real_rename(self, swaps)

        monkeypatch.setattr(Writer, "_swap", dies_before_the_rename)
        with pytest.raises(RemoteError, match="after 0 of 20 keys were written") as error:
            copy_user(context(), request(tmp_path, patterns=BULK, uncovered="ignore", policy="replace"))
        assert "memory undo" in (error.value.hint or "")
        monkeypatch.setattr(Writer, "_swap", real_rename)
        old.start()
        [backup] = (tmp_path / "out").glob("*-backup-*.jsonl")
        undo_backup(context(), backup, tmp_path / "undo")
        assert state(old.client()) == before_target


def test_a_two_stage_copy_refused_for_a_conflict_names_a_fix_that_works(memory_envs, tmp_path, capsys):
    """Broke: ``--stage plan`` under the fail policy is refused for a conflict, its files left in --out;
    the hint's 'rerun with --on-conflict replace' at ``--stage write`` was refused again (a write follows
    its plan's policy), and a new plan into the same --out made the write refuse 'found 2' and send the
    user back to --stage plan. The hint now says where the rerun must start and go."""
    _, prod = memory_envs
    prod.client().rpush(f"prod:memory:{USER}", "other data")
    out = tmp_path / "out"
    copy = ("copy", *ROUTE, "--apply")
    assert main(["memory", *copy, "--out", str(out), "--stage", "plan"]) == 5
    err = capsys.readouterr().err
    one_line(err)
    assert f"from --stage plan into an --out other than {out}" in err
    assert main(["memory", *copy, "--out", str(out), "--stage", "write", "--on-conflict", "replace"]) == 5
    assert f"from --stage plan into an --out other than {out}" in capsys.readouterr().err
    fresh = tmp_path / "fresh"  # as the hint says
    assert main(["memory", *copy, "--out", str(fresh), "--stage", "plan", "--on-conflict", "replace"]) == 0
    assert main(["memory", *copy, "--out", str(fresh), "--stage", "write", "--on-conflict", "replace"]) == 0
    capsys.readouterr()
    assert prod.client().lrange(f"prod:memory:{USER}", 0, -1) == [b"likes tea", b"sister Mia"]


@pytest.mark.xfail(
    strict=True,
    reason="the cross-version fallback rebuilds a stream from its entries (XADD) and verifies entries only: "
    "its consumer groups (and their pending entries) are dropped, yet the copy reports the key verified",
)
def test_a_stream_with_consumer_groups_crosses_versions_with_its_groups(valkey_to_old_redis, tmp_path):
    valkey, old = valkey_to_old_redis
    source = valkey.client()
    stream = f"dev:conversation:{USER}"
    source.xadd(stream, {"text": "hello"}, id="1-1")
    source.xgroup_create(stream, "bots", id="0")
    source.xreadgroup("bots", "old-bot", {stream: ">"}, count=1)
    outcome = copy_user(context(), request(tmp_path))
    assert outcome.fallback and f"prod:conversation:{USER}".encode() in outcome.written
    groups = old.client().xinfo_groups(f"prod:conversation:{USER}")
    assert [(g["name"], g["pending"]) for g in groups] == [(b"bots", 1)]


def test_in_actions_a_copy_whose_target_drops_names_the_workflows_undo_not_a_runners_file(
    memory_envs, monkeypatch, tmp_path, capsys
):
    """Broke: in Actions the failed write step's hint named ``memory undo <a file on the runner>``,
    gone with the runner; the undo is the workflow's, by this run's id (its artifact was kept before
    the write), as the report of a finished write already says."""
    _, prod = memory_envs
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_RUN_ID", "4711")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    monkeypatch.setenv("MEMORY_SNAPSHOT_KEY", Fernet.generate_key().decode())
    real_write = Writer.write_batch

    def drops_first(self, items):
        prod.stop()
        return real_write(self, items)

    monkeypatch.setattr(Writer, "write_batch", drops_first)
    try:
        assert main(["memory", "copy", *ROUTE, "--apply", "--out", str(tmp_path / "out")]) == 4
    finally:
        prod.start()
    err = capsys.readouterr().err
    assert "the target stopped answering" in err
    assert "Actions → migrate-memory → Run workflow: mode undo (after undo-dry-run), run_id 4711" in err
    assert "memory undo" not in err
