"""Attacks on the cancel of a memory write (23944e2, ``ci_tools/cancel.py``): GitHub's cancel is SIGINT,
then SIGTERM 7.5 s later; its KeyboardInterrupt may land in a ``__del__``, where Python swallows it.
The promise: the write stops promptly, the target stays undoable from its backup, no traceback is
printed, and no memory is lost. Each swallowing is staged every time: a ``__del__`` that signals
its own process (the handler runs inside the finalizer)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_tools import cancel
from ci_tools.__main__ import interrupted_by_signals, main
from ci_tools.memory import writer as writer_module
from ci_tools.memory.job import MemoryJob
from ci_tools.memory.ops import copy_user, undo_backup
from ci_tools.memory.records import BATCH
from tests.memory.helpers import ROUTE, USER, request, seed_bulk, state
from tests.support import context, unmeasured, wait_until

# Thousands of keys through real servers and a child process, on a busy 2-core runner.
pytestmark = pytest.mark.timeout(300)

COPY = ["memory", "copy", *ROUTE, "--pattern", "bulk:{user_id}:*", "--ignore-uncovered", "--on-conflict", "replace"]


@pytest.fixture(autouse=True)
def _no_cancel_left_behind() -> Iterator[None]:
    """Every test here ends with no cancel recorded: one left would stop the worker's next test."""
    yield
    left = cancel.requested()
    cancel.clear()
    assert not left, "a cancel was left recorded after the test"


class _SignalsFromAFinalizer:
    """Sends this process ``sig`` from its ``__del__``: the handler's KeyboardInterrupt is raised
    inside the finalizer, printed as "Exception ignored" and dropped."""

    def __init__(self, sig: signal.Signals) -> None:
        self.sig = sig

    def __del__(self) -> None:
        os.kill(os.getpid(), self.sig)


def _seed(source, target, batches: int = 3) -> None:
    """``batches`` batches of the user's keys in the source (some with a TTL); the target already
    holds every other one (replaced, so the backup must put it back) and one with a TTL."""
    pipe = source.pipeline(transaction=False)
    for i in range(batches * BATCH):
        pipe.rpush(f"dev:bulk:{USER}:{i}", b"new %d" % i, b"\xff")
        if i % 7 == 0:
            pipe.pexpire(f"dev:bulk:{USER}:{i}", 3_600_000)
    pipe.execute()
    pipe = target.pipeline(transaction=False)
    for i in range(0, batches * BATCH, 2):
        pipe.rpush(f"prod:bulk:{USER}:{i}", b"old %d" % i)
        if i % 10 == 0:
            pipe.pexpire(f"prod:bulk:{USER}:{i}", 7_200_000)
    pipe.execute()


def _cancel_after_first(patch: pytest.MonkeyPatch, owner: type, name: str, sig: signal.Signals) -> list[int]:
    """``owner.name`` runs as before; after its first call, a cancel lands in a ``__del__``. (``patch``
    is a ``MonkeyPatch.context()``: undoing the test's own monkeypatch would undo its servers' URLs.)"""
    original, calls = getattr(owner, name), []

    def wrapped(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            _SignalsFromAFinalizer(sig)  # collected at once: the signal lands in __del__
        return result

    patch.setattr(owner, name, wrapped)
    return calls


def _one_backup(out: Path) -> Path:
    backups = sorted(out.glob("*-backup-*.jsonl"))
    assert len(backups) == 1, backups
    return backups[0]


# -- The real process: what the person (or GitHub's log) sees.

_CHILD = """
import os, signal, sys
from ci_tools.memory import writer

class SignalsFromAFinalizer:
    def __del__(self):
        os.kill(os.getpid(), signal.{sig})

original, calls = writer.Writer.write_batch, []

def write_batch(self, items):
    original(self, items)
    calls.append(1)
    if len(calls) == 1:
        SignalsFromAFinalizer()

writer.Writer.write_batch = write_batch
from ci_tools.__main__ import run
run()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_swallowed_cancel_in_the_real_process_prints_no_traceback(memory_envs, tmp_path, sig):
    """The cancel a busy runner met: the process stops at the next batch — and says only that it was
    interrupted, not Python's "Exception ignored … Traceback … KeyboardInterrupt" from the finalizer."""
    dev, prod = memory_envs
    source, target = dev.client(), prod.client()
    _seed(source, target)
    before = state(target)
    out = tmp_path / "out"
    command = [sys.executable, "-c", _CHILD.format(sig=sig.name), *COPY, "--apply", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, env=os.environ.copy(), timeout=240, check=False)
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 130, err
    assert "Traceback" not in err, err
    assert "Exception ignored" not in err, err
    assert err.strip() == "ci-tools: interrupted", err
    assert target.lindex(f"prod:bulk:{USER}:0", 0) == b"new 0"  # the first batch was written...
    assert not target.exists(f"prod:bulk:{USER}:{3 * BATCH - 1}")  # ...the last never
    _, _, left = undo_backup(context(), _one_backup(out), tmp_path / "undo")
    assert left == []
    assert state(target) == before


def test_sigint_then_sigterm_mid_write_stops_once_without_a_traceback(memory_envs, tmp_path):
    """GitHub's cancel in full, in the real command: SIGINT, then SIGTERM (its 7.5 s shortened to the
    moment the first lands, so it arrives while the first is being handled). The second is ignored,
    the exit is the interrupt's, and the backup undoes what was written, byte for byte."""
    dev, prod = memory_envs
    source, target = dev.client(), prod.client()
    seed_bulk(source, target, 6 * BATCH)
    before = state(target)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "ci_tools", *COPY, "--apply", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=unmeasured())
    wait_until(
        lambda: target.lindex(f"prod:bulk:{USER}:0", 0) == b"new 0" or process.poll() is not None, "the first write"
    )
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"the copy ran on for 240 s after the cancel: {err[-2000:]!r}")
    if process.returncode == 0:
        pytest.skip("the copy finished before the signals arrived")
    assert process.returncode == 130, err  # not -15: the SIGTERM did not kill it mid-cleanup
    assert err.decode().strip() == "ci-tools: interrupted", err
    _, _, left = undo_backup(context(), _one_backup(out), tmp_path / "undo")
    assert left == []
    assert state(target) == before


_BOTH_AT_ONCE = """
import os, signal, sys
from ci_tools.memory import writer

original, calls = writer.Writer.write_batch, []

def write_batch(self, items):
    original(self, items)
    calls.append(1)
    if len(calls) == 1:  # both pending before either handler runs: Ctrl-C twice, GitHub's pair on a stalled runner
        both = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, both)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, both)

writer.Writer.write_batch = write_batch
from ci_tools.__main__ import run
run()
"""


def test_a_second_signal_arriving_with_the_first_prints_no_traceback(memory_envs, tmp_path):
    """The first handler sets both signals to SIG_IGN; the second, already arrived, is then reported by
    CPython as "OSError: Signal 15 ignored due to race condition", with a traceback — the very
    ignoring the cancel means to do, printed as a crash (found by the test above, once in two runs)."""
    dev, prod = memory_envs
    source, target = dev.client(), prod.client()
    _seed(source, target)
    before = state(target)
    out = tmp_path / "out"
    command = [sys.executable, "-c", _BOTH_AT_ONCE, *COPY, "--apply", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, env=os.environ.copy(), timeout=240, check=False)
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 130, err
    assert err.strip() == "ci-tools: interrupted", err
    _, _, left = undo_backup(context(), _one_backup(out), tmp_path / "undo")
    assert left == []
    assert state(target) == before


# -- The flag: recorded for one command, never the next.


def test_a_cancel_recorded_in_one_main_call_stops_neither_the_next_nor_a_later_library_call(
    memory_envs, tmp_path, capsys
):
    """Tests (and the rehearsal) run many commands in one process: the cancel a ``__del__`` swallowed
    in one ``main()`` is that command's alone."""
    dev, prod = memory_envs
    source, target = dev.client(), prod.client()
    _seed(source, target)
    before = state(target)
    out = tmp_path / "out"
    with pytest.MonkeyPatch.context() as patch:
        calls = _cancel_after_first(patch, writer_module.Writer, "write_batch", signal.SIGTERM)
        assert main([*COPY, "--apply", "--out", str(out)]) == 130
    assert calls == [1]
    assert capsys.readouterr().err.strip() == "ci-tools: interrupted"
    cancel.checkpoint()  # main() returned: its cancel is gone (a direct copy_user would not stop)
    cancel.request()  # a stale cancel (another thread's command, a library call): the next command starts clean
    assert main(["memory", "undo", str(_one_backup(out)), "--apply", "--out", str(tmp_path / "undo")]) == 0
    assert state(target) == before
    cancel.request()
    assert main([*COPY, "--apply", "--out", str(tmp_path / "again")]) == 0
    assert target.lindex(f"prod:bulk:{USER}:{3 * BATCH - 1}", 0) == b"new %d" % (3 * BATCH - 1)
    cancel.checkpoint()


# -- The plan stage: files a cancel cut are never used as complete.


def test_a_plan_stage_cut_by_a_swallowed_cancel_leaves_files_no_write_or_undo_uses(memory_envs, tmp_path, capsys):
    dev, prod = memory_envs
    source, target = dev.client(), prod.client()
    _seed(source, target)
    before = state(target)
    out = tmp_path / "out"
    with pytest.MonkeyPatch.context() as patch:
        calls = _cancel_after_first(patch, MemoryJob, "_plan_batch", signal.SIGINT)
        assert main([*COPY, "--apply", "--stage", "plan", "--out", str(out)]) == 130
    assert calls == [1]  # stopped at the next batch: the backup holds one batch and no footer
    capsys.readouterr()
    backup = _one_backup(out)
    assert main([*COPY, "--apply", "--stage", "write", "--out", str(out)]) == 5
    err = capsys.readouterr().err
    assert "incomplete" in err and "Traceback" not in err, err
    assert main(["memory", "undo", str(backup), "--apply", "--out", str(tmp_path / "undo")]) == 5
    assert "incomplete" in capsys.readouterr().err
    assert state(target) == before


# -- Undo: a write too; stopped at a batch, a rerun finishes it.


def test_an_undo_cancelled_by_a_swallowed_signal_stops_and_a_rerun_finishes_it(memory_envs, tmp_path):
    dev, prod = memory_envs
    source, target = dev.client(), prod.client()
    _seed(source, target)
    before = state(target)
    outcome = copy_user(
        context(), request(tmp_path, patterns=("bulk:{user_id}:*",), uncovered="ignore", policy="replace")
    )
    assert outcome.backup is not None
    copied = state(target)
    with pytest.MonkeyPatch.context() as patch:
        calls = _cancel_after_first(patch, writer_module.Writer, "write_batch", signal.SIGTERM)
        with interrupted_by_signals(), pytest.raises(KeyboardInterrupt):
            undo_backup(context(), outcome.backup, tmp_path / "undo")
    assert calls == [1], "the undo went on writing after the cancel"
    assert state(target) not in (before, copied)  # stopped part way
    _, count, left = undo_backup(context(), outcome.backup, tmp_path / "undo-again")
    assert (count, left) == (3 * BATCH, [])
    assert state(target) == before


# -- The stand-ins' own cancel paths, and the new flag.


def test_a_rehearsal_under_main_keeps_mains_cancel(monkeypatch):
    """``ci-tools rehearse`` runs under main(); rehearse() put its own SIGTERM handler over main's,
    one that neither records the cancel nor ignores the next signal: a SIGTERM a ``__del__``
    swallowed was lost, and the rehearsal's copies ran on."""
    from sandbox import rehearsal

    def rehearsed(*args: object) -> list[object]:
        _SignalsFromAFinalizer(signal.SIGTERM)
        cancel.checkpoint()  # where the rehearsal's next memory batch would look
        return []

    monkeypatch.setattr(rehearsal, "_rehearse_in", rehearsed)
    with interrupted_by_signals():
        with pytest.raises(KeyboardInterrupt):
            rehearsal.rehearse(Path("."))
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN  # the next one is ignored while it unwinds


def test_the_replay_starts_no_bot_after_a_cancel_a_finalizer_swallowed():
    """The replay's bots run under its own loop handlers, which re-arm the signals the first cancel
    set to ignored: a cancel swallowed while the trees were built (minutes of installs) was lost,
    and GitHub's next signal, already past, never came — the bots ran on."""
    from ci_tools.pipeline.replay import _Stage

    ran: list[int] = []

    async def work() -> None:
        ran.append(1)

    with interrupted_by_signals():
        _SignalsFromAFinalizer(signal.SIGINT)
        with pytest.raises(asyncio.CancelledError):
            asyncio.run(_Stage._cancellable(None, work()))  # type: ignore[arg-type]
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert ran == []
