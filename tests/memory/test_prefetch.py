"""The prefetch thread hands over items in order, passes errors on, and stops when abandoned."""

from __future__ import annotations

import threading
import time

import pytest

from ci_tools.memory.records import prefetch


def test_items_arrive_in_order():
    assert list(prefetch(range(5000), depth=3)) == list(range(5000))


def test_a_producer_error_reaches_the_consumer():
    def broken():
        yield 1
        raise RuntimeError("source went away")

    iterator = prefetch(broken())
    assert next(iterator) == 1
    with pytest.raises(RuntimeError, match="source went away"):
        next(iterator)


def test_an_abandoned_prefetch_stops_its_thread():
    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    before = threading.active_count()
    iterator = prefetch(endless(), depth=2)
    assert next(iterator) == 0
    iterator.close()  # the consumer gives up (an exception in a pass does this)
    time.sleep(0.3)
    count = len(produced)
    time.sleep(0.2)
    assert len(produced) == count  # no longer producing
    assert threading.active_count() == before
