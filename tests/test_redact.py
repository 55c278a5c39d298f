"""Secrets never reach a log line, even through httpx and httpcore at DEBUG."""

from __future__ import annotations

import logging
import os

import httpx
import pytest
import redis

from ci_tools import redact

TOKEN = "7712345678:AAHk2-secretTokenValue_abcdefghijklmn"
HOOK_KEY = "hookKeyQ9x8W7v6U5"
REDIS_PASSWORD = "redisPassw0rdZ9"
API_KEY = "rnd_ApiKeySecret12345"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"POST https://api.telegram.org/bot{TOKEN}/getMe", TOKEN),
        (f"token is {TOKEN}", TOKEN),
        (f"https://api.render.com/deploy/srv-abc?key={HOOK_KEY}&ref=abc", HOOK_KEY),
        (f"redis://default:{REDIS_PASSWORD}@red-xyz:6379", REDIS_PASSWORD),
        (f"rediss://:{REDIS_PASSWORD}@oregon-redis.render.com:6379/0", REDIS_PASSWORD),
        (f"Authorization: Bearer {API_KEY}", API_KEY),
        (f"key {API_KEY} used", API_KEY),
        ("X-Telegram-Bot-Api-Secret-Token: whsec_abc123def", "whsec_abc123def"),
    ],
)
def test_patterns(text, secret):
    assert secret not in redact.redact(text)
    assert redact.REDACTED in redact.redact(text)


def test_literal_secrets_from_environment(monkeypatch):
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "plain-webhook-secret")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/0")
    redact.install(os.environ)  # what every entry point does: the process's environment is watched
    text = redact.redact("secret plain-webhook-secret on redis://127.0.0.1:6390/0")
    assert "plain-webhook-secret" not in text
    assert "redis://127.0.0.1:6390/0" in text  # no password: not a secret, kept for diagnosis


def test_no_secret_reaches_logs_through_httpx(telegram, caplog, capfd, monkeypatch):
    redact.install(os.environ)
    bot = telegram.add_bot("mindmate_dev_bot", token=TOKEN)
    handler = logging.StreamHandler()  # a plain handler added later, like a user's
    logging.getLogger().addHandler(handler)
    try:
        with (
            caplog.at_level(logging.DEBUG),
            caplog.at_level(logging.DEBUG, logger="httpx"),
            caplog.at_level(logging.DEBUG, logger="httpcore"),
        ):
            with httpx.Client() as client:
                assert client.get(f"{telegram.url}/bot{bot.token}/getMe").json()["ok"]
                client.post(f"{telegram.url}/deploy/srv-abc?key={HOOK_KEY}&ref=abc")
                client.get(
                    f"{telegram.url}/x",
                    params={"url": f"redis://default:{REDIS_PASSWORD}@127.0.0.1:1"},
                    headers={"Authorization": f"Bearer {API_KEY}"},
                )
            try:
                redis.Redis.from_url(f"redis://default:{REDIS_PASSWORD}@127.0.0.1:1", socket_connect_timeout=0.2).ping()
            except redis.ConnectionError:
                logging.getLogger("redis").exception("cannot reach redis://default:%s@127.0.0.1:1", REDIS_PASSWORD)
    finally:
        logging.getLogger().removeHandler(handler)
    captured = caplog.text + "".join(r.getMessage() for r in caplog.records)
    out, err = capfd.readouterr()
    everything = captured + out + err
    assert "HTTP Request" in everything  # httpx really logged the URLs
    assert any(r.name.startswith("httpcore") for r in caplog.records)
    for secret in (TOKEN, HOOK_KEY, REDIS_PASSWORD, API_KEY):
        assert secret not in everything


def test_filter_redacts_records_from_an_existing_factory():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "url %s", (f"/bot{TOKEN}/",), None)
    assert redact.RedactingFilter().filter(record)
    assert TOKEN not in record.getMessage()


def test_add_secret():
    redact.add_secret("a-file-secret-value")
    assert "a-file-secret-value" not in redact.redact("x a-file-secret-value y")
