"""Attacks on the kit's arrival record as finish-move, send-back and the memory copy use it (runbook
steps 6-9, docs/CONTRACT.md "the arrival record"), in the world of tests/pipeline/test_move_window.py:
the daily user's memory copied to production and their first day on the new bot behind them."""

from __future__ import annotations

import json

from ci_tools.__main__ import main
from ci_tools.memory.model import Conflict
from ci_tools.memory.ops import between, copy_user
from sandbox.world import World
from tests.pipeline.test_move_window import USER, arrived, finish, finish_refused, keys, moved, talk
from tests.support import context

__all__ = ["moved"]  # the fixture, for pytest


def move_forward_again(world: World, out) -> None:
    """Runbook, "the way back": once the new bot is fixed, step 6 again with on_conflict replace."""
    ctx = context(SOURCE_REDIS_URL=world.redis["staging"].url, TARGET_REDIS_URL=world.redis["production"].url)
    copy = between(
        ctx.config, USER, "staging", "production", out, apply=True, legacy_source=True, policy=Conflict.REPLACE
    )
    copy_user(ctx, copy)


def test_a_user_sent_back_and_moved_forward_again_waits_a_new_window(moved, capsys, tmp_path):
    """Production's arrival record survives a send-back and the move forward again (the copy leaves
    it behind, send-back never writes production): its ``since`` is the first stay's. The window
    counts from their last message to the old bot instead, no earlier."""
    world = moved
    arrived(world, 4)  # their first stay on the new bot began four days ago
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "back")]) == 0
    talk(world, "staging", "hello again")  # days on the old bot while the new one is fixed
    move_forward_again(world, tmp_path / "again")
    talk(world, "production", "I am back")  # their first message to the new bot after the new move
    capsys.readouterr()
    assert "the move may finish from" in finish_refused(world, capsys)


def test_an_owner_profile_that_is_not_a_hash_is_no_arrival_and_no_traceback(moved, capsys):
    """The owner's bot is not ours: its own ``user:<id>:profile`` may be a JSON string. finish-move reads
    that name only as an old mindmate's fallback; another type there is not a record, never a crash."""
    world = moved
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    arrived(world, 4)
    prod.delete(f"prod:user:{USER}:profile")
    prod.set(f"prod:user:{USER}:profile", json.dumps({"name": "Ada", "last_seen": "yesterday"}))
    dev.delete(f"user:{USER}:profile")
    dev.set(f"user:{USER}:profile", json.dumps({"name": "Ada"}))
    assert finish() == 0, capsys.readouterr().err
    assert "the move is finished" in capsys.readouterr().out


def test_an_arrival_key_of_another_type_is_refused_in_one_line(moved, capsys):
    """Something else wrote the record's name (a bot's own key, a hand edit): one line naming it."""
    world = moved
    prod = world.redis["production"].client()
    prod.delete(f"prod:kit:arrival:{USER}")
    prod.set(f"prod:kit:arrival:{USER}", "not a hash")
    err = finish_refused(world, capsys).strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"prod:kit:arrival:{USER}" in err


def test_undo_of_a_send_back_takes_the_carried_record_away_again(moved, capsys, tmp_path):
    """The old bot kept no record of them before the send-back: its undo leaves none, so the old bot
    does not go on naming the new bot (finish-move would read them as sent back forever)."""
    world = moved
    dev = world.redis["staging"].client()
    record = f"kit:arrival:{USER}"
    assert not dev.exists(record)
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "back")]) == 0
    assert dev.exists(record)
    undo = ["send-back", "--undo", str(tmp_path / "back"), "--apply", "--json", "--out", str(tmp_path / "u")]
    capsys.readouterr()
    assert main(undo) == 0
    assert json.loads(capsys.readouterr().out)["applied"] is True
    assert not dev.exists(record)
    arrived(world, 4)
    assert finish() == 0  # on the new bot for four days, never sent back after all


def test_the_migration_copy_never_carries_or_changes_the_arrival_record(moved, tmp_path):
    """The old bot's own record (it serves the daily user through the kit) stays behind, and
    production's stays as the new bot's kit wrote it: byte for byte, whatever the copy's policy."""
    world = moved
    prod = world.redis["production"].client()
    talk(world, "staging", "one more to the old bot")  # the old bot's kit records them as its own
    assert world.redis["staging"].client().exists(f"kit:arrival:{USER}")
    before = keys(prod, f"prod:kit:arrival:{USER}")
    assert before
    move_forward_again(world, tmp_path / "again")
    assert keys(prod, f"prod:kit:arrival:{USER}") == before


def test_finish_move_output_names_no_secret_and_no_user_text(moved, capsys, tmp_path):
    world = moved
    arrived(world, 4)
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path)]) == 0
    talk(world, "staging", "my secret diary entry")
    capsys.readouterr()
    assert finish() == 2
    said = capsys.readouterr()
    text = said.out + said.err
    secrets = [world.redis["staging"].url, world.redis["production"].url, world.bots["production"].token]
    assert not [s for s in secrets if s in text] and "diary" not in text


def test_a_user_sent_back_who_writes_once_more_to_the_new_bot_is_still_sent_back(moved, capsys, tmp_path):
    """They had not read "Let's continue here" yet and wrote to the new bot once more. The old bot
    still holds the new bot's record (carried by send-back; its kit makes it its own at their first
    message there): they were sent back, and finishing now takes that bot away from them."""
    world = moved
    arrived(world, 4)
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path)]) == 0
    talk(world, "production", "one more thing")
    capsys.readouterr()
    err = finish_refused(world, capsys)
    assert "sent back" in err and len(err.strip().splitlines()) == 1


def test_a_user_writing_to_the_old_bot_while_send_back_writes_keeps_the_old_bots_record(
    moved, capsys, tmp_path, monkeypatch
):
    """The race: the send-back has backed up the old bot's keys (no record there yet) when the user
    writes to the old bot, whose kit records them as its own. The compare-and-set write leaves that
    record alone, and finish-move sees them on the old bot."""
    from ci_tools.pipeline import send_back

    world = moved
    arrived(world, 4)
    real_between = send_back.ops.between

    def writing_meanwhile(event: str, n: int) -> None:
        if event == "planned":
            talk(world, "staging", "are you there?")

    def between_with_hook(*args, **kwargs):
        return real_between(*args, **kwargs, on_event=writing_meanwhile)

    monkeypatch.setattr(send_back.ops, "between", between_with_hook)
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path)]) == 0
    old_bot = world.bots["staging"].token.split(":", 1)[0].encode()
    assert world.redis["staging"].client().hget(f"kit:arrival:{USER}", "bot_id") == old_bot
    capsys.readouterr()
    assert finish() == 2
    assert "they are on the old bot" in capsys.readouterr().err


def test_a_bot_on_the_kit_whose_redis_refuses_eval_is_told_why_it_has_no_record(moved, capsys):
    """The new bot runs the kit, but its Redis allows no EVAL (a provider's ACL): the kit keeps no record
    and logs it. The refusal must not only send the owner to a kit line their bot already has."""
    world = moved
    prod = world.redis["production"].client()
    prod.delete(f"prod:kit:arrival:{USER}", f"prod:user:{USER}:profile")
    prod.execute_command("ACL", "SETUSER", "default", "-eval", "-evalsha")
    talk(world, "production", "hello")  # answered all the same
    assert not prod.exists(f"prod:kit:arrival:{USER}")
    assert finish() == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "arrival record not kept" in err and "EVAL" in err


def test_an_owners_wide_memory_pattern_does_not_carry_the_arrival_record_in_a_migration(moved, tmp_path):
    """An owner's memory_patterns may hold a glob (``*:{user_id}``) that the record's name matches too.
    The copy still leaves the record behind (docs/CONTRACT.md): the new bot's record stays its own."""
    world = moved
    prod = world.redis["production"].client()
    talk(world, "staging", "one more to the old bot")  # the old bot's kit keeps its own record
    before = keys(prod, f"prod:kit:arrival:{USER}")
    ctx = context(SOURCE_REDIS_URL=world.redis["staging"].url, TARGET_REDIS_URL=world.redis["production"].url)
    staging = ctx.config.env("staging")
    copy = between(
        ctx.config,
        USER,
        "staging",
        "production",
        tmp_path / "wide",
        apply=True,
        legacy_source=True,
        policy=Conflict.REPLACE,
        patterns=(*staging.memory_patterns, "*:{user_id}"),
    )
    outcome = copy_user(ctx, copy)
    assert f"prod:kit:arrival:{USER}".encode() not in outcome.written
    assert keys(prod, f"prod:kit:arrival:{USER}") == before


def test_a_message_to_each_bot_within_one_second_is_no_send_back(moved, capsys):
    """The kit's clock is in whole seconds: the old bot's own record and the new bot's may name the same
    second (the rehearsal's /recall on each bot, a second apart or less). That is not a send-back; but
    a user who wrote to the old bot a minute ago still uses it, so the window counts from then."""
    world = moved
    arrived(world, 4)
    last = world.redis["production"].client().hget(f"prod:kit:arrival:{USER}", "last")
    old_bot = world.bots["staging"].token.split(":", 1)[0]
    world.redis["staging"].client().hset(
        f"kit:arrival:{USER}", mapping={"bot_id": old_bot, "since": last, "last": last}
    )
    assert finish() == 2
    err = capsys.readouterr().err
    assert "sent back" not in err and "on the old bot" not in err, err
    assert "3 days after user 424242's last message to @mindmate_dev_bot" in err
