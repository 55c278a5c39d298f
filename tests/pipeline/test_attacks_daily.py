"""Attacks on issue 43's "daily user first" change: the hold read again before the deploy, the quiet
moment's wait, owner messages whose buttons Telegram refuses, and send-back's record of the old bot.

Each test is an attack; the ones that broke the change carry the fix they led to (see the commit
that added them). Real parts: the GitHub and Telegram stand-ins, a real HTTP health server, the
sandbox's Redis servers."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import pytest

from ci_tools.__main__ import main
from ci_tools.clients.health import health_of
from ci_tools.pipeline.hold import HELD_VARIABLE
from ci_tools.pipeline.quiet import wait_for_quiet
from sandbox.github import OTHER_REPOSITORY_TOKEN
from sandbox.ports import Answer, AnsweringServer
from sandbox.telegram import button_url_problem
from tests.pipeline import test_move_window as move_window
from tests.pipeline.test_quiet import ENV, Clock, body
from tests.support import use

REPO = "mindmate/mindmate-release"
OWNER = 777000111
HOLD = json.dumps({"by": "owner-on-a-phone", "since": "2026-12-06T13:00:00Z", "reason": "the bot forgets names"})


# -- the hold, read again right before the deploy ----------------------------------------------


def hold(*args: str) -> int:
    return main(["hold", *args, "--repo", REPO])


def test_a_hold_read_again_with_a_token_that_cannot_see_the_repository_is_not_read_as_no_hold(
    github, monkeypatch, capsys
):
    """GITHUB_ADMIN_TOKEN is a fine-grained token whose repository access names other repositories:
    GitHub answers 404 for everything of this one, the same 404 as for an unset variable. The owner
    set the hold by hand in Settings → Variables while the release waited; reading the 404 as "not
    held" would deploy past it, saying it was read again."""
    github.variables[HELD_VARIABLE] = HOLD
    monkeypatch.setenv("GITHUB_TOKEN", OTHER_REPOSITORY_TOKEN)
    assert hold("--check", "--again") == 3
    captured = capsys.readouterr()
    assert "not held" not in captured.out
    assert "the token cannot see the repository" in captured.err and "Repository access" in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
    assert OTHER_REPOSITORY_TOKEN not in captured.out + captured.err


def test_lifting_a_hold_with_a_token_that_cannot_see_the_repository_does_not_say_nothing_was_held(
    github, monkeypatch, capsys
):
    github.variables[HELD_VARIABLE] = HOLD
    monkeypatch.setenv("GITHUB_TOKEN", OTHER_REPOSITORY_TOKEN)
    assert hold("--off") == 3
    captured = capsys.readouterr()
    assert "nothing to lift" not in captured.out and "cannot see the repository" in captured.err
    assert github.variables[HELD_VARIABLE] == HOLD


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_hold_read_again_during_a_github_outage_fails_closed_in_one_line(github, capsys, status):
    """The hold fails closed (hold.py): an outage stops the deploy rather than pass a hold unread."""
    github.fail_with = status
    assert hold("--check", "--again") != 0
    captured = capsys.readouterr()
    assert "not held" not in captured.out and len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err and github.token not in captured.out + captured.err


def test_a_hold_read_again_with_a_revoked_token_fails_closed(github, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_TOKEN", "github_pat_revokedLongAgo0123456789")
    assert hold("--check", "--again") == 3
    captured = capsys.readouterr()
    assert "401 Bad credentials" in captured.err and "revokedLongAgo" not in captured.out + captured.err


def test_status_does_not_say_not_held_when_the_token_cannot_see_the_repository(world, github, monkeypatch, capsys):
    use(monkeypatch, {**world.secrets("production"), "GITHUB_REPOSITORY": REPO})
    github.variables[HELD_VARIABLE] = HOLD
    monkeypatch.setenv("GITHUB_TOKEN", OTHER_REPOSITORY_TOKEN)
    main(["status", "production", "--json"])
    found = {i["name"]: i for i in json.loads(capsys.readouterr().out)["items"]}
    held = found["production: releases"]
    assert held["detail"] != "not held" and "cannot see the repository" in held["detail"]


# -- the quiet moment --------------------------------------------------------------------------


@pytest.fixture
def flapping_health() -> Iterator[tuple[str, list[tuple[int, Any]], dict[str, float]]]:
    """A real /healthz whose answers the test queues: (status, JSON body or None for Render's plain
    502 while an instance restarts); the last one repeats. Its Date is the test's clock."""
    answers: list[tuple[int, Any]] = []
    clock = {"now": 0.0}

    def answer() -> Answer:
        status, given = answers.pop(0) if len(answers) > 1 else answers[0]
        return status, b"Bad Gateway" if given is None else given, {"Date": formatdate(clock["now"], usegmt=True)}

    with AnsweringServer(answer) as server:
        yield f"{server.url}/healthz", answers, clock


def driven(clock: Clock, shared: dict[str, float]) -> Clock:
    """The runner's clock, and the bot's Date header following it."""
    shared["now"] = clock.now
    original = clock.sleep

    def sleep(seconds: float) -> None:
        original(seconds)
        shared["now"] = clock.now

    clock.sleep = sleep  # type: ignore[method-assign]
    return clock


def test_a_health_answer_that_fails_mid_wait_is_said_as_that_not_as_a_bot_without_health(flapping_health):
    """The user wrote 10 s ago; after the pause /healthz answers Render's 502 (the instance
    restarting). The run said "no wait: the live bot has no health endpoint (base level)" after
    waiting 110 s for a bot it had just read: the owner is told their bot lost its health level."""
    url, answers, shared = flapping_health
    clock = driven(Clock(), shared)
    answers += [(200, body(clock.now - 10)), (502, None)]
    quiet = wait_for_quiet(ENV, lambda: health_of(url, 5), clock=lambda: clock.now, sleep=clock.sleep)
    assert clock.slept == [110.0]
    assert quiet.detail == (
        "went ahead after waiting 110 s: the bot's last update was 120 s ago when last seen, "
        "and its health stopped answering since (HTTP 502)"
    )
    assert not quiet.went_ahead_busy


def test_a_health_that_fails_from_the_start_says_so_not_base_level(flapping_health):
    url, answers, shared = flapping_health
    clock = driven(Clock(), shared)
    answers.append((503, None))
    quiet = wait_for_quiet(ENV, lambda: health_of(url, 5), clock=lambda: clock.now, sleep=clock.sleep)
    assert quiet.detail == "no wait: the live bot's health answered HTTP 503, so it cannot say"


def test_a_bot_restarted_mid_wait_keeps_the_release_waiting(flapping_health):
    """Held: busy, then a fresh instance that handled nothing (started 2 s ago): the user may be
    mid-sentence, so the wait runs to quiet_seconds past the start."""
    url, answers, shared = flapping_health
    clock = driven(Clock(), shared)
    answers += [(200, body(clock.now - 10)), (200, body(None, started_at=clock.now + 108))]
    quiet = wait_for_quiet(ENV, lambda: health_of(url, 5), clock=lambda: clock.now, sleep=clock.sleep)
    assert "started 120 s ago, nothing handled since" in quiet.detail and sum(clock.slept) >= 228


def test_a_start_in_the_future_on_a_restarted_bot_goes_at_once_and_says_why(flapping_health):
    url, answers, shared = flapping_health
    clock = driven(Clock(), shared)
    answers.append((200, body(None, started_at=clock.now + 3600)))
    quiet = wait_for_quiet(ENV, lambda: health_of(url, 5), clock=lambda: clock.now, sleep=clock.sleep)
    assert clock.slept == [] and "updates.started_at is 3600 s in the future" in quiet.detail


# -- owner messages' buttons -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://github.пример.рф/owner/bot/actions/runs/77",  # tdlib takes plain UTF-8 in a host
        "github.example/owner/bot/actions/runs/77?next=https://github.example",  # no scheme: "://" later
        "https://GHE.Example.com:0443/owner/bot",  # a port with a leading zero is 443 to tdlib
    ],
)
def test_the_telegram_stand_in_takes_the_links_tdlib_takes(url):
    """False refusals: a link tdlib's check_link (HttpUrl.cpp's parse_url) accepts must not be refused
    by the stand-in, or a test would pass for a resend Telegram never asks for."""
    assert button_url_problem(url) == ""


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://example.com:/x", "Wrong port number specified in the URL"),  # an empty port
        ("http://./x", "Host is invalid"),
        ("http://exa mple.com", "Wrong URL host"),
        ("http://a%zz.example", "Wrong percent-encoded symbol in URL host"),
    ],
)
def test_the_telegram_stand_in_refuses_what_tdlib_refuses(url, problem):
    assert button_url_problem(url) == problem


def test_buttons_refused_and_telegram_rate_limiting_still_tell_the_owner_once(world, monkeypatch, capsys):
    """A 400 for the keyboard, 429s around the resend: the message arrives exactly once."""
    actions = {"GITHUB_REPOSITORY": "owner/bot", "GITHUB_RUN_ID": "77", "GITHUB_SERVER_URL": "http://ghe"}
    use(monkeypatch, {**world.secrets("production"), "OWNER_CHAT_ID": str(OWNER), **actions})
    bot = world.bots["production"]
    world.telegram.start_chat(bot, OWNER)
    world.telegram.rate_limit(bot, 2)
    assert main(["notify", "--env", "production", "rolled back", "--strict"]) == 0
    [sent] = bot.sent
    assert "reply_markup" not in sent and sent["text"].startswith("@mindmate_companion_bot (production): rolled back")
    assert "the owner was told without them" in capsys.readouterr().out


def test_an_owner_message_carrying_a_token_is_redacted_on_the_resend_too(world, monkeypatch):
    actions = {"GITHUB_REPOSITORY": "owner/bot", "GITHUB_RUN_ID": "77", "GITHUB_SERVER_URL": "http://ghe"}
    use(monkeypatch, {**world.secrets("production"), "OWNER_CHAT_ID": str(OWNER), **actions})
    bot = world.bots["production"]
    world.telegram.start_chat(bot, OWNER)
    assert main(["notify", "--env", "production", f"probe failed at https://x.example/{bot.token}"]) == 0
    [sent] = bot.sent
    assert bot.token not in sent["text"]


# -- send-back's record of the old bot ---------------------------------------------------------

USER = 424242
moved = move_window.moved  # the world after the runbook's step 7 (the fixture, shared)
keys, talk = move_window.keys, move_window.talk


def test_the_first_send_back_does_not_silently_replace_what_they_told_the_old_bot_after_the_move(
    moved, capsys, tmp_path
):
    world = moved
    talk(world, "staging", "/remember I moved to Leeds")  # the old bot, after the move's copy
    code = main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "back")])
    capsys.readouterr()
    assert code != 0 or "I moved to Leeds" in talk(world, "staging", "/recall")


def test_what_the_first_send_back_replaced_is_in_its_backup_and_undo_brings_it_back(moved, capsys, tmp_path):
    """Held: sent back over it as the owner chose, nothing is lost — the backup holds what the user
    told the old bot, the run names it, and undo restores it."""
    world = moved
    talk(world, "staging", "/remember I moved to Leeds")
    out = tmp_path / "back"
    argv = ["send-back", "--user-id", str(USER), "--apply", "--out", str(out), "--old-bot-changes", "replace"]
    assert main(argv) == 0
    assert f"memory:{USER}" in capsys.readouterr().out.split("replaced as asked")[0]
    assert "I moved to Leeds" not in talk(world, "staging", "/recall")
    assert main(["send-back", "--undo", str(out), "--apply", "--json", "--out", str(tmp_path / "undo")]) == 0
    capsys.readouterr()
    assert "I moved to Leeds" in talk(world, "staging", "/recall")


def test_the_send_back_record_is_pipeline_metadata_not_one_of_the_users_keys(moved, capsys, tmp_path):
    """Held: the record sits beside the old bot's keys under its own prefix, one field per user, and
    names no user in its key, so no copy from the old bot counts it as one of theirs."""
    world = moved
    dev = world.redis["staging"].client()
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    record = dev.hgetall("meta:sent_back")
    assert list(record) == [str(USER).encode()]
    assert all(str(USER) not in key.decode() for key in dev.scan_iter(match="meta:*"))
    assert b"meta:sent_back" not in keys(dev, f"*{USER}*")


def test_after_moving_forward_again_as_the_refusal_says_a_later_send_back_is_not_refused_for_ever(
    moved, capsys, tmp_path
):
    """The refusal's hint: move them forward again with runbook steps 6 (on_conflict replace) and 7.
    After step 6 production holds everything the old bot heard; if the new bot fails them again, a
    send-back loses nothing of the old bot's — yet the record still names the first send-back's keys,
    so every later send-back is refused as if they had told the old bot more."""
    from ci_tools.memory.model import Conflict
    from ci_tools.memory.ops import between, copy_user
    from tests.support import context

    world = moved
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "one")]) == 0
    talk(world, "staging", "/remember I moved to Leeds")  # told the old bot only
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "two")]) == 2
    capsys.readouterr()
    ctx = context(SOURCE_REDIS_URL=world.redis["staging"].url, TARGET_REDIS_URL=world.redis["production"].url)
    forward = between(ctx.config, USER, "staging", "production", tmp_path / "forward", apply=True, legacy_source=True)
    copy_user(ctx, dataclasses.replace(forward, policy=Conflict.REPLACE))  # runbook step 6, replace
    assert "I moved to Leeds" in talk(world, "production", "/recall")  # production has it all now
    talk(world, "production", "/remember I started pottery")
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "three")]) == 0, (
        capsys.readouterr().err
    )
    recall = talk(world, "staging", "/recall")
    assert "I moved to Leeds" in recall and "I started pottery" in recall


def step_six(world, out, **changes):
    """Runbook step 6 (the move's copy, staging's legacy keys into production), as the fixture ran it."""
    from ci_tools.memory.ops import between, copy_user
    from tests.support import context

    ctx = context(SOURCE_REDIS_URL=world.redis["staging"].url, TARGET_REDIS_URL=world.redis["production"].url)
    copy = between(ctx.config, USER, "staging", "production", out, apply=True, legacy_source=True, **changes)
    return ctx, copy_user(ctx, copy)


def test_the_move_record_names_the_old_bots_keys_and_server_never_a_value_or_password(moved):
    world = moved
    record = json.loads(world.redis["production"].client().hget("prod:meta:moved", str(USER)))
    assert sorted(record["guards"]) == [f"memory:{USER}", f"user:{USER}:profile"]
    assert "tea" not in json.dumps(record) and record["source"] and "@" not in record["source"]


def test_a_two_stage_move_records_what_its_plan_read(moved, tmp_path):
    """migrate-memory writes in two steps (the backup uploaded between): the write step reads nothing
    from the source, so the record comes from the plan's snapshot — and names what was written."""
    from ci_tools.memory.model import Conflict, Stage

    world = moved
    prod = world.redis["production"].client()
    prod.delete("prod:meta:moved")
    step_six(world, tmp_path / "two", policy=Conflict.REPLACE, stage=Stage.PLAN)
    assert not prod.exists("prod:meta:moved")  # a plan writes nothing, the record included
    step_six(world, tmp_path / "two", policy=Conflict.REPLACE, stage=Stage.WRITE)
    record = json.loads(prod.hget("prod:meta:moved", str(USER)))
    assert sorted(record["guards"]) == [f"memory:{USER}", f"user:{USER}:profile"]


def test_an_undone_move_takes_its_record_back_so_the_send_back_refuses_until_told(moved, capsys, tmp_path):
    """Step 6 run again over what the user told the old bot, then undone: production no longer holds
    it, so the record of that copy must not let a send-back overwrite it without a word; production's
    keys and the record are as before that copy."""
    from ci_tools.memory.model import Conflict
    from ci_tools.memory.ops import undo_backup

    world = moved
    talk(world, "staging", "/remember I moved to Leeds")  # the old bot only
    prod = world.redis["production"].client()
    before = {k: prod.dump(k) for k in prod.scan_iter("*")}
    ctx, outcome = step_six(world, tmp_path / "again", policy=Conflict.REPLACE)
    assert outcome.backup is not None
    undo_backup(ctx, outcome.backup, tmp_path / "undo")
    assert {k: prod.dump(k) for k in prod.scan_iter("*")} == before
    assert "I moved to Leeds" not in talk(world, "production", "/recall")
    argv = ["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "back")]
    assert main(argv) == 2
    assert "more since the move's copy" in capsys.readouterr().err
    assert "I moved to Leeds" in talk(world, "staging", "/recall")
    assert main([*argv, "--old-bot-changes", "replace"]) == 0  # the owner's named choice goes
    assert "replaced as asked" in capsys.readouterr().out


def test_a_move_record_read_from_another_server_says_nothing_about_the_old_bot(moved, capsys, tmp_path):
    world = moved
    prod = world.redis["production"].client()
    record = json.loads(prod.hget("prod:meta:moved", str(USER)))
    prod.hset("prod:meta:moved", str(USER), json.dumps({**record, "source": "another-key-value", "guards": {}}))
    assert main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "back")]) == 0, (
        capsys.readouterr().err
    )


def test_a_production_bots_own_key_named_like_the_move_record_stops_the_copy_before_any_write(moved, tmp_path):
    from ci_tools.errors import ConfigError

    world = moved
    prod = world.redis["production"].client()
    prod.delete("prod:meta:moved")
    prod.set("prod:meta:moved", "the bot's own")
    before = {k: prod.dump(k) for k in prod.scan_iter("*")}
    with pytest.raises(ConfigError, match="prod:meta:moved"):
        step_six(world, tmp_path / "again")
    assert {k: prod.dump(k) for k in prod.scan_iter("*")} == before


def test_an_old_bot_whose_own_key_is_named_meta_sent_back_is_one_clear_line_not_a_traceback(moved, capsys, tmp_path):
    """The record's name is the pipeline's choice inside the owner's key space: an old bot on the empty
    prefix may hold a key of that name (a string, say). The send-back must say so in one line before
    any write, and leave the owner's key as it was."""
    world = moved
    dev = world.redis["staging"].client()
    dev.set("meta:sent_back", "the owner's own value")
    before = keys(dev, "*")
    code = main(["send-back", "--user-id", str(USER), "--apply", "--out", str(tmp_path / "back")])
    err = capsys.readouterr().err
    assert code not in (0, 1) and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "meta:sent_back" in err
    assert keys(dev, "*") == before and dev.get("meta:sent_back") == b"the owner's own value"


# -- the Key Value opened twice in one release --------------------------------------------------


def test_two_opens_in_one_release_and_a_nightly_backup_between_leave_only_the_owners_entry(
    world, tmp_path, monkeypatch
):
    """Held: the release opens production's Key Value for the replay's snapshot, closes it, waits,
    opens it again (same run, same state file) for the restore point; a nightly backup opens between
    and closes last. Each close removes only its own run's entry."""
    from tests.pipeline.test_keyvalue import OWNER, keyvalue

    monkeypatch.setattr("ci_tools.pipeline.keyvalue.SETTLE", 0.3)
    kv = world.key_values["production"]
    kv.ip_allow_list = [dict(OWNER)]
    release, nightly = tmp_path / "release.json", tmp_path / "nightly.json"
    opened = ("open", "--env", "production", "--ip")
    assert keyvalue(world, 301, *opened, "203.0.113.1", "--state", str(release)) == 0  # the replay's snapshot
    assert keyvalue(world, 301, "close", "--state", str(release)) == 0
    assert keyvalue(world, 302, *opened, "203.0.113.9", "--state", str(nightly)) == 0  # mid-wait: the backup
    assert keyvalue(world, 301, *opened, "203.0.113.1", "--state", str(release)) == 0  # the restore point
    assert {e["cidrBlock"] for e in kv.ip_allow_list} == {"198.51.100.1/32", "203.0.113.1/32", "203.0.113.9/32"}
    assert keyvalue(world, 301, "close", "--state", str(release)) == 0
    assert {e["cidrBlock"] for e in kv.ip_allow_list} == {"198.51.100.1/32", "203.0.113.9/32"}
    assert keyvalue(world, 302, "close", "--state", str(nightly)) == 0
    assert kv.ip_allow_list == [OWNER] and not release.exists() and not nightly.exists()


def test_a_health_answer_without_a_date_header_does_not_claim_the_bots_own_clock():
    """A server told not to send Date (uvicorn --no-date-header) and a runner 30 s behind the bot: the
    update 10 s ago reads 20 s in the future. It cannot say (no wait, as for any impossible time), but
    the run said "on its own clock" of a time it measured on the runner's."""
    from tests.pipeline.test_quiet import health

    clock = Clock()
    quiet = wait_for_quiet(ENV, lambda: health(clock.now + 20, served_at=None), clock=lambda: clock.now)
    assert quiet.detail == (
        "no wait: the live bot's updates.last_handled_at is 20 s in the future on the runner's clock "
        "(its answer had no Date header), so it cannot say"
    )
