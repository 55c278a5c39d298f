"""The request layer that keeps the probe user's replies instead of sending them.

``kit.builder()`` wraps the bot's request object (whatever the owner configured: timeouts, a
proxy, their own ``BaseRequest``) in ``ProbeRequest``. Outside a probe turn it passes every call
through untouched. During one, every Bot API call that would act on the probe user's chat
(``sendMessage`` and the other ``send*``, ``edit*``, ``copyMessage``, ``answerCallbackQuery``,
``deleteMessage``, ...) stops here: its text (or caption) is kept for the probe, and
python-telegram-bot gets the answer the Bot API would give (a well-formed ``Message`` for the
message methods, the object for those answered with one, ``stopPoll``'s ``Poll`` say, ``true``
for the rest), so the handlers run exactly as for a real user. Calls
that only read the bot's own state (``get*``) still reach Telegram.

Why intercept here and not in the handlers: the owner's handlers stay as they are (they call
``update.message.reply_text`` as always). A Redis failure while keeping a reply reaches the
handler as python-telegram-bot's NetworkError (its request wrapper turns any other exception
into one) and is noted for the webhook as a storage failure, so it answers 503 even if the
handler swallows the error.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from telegram.request import BaseRequest, RequestData

from release_kit import outcome, probe

# The replies a probe reads: what lands in the chat as a message.
_MESSAGE_METHODS_PREFIXES = ("send", "edit")
_MESSAGE_METHODS = {"forwardMessage", "copyMessage"}
_NOT_A_REPLY = {"sendChatAction"}
_message_ids = itertools.count(1)
JSONDict = dict[str, Any]
DEFAULT = BaseRequest.DEFAULT_NONE  # "the request's own timeout", as python-telegram-bot passes it


def endpoint(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def is_reply(method: str) -> bool:
    if method in _NOT_A_REPLY or method in _OBJECT_RESULTS:
        return False
    return method.startswith(_MESSAGE_METHODS_PREFIXES) or method in _MESSAGE_METHODS


def reply_text(method: str, params: dict[str, Any]) -> str:
    """What the probe reads of a reply: its text, else its caption, else the method's name."""
    for field in ("text", "caption"):
        value = params.get(field)
        if isinstance(value, str) and value:
            return value
    return f"[{method}]"


def _chat(params: dict[str, Any]) -> dict[str, Any]:
    try:
        chat_id = int(params.get("chat_id", 0))
    except (TypeError, ValueError):  # "@channelname": no id to give back, and none is needed
        chat_id = 0
    return {"id": chat_id, "type": "private" if chat_id > 0 else "group"}


def fake_message(method: str, params: dict[str, Any]) -> JSONDict:
    """A Message as the Bot API returns it for ``method``: enough for python-telegram-bot to parse."""
    message: JSONDict = {
        "message_id": int(params.get("message_id") or next(_message_ids)),
        "date": int(time.time()),
        "chat": _chat(params),
    }
    if method in ("sendMessage", "editMessageText"):
        message["text"] = reply_text(method, params)
    elif isinstance(params.get("caption"), str):
        message["caption"] = params["caption"]
    return message


_PROBE_LINK = "https://t.me/+probe"  # no such link: the probe's calls never reach Telegram
_BOT = {"id": 1, "is_bot": True, "first_name": "bot"}


def _invite_link(params: dict[str, Any]) -> JSONDict:
    return {
        "invite_link": str(params.get("invite_link") or _PROBE_LINK),
        "creator": _BOT,
        "creates_join_request": bool(params.get("creates_join_request")),
        "is_primary": False,
        "is_revoked": False,
    }


# The calls (of those a probe turn keeps) whose answer is neither a Message nor true: a true
# where python-telegram-bot reads an object ends the handler with an AttributeError.
_OBJECT_RESULTS: dict[str, Callable[[dict[str, Any]], JSONDict | str]] = {
    "stopPoll": lambda params: {
        "id": "0",
        "question": "",
        "options": [],
        "total_voter_count": 0,
        "is_closed": True,
        "is_anonymous": True,
        "type": "regular",
        "allows_multiple_answers": False,
        "allows_revoting": False,  # required since Bot API 9.6 (python-telegram-bot 22.8),
        "members_only": False,  # and since 10.0; an older version keeps both in api_kwargs
    },
    "exportChatInviteLink": lambda params: _PROBE_LINK,
    "createInvoiceLink": lambda params: "https://t.me/$probe",
    "createChatInviteLink": _invite_link,
    "editChatInviteLink": _invite_link,
    "revokeChatInviteLink": _invite_link,
    "createChatSubscriptionInviteLink": _invite_link,
    "editChatSubscriptionInviteLink": _invite_link,
    "createForumTopic": lambda params: {
        "message_thread_id": next(_message_ids),
        "name": str(params.get("name") or ""),
        "icon_color": int(params.get("icon_color") or 7322096),
    },
    "answerWebAppQuery": lambda params: {},
}


def fake_result(method: str, params: dict[str, Any]) -> JSONDict | list[JSONDict] | str | bool:
    """The ``result`` the Bot API would answer ``method`` with, for a chat that does not exist."""
    if method in _OBJECT_RESULTS:
        return _OBJECT_RESULTS[method](params)
    if method == "sendMediaGroup":
        return [fake_message(method, params) for _ in params.get("media") or [None]]
    if method in ("copyMessages", "forwardMessages"):
        return [{"message_id": next(_message_ids)} for _ in params.get("message_ids") or []]
    if method == "copyMessage":
        return {"message_id": next(_message_ids)}
    if method.startswith("edit") and params.get("inline_message_id"):
        return True  # an inline message's edit answers True
    if is_reply(method):
        return fake_message(method, params)
    return True


class ProbeRequest(BaseRequest):
    """A ``BaseRequest`` around the owner's own: the probe's turns stop here, the rest pass.

    python-telegram-bot's ``post`` and ``retrieve`` are final: they call ``do_request``, so that
    is where a probe turn's call stops, with the HTTP answer the Bot API would give."""

    __slots__ = ("inner",)

    def __init__(self, inner: BaseRequest) -> None:
        self.inner = inner

    @property
    def read_timeout(self) -> float | None:
        return self.inner.read_timeout

    async def initialize(self) -> None:
        await self.inner.initialize()

    async def shutdown(self) -> None:
        await self.inner.shutdown()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = DEFAULT,
        write_timeout: Any = DEFAULT,
        connect_timeout: Any = DEFAULT,
        pool_timeout: Any = DEFAULT,
    ) -> tuple[int, bytes]:
        params = request_data.parameters if request_data is not None else {}
        turn = probe.keeping(params.get("chat_id"))
        name = endpoint(url)
        if turn is None or method != "POST" or name.startswith("get"):  # GET: a file download
            return await self.inner.do_request(
                url,
                method,
                request_data,
                read_timeout=read_timeout,
                write_timeout=write_timeout,
                connect_timeout=connect_timeout,
                pool_timeout=pool_timeout,
            )
        if is_reply(name):
            try:
                await turn.replies.keep(turn.nonce, reply_text(name, params))
            except outcome.STORAGE_ERRORS as exc:
                raise outcome.reply_not_kept(exc) from exc
        return 200, json.dumps({"ok": True, "result": fake_result(name, params)}).encode()
