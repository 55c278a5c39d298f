"""The move's window against the stand-ins: send-back puts the daily user on their old bot with what
they told the new one, undo puts the old bot's keys back, and finish-move (runbook step 9) waits for the
window after their first message to the new bot, or goes when forced and says so.

The world is the runbook's after step 7: staging's bot is the daily user's old bot on their legacy
unprefixed keys, production runs the new bot, their memory was copied there, and they told the new
bot something the old one never heard.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from ci_tools.__main__ import main
from ci_tools.memory.ops import between, copy_user
from ci_tools.memory.writer import fingerprints
from sandbox.world import World
from tests.support import context, use, wait_until
from tests.workflows.scenarios import health, start_live

USER = 424242
TESTER = 5550001
NEW_FACT = "I walk the dog on Sundays now"


def keys(client, pattern: str) -> dict[bytes, bytes]:
    """Every key matching ``pattern``, by its DUMP: what a side holds, byte for byte."""
    return {key: client.dump(key) for key in sorted(client.scan_iter(match=pattern))}


@pytest.fixture
def moved(tmp_path, monkeypatch):
    with World(tmp_path / "world", step=0.05, legacy_staging=True) as world:
        monkeypatch.chdir(world.repo)
        dev = world.redis["staging"].client()
        now = int(time.time())
        dev.hset(f"user:{USER}:profile", mapping={"first_seen": now - 86400 * 90, "last_seen": now - 3600})
        dev.rpush(f"memory:{USER}", "I take my tea without sugar")
        world.telegram.start_chat(world.bots["staging"], USER)  # they have talked to the old bot for months
        start_live(world, "staging", world.commit("develop", "the old bot"))
        start_live(world, "production", world.commit("main", "the new bot"))
        values = {
            **world.secrets("production"),
            "STAGING_REDIS_URL": world.redis["staging"].url,
            "STAGING_TELEGRAM_BOT_TOKEN": world.bots["staging"].token,
            "STAGING_RENDER_SERVICE_ID": world.services["staging"].id,
            "STAGING_RENDER_API_KEY": world.render_keys["staging"],
        }
        use(monkeypatch, values)
        ctx = context(SOURCE_REDIS_URL=world.redis["staging"].url, TARGET_REDIS_URL=world.redis["production"].url)
        copy = between(ctx.config, USER, "staging", "production", tmp_path / "copy", apply=True, legacy_source=True)
        copy_user(ctx, copy)  # runbook step 6
        talk(world, "production", f"/remember {NEW_FACT}")  # day 1 on the new bot
        yield world


def arrived(world: World, days_ago: float) -> None:
    """The new bot's kit recorded their arrival ``days_ago``, their last message a minute ago (in the
    arrival record, and in mindmate's profile, whose last_seen finish-move reads too); their last
    message to the old bot came an hour before that arrival (finish-move counts the window from
    the later of the two)."""
    now = int(time.time())
    since = now - int(days_ago * 86400)
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    prod.hset(f"prod:kit:arrival:{USER}", mapping={"since": since, "last": now - 60})
    dev.hset(f"user:{USER}:profile", "last_seen", since - 3600)
    if dev.exists(f"kit:arrival:{USER}"):
        dev.hset(f"kit:arrival:{USER}", "last", since - 3600)
    prod.hset(f"prod:user:{USER}:profile", "last_seen", now - 60)
    as_copied(world)


def as_copied(world: World) -> None:
    """The old bot's keys, as set above, are what the move's copy read (their last message to the old
    bot came before it): production's move record (ci_tools/memory/moved.py) says so, as it would had
    the copy run after that message rather than before the test set it."""
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    record = json.loads(prod.hget("prod:meta:moved", str(USER)))
    names = list(record["guards"])
    record["guards"] = dict(zip(names, fingerprints(dev, [n.encode() for n in names]), strict=True))
    prod.hset("prod:meta:moved", str(USER), json.dumps(record))


def talk(world: World, env: str, text: str) -> str:
    world.telegram.send_user_message(world.bots[env], USER, text)
    return world.telegram.replies_to(world.bots[env], USER)[-1]


def test_send_back_puts_them_on_the_old_bot_with_what_they_told_the_new_one_and_undo_puts_it_back(
    moved, tmp_path, capsys
):
    world = moved
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    production_before, old_before = keys(prod, f"prod:*{USER}*"), keys(dev, f"*{USER}*")
    assert NEW_FACT.encode() not in dev.lrange(f"memory:{USER}", 0, -1)  # read, not asked: a message would be news
    sent = len(world.telegram.replies_to(world.bots["staging"], USER))

    assert main(["send-back", "--user-id", str(USER), "--out", str(tmp_path / "plan")]) == 0  # a dry run
    assert "@mindmate_dev_bot can serve user" in capsys.readouterr().out
    assert keys(dev, f"*{USER}*") == old_before

    out = tmp_path / "back"
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "@mindmate_dev_bot serves user 424242 again and told them: Let's continue here for now." in said
    told = world.telegram.replies_to(world.bots["staging"], USER)
    assert told[sent:] == ["Let's continue here for now."]  # one message, through the old bot
    assert keys(prod, f"prod:*{USER}*") == production_before  # production read, never written
    recall = talk(world, "staging", "/recall")
    assert NEW_FACT in recall and "I take my tea without sugar" in recall

    [backup] = out.glob("*-backup-*.jsonl")
    assert main(["send-back", "--undo", str(out), "--apply", "--json", "--out", str(tmp_path / "undo")]) == 0
    undone = json.loads(capsys.readouterr().out)
    # The /recall after the send-back made the old bot's kit record them as its own again (and may
    # have touched the profile's last_seen, a second later): that newer state is left alone and
    # named, or, when both /recall fell in one second, it equals the backup and needs no undo;
    # either way the old bot's record is its own. The remembered facts go back as they were.
    assert undone["applied"] is True and undone["records"] >= 2  # their memory and the record, at least
    left = set(undone["left_alone_changed"])
    assert left <= {f"kit:arrival:{USER}", f"user:{USER}:profile"}
    assert dev.hget(f"kit:arrival:{USER}", "bot_id") == world.bots["staging"].token.split(":")[0].encode()
    after = keys(dev, f"*{USER}*")
    assert after[f"memory:{USER}".encode()] == old_before[f"memory:{USER}".encode()]
    assert NEW_FACT not in talk(world, "staging", "/recall")
    assert keys(prod, f"prod:*{USER}*") == production_before
    assert NEW_FACT in talk(world, "production", "/recall")  # the new bot never lost it
    assert backup.exists()


def test_send_back_refuses_an_old_bot_that_would_not_serve_them_before_anything_is_written(moved, capsys, tmp_path):
    world = moved
    dev = world.redis["staging"].client()
    before = keys(dev, "*")
    service = world.services["staging"]
    service.env["TESTER_IDS"] = str(TESTER)
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "serves only its testers (TESTER_IDS), and user 424242 is not one of them" in err
    assert "add 424242 to TESTER_IDS on mindmate-dev" in err
    del service.env["TESTER_IDS"]
    service.env["MOVED_TO"] = "mindmate_companion_bot"
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path)]) == 2
    assert "answers everyone with https://t.me/mindmate_companion_bot (MOVED_TO)" in capsys.readouterr().err
    assert keys(dev, "*") == before and not list(tmp_path.glob("*.jsonl"))
    assert len(world.telegram.replies_to(world.bots["staging"], USER)) == 0  # nothing sent


def finish(*extra: str) -> int:
    return main(["finish-move", "--user-id", str(USER), "--tester-ids", str(TESTER), "--poll", "0.1", *extra])


def finish_refused(world: World, capsys: pytest.CaptureFixture[str]) -> str:
    """finish-move refused (exit 2), the old bot's service left as it was: what it said on stderr."""
    env_before = dict(world.services["staging"].env)
    assert finish() == 2
    assert world.services["staging"].env == env_before
    return capsys.readouterr().err


def test_finish_move_before_the_window_refuses_in_one_line_saying_when(moved, capsys):
    world = moved
    record = world.redis["production"].client().hgetall(f"prod:kit:arrival:{USER}")  # the kit's, day 1
    since = datetime.fromtimestamp(int(record[b"since"]), UTC)
    assert record[b"bot_id"] == world.bots["production"].token.split(":")[0].encode()
    err = finish_refused(world, capsys).strip()
    assert len(err.splitlines()) == 1
    may = since + timedelta(days=3)
    assert f"the move may finish from {may:%Y-%m-%d %H:%M} UTC, 3 days after user 424242's first message" in err
    assert "dispatch finish-move again then, or with force" in err


def test_finish_move_after_a_send_back_refuses_while_they_talk_to_the_old_bot(moved, capsys, tmp_path):
    world = moved
    # The window is over: they arrived four days ago, and last wrote to the new bot a minute ago.
    arrived(world, 4)
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path)]) == 0
    talk(world, "staging", "hello again")  # back on the old bot, now
    capsys.readouterr()
    err = finish_refused(world, capsys)
    assert "wrote to @mindmate_dev_bot after their last message to @mindmate_companion_bot" in err
    assert "they are on the old bot (sent back?)" in err


def test_finish_move_when_forced_goes_and_names_it_and_closes_the_cutover_window(moved, capsys):
    world = moved
    production = world.services["production"]
    production.env.update(
        PREVIOUS_TELEGRAM_BOT_TOKEN="123:old",
        PREVIOUS_BOT="@mywellnesscompanion_bot 123",
        CUTOVER_AT=datetime.now(UTC).replace(microsecond=0).isoformat(),
    )
    assert finish("--force") == 0
    out = capsys.readouterr().out
    assert "forced (the move's window was not over): the move may finish from" in out
    env = world.services["staging"].env
    assert (env["KEY_PREFIX"], env["TESTER_IDS"], env["PRODUCTION_BOT"]) == (
        "dev:",
        str(TESTER),
        "mindmate_companion_bot",
    )
    assert env["MOVE_FINISHED"].endswith(f"@mindmate_companion_bot user {USER}")
    wait_until(lambda: health(world, "staging")["key_prefix"] == "dev:", "the old bot reading dev:")
    assert talk(world, "staging", "/recall") == "https://t.me/mindmate_companion_bot"  # a signpost for them now
    assert "PREVIOUS_TELEGRAM_BOT_TOKEN" not in production.env and "CUTOVER_FINISHED" in production.env
    assert "can no longer come back with cutover --back" in out
    assert "remove now: SOURCE_REDIS_URL from production's GitHub environment" in out
    assert f"ci-tools init --staging-prefix dev: --tester-ids {TESTER}" in out
    assert main(["send-back", "--user-id", str(USER), "--out", "x"]) == 2  # the way back is closed
    assert "the move was finished on" in capsys.readouterr().err


def test_finish_move_after_the_window_goes_without_force(moved, capsys):
    world = moved
    arrived(world, 4)
    assert finish() == 0
    out = capsys.readouterr().out
    assert "forced" not in out and "the move is finished" in out
    assert "the cutover's rollback window was closed already" in out  # no cutover recorded in this world


def test_send_back_twice_sends_one_message_and_the_second_run_writes_nothing(moved, capsys, tmp_path):
    """A re-dispatched apply (a double click, a rerun of the green run) finds the old bot's keys
    already equal to production's: nothing to write, and the user gets no second message."""
    world = moved
    dev = world.redis["staging"].client()
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    once = list(world.telegram.replies_to(world.bots["staging"], USER))
    assert once == ["Let's continue here for now."]
    after_first = keys(dev, f"*{USER}*")
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "two")]) == 0
    out = capsys.readouterr().out
    assert "already" in out and "no second message" in out
    assert world.telegram.replies_to(world.bots["staging"], USER) == once
    assert keys(dev, f"*{USER}*") == after_first


def test_send_back_refuses_when_the_old_bots_redis_is_productions_own(moved, capsys, tmp_path, monkeypatch):
    """A pasted secret mix-up: SOURCE_REDIS_URL set to production's own Redis. The copy would write
    the old bot's unprefixed keys into production's Redis; it is refused before any write."""
    world = moved
    prod = world.redis["production"].client()
    before = keys(prod, "*")
    monkeypatch.setenv("STAGING_REDIS_URL", world.redis["production"].url)
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "reaches production's own Redis" in err and world.redis["production"].url not in err
    assert keys(prod, "*") == before
    assert world.telegram.replies_to(world.bots["staging"], USER) == []


def test_finish_move_right_after_a_send_back_refuses_before_they_wrote_to_the_old_bot(moved, capsys, tmp_path):
    """Sent back, not written yet: the old bot holds production's copy of the kit's arrival record
    (the new bot's, the same last message). Finishing now would take away the bot they were just
    sent to; it is refused."""
    world = moved
    arrived(world, 4)
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path)]) == 0
    record = f"kit:arrival:{USER}"
    carried = world.redis["staging"].client().hgetall(record)
    assert carried == world.redis["production"].client().hgetall(f"prod:{record}")  # the new bot's, carried
    capsys.readouterr()
    err = finish_refused(world, capsys)
    assert "sent back" in err and len(err.strip().splitlines()) == 1


def test_finish_move_without_the_old_bots_redis_refuses_as_it_cannot_see_a_send_back(
    moved, capsys, tmp_path, monkeypatch
):
    """SOURCE_REDIS_URL removed from production's environment too early: finish-move cannot read the
    old bot's record of the user, so it cannot tell they were sent back. Refused, not guessed."""
    world = moved
    arrived(world, 4)
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path)]) == 0
    talk(world, "staging", "hello again")  # back on the old bot
    capsys.readouterr()
    monkeypatch.delenv("STAGING_REDIS_URL")
    err = finish_refused(world, capsys)
    assert "STAGING_REDIS_URL" in err and len(err.strip().splitlines()) == 1


def test_a_second_send_back_never_overwrites_what_they_told_the_old_bot_since_and_undo_still_works(
    moved, capsys, tmp_path
):
    """Sent back, the user talks to the old bot; a second send-back would replace its keys with
    production's, which never heard it. It is refused in one line; nothing on either side changes,
    and the first send-back's undo still leaves what they said alone."""
    world = moved
    prod, dev = world.redis["production"].client(), world.redis["staging"].client()
    production_before = keys(prod, f"prod:*{USER}*")
    first = tmp_path / "first"
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(first)]) == 0
    capsys.readouterr()
    talk(world, "staging", "/remember I moved to Leeds")  # told the old bot only
    said = keys(dev, f"*{USER}*")
    told = list(world.telegram.replies_to(world.bots["staging"], USER))

    for mode in ("--apply", None):  # the dry run says so too
        argv = ["send-back", "--user-id", str(USER), "--out", str(tmp_path / "second")]
        assert main(argv + ([mode] if mode else [])) == 2
        err = capsys.readouterr().err
        assert f"user {USER} told @mindmate_dev_bot more since the send-back of " in err
        assert "a second send-back would overwrite it" in err and "runbook steps 6" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert keys(dev, f"*{USER}*") == said and "I moved to Leeds" in talk(world, "staging", "/recall")
    said = keys(dev, f"*{USER}*")  # the /recall touched the profile
    assert keys(prod, f"prod:*{USER}*") == production_before
    assert world.telegram.replies_to(world.bots["staging"], USER)[: len(told)] == told
    assert "Let's continue here for now." not in world.telegram.replies_to(world.bots["staging"], USER)[len(told) :]

    assert main(["send-back", "--undo", str(first), "--apply", "--json", "--out", str(tmp_path / "undo")]) == 0
    undone = json.loads(capsys.readouterr().out)
    assert f"memory:{USER}" in undone["left_alone_changed"]  # what they said since stays
    assert "I moved to Leeds" in talk(world, "staging", "/recall")
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "third")]) == 2
    assert "a second send-back would overwrite it" in capsys.readouterr().err
    assert "I moved to Leeds" in talk(world, "staging", "/recall")


def test_a_second_send_back_after_they_talked_to_the_new_bot_only_brings_the_new_memory(moved, capsys, tmp_path):
    """The old bot heard nothing since the first send-back: the second one may replace its keys."""
    world = moved
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "one")]) == 0
    talk(world, "production", "/remember I started pottery")  # the new bot, not the old one
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "two")]) == 0
    capsys.readouterr()
    recall = talk(world, "staging", "/recall")
    assert "I started pottery" in recall and NEW_FACT in recall


def test_finish_move_without_any_arrival_record_refuses_naming_the_kit_line_that_keeps_it(moved, capsys):
    """A bot the kit does not serve (base level) keeps no record: the window has no start to wait from."""
    world = moved
    world.redis["production"].client().delete(f"prod:kit:arrival:{USER}", f"prod:user:{USER}:profile")
    err = finish_refused(world, capsys).strip()
    assert len(err.splitlines()) == 1 and f"holds no arrival record of user {USER} (prod:kit:arrival:{USER})" in err
    assert "kit.run_webhook(application, ...) in place of application.run_webhook(...)" in err


def test_finish_move_reads_an_old_deployed_mindmates_profile_where_the_kit_kept_no_record(moved, capsys):
    """Production went live with a mindmate from before the kit kept the record: its profile's
    bot_id/bot_since (naming the new bot) still time the window."""
    world = moved
    prod = world.redis["production"].client()
    since = int(time.time()) - 86400
    world.redis["staging"].client().hset(f"user:{USER}:profile", "last_seen", since - 3600)  # before the move
    prod.delete(f"prod:kit:arrival:{USER}")
    prod.hset(
        f"prod:user:{USER}:profile",
        mapping={"bot_id": world.bots["production"].token.split(":")[0], "bot_since": since},
    )
    assert finish() == 2
    may = datetime.fromtimestamp(since, UTC) + timedelta(days=3)
    assert f"the move may finish from {may:%Y-%m-%d %H:%M} UTC" in capsys.readouterr().err


def test_in_actions_send_back_without_the_snapshot_key_writes_and_sends_nothing(moved, capsys, tmp_path, monkeypatch):
    """The backup an undo needs is this run's artifact: in Actions only encrypted, so an --apply
    without MEMORY_SNAPSHOT_KEY is refused before anything is read; its dry run still goes."""
    world = moved
    dev, prod = world.redis["staging"].client(), world.redis["production"].client()
    before = (keys(dev, "*"), keys(prod, "*"))
    use(monkeypatch, {"GITHUB_ACTIONS": "true"}, drop=("MEMORY_SNAPSHOT_KEY",))
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert "send-back needs MEMORY_SNAPSHOT_KEY" in err and "ci-tools init makes one" in err
    assert err.strip().count("\n") <= 1  # one line (and the contract layer's tally)
    assert (keys(dev, "*"), keys(prod, "*")) == before and not (tmp_path / "out").exists()
    assert len(world.telegram.replies_to(world.bots["staging"], USER)) == 0
    assert main(["send-back", "--user-id", str(USER), "--out", str(tmp_path / "dry")]) == 0
