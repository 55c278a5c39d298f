"""Keep the bot's secrets out of its log: the token, the webhook secret, the Redis password.

python-telegram-bot's HTTP client (httpx) logs every request's URL, ``/bot<token>/<method>``, and
the owner's webhook path is often the token itself. The kit learns the secrets as early as it
can (the webhook secret and Redis password with ``Kit(...)``, the token at ``kit.builder().token()``,
before python-telegram-bot logs its URLs at DEBUG) and rewrites every log record created from
then on: its message and its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

HIDDEN = "***"
_secrets: list[str] = []


def redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, HIDDEN)
    return text


def url_password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


def hide(values: Iterable[str]) -> None:
    """From now on, no log record holds any of ``values`` (those of 6 characters or more)."""
    found = {value for value in values if len(value) >= 6}
    _secrets[:] = sorted(found | set(_secrets), key=len, reverse=True)
    base = logging.getLogRecordFactory()
    if getattr(base, "_release_kit_redacts", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = base(*args, **kwargs)
        if not _secrets:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    factory._release_kit_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
