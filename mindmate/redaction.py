"""The bot's own redactor: no log line carries its token, webhook secret or Redis password.

python-telegram-bot and httpx put the bot's URL (``/bot<token>/…``) into log lines and
exception text, and redis-py puts its URL into connection errors, so every log record is
rewritten at creation. The bot keeps this module to itself (it imports nothing from the
release tool), so an owner can copy ``mindmate/`` into their own project alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

REDACTED = "***"
# The bot's secrets: variables whose values never appear in a log line.
SECRET_VARIABLES = ("TELEGRAM_BOT_TOKEN", "PREVIOUS_TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "REDIS_URL")
_SHAPES = (
    (re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{20,}"), REDACTED),  # a Telegram bot token
    (re.compile(r"([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@"), rf"\1{REDACTED}@"),  # a URL's password
)
_secrets: list[str] = []


def _parts(value: str) -> Iterable[str]:
    """The secret inside a value: a URL's password, or the whole value."""
    if "://" in value:
        password = urlsplit(value).password
        if password:
            yield password
        return
    yield value


def redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


def install(environ: Mapping[str, str]) -> None:
    """Redact every log record from now on: its message and its traceback."""
    found = {part for name in SECRET_VARIABLES for part in _parts(environ.get(name) or "") if len(part) >= 6}
    _secrets[:] = sorted(found | set(_secrets), key=len, reverse=True)
    base = logging.getLogRecordFactory()
    if getattr(base, "_mindmate_redacts", False):
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

    factory._mindmate_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
