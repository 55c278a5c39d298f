"""The quiet moment: production's deploy waits while the daily user is mid-conversation.

The rules run on a clock the test drives (no guessed sleeps); the health answer is read from a
real HTTP server, on the bot's clock (its Date header), as production.yml's step reads it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import pytest

from ci_tools.__main__ import main
from ci_tools.clients.health import Health, NotTheContract, Unreachable, health_of
from ci_tools.pipeline.quiet import wait_for_quiet
from ci_tools.settings import Environment
from sandbox.ports import AnsweringServer

ENV = Environment("production", "main", "svc", "x_bot", "https://x", "prod:", (), quiet_seconds=120)


def body(last_handled_at: float | None, *, reported: bool = True, started_at: float | None = None) -> dict[str, Any]:
    """The live bot's health JSON: when it last handled an update (``reported``: it says at all),
    and since when it runs."""
    updates: dict[str, Any] = {"handled": 3, "failed": 0, "last_failure": None}
    if reported:
        updates["last_handled_at"] = last_handled_at
    if started_at is not None:
        updates["started_at"] = started_at
    return {
        "status": "ok",
        "env": "production",
        "commit": "a" * 40,
        "bot": {"id": 1, "username": "x_bot"},
        "redis": {"ok": True, "env_marker": "production"},
        "key_prefix": "prod:",
        "updates": updates,
    }


def health(
    last_handled_at: float | None,
    *,
    served_at: float | None,
    reported: bool = True,
    started_at: float | None = None,
) -> Health:
    """That answer as ci-tools reads it, served at ``served_at`` on the bot's clock (its Date)."""
    return Health.from_json(200, body(last_handled_at, reported=reported, started_at=started_at), served_at)


class Clock:
    """Time the test moves: ``sleep`` advances it, and the user may talk meanwhile."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_quiet_bot_is_released_at_once():
    clock = Clock()
    quiet = wait_for_quiet(ENV, lambda: health(clock.now - 600, served_at=clock.now), clock=lambda: clock.now)
    assert clock.slept == [] and not quiet.went_ahead_busy
    assert quiet.detail == "quiet (last update 600 s ago) after waiting 0 s"


def test_a_bot_that_handled_nothing_since_it_started_is_quiet():
    clock = Clock()
    quiet = wait_for_quiet(ENV, lambda: health(None, served_at=clock.now), clock=lambda: clock.now)
    assert "nothing handled since it started" in quiet.detail and clock.slept == []


def test_an_update_30_s_ago_waits_until_the_quiet_gap_then_goes():
    clock = Clock()
    last = clock.now - 30
    quiet = wait_for_quiet(ENV, lambda: health(last, served_at=clock.now), clock=lambda: clock.now, sleep=clock.sleep)
    assert clock.slept == [90.0]  # to the end of the gap, not a guessed poll
    assert quiet.waited == 90.0 and "quiet (last update 120 s ago)" in quiet.detail


def test_a_user_who_keeps_talking_is_waited_for_again_until_the_limit_then_it_goes_and_says_so():
    clock = Clock()
    env = dataclasses.replace(ENV, quiet_wait_minutes=5)
    quiet = wait_for_quiet(
        env, lambda: health(clock.now - 10, served_at=clock.now), clock=lambda: clock.now, sleep=clock.sleep
    )
    assert quiet.went_ahead_busy and sum(clock.slept) == 300
    assert quiet.detail.startswith("went ahead after waiting 5 min: the bot was still in a conversation")


def test_the_gap_is_measured_on_the_bots_clock_not_the_runners():
    """A runner 10 minutes fast would see a 30 s old update as 10 minutes old: the Date header rules."""
    clock = Clock()
    bot_now = clock.now - 600
    waits = wait_for_quiet(
        ENV,
        lambda: health(bot_now - 30, served_at=bot_now + sum(clock.slept)),
        clock=lambda: clock.now,
        sleep=clock.sleep,
    )
    assert clock.slept == [90.0] and not waits.went_ahead_busy


@pytest.mark.parametrize(
    ("last", "said"),
    [
        (float("nan"), "updates.last_handled_at is not a time (nan), so it cannot say"),
        (float("inf"), "updates.last_handled_at is not a time (inf), so it cannot say"),
        (float("-inf"), "updates.last_handled_at is not a time (-inf), so it cannot say"),
        (1_000_000.0 + 3600, "updates.last_handled_at is 3600 s in the future on its own clock, so it cannot say"),
    ],
)
def test_a_time_that_cannot_be_one_goes_ahead_at_once_saying_why(last, said):
    """A broken clock or value must not hold the release for quiet_wait_minutes: it cannot say."""
    clock = Clock()
    quiet = wait_for_quiet(ENV, lambda: health(last, served_at=clock.now), clock=lambda: clock.now, sleep=clock.sleep)
    assert clock.slept == [] and not quiet.went_ahead_busy
    assert quiet.detail == f"no wait: the live bot's {said}" and "\n" not in quiet.detail


def test_an_update_within_the_dates_own_second_is_not_the_future():
    """The Date header is whole seconds: an update in the same second is now, not a broken clock."""
    clock = Clock()
    last = clock.now + 0.6
    quiet = wait_for_quiet(ENV, lambda: health(last, served_at=clock.now), clock=lambda: clock.now, sleep=clock.sleep)
    assert clock.slept[0] == 120.0 and "quiet (last update" in quiet.detail  # waited, not "cannot say"


def test_a_bot_that_restarted_moments_ago_may_be_mid_conversation_and_is_waited_for():
    """Nothing handled since a start 20 s ago: the user may have written just before the restart."""
    clock = Clock()
    start = clock.now - 20
    said: list[str] = []
    quiet = wait_for_quiet(
        ENV,
        lambda: health(None, served_at=clock.now, started_at=start),
        clock=lambda: clock.now,
        sleep=clock.sleep,
        on_status=said.append,
    )
    assert clock.slept == [100.0]  # until quiet_seconds past the start
    assert said == [
        "the bot started 20 s ago and has handled nothing since: the daily user may be mid-conversation, "
        "waiting 100 s for a quiet moment"
    ]
    assert quiet.detail == "quiet (started 120 s ago, nothing handled since) after waiting 100 s"


def test_a_restart_wait_is_bounded_by_quiet_wait_minutes():
    clock = Clock()
    env = dataclasses.replace(ENV, quiet_seconds=3600, quiet_wait_minutes=2)
    quiet = wait_for_quiet(
        env,
        lambda: health(None, served_at=clock.now, started_at=clock.now - 5),
        clock=lambda: clock.now,
        sleep=clock.sleep,
    )
    assert sum(clock.slept) == 120 and quiet.went_ahead_busy
    assert "(started 5 s ago, nothing handled since; quiet_wait_minutes is 2)" in quiet.detail


def test_a_start_long_ago_with_nothing_handled_is_quiet_and_no_start_behaves_as_before():
    clock = Clock()
    quiet = wait_for_quiet(
        ENV, lambda: health(None, served_at=clock.now, started_at=clock.now - 600), clock=lambda: clock.now
    )
    assert quiet.detail == "quiet (started 600 s ago, nothing handled since) after waiting 0 s"
    quiet = wait_for_quiet(ENV, lambda: health(None, served_at=clock.now), clock=lambda: clock.now)
    assert "nothing handled since it started" in quiet.detail


def test_a_start_that_is_not_a_time_cannot_say():
    clock = Clock()
    quiet = wait_for_quiet(
        ENV,
        lambda: health(None, served_at=clock.now, started_at=float("nan")),
        clock=lambda: clock.now,
        sleep=clock.sleep,
    )
    assert (
        clock.slept == []
        and quiet.detail == "no wait: the live bot's updates.started_at is not a time (nan), so it cannot say"
    )


def test_a_hotfix_does_not_wait():
    def never() -> Health:
        raise AssertionError("a hotfix does not even ask")

    assert wait_for_quiet(ENV, never, hotfix=True).detail == "hotfix: released without waiting for a quiet moment"


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (NotTheContract("no JSON"), "no wait: the live bot has no health endpoint (base level)"),
        (
            Unreachable(ConnectionRefusedError()),
            "no wait: the live bot's health did not answer (ConnectionRefusedError)",
        ),
    ],
)
def test_a_bot_below_the_health_level_is_not_waited_for_and_the_run_says_why(raised, said):
    def look() -> Health:
        raise raised

    assert wait_for_quiet(ENV, look).detail == said


def test_a_bot_whose_health_does_not_report_the_time_is_not_waited_for():
    quiet = wait_for_quiet(ENV, lambda: health(None, served_at=None, reported=False))
    assert "does not say when it last handled an update" in quiet.detail


@pytest.fixture
def bot_health() -> Iterator[tuple[str, dict[str, Any]]]:
    """A real HTTP server answering /healthz with whatever the test puts in ``state``."""
    state: dict[str, Any] = {"body": health(None, served_at=None).__dict__, "date": None}
    with AnsweringServer(lambda: (200, state["body"], {"Date": state["date"]} if state["date"] else {})) as server:
        yield f"{server.url}/healthz", state


def test_the_time_is_read_from_a_real_health_answer_and_its_date_header(bot_health):
    url, state = bot_health
    state["body"] = {
        "status": "ok",
        "env": "production",
        "commit": None,
        "bot": {"id": 1, "username": "x_bot"},
        "redis": {"ok": True, "env_marker": "production"},
        "key_prefix": "prod:",
        "updates": {"handled": 1, "failed": 0, "last_failure": None, "last_handled_at": 1_700_000_000.5},
    }
    state["date"] = formatdate(1_700_000_045, usegmt=True)
    answer = health_of(url, 5)
    assert answer.served_at == 1_700_000_045 and answer.updates is not None
    assert answer.updates.last_handled_at == 1_700_000_000.5
    clock = Clock()
    quiet = wait_for_quiet(ENV, lambda: health_of(url, 5), clock=lambda: clock.now, sleep=clock.sleep)
    assert clock.slept[0] == pytest.approx(75.5)  # 44.5 s idle on the bot's clock, whatever the runner's says
    assert quiet.went_ahead_busy  # this server's clock stands still: the gap never comes, the limit ends it


def test_the_command_says_why_it_did_not_wait_and_a_hotfix_skips(world, monkeypatch, capsys):
    assert main(["quiet", "production", "--hotfix", "true"]) == 0
    assert "hotfix: released without waiting for a quiet moment" in capsys.readouterr().out
    assert main(["quiet", "production"]) == 0
    out = capsys.readouterr().out
    assert "production: " in out and ("no wait" in out or "quiet (" in out)
