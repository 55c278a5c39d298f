"""A command's processes as one session: started together, stopped together.

A build command and a start command are run with ``bash -c``: whatever they start (pip, a
compiler, the bot, its workers, a forgotten ``&`` job) is bash's child, not ours. Each runs in a
session of its own, so stopping it reaches all of them, and with a parent-death signal, so a
SIGKILL of ours still takes the command along (Linux; elsewhere a no-op).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a child gets when the thread that started it dies


def die_with_parent() -> None:
    """In a child, before it runs: be killed when the process that started it dies.

    SIGTERM and Ctrl-C unwind the ``with`` blocks that stop our children, but a SIGKILL (a
    runner that gives up on a cancelled step) unwinds nothing: the kernel's parent-death signal
    still takes the private Redis and the bots with us (Linux; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def stop_session(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM to the process's session, then SIGKILL to every member still there after ``grace``."""
    sid = process.pid
    if process.poll() is None:
        with contextlib.suppress(OSError):
            os.killpg(sid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    for pid in session_members(sid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
    process.wait()
    deadline = time.monotonic() + grace  # SIGKILL is delivered, not awaited: until the kernel is done
    while session_members(sid) and time.monotonic() < deadline:
        time.sleep(0.01)


def session_members(sid: int, proc: Path = Path("/proc")) -> list[int]:
    """Every live process in session ``sid`` (a bot's children and theirs, reparented or not)."""
    found = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # state, ppid, pgrp, session; a zombie is dead already
            found.append(int(stat.parent.name))
    return found
