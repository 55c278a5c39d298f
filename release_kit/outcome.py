"""Whether an update took effect: what the webhook's answer tells Telegram.

python-telegram-bot catches a handler's exception and hands it to the error handlers; the kit
adds one that collects them for the update being served (a context variable: the webhook serves
each update in its own task). Then the webhook answers:

- **503 when the update could not take effect because memory could not be read or written**
  (``redis.RedisError``, ``OSError``, a timeout): Telegram delivers an update again only after a
  failed webhook call, so a 200 here would lose it. The error handler also stops the update's
  later handler groups: the whole update comes again, and half of it must not land twice.
- **200 for everything no retry can fix**: a handler's own bug (counted in the health answer), a
  user who blocked the bot (Telegram's 403 on the reply), a body that is not an update.
"""

from __future__ import annotations

import contextvars
import logging

import redis
from telegram.error import NetworkError, TelegramError
from telegram.ext import ApplicationHandlerStop, ContextTypes

log = logging.getLogger("release_kit")

# What "memory could not be read or written" looks like from redis-py (sync or asyncio).
STORAGE_ERRORS = (redis.RedisError, OSError, TimeoutError)


class Failures(list[BaseException]):
    """What went wrong while the webhook served one update. ``serving`` ends with its answer: a
    context that outlives the update (a job armed from it, a ``block=False`` handler) fails on
    its own, and its failure is logged rather than noted on an update already answered."""

    serving = True


_failures: contextvars.ContextVar[Failures | None] = contextvars.ContextVar("release_kit_failures", default=None)


def _serving() -> Failures | None:
    failures = _failures.get()
    return failures if failures is not None and failures.serving else None


class ReplyNotKept(NetworkError):
    """A probe turn's reply could not be kept in Redis. A TelegramError, as python-telegram-bot's
    request wrapper lets only those through unchanged; a storage failure all the same."""


def is_storage(error: BaseException) -> bool:
    """A storage error, or one the handler raised ``from`` it (a memory layer's own error type).

    Telegram's errors are not followed: a request layer may raise its NetworkError from the
    socket's OSError, and Telegram unreachable is not memory unavailable."""
    seen: BaseException | None = error
    for _ in range(16):  # a cause chain is short; a cycle must not hang the webhook
        if isinstance(seen, ReplyNotKept):
            return True
        if seen is None or isinstance(seen, TelegramError):
            return False
        if isinstance(seen, STORAGE_ERRORS):
            return True
        seen = seen.__cause__
    return False


def reply_not_kept(error: BaseException) -> ReplyNotKept:
    """The error the request layer raises, noted for the webhook first (a handler may swallow it)."""
    failure = ReplyNotKept(f"the probe's reply was not kept: {type(error).__name__}: {error}")
    failures = _serving()
    if failures is not None:
        failures.append(failure)
    return failure


def collecting(failures: Failures) -> contextvars.Token[Failures | None]:
    return _failures.set(failures)


def done(token: contextvars.Token[Failures | None]) -> None:
    failures = _failures.get()
    if failures is not None:
        failures.serving = False
    _failures.reset(token)


def storage_failure(failures: list[BaseException]) -> BaseException | None:
    return next((f for f in failures if is_storage(f)), None)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The kit's error handler: collect the webhook's failures; stop the update on a storage one."""
    failures = _serving()
    if failures is None or context.error is None:  # a job, or a handler running past the answer
        log.error("handler failed: %s: %s", type(context.error).__name__, context.error)
        return
    if context.error not in failures:  # a reply not kept was noted when it happened
        failures.append(context.error)
    if is_storage(context.error):
        raise ApplicationHandlerStop
