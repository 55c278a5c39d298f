"""Attacks on ``cancel.owned`` (a cancel held back while a child starts, raised once it is owned).

The promise: a cancel (GitHub's SIGINT then SIGTERM, Ctrl-C) never leaves a build's, a bot's or a
private Redis's processes running, prints no traceback, exits 130, and is never swallowed so that
the command runs on. Each attack signals its own process at the moment it aims at (a wrapped
``Popen`` or ``os.killpg`` sends the signal as it returns) and waits for states, not for time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ci_tools import botrun, cancel
from ci_tools.__main__ import interrupted_by_signals
from ci_tools.botrun.commands import BotCommands
from ci_tools.botrun.sessions import session_members
from ci_tools.memory.throwaway import private_redis
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
IGNORES_TERM = "trap '' TERM; sleep 300 & wait"  # a command (and its child) that SIGTERM does not stop


def _kill_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        for pid in [process.pid, *session_members(process.pid)]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        process.wait()


def _gone(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is not None and not session_members(process.pid)


@pytest.fixture
def children(monkeypatch) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every ``sleep 300`` command or Redis server Popen starts, killed at the end whatever the
    test found (a failure here must not leave a sleep 300 behind)."""
    real = subprocess.Popen
    started: list[subprocess.Popen[bytes]] = []

    def recording(argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        process = real(argv, **kwargs)  # type: ignore[call-overload]
        if "sleep 300" in argv[-1] or "redis" in Path(argv[0]).name:
            started.append(process)
        return process

    monkeypatch.setattr(subprocess, "Popen", recording)
    try:
        yield started
    finally:
        monkeypatch.undo()
        _kill_all(started)


def _signal_self(*signums: int) -> None:
    """Signal this process and return once the handler (main thread) has recorded the cancel.

    Aimed at the main thread, as the kernel prefers: a signal that lands in another thread waits
    for the main thread to wake, and one blocked on a lock with no timeout would not (CPython)."""
    for signum in signums:
        signal.pthread_kill(threading.main_thread().ident or 0, signum)
    wait_until(cancel.requested, "the signal handler to record the cancel", deadline=15)


def _cancel_now() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    _interrupt_pending()


def _interrupt_pending() -> None:
    """Give a pending KeyboardInterrupt its chance: an interruptible wait that fails if none comes."""
    threading.Event().wait(10)
    pytest.fail("no KeyboardInterrupt: the cancel was swallowed")


# --- a bot started from a worker thread (the Render stand-in's deploy and health threads) -----------

WORKER_SCRIPT = textwrap.dedent(
    """
    import os, signal, subprocess, sys, threading
    from pathlib import Path

    from ci_tools import botrun, cancel
    from ci_tools.__main__ import _interrupted, interrupted_by_signals
    from ci_tools.botrun.commands import BotCommands
    from tests.support import wait_until

    real = subprocess.Popen

    def popen_then_cancel(argv, **kwargs):
        process = real(argv, **kwargs)
        if "sleep 300" in argv[-1]:
            print(process.pid, flush=True)
            # GitHub's cancel, as the bot's process is made (at the main thread: see _signal_self)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
            wait_until(cancel.requested, "the handler to record the cancel", deadline=15)
        return process

    subprocess.Popen = popen_then_cancel
    tree = Path(sys.argv[1])

    done = threading.Event()

    def deploy():  # as the Render stand-in's deploy thread does
        try:
            botrun.start(tree, BotCommands(build="", start="sleep 300 & wait"), dict(os.environ), None)
        finally:
            done.set()

    with interrupted_by_signals():
        worker = threading.Thread(target=deploy, name="deploy")
        try:
            worker.start()
            done.wait()  # the main thread is elsewhere: here, waiting for the deploy
            print("ran on after the cancel", flush=True)
            sys.exit(0)
        except KeyboardInterrupt:
            # as the stand-in's close does (a join that a KeyboardInterrupt cut short returns at
            # once after, on Python 3.11: gh-90882)
            assert done.wait(30), "the deploy thread did not end"
            worker.join()
            sys.exit(_interrupted())
    """
)


def test_a_cancel_while_a_worker_thread_starts_a_bot_interrupts_the_command(tmp_path: Path) -> None:
    """``_holding`` was one count for every thread: a bot started by a worker thread held back the
    main thread's interrupt too, so the command ran on (SIGTERM ignored from then on) and the
    worker's KeyboardInterrupt was printed as a thread's traceback."""
    tree = tmp_path / "bot"
    tree.mkdir()
    command = subprocess.run(
        [sys.executable, "-c", WORKER_SCRIPT, str(tree)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    pids = [int(line) for line in command.stdout.splitlines() if line.strip().isdigit()]
    try:
        assert "ran on after the cancel" not in command.stdout, "the cancel was swallowed: the command ran on"
        assert command.returncode == 130, command.stderr
        assert "Traceback" not in command.stderr, command.stderr
        assert pids, command.stdout
        wait_until(lambda: not any(session_members(pid) for pid in pids), "the bot's session to be gone", 15)
    finally:
        for pid in pids:
            for member in [pid, *session_members(pid)]:
                with contextlib.suppress(OSError):
                    os.kill(member, signal.SIGKILL)


# --- a cancel that lands while a child is being stopped -------------------------------------------


@pytest.fixture
def cancelled_while_stopping(monkeypatch, children) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The first SIGTERM sent to a command's session also signals this process (a cancel that
    lands inside ``stop_session``, between its SIGTERM and its SIGKILL), under the real handler."""
    real = os.killpg

    def killpg_then_cancel(pgid: int, signum: int) -> None:
        real(pgid, signum)
        if signum == signal.SIGTERM and not cancel.requested():
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "killpg", killpg_then_cancel)
    with interrupted_by_signals():
        yield children


@pytest.mark.parametrize("stage", ["build", "start"])
def test_a_cancel_while_a_command_that_ignores_sigterm_is_stopped_still_kills_it(
    tmp_path: Path, subprocess_env: dict[str, str], cancelled_while_stopping: list[subprocess.Popen[bytes]], stage: str
) -> None:
    """A build past its timeout (or a bot that never answered) is stopped: SIGTERM, ``grace``,
    SIGKILL. A cancel in the grace raised there, and the SIGKILL never came: what ignores SIGTERM
    ran on after the command had exited 130."""
    tree = tmp_path / "bot"
    tree.mkdir()

    def run() -> object:
        if stage == "build":
            return botrun.build(tree, BotCommands(build=IGNORES_TERM, start="m"), subprocess_env, timeout=0.5)
        return botrun.start(tree, BotCommands(build="", start=IGNORES_TERM), subprocess_env, None, timeout=0.5)

    with pytest.raises(KeyboardInterrupt):
        run()
    (process,) = cancelled_while_stopping
    wait_until(lambda: _gone(process), "the command and its sleep to be gone", deadline=15)


def test_a_cancel_while_a_running_bot_that_ignores_sigterm_is_stopped_still_kills_it(
    tmp_path: Path, subprocess_env: dict[str, str], children: list[subprocess.Popen[bytes]], monkeypatch
) -> None:
    """check-bot's end: ``with bot:`` stops a bot that ran (grace 5 s); a cancel in that grace."""
    tree = tmp_path / "bot"
    tree.mkdir()
    command = f"{IGNORES_TERM.removesuffix(' & wait')} & exec python -m http.server $PORT --bind 127.0.0.1"
    bot = botrun.start(tree, BotCommands(build="", start=command), subprocess_env, None)
    real = os.killpg

    def killpg_then_cancel(pgid: int, signum: int) -> None:
        real(pgid, signum)
        if signum == signal.SIGTERM and not cancel.requested():
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "killpg", killpg_then_cancel)
    with interrupted_by_signals(), pytest.raises(KeyboardInterrupt), bot:
        pass
    (process,) = children
    wait_until(lambda: _gone(process), "the bot and its sleep to be gone", deadline=15)


# --- the held window itself -----------------------------------------------------------------------


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["bash", "-c", "sleep 300 & wait"], start_new_session=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_two_signals_while_a_child_starts_are_one_interrupt_and_the_child_stops(children) -> None:
    """Ctrl-C and GitHub's SIGTERM both inside the held window: one KeyboardInterrupt, once owned."""

    def start() -> subprocess.Popen[bytes]:
        process = _sleeper()
        _signal_self(signal.SIGINT, signal.SIGTERM)
        return process

    with interrupted_by_signals():
        with pytest.raises(KeyboardInterrupt), cancel.owned(start, _stop):
            pytest.fail("the held cancel was not raised once the child was owned")
        assert not cancel.holding()
    (process,) = children
    wait_until(lambda: _gone(process), "the child to be gone", deadline=15)


def test_a_start_that_fails_leaves_nothing_held(children) -> None:
    """``start()`` raising (and a nested ``owned`` raising inside it) leaves no hold behind: the
    next cancel of the same process is raised where it lands, not recorded and dropped."""

    def inner_fails() -> subprocess.Popen[bytes]:
        with cancel.owned(_sleeper, _stop):
            raise RuntimeError("the start command could not run")

    with interrupted_by_signals():
        with pytest.raises(RuntimeError), cancel.owned(inner_fails, _stop):
            pass
        assert not cancel.holding()
        with pytest.raises(KeyboardInterrupt):
            _cancel_now()
    (process,) = children
    wait_until(lambda: _gone(process), "the inner child to be gone", deadline=15)


def test_a_cancel_inside_a_nested_start_stops_both_children(children) -> None:
    """The outer child starts the inner one (a bot that needs its own Redis): a cancel while the
    inner one starts stops it, and the outer one never hands on a child."""
    stopped: list[int] = []

    def stop(process: subprocess.Popen[bytes]) -> None:
        stopped.append(process.pid)
        _stop(process)

    def inner() -> subprocess.Popen[bytes]:
        process = _sleeper()
        _signal_self(signal.SIGTERM)
        return process

    def outer() -> subprocess.Popen[bytes]:
        with cancel.owned(inner, stop, always=False):
            return _sleeper()  # not reached: the cancel is raised once the inner child is owned

    with interrupted_by_signals():
        with pytest.raises(KeyboardInterrupt), cancel.owned(outer, stop):
            pytest.fail("a child was handed on after the cancel")
        assert not cancel.holding()
    assert [p.pid for p in children] == stopped
    for process in children:
        wait_until(lambda p=process: _gone(p), "the children to be gone", deadline=15)


def test_a_ctrl_c_while_a_child_starts_without_the_commands_handler_still_stops_it(children) -> None:
    """Library use (tests, the sandbox in a test process): Python's own SIGINT handler raises
    inside ``start()``, before ``owned`` holds the child, which then ran on. Python's own handler
    is put in place here: a suite started in the background (``.ci/run &``) inherits SIGINT
    ignored, and CI once failed on that precondition, not on the claim."""

    def start() -> subprocess.Popen[bytes]:
        process = _sleeper()
        os.kill(os.getpid(), signal.SIGINT)
        threading.Event().wait(10)  # where the KeyboardInterrupt lands if nothing holds it back
        return process

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), cancel.owned(start, _stop):
            pytest.fail("the cancel was lost")
    finally:
        signal.signal(signal.SIGINT, before)
    (process,) = children
    wait_until(lambda: _gone(process), "the child to be gone", deadline=15)


def test_a_cancel_while_the_private_redis_starts_in_a_worker_thread_stops_it(children) -> None:
    """A worker thread's private Redis (no handler runs there): the command's main thread is
    interrupted, and the worker stops its server rather than hand it on."""
    failure: list[BaseException] = []
    real: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen

    def popen_then_cancel(argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        process = real(argv, **kwargs)
        if "redis" in Path(argv[0]).name:
            _signal_self(signal.SIGTERM)
        return process

    done = threading.Event()

    def worker() -> None:
        try:
            with private_redis(os.environ):
                pass
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    subprocess.Popen = popen_then_cancel  # type: ignore[misc]
    thread = threading.Thread(target=worker)

    def run_worker() -> None:
        thread.start()
        done.wait()  # the main thread elsewhere, waiting for the worker
        _interrupt_pending()

    try:
        with interrupted_by_signals():
            with pytest.raises(KeyboardInterrupt):
                run_worker()
            assert done.wait(30), "the worker did not end"
            thread.join()
    finally:
        subprocess.Popen = real  # type: ignore[misc]
    assert [type(exc) for exc in failure] == [KeyboardInterrupt]
    (process,) = children
    assert process.poll() is not None, "the private Redis outlived the cancel"


# --- the real command: check-bot, both of GitHub's signals as the child is made ------------------

CHECK_BOT_SCRIPT = textwrap.dedent(
    """
    import os, signal, subprocess, threading

    from ci_tools import cancel
    from ci_tools.__main__ import run
    from tests.support import wait_until

    real = subprocess.Popen

    def popen_then_cancel(argv, **kwargs):
        process = real(argv, **kwargs)
        if "sleep 300" in argv[-1]:
            print(process.pid, flush=True)
            main = threading.main_thread().ident  # see _signal_self
            signal.pthread_kill(main, signal.SIGINT)  # GitHub's cancel, and its SIGTERM, both at once
            signal.pthread_kill(main, signal.SIGTERM)
            wait_until(cancel.requested, "the handler to record the cancel", deadline=15)
        return process

    subprocess.Popen = popen_then_cancel
    run()
    """
)


@pytest.mark.parametrize("stage", ["build", "start"])
def test_check_bot_cancelled_twice_as_its_child_starts_exits_130_with_nothing_left(tmp_path: Path, stage: str) -> None:
    """``python -m ci_tools check-bot`` on an owner's bot, SIGINT and SIGTERM landing as the
    build's (or the bot's) process is made: exit 130, "interrupted", no traceback, no
    "Exception ignored", the command's session gone, no temporary copy left."""
    from tests.cli.test_check_bot import owner_repo

    repo = owner_repo(tmp_path)
    spec = repo / "render.yaml"
    line = "buildCommand: pip install -r requirements.txt" if stage == "build" else "startCommand: python -m bot"
    key = line.split(":")[0]
    spec.write_text(spec.read_text().replace(line, f"{key}: sleep 300 & wait"))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    command = subprocess.run(
        [sys.executable, "-c", CHECK_BOT_SCRIPT, "check-bot", str(repo)],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp), "PIP_NO_INDEX": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    pids = [int(line) for line in command.stdout.splitlines() if line.strip().isdigit()]
    try:
        assert command.returncode == 130, (command.stdout, command.stderr)
        assert command.stderr.strip().splitlines()[-1] == "ci-tools: interrupted", command.stderr
        assert "Traceback" not in command.stderr and "Exception ignored" not in command.stderr, command.stderr
        assert len(pids) == 1, command.stdout
        wait_until(lambda: not session_members(pids[0]), "the child's session to be gone", deadline=15)
        assert not list(tmp.glob("ci-tools-check-bot-*"))
    finally:
        for pid in pids:
            for member in [pid, *session_members(pid)]:
                with contextlib.suppress(OSError):
                    os.kill(member, signal.SIGKILL)


@pytest.mark.xfail(
    strict=True,
    reason="a start() that hangs (a fork child stuck before exec: preexec_fn's dlopen in a threaded "
    "process) holds the cancel back as long as it hangs; bounding the hold needs a timer that "
    "re-raises in the main thread, not a minimal change",
)
def test_a_cancel_while_a_start_hangs_is_not_held_until_it_returns(children) -> None:
    """Before ``owned``, SIGTERM broke ``Popen``'s wait for its child's exec; held, it waits."""
    hang = threading.Event()
    started: list[float] = []

    def start() -> subprocess.Popen[bytes]:
        threading.Thread(target=_signal_self, args=(signal.SIGTERM,), daemon=True).start()
        # the child's exec is late by 8 s (a stuck preexec_fn); the cancel comes at once
        process = subprocess.Popen(
            ["bash", "-c", "sleep 300 & wait"], start_new_session=True, preexec_fn=lambda: hang.wait(8)
        )
        started.append(time.monotonic())
        return process

    begun = time.monotonic()
    with interrupted_by_signals(), pytest.raises(KeyboardInterrupt), cancel.owned(start, _stop):
        pass
    assert not started or started[0] - begun < 4, "the cancel waited for the hung start to return"
