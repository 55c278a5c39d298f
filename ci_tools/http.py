"""HTTP with the retries every remote call here needs, from one place.

429 waits as long as the server asks (``Retry-After`` or ``Ratelimit-Reset``);
5xx and network errors back off exponentially with jitter; nothing retries past
the caller's deadline. tenacity does the retrying; this module only says when.

A request that may create something (a deploy, a rollback, a message) is not
idempotent: it is retried only where the server certainly did nothing — a 429, or
a connection that never opened. A 5xx or a timeout after the request was sent is
handed back to the caller, who must look for what the first attempt created before
trying again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import tenacity

from ci_tools.errors import RemoteError
from ci_tools.redact import redact

TRANSIENT = (httpx.TransportError,)
# A service that has not answered once in this run gets this long (to connect, and to retry a
# refused connection) before it is said to be down: a deploy keeps its long deadline only once
# Render has answered, so a command whose services are down says so in seconds.
FIRST_CONTACT = 8.0


class Contact:
    """Whether a client's service has answered yet: the first call's budget, then the caller's."""

    def __init__(self) -> None:
        self.answered = False

    def deadline(self, deadline: float) -> float:
        return deadline if self.answered else min(deadline, time.monotonic() + FIRST_CONTACT)

    def options(self) -> dict[str, Any]:
        return {} if self.answered else {"timeout": FIRST_CONTACT}


class MaybeDone(RemoteError):
    """A request that is not idempotent got no clear answer: it may have taken effect."""


class RetryableStatus(Exception):
    """A 429 or 5xx answer worth trying again."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def server_wait(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait, if it said."""
    for header in ("Retry-After", "Ratelimit-Reset", "X-RateLimit-Reset"):
        value = response.headers.get(header)
        if not value:
            continue
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                continue
        if seconds > 1e9:  # an epoch timestamp, not a delay
            seconds -= time.time()
        return max(0.0, seconds)
    return None


Asked = Callable[[httpx.Response], float | None]


def _wait(backoff: tenacity.wait.wait_base, asked_wait: Asked) -> Callable[[tenacity.RetryCallState], float]:
    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableStatus) and (asked := asked_wait(exc.response)) is not None:
            return asked
        return backoff(state)

    return wait


def _stop_at(deadline: float) -> Callable[[tenacity.RetryCallState], bool]:
    return lambda state: time.monotonic() >= deadline


def request(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    deadline: float,
    what: str,
    initial: float = 0.5,
    idempotent: bool = True,
    asked_wait: Asked = server_wait,
    **kwargs: Any,
) -> httpx.Response:
    """One request, retried while transient and before ``deadline`` (a time.monotonic() value).

    A non-transient error answer is returned as is for the caller to explain; so is a
    5xx to a request that is not ``idempotent``. ``asked_wait`` reads how long the
    server asked us to wait (headers by default; Telegram says it in the body).
    """
    transient: tuple[type[Exception], ...] = TRANSIENT if idempotent else (httpx.ConnectError,)
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((*transient, RetryableStatus)),
        wait=_wait(tenacity.wait_exponential_jitter(multiplier=initial, max=10, jitter=initial), asked_wait),
        stop=_stop_at(deadline),
        sleep=lambda seconds: time.sleep(min(seconds, max(0.0, deadline - time.monotonic()))),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                response = client.request(method, url, **kwargs)
                if response.status_code == 429 or (idempotent and response.status_code >= 500):
                    raise RetryableStatus(response)
                if response.status_code >= 500:
                    raise MaybeDone(f"{what}: HTTP {response.status_code}")
    except RetryableStatus as exc:
        raise RemoteError(
            f"{what}: HTTP {exc.response.status_code} until the deadline",
            hint=f"{_host(url, client)} is having trouble: try again later",
        ) from None
    except TRANSIENT as exc:
        if not isinstance(exc, transient):  # sent, then lost: it may have taken effect
            raise MaybeDone(f"{what}: {type(exc).__name__} after the request was sent") from None
        raise RemoteError(
            f"{what}: {redact(type(exc).__name__)}" + (" until the deadline" if isinstance(exc, transient) else ""),
            hint=f"{_host(url, client)} did not answer: check its URL setting and the network, then run again",
        ) from None
    return response


def _host(url: str, client: httpx.Client) -> str:
    """Where the request went (scheme and host: never a path, a query or credentials)."""
    full = client.base_url.join(url) if client.base_url else httpx.URL(url)
    return f"{full.scheme}://{full.host}" + (f":{full.port}" if full.port else "")
