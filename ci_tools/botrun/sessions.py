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

from ci_tools import cancel

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a child gets when the thread that started it dies


def die_with_parent() -> None:
    """In a child, before it runs: be killed when the process that started it dies.

    SIGTERM and Ctrl-C unwind the ``with`` blocks that stop our children, but a SIGKILL (a
    runner that gives up on a cancelled step) unwinds nothing: the kernel's parent-death signal
    still takes the private Redis and the bots with us (Linux; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def stop_session(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM to the process's session, then SIGKILL to every member still there after ``grace``.

    Its descendants that left the session (``setsid``, ``start_new_session=True``) are found by
    parentage before anything is signalled (once their parent is gone they belong to init) and
    are stopped the same way. A cancel that lands meanwhile is raised once it is done
    (``cancel.held``): raised in the grace, it skipped the SIGKILL, and what ignores SIGTERM ran on."""
    with cancel.held():
        _stop_session(process, grace)


def _stop_session(process: subprocess.Popen[bytes], grace: float) -> None:
    sid = process.pid
    strays = [pid for pid in descendants(sid) if pid not in session_members(sid)]
    if process.poll() is None:
        with contextlib.suppress(OSError):
            os.killpg(sid, signal.SIGTERM)
        for pid in strays:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    for pid in [*session_members(sid), *(pid for pid in strays if _alive(pid))]:
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
    return [pid for pid, (_, session) in _processes(proc).items() if session == sid]


def descendants(root: int, proc: Path = Path("/proc")) -> list[int]:
    """Every live process below ``root`` by parentage, whatever session it is in."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in _processes(proc).items():
        children.setdefault(parent, []).append(pid)
    found, pending = [], list(children.get(root, []))
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending += children.get(pid, [])
    return found


def _alive(pid: int, proc: Path = Path("/proc")) -> bool:
    return pid in _processes(proc, only=pid)


def _processes(proc: Path, only: int | None = None) -> dict[int, tuple[int, int]]:
    """Each live process's parent and session (a zombie is dead already)."""
    found = {}
    for stat in proc.glob(f"{only}/stat" if only else "[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # state, ppid, pgrp, session, ...
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            found[int(stat.parent.name)] = (int(fields[1]), int(fields[3]))
    return found
