"""Keep secrets out of every log line, error message and summary.

httpx logs full request URLs at INFO (a Telegram URL carries the bot token, a
Render deploy hook carries its key) and python-telegram-bot puts URLs into
exception text, so redaction cannot rely on callers being careful: it runs on
every log record, and ``redact()`` is applied to everything ci-tools prints.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit

REDACTED = "***"

# Names of environment variables whose values are secrets wherever they appear.
SECRET_ENV_VARS = (
    "TELEGRAM_BOT_TOKEN",
    "NEW_TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "RENDER_API_KEY",
    "RENDER_DEPLOY_HOOK_URL",
    "REDIS_URL",
    "SOURCE_REDIS_URL",
    "TARGET_REDIS_URL",
    "MEMORY_SNAPSHOT_KEY",
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Telegram bot tokens, bare or inside /bot<token>/ URLs: "<digits>:<35ish url-safe chars>"
    (re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{20,}"), REDACTED),
    # Render deploy hook keys and any other key/token/secret query parameter
    (
        re.compile(r"(?i)([?&](?:key|api_key|apikey|token|secret|password)=)[^&\s\"'#]+"),
        rf"\1{REDACTED}",
    ),
    # Render API keys
    (re.compile(r"\brnd_[A-Za-z0-9]{8,}"), REDACTED),
    # Bearer credentials in headers
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\1{REDACTED}"),
    # Passwords in redis://user:pass@host and rediss:// URLs (and any scheme://user:pass@)
    (re.compile(r"([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@"), rf"\1{REDACTED}@"),
    # ... and the same URL percent-encoded inside a query string (httpx logs it so)
    (re.compile(r"(?i)(%3A%2F%2F[^%/@\s&]*%3A)[^\s&]+?(%40)"), rf"\1{REDACTED}\2"),
    # The webhook secret header value
    (
        re.compile(r"(?i)(x-telegram-bot-api-secret-token['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+"),
        rf"\1{REDACTED}",
    ),
)

_extra_secrets: set[str] = set()
# The environments whose secret-named variables are redacted wherever their values appear:
# the process's own (handed over by the entry point's install()), read live, so a value set
# later is covered too.
_watched: list[Mapping[str, str]] = []


def add_secret(value: str | None) -> None:
    """Register a literal secret (e.g. read from a file) so it is redacted everywhere."""
    if value and len(value) >= 6:
        _extra_secrets.add(value)


def _secret_parts(value: str) -> Iterable[str]:
    """The secret inside a value: a URL's password and key, or the whole value.

    A Redis URL without a password is not a secret, and redacting it whole would
    hide which server a message is about.
    """
    if "://" not in value:
        yield value
        return
    parts = urlsplit(value)
    if parts.password:
        yield parts.password
    for key, item in parse_qsl(parts.query):
        if key.lower() in {"key", "token", "secret", "password", "api_key"}:
            yield item


# Any variable named like these is a secret too (STAGING_TELEGRAM_BOT_TOKEN, PRODUCTION_REDIS_URL, …).
SECRET_SUFFIXES = (
    "TELEGRAM_BOT_TOKEN",
    "WEBHOOK_SECRET",
    "RENDER_API_KEY",
    "DEPLOY_HOOK_URL",
    "REDIS_URL",
    "SNAPSHOT_KEY",
    "GITHUB_TOKEN",
    "BACKMERGE_TOKEN",
)


def is_secret_name(name: str) -> bool:
    return name in SECRET_ENV_VARS or name.endswith(SECRET_SUFFIXES)


def add_secrets_from(environ: Mapping[str, str]) -> None:
    """Register the secret-named values of ``environ`` (a Context built from a dict, say)."""
    for name, value in environ.items():
        if is_secret_name(name):
            for part in _secret_parts(value or ""):
                add_secret(part)


def _literal_secrets() -> Iterable[str]:
    for environ in _watched:
        for name, value in list(environ.items()):
            if is_secret_name(name):
                for part in _secret_parts(value or ""):
                    if len(part) >= 6:
                        yield part
    yield from _extra_secrets


def redact(text: str) -> str:
    """Return ``text`` with every known secret and secret-shaped value replaced."""
    if not text:
        return text
    # Longest first, so a URL that contains a shorter secret is replaced whole.
    for secret in sorted(_literal_secrets(), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_record(record: logging.LogRecord) -> None:
    if getattr(record, "_ci_tools_redacted", False):
        return
    try:
        message = record.getMessage()
    except Exception:  # a broken format string must not hide the log line
        message = f"{record.msg!r} {record.args!r}"
    record.msg = redact(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    record._ci_tools_redacted = True


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites a record's message without dropping it."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


_FILTER = RedactingFilter()
_installed = False
LOUD_LOGGERS = ("", "httpx", "httpcore", "telegram", "uvicorn", "redis")


def install(environ: Mapping[str, str]) -> None:
    """Redact every record of every logger, on every handler, from now on, and every value of
    a secret-named variable of ``environ`` (the entry point passes the process's environment).

    Logger filters do not see records that propagate from child loggers
    (``httpcore.http11``), so the filter alone is not enough: the record factory
    redacts at creation, which covers handlers added later (pytest's caplog too).
    """
    global _installed
    if not any(watched is environ for watched in _watched):
        _watched.append(environ)
    for name in LOUD_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
    if _installed:
        return
    base_factory = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = base_factory(*args, **kwargs)
        _redact_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
