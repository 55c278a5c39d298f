"""The Bot API stand-in answers as Telegram does where clients we did not write noticed it did
not (issue 42): allowed_updates, multipart parameters, malformed tokens, unknown chats."""

from __future__ import annotations

import json

import httpx

from sandbox.telegram import DEFAULT_UPDATES, allowed_update_mask

ALL_TYPES = [  # python-telegram-bot's Update.ALL_TYPES, as the bot sets them (v22)
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    "message_reaction",
    "message_reaction_count",
]


def api(telegram, token, method, **params):
    return httpx.post(f"{telegram.url}/bot{token}/{method}", json=params)


def test_allowed_updates_are_set_and_shown_when_not_the_default(telegram):
    """tdlib/telegram-bot-api: setWebhook applies allowed_updates even when nothing else changes
    (and still answers "Webhook is already set"); JsonWebhookInfo shows them when not the default."""
    bot = telegram.add_bot("some_test_bot")
    assert api(telegram, bot.token, "setWebhook", url="https://x.example/hook").json()["description"] == (
        "Webhook was set"
    )
    info = api(telegram, bot.token, "getWebhookInfo").json()["result"]
    assert "allowed_updates" not in info  # the default is not shown
    bot.webhook_set_at -= 1.0  # a second later (one setWebhook a second)
    again = api(telegram, bot.token, "setWebhook", url="https://x.example/hook", allowed_updates=ALL_TYPES)
    assert again.json() == {"ok": True, "result": True, "description": "Webhook is already set"}
    info = api(telegram, bot.token, "getWebhookInfo").json()["result"]
    assert info["allowed_updates"] == ALL_TYPES  # applied all the same, in the server's order
    bot.webhook_set_at -= 1.0
    api(telegram, bot.token, "setWebhook", url="https://x.example/hook", allowed_updates=[])  # [] = the default
    assert "allowed_updates" not in api(telegram, bot.token, "getWebhookInfo").json()["result"]


def test_allowed_updates_without_message_holds_back_messages(telegram):
    bot = telegram.add_bot("some_test_bot")
    api(telegram, bot.token, "setWebhook", url="http://127.0.0.1:9/hook", allowed_updates=["callback_query"])
    assert api(telegram, bot.token, "getWebhookInfo").json()["result"]["allowed_updates"] == ["callback_query"]
    assert telegram.send_user_message(bot, 5, "hi", timeout=1) is None
    assert telegram.held() == 0  # skipped, not queued (Client::add_update_impl)


def test_the_allowed_update_mask_reads_as_the_server_does():
    assert allowed_update_mask(None) == allowed_update_mask("") == allowed_update_mask("{bad") == 0
    assert allowed_update_mask('["nonsense"]') == DEFAULT_UPDATES
    assert allowed_update_mask('["MESSAGE"]') == 1


def test_multipart_parameters_are_read(telegram):
    """The Bot API takes query, urlencoded, JSON and multipart/form-data (core.telegram.org/bots/api,
    "Making requests")."""
    bot = telegram.add_bot("some_test_bot")
    telegram.start_chat(bot, 6)
    sent = httpx.post(
        f"{telegram.url}/bot{bot.token}/sendMessage",
        files={"chat_id": (None, "6"), "text": (None, "from a multipart form")},
    )
    assert sent.request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert sent.status_code == 200, sent.text
    assert telegram.replies_to(bot, 6) == ["from a multipart form"]
    hooked = httpx.post(
        f"{telegram.url}/bot{bot.token}/setWebhook",
        files={"url": (None, "https://x.example/hook"), "allowed_updates": (None, json.dumps(["message"]))},
    )
    assert hooked.json()["description"] == "Webhook was set"
    assert api(telegram, bot.token, "getWebhookInfo").json()["result"]["allowed_updates"] == ["message"]


def test_a_malformed_token_is_404_and_a_wrong_one_401(telegram):
    """api.telegram.org: 404 "Not Found" where the path holds no token (tdlib/telegram-bot-api's
    ClientManager takes only ``<id>:<secret>``, no leading 0, at most 80 characters), 401
    "Unauthorized" for a well-formed token no bot has."""
    for malformed in ("nocolon", "0123:abc", "12:" + "a" * 80):
        answer = httpx.get(f"{telegram.url}/bot{malformed}/getMe")
        assert answer.status_code == 404 and answer.json()["description"] == "Not Found", malformed
    wrong = httpx.get(f"{telegram.url}/bot123456:AAwrongButWellFormed/getMe")
    assert wrong.status_code == 401 and wrong.json()["description"] == "Unauthorized"


def test_a_user_the_bot_never_saw_is_chat_not_found_one_it_knows_403(telegram):
    bot = telegram.add_bot("some_test_bot")
    unseen = api(telegram, bot.token, "sendMessage", chat_id=31, text="hello")
    assert unseen.status_code == 400 and unseen.json()["description"] == "Bad Request: chat not found"
    telegram.meet(bot, 31)
    known = api(telegram, bot.token, "sendMessage", chat_id=31, text="hello")
    assert known.status_code == 403
    assert known.json()["description"] == "Forbidden: bot can't initiate conversation with a user"
