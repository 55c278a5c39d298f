"""The kit's log redaction, as a bot that is started by hand (mindmate's ``__main__``) installs it:
the environment's secrets, and any bot token or URL password by its shape."""

from __future__ import annotations

import logging

import pytest

from release_kit import redact


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def kept():
    handler, log = Kept(), logging.getLogger("tests.redact")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield log, handler.lines
    log.removeHandler(handler)


def test_the_environments_secrets_and_shapes_never_reach_a_log_line(kept):
    log, lines = kept
    environ = {
        "TELEGRAM_WEBHOOK_SECRET": "a-webhook-secret-of-ours",
        "REDIS_URL": "redis://default:pa55word-of-redis@kv.example:6379/0",
        "UNRELATED": "visible-value",
    }
    redact.hide_environ(environ)
    log.info("secret %s, url %s", environ["TELEGRAM_WEBHOOK_SECRET"], "rediss://u:another-pass@host:6379")
    log.info("a token nobody told the kit of: 7000000009:AAnotToldOfTokenValue12345 and %s", environ["UNRELATED"])
    try:
        raise ConnectionError(f"Error connecting to {environ['REDIS_URL']}")
    except ConnectionError:
        log.exception("memory unavailable")
    text = "\n".join(lines)
    for secret in ("a-webhook-secret-of-ours", "pa55word-of-redis", "another-pass", "AAnotToldOfTokenValue12345"):
        assert secret not in text
    assert "visible-value" in text and text.count(redact.HIDDEN) == 4
