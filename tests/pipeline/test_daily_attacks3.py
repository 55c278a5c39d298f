"""Issue 43 attacked by a helper who did not build it (attack43): the daily user's /oops when the
bot's Redis is down, kept /oops moments that are no time (the kit's health, ``history``) or whose
commit is a git option, send-back with either Redis down, cancelled by a signal and undone, or
run again after its record was not kept, where send-back and finish-move run, and the quiet wait
against a health answer that is there but malformed. Real processes throughout: redis-server, the
kit served by uvicorn, the sandbox's world, ci-tools as a subprocess where a signal is the attack."""

from __future__ import annotations

import json

import httpx
import pytest
from telegram import Update
from telegram.ext import ContextTypes, MessageHandler, filters

from ci_tools.__main__ import main
from release_kit.oops import THANKS
from sandbox.ports import free_port
from tests.release_kit.test_kit import USER, kit_for, serving, turn
from tests.support import context, unmeasured

OWNER = 777


def test_oops_while_the_bots_redis_is_down_still_tells_the_owner_and_thanks_the_user(redis_server, telegram):
    """The user says something is off exactly when something is: a bot whose Redis went down is the
    moment the owner most needs to hear it. The kept moment may be lost; the owner's message and
    the user's thanks must not be (a 503 makes Telegram deliver the same /oops again, and again)."""
    fake, port = telegram.add_bot("oops_down_bot"), free_port()
    telegram.start_chat(fake, OWNER)
    kit = kit_for(redis_server.url, telegram.url, port, OWNER_CHAT_ID=str(OWNER))
    application = kit.builder().token(fake.token).build()

    async def owners_handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        pass

    application.add_handler(MessageHandler(filters.ALL, owners_handler))
    kit.oops(application)
    with serving(kit.asgi(application, url_path="hook"), port) as url:
        redis_server.stop()
        turn(url, telegram, fake, USER, "/oops my password is hunter2", nonce=None)
        told = telegram.replies_to(fake, OWNER)
        assert len(told) == 1, told
        assert "hunter2" not in told[0] and str(USER) not in told[0]
        assert telegram.replies_to(fake, USER) == [THANKS]
        assert "not in history" in told[0]  # the owner knows history will not show it
        for _ in range(3):  # a flood while Redis is down: the gap is kept by the process
            turn(url, telegram, fake, USER + 1, "/oops", nonce=None)
        assert len(telegram.replies_to(fake, OWNER)) == 1
        assert telegram.replies_to(fake, USER + 1) == [THANKS] * 3


@pytest.fixture
def released(world, monkeypatch, capsys):
    from tests.support import use

    use(monkeypatch, world.secrets("production"))
    sha = world.commit("main", "release: remember birthdays")
    assert main(["release", "production", "--commit", sha, "--timeout", "20", "--poll", "0.05", "--deadline", "3"]) == 0
    capsys.readouterr()
    return sha


@pytest.mark.parametrize("at", ["NaN", "Infinity", "1e400", "1e20", "-1e20"])
def test_a_kept_moment_that_is_no_time_neither_breaks_the_health_answer_nor_history(world, released, capsys, at):
    """``recent`` says the list is read, never trusted: one kept moment that is no time (written by an
    older kit, by hand, or NaN from a JSON that allows it) must not turn /healthz into a 500 (the
    pipeline would read the bot as down) nor ``history`` into a traceback."""
    prod = world.redis["production"].client()
    prod.lpush("prod:meta:oops", f'{{"at": {at}, "commit": "{released}"}}')
    prod.lpush("prod:meta:oops", json.dumps({"at": 1_700_000_000.0, "commit": released}))
    url = context().config.env("production").health_url
    assert url is not None
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    assert main(["history", "production", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    said = [r for r in document["releases"] if r["status"] == "reported"]
    assert len(said) >= 1 and all(r["commit"] == released for r in said)


def test_a_commit_in_a_kept_moment_that_is_an_option_is_not_handed_to_git_as_one(world, released, capsys, tmp_path):
    """The commit of a kept moment reaches ``git log -1 --format=%s <commit>``: one that starts with a
    dash is an option to git (``--output=<file>`` writes a file on the runner), not a commit."""
    written = tmp_path / "written-by-git"
    prod = world.redis["production"].client()
    prod.lpush("prod:meta:oops", json.dumps({"at": 1_700_000_000.0, "commit": f"--output={written}"}))
    code = main(["history", "production", "--json"])
    capsys.readouterr()
    assert code == 0
    assert not written.exists()


def test_history_skips_a_moment_another_bots_health_gives_that_is_no_time(tmp_path):
    """A bot on the contract without the kit may give any JSON number as a moment (the schema asks for a
    number, and Python reads NaN and 1e400 as ones): ``history`` shows the moments that are times."""
    from ci_tools.clients.health import Health
    from ci_tools.pipeline.history import said_off
    from tests.pipeline.test_quiet import body as health_body

    body = health_body(None, reported=False)
    body["reports"] = {"oops": [{"at": a, "commit": None} for a in (float("nan"), float("inf"), 1e20, 1.7e9)]}
    rows = said_off(Health.from_json(200, body).oops, tmp_path)
    assert [r.status for r in rows] == ["reported"]


# -- send-back against Redis servers that stop answering --------------------------------------------

from tests.pipeline import test_move_window as move_window  # noqa: E402

moved = move_window.moved  # the world after the runbook's step 7 (the fixture, shared)
MOVED_USER = move_window.USER


def one_line(err: str) -> None:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def sent(world) -> int:
    return len(world.telegram.replies_to(world.bots["staging"], MOVED_USER))


@pytest.mark.parametrize("down", ["production", "staging"])
def test_send_back_with_a_redis_down_is_one_line_nothing_written_nobody_told(moved, capsys, tmp_path, down):
    """Production's Redis (read) or the old bot's (written) not answering: one line, non-zero, the old
    bot's keys as they were and no message to the user (they would go back to a bot without their
    memory)."""
    world = moved
    dev = world.redis["staging"].client()
    before, told = move_window.keys(dev, f"*{MOVED_USER}*"), sent(world)
    world.redis[down].stop()
    code = main(["send-back", "--user-id", str(MOVED_USER), "--apply", "--out", str(tmp_path / "back")])
    err = capsys.readouterr().err
    assert code != 0
    one_line(err)
    assert "redis" in err.lower()
    assert sent(world) == told
    if down == "production":
        assert move_window.keys(dev, f"*{MOVED_USER}*") == before


def test_a_send_back_whose_record_was_not_kept_can_be_run_again_as_its_hint_says(moved, capsys, tmp_path):
    """keep_record's failure says 'the copy itself is done and verified; run the same send-back again to
    record it'. The state it leaves — the old bot's keys written, no send-back record — is made here by
    a full send-back whose record field is then removed. Running it again as told must record it, not
    refuse as if the user had told the old bot something since the move."""
    world = moved
    assert main(["send-back", "--user-id", str(MOVED_USER), "--apply", "--out", str(tmp_path / "back")]) == 0
    dev = world.redis["staging"].client()
    assert dev.hdel("meta:sent_back", str(MOVED_USER)) == 1  # the record the failed step never kept
    capsys.readouterr()
    code = main(["send-back", "--user-id", str(MOVED_USER), "--apply", "--out", str(tmp_path / "again")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "already holds" in out  # nothing written again
    assert dev.hget("meta:sent_back", str(MOVED_USER)) is not None


# -- production's Redis stays in production's environment --------------------------------------------


def test_send_back_and_finish_move_run_in_productions_environment_and_staging_never_names_its_redis():
    """Build: send-back from production's environment only (staging never holds production's Redis URL).
    The jobs that write the old bot from production's Redis name the production environment itself
    (not an input: an input could name staging), and staging's release never names it."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2] / ".github" / "workflows"
    for name in ("send-back.yml", "finish-move.yml"):
        jobs = yaml.safe_load((root / name).read_text())["jobs"]
        assert jobs and all(job.get("environment") == "production" for job in jobs.values()), name
    staging = (root / "staging.yml").read_text()
    assert "PRODUCTION_REDIS_URL" not in staging and "SOURCE_REDIS_URL" not in staging


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_send_back_cancelled_once_its_backup_exists_is_undone_to_the_old_bot_as_it_was(
    moved, tmp_path, capsys, signal_name
):
    """A cancel (Actions sends SIGINT, then SIGTERM) at whatever point after the backup was started:
    the old bot's memory is back as it was after --undo of what the run left, or the undo refuses
    in one line and nothing had been written. Never a traceback, never a half-restored memory."""
    import signal
    import subprocess
    import sys

    from tests.support import wait_until

    world = moved
    dev = world.redis["staging"].client()
    memory = f"memory:{MOVED_USER}".encode()
    before = dev.dump(memory)
    out = tmp_path / "back"
    run = subprocess.Popen(
        [sys.executable, "-m", "ci_tools", "send-back", "--user-id", str(MOVED_USER), "--apply", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=unmeasured(),
    )
    try:
        wait_until(lambda: any(out.glob("*-backup-*")) or run.poll() is not None, "the backup started")
        run.send_signal(getattr(signal, signal_name))
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert "Traceback" not in err, err
    capsys.readouterr()
    code = main(["send-back", "--undo", str(out), "--apply", "--out", str(tmp_path / "undo")])
    undo_err = capsys.readouterr().err
    if code == 0:
        assert dev.dump(memory) == before
    else:
        one_line(undo_err)
        assert dev.dump(memory) == before


# -- the quiet wait against a health answer that is there but malformed -----------------------------


@pytest.mark.parametrize("last", ["yesterday", [1], {"at": 1}])
def test_a_malformed_health_answer_is_not_called_no_health_endpoint(last):
    """The bot answers /healthz, but its ``updates.last_handled_at`` is no number: there is no wait (it
    cannot say), and the run names what is wrong, not 'has no health endpoint (base level)' —
    that would send the owner looking for an endpoint that is there."""
    from email.utils import formatdate

    from ci_tools.clients.health import health_of
    from ci_tools.pipeline.quiet import wait_for_quiet
    from sandbox.ports import AnsweringServer
    from tests.pipeline.test_quiet import ENV
    from tests.pipeline.test_quiet import body as healthy

    answer = healthy(1_700_000_000.0)
    answer["updates"]["last_handled_at"] = last
    with AnsweringServer(lambda: (200, answer, {"Date": formatdate(1_700_000_010, usegmt=True)})) as server:
        quiet = wait_for_quiet(ENV, lambda: health_of(f"{server.url}/healthz", 5))
    assert quiet.waited < 5 and not quiet.went_ahead_busy
    assert "no health endpoint" not in quiet.detail, quiet.detail
    assert "last_handled_at" in quiet.detail, quiet.detail


# -- the hotfix input where there is no dispatch ------------------------------------------------------


@pytest.mark.parametrize("given", ["", "false", "null", "True "])
def test_the_hotfix_input_as_a_push_carries_it_waits_and_only_true_skips(world, capsys, given):
    """A push has no inputs: ``${{ inputs.hotfix || false }}`` is 'false' there (an empty string where
    an expression gives nothing). Only the dispatch's true skips the wait; whatever else arrives waits."""
    from pathlib import Path

    import yaml

    workflow = yaml.safe_load((Path(__file__).resolve().parents[2] / ".github/workflows/production.yml").read_text())
    [step] = [s for s in workflow["jobs"]["release"]["steps"] if "ci-tools quiet" in str(s.get("run"))]
    assert step["env"]["HOTFIX"] == "${{ inputs.hotfix || false }}" and '--hotfix "$HOTFIX"' in step["run"]
    assert main(["quiet", "production", "--hotfix", given]) == 0
    out = capsys.readouterr().out
    assert ("hotfix:" in out) is (given.strip().lower() == "true"), out
