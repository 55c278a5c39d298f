"""How long the retry layer waits when a server says so."""

from __future__ import annotations

import time
from email.utils import formatdate

import httpx
import pytest

from ci_tools.http import server_wait


def response(**headers: str) -> httpx.Response:
    return httpx.Response(429, headers=headers)


def in_30s_http_date() -> str:
    return formatdate(time.time() + 30, usegmt=True)


def in_20s_epoch() -> str:
    return str(int(time.time()) + 20)


@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [
        ({"Retry-After": "3"}, 3, 3),
        ({"Ratelimit-Reset": "7"}, 7, 7),
        ({"Retry-After": in_30s_http_date}, 28, 31),  # an HTTP date
        ({"X-RateLimit-Reset": in_20s_epoch}, 18, 21),  # an epoch timestamp
        ({"Retry-After": "soon", "Ratelimit-Reset": "2"}, 2, 2),  # unreadable, then the next header
        ({"Retry-After": "-5"}, 0, 0),
    ],
)
def test_server_wait(headers, low, high):
    # The clock is read now, not when the test was collected.
    headers = {k: v() if callable(v) else v for k, v in headers.items()}
    assert low <= server_wait(response(**headers)) <= high


def test_no_header_means_our_own_backoff():
    assert server_wait(response()) is None
