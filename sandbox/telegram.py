"""A local Telegram Bot API: the documented shapes, on loopback.

It answers ``/bot<token>/<method>`` like api.telegram.org: ``{"ok": true,
"result": …}`` on success and ``{"ok": false, "error_code": …, "description": …}``
otherwise (401 for an unknown token, 429 with ``parameters.retry_after`` when a
rate limit is switched on). It records what each bot sent, and delivers a user's
messages to a bot's webhook with the secret header, as Telegram does, recording
``last_error_*`` when the webhook fails.

Webhook semantics follow tdlib/telegram-bot-api (``Client::JsonWebhookInfo``,
``Client::process_set_webhook_query``): ``max_connections`` appears only while a
webhook is set (default 40), ``ip_address`` only with a URL; an empty
``secret_token`` means "no secret"; a setWebhook that changes any setting clears
``last_error_*``, one that changes nothing answers "Webhook is already set" and
clears nothing (a change of ``allowed_updates`` alone is applied, and still answered "already
set"); ``allowed_updates`` shows in getWebhookInfo only while it differs from the default.

Tokens and chats as api.telegram.org answers them: a path whose token is malformed is 404
"Not Found", a well-formed token no bot has is 401 "Unauthorized"; a message to a user the bot
has never seen is 400 "Bad Request: chat not found", to one it knows who never started it 403
"Forbidden: bot can't initiate conversation with a user".
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from sandbox import contract as contracts
from sandbox.forms import attached
from sandbox.http import Request, Response, StandInServer

_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# td::to_integer_safe reads an optional sign and decimal digits (tdlib, tdutils/td/utils/misc.h).
_INTEGER = re.compile(r"[+-]?[0-9]+")
_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")
# What a bot token looks like (tdlib/telegram-bot-api, ClientManager::send: no leading 0, a ':'
# after the bot's numeric id, at most 80 characters). api.telegram.org answers any other path 404
# "Not Found" and a well-formed token no bot has 401 "Unauthorized" (python-telegram-bot's
# request/_baserequest.py records both; a self-hosted server answers the first 401 instead).
_WELL_FORMED_TOKEN = re.compile(r"^[1-9][0-9]{0,18}:[^/]+$")

# The update types, in tdlib/telegram-bot-api's order (Client::UpdateType, get_update_type_name):
# a bit each in the mask setWebhook and getUpdates set with ``allowed_updates``.
UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "custom_event",
    "custom_query",
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
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "purchased_paid_media",
    "managed_bot",
    "guest_message",
)
_BIT = {name: 1 << i for i, name in enumerate(UPDATE_TYPES)}
# Client.h, DEFAULT_ALLOWED_UPDATE_TYPES: every type but chat_member, message_reaction and
# message_reaction_count, which a bot must ask for by name.
DEFAULT_UPDATES = (1 << len(UPDATE_TYPES)) - 1 - _BIT["chat_member"] - _BIT["message_reaction"]
DEFAULT_UPDATES -= _BIT["message_reaction_count"]


def allowed_update_mask(value: Any) -> int:
    """``allowed_updates`` as Client::get_allowed_update_types reads it: 0 (keep what is set)
    for nothing, bad JSON or anything but an array of strings; unknown names are skipped, and
    an array naming no known type (``[]`` included) means the default."""
    if value is None or value == "":
        return 0
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return 0
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        return 0
    mask = 0
    for name in value:
        mask |= _BIT.get(name.lower(), 0)
    return mask or DEFAULT_UPDATES


def update_names(mask: int) -> list[str]:
    """The mask as getWebhookInfo lists it (Client::JsonUpdateTypes: custom_* never shown)."""
    return [n for n in UPDATE_TYPES if mask & _BIT[n] and n not in ("custom_event", "custom_query")]


@dataclass
class FakeBot:
    token: str
    id: int
    username: str
    first_name: str = "MindMate"
    webhook_url: str = ""
    webhook_secret: str | None = None
    max_connections: int = 0
    pending_update_count: int = 0
    last_error_date: int | None = None
    last_error_message: str | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)
    blocked_by: set[int] = field(default_factory=set)
    # Private chats whose user has written to the bot: Telegram lets a bot message a user only
    # after the user started it ("Forbidden: bot can't initiate conversation with a user").
    started: set[int] = field(default_factory=set)
    # Users the bot has seen without a private chat (a group they share): a message to one is 403;
    # to a user it has never seen, 400 "chat not found" (tdlib/telegram-bot-api, Client's
    # TdOnCheckChatCallback: a chat TDLib cannot find fails as "chat not found").
    known: set[int] = field(default_factory=set)
    allowed_updates: int = DEFAULT_UPDATES
    has_certificate: bool = False  # setWebhook uploaded a self-signed certificate (multipart)
    rate_limited_calls: int = 0
    retry_after: int = 1
    webhook_set_at: float = 0.0  # monotonic time of the last setWebhook (a second within 1 s: 429)

    def user(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def webhook_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook_url,
            "has_custom_certificate": self.has_certificate,
            "pending_update_count": self.pending_update_count,
        }
        if self.last_error_date:
            info["last_error_date"] = self.last_error_date
            info["last_error_message"] = self.last_error_message
        if self.max_connections > 0:
            info["max_connections"] = self.max_connections
        if self.webhook_url:
            info["ip_address"] = "127.0.0.1"  # the server resolves it; "<unknown>" until then
        if self.allowed_updates != DEFAULT_UPDATES:  # JsonWebhookInfo: only when not the default
            info["allowed_updates"] = update_names(self.allowed_updates)
        return info


def inline_keyboard(value: Any) -> tuple[dict[str, Any] | None, str]:
    """A sendMessage's ``reply_markup`` as the Bot API reads it: a JSON-serialized object (a form
    field) or the object itself (a JSON body); (markup, "") or (None, the 400's description).
    Only inline keyboards are modelled (what the pipeline sends). The descriptions are
    tdlib/telegram-bot-api's (Client::get_reply_markup, get_inline_keyboard_button); a URL
    button's link is checked by tdlib before anything is sent (``button_url_problem``)."""
    if value is None or value == "":
        return None, ""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None, "Can't parse reply keyboard markup JSON object"
    if not isinstance(value, dict):
        return None, "Object expected as reply markup"
    rows = value.get("inline_keyboard")
    if rows is None:
        return value, ""  # another keyboard kind: accepted, not modelled
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        return None, 'Field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
    for button in (b for row in rows for b in row):
        if not isinstance(button, dict):
            return None, "Can't parse inline keyboard button: InlineKeyboardButton must be an Object"
        if not isinstance(button.get("text"), str):
            return None, 'Can\'t parse inline keyboard button: Field "text" must be of type String'
        url = button.get("url")
        if url is not None and (problem := button_url_problem(str(url))):
            return None, f"inline keyboard button URL '{url}' is invalid: {problem}"
    return value, ""


HOST_CHARACTER = re.compile(  # one character RFC 3986 allows in a host, or plain UTF-8 (tdlib: parse_url)
    r"[a-z0-9._~!$&'()*+,;=-]|%[0-9a-f]{2}|[^\x00-\x7f]"
)


def button_url_problem(url: str) -> str:
    """Why Telegram refuses a URL button's link, or "" when it takes it. Modelled on tdlib's
    LinkManager::check_link_impl (td/telegram/LinkManager.cpp) and the parse_url it calls
    (tdutils/td/utils/HttpUrl.cpp), whose errors the Bot API passes on as "inline keyboard button
    URL '…' is invalid: <error>" (test/link.cpp lists the cases): http and https only (plus tg:
    with a bare host; "sftp://google.com" is refused: "Unsupported URL protocol"), a link without a
    scheme read as http ("grammy" → http://grammy; a scheme is only what precedes the first of
    ``:/?#@[]``, so "a.com/?next=https://b.com" has none), a port of 1-65535 when one is written,
    host characters RFC 3986 allows plus plain UTF-8 (an internationalised name is taken as is),
    and an http(s) host with no dot that is not an IPv6 literal refused ("http://localhost":
    "Wrong HTTP URL"). Links that pass tdlib but Telegram's servers refuse (BUTTON_URL_INVALID) are
    not modelled."""
    text = url.strip()
    if text.lower().startswith("tg:"):
        host = re.split(r"[/?#]", text[3:].removeprefix("//"), maxsplit=1)[0]
        return "" if re.fullmatch(r"[A-Za-z0-9_-]+", host) else "Wrong tg URL"
    scheme = re.split(r"[:/?#@\[\]]", text, maxsplit=1)[0]
    if text[len(scheme) :].startswith("://"):
        if scheme.lower() not in {"http", "https"}:
            return "Unsupported URL protocol"
        text = text[len(scheme) + 3 :]
    authority = re.split(r"[/?#]", text, maxsplit=1)[0]
    port = ""
    if (colon := authority.rfind(":")) > max(authority.rfind("]"), authority.rfind("@")):
        authority, port = authority[:colon], authority[colon + 1 :]
        if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            return "Wrong port number specified in the URL"
    host = authority.rpartition("@")[2]
    if host.startswith("[") and host.endswith("]"):  # an IPv6 literal: no dot needed
        return "" if re.fullmatch(r"\[[0-9A-Fa-f:.]+\]", host) else "Wrong IPv6 address specified in the URL"
    if not host:
        return "URL host is empty"
    if host == ".":
        return "Host is invalid"
    if re.search(r"%(?![0-9a-f]{2})", host.lower()):
        return "Wrong percent-encoded symbol in URL host"
    if HOST_CHARACTER.sub("", host.lower()):
        return "Wrong URL host"
    if "." not in host:
        return "Wrong HTTP URL"
    return ""


def _error(code: int, description: str, **extra: Any) -> Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    body.update(extra)
    return code, body, {}


def _ok(result: Any) -> Response:
    return 200, {"ok": True, "result": result}, {}


@dataclass
class _Held:
    """An update Telegram keeps until its webhook takes it."""

    bot: FakeBot
    update: dict[str, Any]
    since: float
    next_try: float = 0.0
    delay: float = 0.1


class FakeTelegram(StandInServer):
    """The Bot API stand-in; ``add_bot()`` registers a token, ``send_user_message()`` talks to it."""

    name = "telegram-stand-in"
    contract = contracts.TELEGRAM

    def bad_request(self, message: str) -> Response:
        """A body the Bot API cannot read is its own 400, in its own shape (``ok``, ``error_code``,
        ``description`` "Bad Request: …", as every Bot API error is)."""
        return _error(400, f"Bad Request: {message}")

    # Telegram redelivers an update its webhook did not take (any non-2xx, or no answer), with a
    # growing delay, until the update is 24 hours old, and keeps each chat's updates in order: a
    # failing update holds back that chat's later ones (tdlib/telegram-bot-api, WebhookActor:
    # per-queue delivery with exponential backoff, updates expire after 86400 s). Scaled down here,
    # the ratios kept: first retry after RETRY_FIRST, doubling to RETRY_MAX, expiry after EXPIRE.
    RETRY_FIRST = 0.1
    RETRY_MAX = 1.6
    EXPIRE = 60.0

    def __init__(self, *, latency: float = 0.0) -> None:
        super().__init__(latency=latency)
        self.bots: dict[str, FakeBot] = {}
        self._ids = itertools.count(7_000_000_001)
        self._update_ids = itertools.count(100_000)
        self._message_ids = itertools.count(1)
        self._held: dict[tuple[int, int], list[_Held]] = {}  # (bot id, chat id) → updates not yet taken
        self._redeliver = threading.Event()
        self._worker: threading.Thread | None = None
        self.redeliveries = 0

    # -- set-up -------------------------------------------------------------
    def add_bot(self, username: str, token: str | None = None) -> FakeBot:
        bot_id = next(self._ids)
        token = token or f"{bot_id}:AA{username.replace('_', '')[:10].ljust(10, 'x')}sandboxTokenXYZ12345"
        bot = FakeBot(token=token, id=bot_id, username=username)
        with self.lock:
            self.bots[token] = bot
        return bot

    def meet(self, bot: FakeBot, user_id: int) -> None:
        """``bot`` has seen ``user_id`` (a group they share) without the user ever starting it."""
        with self.lock:
            bot.known.add(user_id)

    def start_chat(self, bot: FakeBot, user_id: int) -> None:
        """``user_id`` pressed Start in ``bot`` long ago (a seeded world's history): the bot may write to them."""
        with self.lock:
            bot.started.add(user_id)

    def rate_limit(self, bot: FakeBot, calls: int, retry_after: int = 1) -> None:
        """The next ``calls`` requests of ``bot`` get 429 with ``retry_after``."""
        with self.lock:
            bot.rate_limited_calls, bot.retry_after = calls, retry_after

    # -- the Bot API --------------------------------------------------------
    def handle(self, request: Request) -> Response:
        match = _PATH.match(request.path)
        if not match or not _WELL_FORMED_TOKEN.match(match["token"]) or len(match["token"]) > 80:
            return _error(404, "Not Found")
        with self.lock:
            bot = self.bots.get(match["token"])
        if bot is None:
            return _error(401, "Unauthorized")
        with self.lock:
            if bot.rate_limited_calls > 0:
                bot.rate_limited_calls -= 1
                return _error(
                    429,
                    f"Too Many Requests: retry after {bot.retry_after}",
                    parameters={"retry_after": bot.retry_after},
                )
        method: Callable[[FakeBot, dict[str, Any]], Response] | None = getattr(
            self, f"_api_{match['method'].lower()}", None
        )
        if method is None:
            return _error(404, "Not Found")
        return method(bot, request.params())

    def _api_getme(self, bot: FakeBot, params: dict[str, Any]) -> Response:
        return _ok(bot.user())

    def _api_setwebhook(self, bot: FakeBot, params: dict[str, Any]) -> Response:
        url = str(params.get("url", ""))
        secret = str(params.get("secret_token") or "") if url else ""
        if url and not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            # Telegram needs HTTPS; loopback HTTP is the stand-in's one allowance.
            return _error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        if len(secret) > 256:
            return _error(400, "Bad Request: secret token is too long")
        if secret and not _SECRET_TOKEN.match(secret):
            return _error(400, "Bad Request: secret token contains unallowed characters")
        given = str(params.get("max_connections") or "").strip()
        if url and given and not _INTEGER.fullmatch(given):
            # tdlib/telegram-bot-api, Client::get_integer_arg (used by process_set_webhook_query):
            # a value td::to_integer_safe cannot read is 400, naming the field (wording as the
            # review quoted it).
            return _error(400, 'Bad Request: field "max_connections" must be a valid Number')
        max_connections = int(given or 40) if url else 0
        drop = str(params.get("drop_pending_updates", "")).lower() == "true"
        wanted_updates = allowed_update_mask(params.get("allowed_updates"))
        # A certificate is an InputFile: it arrives only as a multipart file part.
        certificate = bool(url) and attached(params, "certificate") is not None
        with self.lock:
            # The Bot API answers a setWebhook that follows another within a second with 429
            # "retry after 1" (tdlib/telegram-bot-api, Client: the webhook is re-set at most once a
            # second): two instances starting together (a deploy's overlap) meet it. Only a call
            # with a URL counts and is counted (process_set_webhook_query checks and sets
            # next_allowed_set_webhook_time_ only when the new URL is not empty): deleteWebhook,
            # or setWebhook without a URL, is never refused for it.
            now = time.monotonic()
            if url and now - bot.webhook_set_at < 1.0:
                return _error(429, "Too Many Requests: retry after 1", parameters={"retry_after": 1})
            if url:
                bot.webhook_set_at = now
            # Client::process_set_webhook_query: a webhook with a certificate, old or new, is
            # always set anew.
            unchanged = (url, secret or None, max_connections) == (
                bot.webhook_url,
                bot.webhook_secret,
                bot.max_connections,
            ) and not (certificate or bot.has_certificate)
            if wanted_updates:  # applied whether or not anything else changes (update_allowed_update_types)
                bot.allowed_updates = wanted_updates
            if unchanged and not drop:
                # Client::process_set_webhook_query: an unchanged webhook is answered "already set"
                # even when its allowed_updates just changed (and were saved).
                return (
                    200,
                    {
                        "ok": True,
                        "result": True,
                        "description": "Webhook is already set" if url else "Webhook is already deleted",
                    },
                    {},
                )
            bot.webhook_url, bot.webhook_secret = url, secret or None
            bot.max_connections, bot.has_certificate = max_connections, certificate
            bot.last_error_date = bot.last_error_message = None  # any change re-sets the webhook
            if drop:
                bot.pending_update_count = 0
        return 200, {"ok": True, "result": True, "description": "Webhook was set" if url else "Webhook was deleted"}, {}

    def _api_deletewebhook(self, bot: FakeBot, params: dict[str, Any]) -> Response:
        return self._api_setwebhook(bot, {"url": "", **{k: v for k, v in params.items() if k != "url"}})

    def _api_getupdates(self, bot: FakeBot, params: dict[str, Any]) -> Response:
        """Polling and a webhook exclude each other: while a webhook is set, getUpdates is 409
        (tdlib/telegram-bot-api, Client::process_get_updates_query: "Conflict: can't use getUpdates
        method while webhook is active; use deleteWebhook to delete the webhook first"). Without a
        webhook the stand-in keeps no queue for polling: it answers an empty list."""
        with self.lock:
            if bot.webhook_url:
                return _error(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
                    "the webhook first",
                )
            wanted_updates = allowed_update_mask(params.get("allowed_updates"))
            if wanted_updates:  # getUpdates sets them as setWebhook does (process_get_updates_query)
                bot.allowed_updates = wanted_updates
        return _ok([])

    def _api_getwebhookinfo(self, bot: FakeBot, params: dict[str, Any]) -> Response:
        with self.lock:
            return _ok(bot.webhook_info())

    def _api_sendmessage(self, bot: FakeBot, params: dict[str, Any]) -> Response:
        try:
            chat_id = int(params.get("chat_id", ""))
        except ValueError:
            return _error(400, "Bad Request: chat not found")
        text = str(params.get("text", ""))
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return _error(400, "Bad Request: message is too long")
        if chat_id in bot.blocked_by:
            return _error(403, "Forbidden: bot was blocked by the user")
        with self.lock:
            started, known = chat_id in bot.started, chat_id in bot.known
        if chat_id > 0 and not started and not known:  # a user the bot has never seen
            return _error(400, "Bad Request: chat not found")
        if chat_id > 0 and not started:  # a private chat the user never opened (the Bot API's 403 for it)
            return _error(403, "Forbidden: bot can't initiate conversation with a user")
        markup, refused = inline_keyboard(params.get("reply_markup"))
        if refused:
            return _error(400, f"Bad Request: {refused}")
        message = {
            "message_id": next(self._message_ids),
            "from": bot.user(),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "date": int(time.time()),
            "text": text,
            # The Bot API's Message carries an inline keyboard back (Client.cpp, JsonMessage writes
            # reply_markup for replyMarkupInlineKeyboard); other keyboards are not echoed.
            **({"reply_markup": markup} if markup else {}),
        }
        with self.lock:
            bot.sent.append({"chat_id": chat_id, "text": text, **({"reply_markup": markup} if markup else {})})
        return _ok(message)

    # -- a user talking to a bot -------------------------------------------
    def make_update(
        self, user_id: int, text: str, first_name: str = "Ada", *, to: FakeBot | None = None
    ) -> dict[str, Any]:
        """The Update ``user_id`` sends; ``to`` the bot it writes to (the chat is then started,
        so the bot may answer: a test that posts the update to the bot itself passes it)."""
        if to is not None:
            self.start_chat(to, user_id)
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": {"id": user_id, "is_bot": False, "first_name": first_name},
            "chat": {"id": user_id, "type": "private", "first_name": first_name},
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return {"update_id": next(self._update_ids), "message": message}

    def send_user_message(
        self, bot: FakeBot, user_id: int, text: str, *, timeout: float = 10.0
    ) -> httpx.Response | None:
        """Deliver one message to ``bot``'s webhook as Telegram would; None if unreachable.

        Afterwards ``bot.sent`` holds what the bot answered (the bot replies within the
        webhook request), and a failure is recorded as Telegram's ``last_error_*``.
        """
        if not bot.webhook_url:
            raise RuntimeError(f"@{bot.username} has no webhook set")
        update = self.make_update(user_id, text)
        contracts.check_update(update)  # what Telegram sends must be an Update, too
        queue = (bot.id, user_id)
        with self.lock:
            bot.started.add(user_id)
            if not bot.allowed_updates & _BIT["message"]:  # Client::add_update_impl skips it
                return None
            bot.pending_update_count += 1
            if self._held.get(queue):  # an earlier update of this chat is not taken yet: wait behind it
                self._held[queue].append(_Held(bot, update, time.monotonic()))
                return None
        response = self._post(bot, update, timeout)
        if response is None or not response.is_success:
            with self.lock:
                self._held.setdefault(queue, []).append(
                    _Held(bot, update, time.monotonic(), next_try=time.monotonic() + self.RETRY_FIRST)
                )
            self._ensure_worker()
        return response

    def _post(self, bot: FakeBot, update: dict[str, Any], timeout: float = 10.0) -> httpx.Response | None:
        """One delivery attempt; a success takes the update off pending, a failure is last_error."""
        headers = {}
        if bot.webhook_secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = bot.webhook_secret
        try:
            response = httpx.post(bot.webhook_url, json=update, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            self._record_error(bot, f"Connection refused ({type(exc).__name__})")
            return None
        if response.is_success:
            with self.lock:
                bot.pending_update_count = max(0, bot.pending_update_count - 1)
        else:
            self._record_error(
                bot,
                f"Wrong response from the webhook: {response.status_code} {response.reason_phrase}",
            )
        return response

    def _ensure_worker(self) -> None:
        with self.lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._redeliver_loop, name="telegram-redelivery", daemon=True)
                self._worker.start()

    def _redeliver_loop(self) -> None:
        """Each chat's oldest held update, retried when due; on success the next follows at once."""
        while not self._redeliver.wait(0.02):
            with self.lock:
                due = [
                    (q, items[0]) for q, items in self._held.items() if items and items[0].next_try <= time.monotonic()
                ]
                if not any(self._held.values()):
                    self._worker = None
                    return
            for queue, held in due:
                if time.monotonic() - held.since > self.EXPIRE:  # too old: Telegram drops it
                    with self.lock:
                        self._held[queue].pop(0)
                        held.bot.pending_update_count = max(0, held.bot.pending_update_count - 1)
                    continue
                self.redeliveries += 1
                response = self._post(held.bot, held.update)
                with self.lock:
                    if response is not None and response.is_success:
                        self._held[queue].pop(0)
                        if self._held[queue]:
                            self._held[queue][0].next_try = time.monotonic()
                    else:
                        held.delay = min(self.RETRY_MAX, held.delay * 2)
                        held.next_try = time.monotonic() + held.delay

    def held(self) -> int:
        """Updates Telegram still holds for redelivery (all bots, all chats)."""
        with self.lock:
            return sum(len(items) for items in self._held.values())

    def wait_delivered(self, timeout: float = 30.0) -> bool:
        """Until every held update was taken (or expired); False if some remain after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.held():
                return True
            time.sleep(0.05)
        return not self.held()

    def stop(self) -> None:
        self._redeliver.set()
        super().stop()

    def _record_error(self, bot: FakeBot, message: str) -> None:
        with self.lock:
            bot.last_error_date = int(time.time())  # whole seconds, truncated, as the Bot API's Unix time
            bot.last_error_message = message

    def delivery_failed(self, bot: FakeBot, message: str = "Connection refused") -> None:
        """Record that a delivery to ``bot``'s webhook failed just now, whichever instance answered:
        a test's hook to stage one at a given moment (say, while Render's old instance still
        serves). The Bot API keeps only the latest failure, ``getWebhookInfo``'s
        ``last_error_date`` ("Unix time for the most recent error that happened when trying to
        deliver an update via webhook", core.telegram.org/bots/api#webhookinfo) and
        ``last_error_message``."""
        self._record_error(bot, message)

    def replies_to(self, bot: FakeBot, user_id: int) -> list[str]:
        with self.lock:
            return [m["text"] for m in bot.sent if m["chat_id"] == user_id]
