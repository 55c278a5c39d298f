"""The stand-ins behave like the services they stand in for."""

from __future__ import annotations

import socket

import httpx
import pytest
import redis

from ci_tools.errors import ConfigError
from sandbox.redis import RedisServer, find_server_binary


def call(telegram, token, method, **params):
    return httpx.post(f"{telegram.url}/bot{token}/{method}", data=params)


def test_unknown_token_is_401_like_telegram(telegram):
    response = call(telegram, "123:nope", "getMe")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


def test_unknown_method_and_path_are_404(telegram, provoked):
    bot = telegram.add_bot("some_test_bot")
    assert call(telegram, bot.token, "frobnicate").status_code == 404
    assert httpx.get(f"{telegram.url}/nowhere").status_code == 404
    assert [v.line() for v in provoked()] == ["Telegram frobnicate request $: no such Bot API method"]


def test_rate_limit_then_recovery(telegram):
    bot = telegram.add_bot("some_test_bot")
    telegram.rate_limit(bot, calls=1, retry_after=3)
    limited = call(telegram, bot.token, "getMe")
    assert limited.status_code == 429
    assert limited.json()["parameters"] == {"retry_after": 3}
    assert call(telegram, bot.token, "getMe").json()["result"]["username"] == "some_test_bot"


def test_webhook_rules(telegram):
    bot = telegram.add_bot("some_test_bot")
    bad = call(telegram, bot.token, "setWebhook", url="http://example.com/hook")
    assert bad.status_code == 400 and "HTTPS URL" in bad.json()["description"]
    bad = call(telegram, bot.token, "setWebhook", url="https://x.example/hook", secret_token="a b")
    assert "unallowed characters" in bad.json()["description"]
    assert call(telegram, bot.token, "setWebhook", url="https://x.example/hook").json()["result"]
    info = httpx.get(f"{telegram.url}/bot{bot.token}/getWebhookInfo").json()["result"]
    assert info["url"] == "https://x.example/hook" and "last_error_date" not in info
    again = call(telegram, bot.token, "setWebhook", url="https://y.example/hook")  # within a second: 429
    assert again.status_code == 429 and again.json()["parameters"]["retry_after"] == 1
    assert bot.webhook_url == "https://x.example/hook"
    # deleteWebhook is never refused for it (tdlib/telegram-bot-api counts only calls with a URL)
    assert call(telegram, bot.token, "deleteWebhook").json()["description"] == "Webhook was deleted"
    assert bot.webhook_url == ""
    with pytest.raises(RuntimeError, match="no webhook"):
        telegram.send_user_message(bot, 1, "hi")


def test_failed_delivery_is_recorded_as_last_error(telegram):
    bot = telegram.add_bot("some_test_bot")
    bot.webhook_url = "http://127.0.0.1:9/telegram"  # nothing listens on the discard port
    assert telegram.send_user_message(bot, 1, "hi", timeout=1) is None
    info = httpx.get(f"{telegram.url}/bot{bot.token}/getWebhookInfo").json()["result"]
    assert info["last_error_date"] > 0 and "Connection refused" in info["last_error_message"]
    assert info["pending_update_count"] == 1


def test_send_message_errors(telegram):
    bot = telegram.add_bot("some_test_bot")
    bot.blocked_by.add(5)
    blocked = httpx.post(f"{telegram.url}/bot{bot.token}/sendMessage", json={"chat_id": 5, "text": "hi"})
    assert blocked.status_code == 403 and "blocked by the user" in blocked.json()["description"]
    empty = call(telegram, bot.token, "sendMessage", chat_id="6", text=" ")
    assert "message text is empty" in empty.json()["description"]
    assert "chat not found" in call(telegram, bot.token, "sendMessage", chat_id="x", text="a").text
    stranger = call(telegram, bot.token, "sendMessage", chat_id="6", text="a")  # the bot never saw 6
    assert stranger.status_code == 400 and stranger.json()["description"] == "Bad Request: chat not found"
    telegram.meet(bot, 6)  # 6 is in a group with the bot, and never started it
    unstarted = call(telegram, bot.token, "sendMessage", chat_id="6", text="a")
    assert unstarted.status_code == 403 and "can't initiate conversation" in unstarted.json()["description"]
    assert not bot.sent
    telegram.start_chat(bot, 6)
    sent = httpx.get(f"{telegram.url}/bot{bot.token}/sendMessage", params={"chat_id": 6, "text": "a"})
    assert sent.json()["result"]["chat"] == {"id": 6, "type": "private"}


def test_get_updates_is_409_while_a_webhook_is_set(telegram):
    bot = telegram.add_bot("some_test_bot")
    assert call(telegram, bot.token, "getUpdates").json() == {"ok": True, "result": []}
    call(telegram, bot.token, "setWebhook", url="https://x.example/hook")
    conflict = call(telegram, bot.token, "getUpdates")
    assert conflict.status_code == 409 and "webhook is active" in conflict.json()["description"]


def test_a_user_who_writes_first_can_be_answered(telegram):
    bot = telegram.add_bot("some_test_bot")
    bot.webhook_url = "http://127.0.0.1:9/telegram"
    telegram.send_user_message(bot, 42, "hi", timeout=1)
    assert call(telegram, bot.token, "sendMessage", chat_id="42", text="hello").json()["ok"]


def test_redis_server_restarts_on_the_same_url():
    with RedisServer(password="pw-123456") as server:
        url = server.url
        server.client().set("k", "v")
        server.kill()
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
        server.start()
        assert server.url == url and server.running
        assert server.client().get("k") is None  # nothing kept on disk
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as raw:
            raw.sendall(b"PING\r\n")
            assert raw.recv(100).startswith(b"-NOAUTH")  # the password is required


def test_valkey_kind_and_missing_binary(monkeypatch):
    with RedisServer(kind="valkey") as server:
        assert server.version().startswith("9.")
    monkeypatch.setenv("REDIS_SERVER_BIN", "no-such-redis-server")
    monkeypatch.setattr("sandbox.redis.valkey_binary", lambda: None)
    with pytest.raises(ConfigError, match="install redis-server"):
        find_server_binary()
