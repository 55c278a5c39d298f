"""Run an iterator one step ahead in a thread, so a server round trip overlaps Python work.

Most of a batch's time is spent waiting for Redis (socket reads release the GIL),
so reading batch k+1 while batch k is encoded and compared nearly halves the wall
time. The queue is bounded: memory stays flat however many keys there are.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterable[T], depth: int = 1024) -> Iterator[T]:
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    failure: list[BaseException] = []

    def put(item: object) -> bool:
        """Wait for room, unless the consumer has gone; False when it has."""
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            failure.append(exc)
        finally:
            put(_DONE)

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not _DONE:
            yield item  # type: ignore[misc]
        if failure:
            raise failure[0]
    finally:
        stop.set()
        thread.join(timeout=5)


def prefetch_flat(items: Iterable[T], chunk: int = 500) -> Iterator[T]:
    """``prefetch`` in chunks: a queue hand-over costs microseconds, so pay it per chunk, not per item."""

    def chunks() -> Iterator[list[T]]:
        buffer: list[T] = []
        for item in items:
            buffer.append(item)
            if len(buffer) >= chunk:
                yield buffer
                buffer = []
        if buffer:
            yield buffer

    for block in prefetch(chunks(), depth=4):
        yield from block
