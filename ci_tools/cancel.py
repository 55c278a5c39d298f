"""A cancel that a finalizer cannot swallow.

``ci_tools.__main__`` turns the first SIGINT or SIGTERM into a KeyboardInterrupt and ignores the
rest while the cleanup runs. But a Python-level handler runs wherever the interpreter happens to
be, and when that is a ``__del__`` (a Redis connection collected mid-batch, say) the
KeyboardInterrupt is printed as "Exception ignored" and lost: the command would carry on to the
end with every later signal ignored — a memory copy cancelled after its first batch went on to
write the rest. So the handler also records the cancel here, and the loops that write a user's
memory call :func:`checkpoint` between batches: a lost interrupt stops the work at the next one.

A cancel that lands between starting a child and the ``try`` that stops it would leave the child
running (a build's ``sleep 300 &`` outlived check-bot so once in CI: the signal came while
``Popen`` was returning). :func:`owned` holds the interrupt back over that gap, and over the stop
(:func:`held`): a cancel in a stop's grace would skip its SIGKILL, and what ignores SIGTERM ran on.

A hold is the holding thread's own: the handler runs in the main thread and asks about it alone.
One count for every thread let a bot that a worker thread started (the Render stand-in's deploy
and health threads) hold the main thread's interrupt back, never to be raised: the command ran on
with SIGTERM ignored. A worker's own hold raises at :func:`checkpoint` once its child is owned.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

_requested = threading.Event()
_local = threading.local()  # per thread: depth (> 0: starting or stopping a child), deferred


def request() -> None:
    """Record a cancel (the signal handler calls this before raising KeyboardInterrupt)."""
    _requested.set()


def clear() -> None:
    """Forget a recorded cancel: a new command starts uncancelled (tests run many in a process)."""
    _requested.clear()


def requested() -> bool:
    """Was a cancel recorded (and not yet cleared)?"""
    return _requested.is_set()


def checkpoint() -> None:
    """Raise KeyboardInterrupt when a cancel was recorded: called between batches of a write, so
    an interrupt that a ``__del__`` swallowed still stops the work (the batch before is whole,
    and the backup written before it can undo it)."""
    if _requested.is_set():
        raise KeyboardInterrupt


def holding() -> bool:
    """Is this thread starting or stopping a child (:func:`held`)? Asked by the signal handler, in
    the main thread: a worker thread's hold must not hold back the main thread's interrupt."""
    return getattr(_local, "depth", 0) > 0


def defer() -> bool:
    """The signal handler's question: True when this thread holds (the interrupt is then raised
    as the outermost hold ends), False when the handler must raise it now."""
    if holding():
        _local.deferred = True
        return True
    return False


def _defer_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """Python's own SIGINT handler while a hold lasts (no command's handler: library use, tests)."""
    if not defer():
        raise KeyboardInterrupt


@contextlib.contextmanager
def held() -> Iterator[None]:
    """A cancel that lands in the block is raised as it ends (the outermost hold), even when the
    block raised: starting a child, or stopping one (a cancel in a stop's grace skipped the SIGKILL).
    Where Python's own SIGINT handler is in place (no command's: ``ci_tools.__main__``), it
    raised inside ``start()`` and the child ran on: the main thread defers it for the block too."""
    depth = getattr(_local, "depth", 0)
    ours = (
        depth == 0
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    try:  # all of it: the finally puts back the depth and handler it found, whenever it is cut short
        if depth == 0:
            _local.deferred = False
        _local.depth = depth + 1
        if ours:
            signal.signal(signal.SIGINT, _defer_ctrl_c)
        yield
    finally:
        _local.depth = depth
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if depth == 0 and _local.deferred:
            _local.deferred = False
            raise KeyboardInterrupt  # the cancel wins over what the block raised


@contextlib.contextmanager
def owned(start: Callable[[], T], stop: Callable[[T], None], *, always: bool = True) -> Iterator[T]:
    """``start()`` a child with a cancel held back until ``stop`` owns it: a cancel that came while
    it started is raised once it is owned, so ``stop`` runs (at the block's end with ``always``,
    else only when the block raises: a bot that is handed on keeps running). ``stop`` is held
    too: a cancel while it runs is raised once it is done."""
    got: list[T] = []  # appended as start() returns: the handler raises nothing while held
    try:
        with held():
            got.append(start())
        checkpoint()  # a worker thread's: the main thread's handler raised there, not here
        yield got[0]
    except BaseException:
        if got and not always:
            with held():
                stop(got[0])
        raise
    finally:
        if got and always:
            with held():
                stop(got[0])
