"""Attacks on the move record (``ci_tools/memory/moved.py``): what the move's copy read, kept on
production, so the first send-back never overwrites what the user told the old bot after the move
without the owner's named choice (``--old-bot-changes replace``).

Each test is an attack. The ones that broke the change carry the fix they led to (see the commit
that added them), or a strict xfail naming the gap. Real parts: the sandbox's world (Redis servers,
the bots, the Telegram and Render stand-ins); a hook is the copy's own ``on_event``.
"""

from __future__ import annotations

import json

import pytest

from ci_tools.__main__ import main
from ci_tools.memory.model import Conflict, Stage
from ci_tools.memory.ops import undo_backup
from ci_tools.memory.servers import server_id
from ci_tools.memory.writer import fingerprints
from tests.pipeline import test_attacks_daily as daily
from tests.pipeline import test_move_window as move_window
from tests.support import context

USER = move_window.USER
moved = move_window.moved  # the world after the runbook's step 7 (the fixture, shared)
keys, talk, step_six = move_window.keys, move_window.talk, daily.step_six
LEEDS = "I moved to Leeds"
RECORD = "prod:meta:moved"


def send_back(out, *extra: str) -> int:
    return main(["send-back", "--user-id", str(USER), "--apply", "--out", str(out), *extra])


def told_old_bot(world) -> None:
    talk(world, "staging", f"/remember {LEEDS}")  # the old bot only, after the move's copy


def old_bot_knows_leeds(world) -> bool:
    return LEEDS.encode() in b"".join(world.redis["staging"].client().lrange(f"memory:{USER}", 0, -1))


def one_line(err: str) -> None:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


# -- two stages, the source changing between -----------------------------------------------------


def test_a_two_stage_move_whose_source_changed_between_plan_and_write_vouches_only_for_what_it_wrote(
    moved, capsys, tmp_path
):
    """Held: the write step writes the plan's snapshot, so the record names the plan's guards; what the
    user told the old bot between the two steps is not in production and counts as said."""
    world = moved
    step_six(world, tmp_path / "two", policy=Conflict.REPLACE, stage=Stage.PLAN)
    told_old_bot(world)
    step_six(world, tmp_path / "two", policy=Conflict.REPLACE, stage=Stage.WRITE)
    assert LEEDS not in talk(world, "production", "/recall")
    assert send_back(tmp_path / "back") == 2
    assert "more since the move's copy" in capsys.readouterr().err
    assert old_bot_knows_leeds(world)


def test_a_two_stage_send_back_refuses_at_its_write_step_what_the_user_said_after_its_plan(moved, capsys, tmp_path):
    """Held: the workflow's write step checks again, so a message to the old bot between the plan
    (uploaded as the artifact) and the write is not overwritten."""
    world = moved
    out = tmp_path / "back"
    assert send_back(out, "--stage", "plan") == 0
    told_old_bot(world)
    capsys.readouterr()
    assert send_back(out, "--stage", "write") == 2
    err = capsys.readouterr().err
    one_line(err)
    assert "more since the move's copy" in err and old_bot_knows_leeds(world)


# -- cancelled mid-write, then undone ------------------------------------------------------------


def test_a_move_cancelled_mid_write_and_undone_leaves_the_record_as_before(moved, capsys, tmp_path):
    """Held: the record is kept only after a verified write; the cancelled copy's backup keeps the
    field as it was, and its undo leaves production (record included) exactly as before."""
    world = moved
    told_old_bot(world)
    prod = world.redis["production"].client()
    before = keys(prod, "*")

    def cancelled(event: str, n: int) -> None:
        if event == "batch":
            raise KeyboardInterrupt  # what SIGINT raises, after the first batch is on the target

    with pytest.raises(KeyboardInterrupt):
        step_six(world, tmp_path / "cut", policy=Conflict.REPLACE, on_event=cancelled)
    assert LEEDS in talk(world, "production", "/recall")  # the batch was written
    [backup] = (tmp_path / "cut").glob("*-backup-*.jsonl")
    undo_backup(context(TARGET_REDIS_URL=world.redis["production"].url), backup, tmp_path / "undo")
    after = keys(prod, "*")
    # the /recall above touched the new bot's own keys (its profile, its arrival record): the undo
    # leaves those alone; the memory and the move record are as they were
    assert after[RECORD.encode()] == before[RECORD.encode()]
    assert after[f"prod:memory:{USER}".encode()] == before[f"prod:memory:{USER}".encode()]
    assert send_back(tmp_path / "back") == 2
    assert "more since the move's copy" in capsys.readouterr().err


# -- on_conflict skip: keys not moved are not vouched for ------------------------------------------


def test_a_move_with_on_conflict_skip_does_not_vouch_for_the_keys_it_skipped(moved, capsys, tmp_path):
    world = moved
    told_old_bot(world)
    _, outcome = step_six(world, tmp_path / "skip", policy=Conflict.SKIP)
    assert outcome.applied
    record = json.loads(world.redis["production"].client().hget(RECORD, str(USER)))
    assert f"memory:{USER}" not in record["guards"]  # production keeps its own: the old bot's was not moved
    assert LEEDS not in talk(world, "production", "/recall")
    assert send_back(tmp_path / "back") == 2
    assert f"memory:{USER}" in capsys.readouterr().err and old_bot_knows_leeds(world)


# -- undo of an undo -----------------------------------------------------------------------------


def test_an_undo_of_an_undo_puts_the_record_of_the_copy_back_with_its_keys(moved, capsys, tmp_path):
    """Held: the undo's own backup keeps the field as the undo found it (the copy's), so undoing the
    undo brings that copy's record back with its keys, and a send-back goes again."""
    world = moved
    told_old_bot(world)
    prod = world.redis["production"].client()
    original = prod.hget(RECORD, str(USER))
    ctx, outcome = step_six(world, tmp_path / "again", policy=Conflict.REPLACE)
    copied = prod.hget(RECORD, str(USER))
    state = keys(prod, "*")
    assert copied != original and outcome.backup is not None
    undone, _, _ = undo_backup(ctx, outcome.backup, tmp_path / "undo")
    assert prod.hget(RECORD, str(USER)) == original
    assert undone is not None
    undo_backup(ctx, undone, tmp_path / "redo")
    assert prod.hget(RECORD, str(USER)) == copied and keys(prod, "*") == state
    assert send_back(tmp_path / "back") == 0, capsys.readouterr().err
    assert LEEDS in talk(world, "staging", "/recall")  # production held it: sent back with the rest


# -- the record corrupted ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        "{not json",
        "[]",
        '{"at": "yesterday", "source": "x", "guards": {}}',
        '{"at": 1, "source": "x", "guards": []}',
        '{"at": Infinity, "source": "x", "guards": {}}',
        '{"at": NaN, "source": "x", "guards": {}}',
    ],
)
def test_a_corrupted_move_record_does_not_let_the_first_send_back_overwrite_without_a_word(
    moved, capsys, tmp_path, field
):
    """moved.read's word: a record that cannot be read means nothing is known to have moved, and every
    key the old bot holds counts as said. Broke: an unreadable record was read as no record, and the
    first send-back overwrote what the user told the old bot (Infinity: a traceback)."""
    world = moved
    told_old_bot(world)
    world.redis["production"].client().hset(RECORD, str(USER), field)
    code = send_back(tmp_path / "back")
    err = capsys.readouterr().err
    assert code == 2, err
    one_line(err)
    assert "more since the move's copy" in err and old_bot_knows_leeds(world)
    assert send_back(tmp_path / "anyway", "--old-bot-changes", "replace") == 0  # the owner's named choice
    assert "replaced as asked" in capsys.readouterr().out


@pytest.mark.parametrize("at", [10**12, -(10**12), 10**30])
def test_a_move_record_with_an_impossible_time_is_one_line_not_a_traceback(moved, capsys, tmp_path, at):
    world = moved
    told_old_bot(world)
    prod = world.redis["production"].client()
    record = json.loads(prod.hget(RECORD, str(USER)))
    prod.hset(RECORD, str(USER), json.dumps({**record, "at": at}))
    code = send_back(tmp_path / "back")
    err = capsys.readouterr().err
    assert code == 2, err
    one_line(err)
    assert old_bot_knows_leeds(world)


def test_a_move_record_of_another_type_on_production_is_one_line_and_nothing_is_written(moved, capsys, tmp_path):
    world = moved
    told_old_bot(world)
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    prod.delete(RECORD)
    prod.rpush(RECORD, "the new bot's own list")
    before = keys(dev, "*")
    assert send_back(tmp_path / "back") not in (0, 1)
    err = capsys.readouterr().err
    one_line(err)
    assert RECORD in err and keys(dev, "*") == before
    assert prod.lrange(RECORD, 0, -1) == [b"the new bot's own list"]


def test_an_undo_restores_a_record_field_that_is_not_utf8_byte_for_byte(moved, tmp_path):
    """The promise: an undo of a copy restores the field exactly as before the copy. Broke: the backup
    kept it decoded with replacement characters, so the undo wrote other bytes."""
    world = moved
    prod = world.redis["production"].client()
    prod.hset(RECORD, str(USER), b"\xff\xfe not the pipeline's")
    ctx, outcome = step_six(world, tmp_path / "again", policy=Conflict.REPLACE)
    assert outcome.backup is not None
    undo_backup(ctx, outcome.backup, tmp_path / "undo")
    assert prod.hget(RECORD, str(USER)) == b"\xff\xfe not the pipeline's"


# -- an old bot on the empty prefix ---------------------------------------------------------------


def test_an_old_bot_on_the_empty_prefix_with_its_own_meta_moved_is_one_line_and_nothing_is_written(
    moved, capsys, tmp_path
):
    """The send-back is a copy too: it keeps its own record on its target, the old bot, whose empty
    prefix puts ``meta:moved`` among the bot's own names."""
    world = moved
    dev = world.redis["staging"].client()
    dev.set("meta:moved", "the owner's own value")
    before = keys(dev, "*")
    code = send_back(tmp_path / "back")
    err = capsys.readouterr().err
    assert code not in (0, 1)
    one_line(err)
    assert "meta:moved" in err and keys(dev, "*") == before
    assert not list((tmp_path / "back").rglob("*.jsonl"))  # refused before the snapshot, too
    assert world.telegram.replies_to(world.bots["staging"], USER) == []


# -- keys that expire on the old bot after the move ------------------------------------------------


def test_a_key_that_expired_on_the_old_bot_after_the_move_is_not_overwritten_without_a_word(moved, capsys, tmp_path):
    """Redis cannot tell an expiry from a deletion the user asked for (/forget): a key the move read
    that is gone now counts as said (a refusal the owner can override), never as the pipeline's.
    A TTL alone changes no guard (DUMP carries no TTL)."""
    world = moved
    dev = world.redis["staging"].client()
    dev.expire(f"user:{USER}:profile", 3600)  # a TTL alone: not said
    assert send_back(tmp_path / "ttl", "--stage", "plan") == 0, capsys.readouterr().err
    dev.pexpire(f"memory:{USER}", 1)
    move_window.wait_until(lambda: not dev.exists(f"memory:{USER}"), "the old bot's key expired")
    assert send_back(tmp_path / "back") == 2
    assert f"memory:{USER}" in capsys.readouterr().err


# -- concurrent: the user writes to the old bot while the send-back runs ---------------------------


def test_a_user_writing_to_the_old_bot_between_the_check_and_the_backup_is_not_overwritten(
    moved, capsys, tmp_path, monkeypatch
):
    """Broke: the single-stage send-back checked before the copy read its backup; a message between
    the two was backed up and overwritten without the owner's choice. Now checked again at the
    copy's "planned" event (backup read, nothing written); later messages meet the compare-and-set."""
    from ci_tools.pipeline import send_back as pipeline

    world = moved
    real = pipeline.ops.copy_user

    def user_writes_first(ctx, copy):
        told_old_bot(world)  # after the check, before the copy reads the old bot's keys
        return real(ctx, copy)

    monkeypatch.setattr(pipeline.ops, "copy_user", user_writes_first)
    code = send_back(tmp_path / "back")
    err = capsys.readouterr().err
    assert code == 2 and old_bot_knows_leeds(world)
    one_line(err)
    assert "more since the move's copy" in err


# -- replace, then undo, then a send-back without the choice ---------------------------------------


def test_after_a_replacing_send_back_is_undone_a_plain_send_back_refuses_again(moved, capsys, tmp_path):
    """Broke: the undo recorded the keys it put back as the pipeline's, so what the user told the old
    bot after the move — replaced by the owner's choice, then brought back by the undo — was
    overwritten by the next send-back without the choice. The record now keeps what a replacing
    send-back replaced, and an undo that brings it back leaves it said."""
    world = moved
    told_old_bot(world)
    out = tmp_path / "replaced"
    assert send_back(out, "--old-bot-changes", "replace") == 0
    assert main(["send-back", "--undo", str(out), "--apply", "--out", str(tmp_path / "undo")]) == 0
    assert old_bot_knows_leeds(world)
    capsys.readouterr()
    assert send_back(tmp_path / "plain") == 2
    assert f"memory:{USER}" in capsys.readouterr().err and old_bot_knows_leeds(world)
    assert send_back(tmp_path / "again", "--old-bot-changes", "replace") == 0  # the choice, named again
    assert not old_bot_knows_leeds(world)


# -- the CLI's memory copy keeps the record; no secret in output ------------------------------------


def test_the_clis_memory_copy_keeps_the_record_naming_the_server_never_the_url(moved, capsys, tmp_path, monkeypatch):
    world = moved
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    prod.delete(RECORD)
    told_old_bot(world)
    staging_url, production_url = world.redis["staging"].url, world.redis["production"].url
    monkeypatch.setenv("SOURCE_REDIS_URL", staging_url)
    monkeypatch.setenv("TARGET_REDIS_URL", production_url)
    route = ["memory", "copy", "--user-id", str(USER), "--from", "staging", "--to", "production", "--apply"]
    route += ["--legacy-source", "--on-conflict", "replace", "--out", str(tmp_path / "cli")]
    assert main(route) == 0, capsys.readouterr().err
    said = capsys.readouterr()
    record = json.loads(prod.hget(RECORD, str(USER)))
    assert record["source"] == server_id(staging_url)
    names = sorted(record["guards"])
    assert f"memory:{USER}" in names
    assert [record["guards"][n] for n in names] == fingerprints(dev, [n.encode() for n in names])
    for secret in (staging_url, production_url):
        assert secret not in said.out + said.err + json.dumps(record)
    assert send_back(tmp_path / "back") == 0, capsys.readouterr().err  # moved forward: a send-back goes
    assert LEEDS in talk(world, "staging", "/recall")
