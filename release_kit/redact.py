"""Keep the bot's secrets out of its log: the token, the webhook secret, the Redis password.

python-telegram-bot's HTTP client (httpx) logs every request's URL, ``/bot<token>/<method>``, and
the owner's webhook path is often the token itself. The kit learns the secrets as early as it
can (the webhook secret and Redis password with ``Kit(...)``, the token at ``kit.builder().token()``,
before python-telegram-bot logs its URLs at DEBUG) and rewrites every log record created from
then on: its message and its traceback. Secrets it was never told of are caught by their shape
too: a Telegram bot token (the previous bot's, say) and a URL's password (redis-py puts its URL
into connection errors).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

HIDDEN = "***"
# The bot's secrets, by the variable that holds them (the contract's names: docs/CONTRACT.md).
SECRET_VARIABLES = ("TELEGRAM_BOT_TOKEN", "PREVIOUS_TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "REDIS_URL")
_SHAPES = (
    (re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{20,}"), HIDDEN),  # a Telegram bot token
    (re.compile(r"([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@"), rf"\1{HIDDEN}@"),  # a URL's password
)
_secrets: list[str] = []


def redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, HIDDEN)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


def hide_environ(environ: Mapping[str, str]) -> None:
    """Hide the secrets the environment holds (``SECRET_VARIABLES``; of a URL, its password)."""
    values = (environ.get(name) or "" for name in SECRET_VARIABLES)
    hide(url_password(value) if "://" in value else value for value in values)


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
