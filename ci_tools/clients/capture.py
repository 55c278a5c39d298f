"""The Bot API seen from the other side: a loopback server that a bot under replay talks to.

The replay stage starts the live and the candidate bot with ``TELEGRAM_API_URL`` pointing
here, so nothing they say reaches real Telegram: ``getMe`` answers as the configured bot,
``sendMessage`` keeps the text per chat instead of sending it, and every other method
(``setMyCommands`` …) answers ``ok`` and does nothing. ``setWebhook`` is kept (``webhook``):
the bot's webhook may be at any path on its port, and the replay posts each turn where the bot
put it. The replies stay in this process's memory and are gone when the server stops; they are
compared, never printed.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl


class CaptureServer:
    """``with CaptureServer(username) as capture:`` → ``capture.url``; ``capture.take(chat)``."""

    def __init__(self, username: str) -> None:
        self.username = username
        self._replies: dict[int, list[str]] = defaultdict(list)
        self.webhook = ""  # the URL the bot set with setWebhook ("" none yet, or deleted)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="bot-api-capture", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> CaptureServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            self._replies.clear()

    def forget_webhook(self) -> None:
        """Before the next bot starts on this server: the webhook it sets is its own."""
        self.webhook = ""

    def replied(self, chat_id: int) -> bool:
        with self._lock:
            return bool(self._replies.get(chat_id))

    def take(self, chat_id: int) -> list[str]:
        """What the bot sent ``chat_id`` since the last take."""
        with self._lock:
            return self._replies.pop(chat_id, [])

    def _answer(self, token: str, method: str, params: dict[str, Any]) -> Any:
        head = token.split(":", 1)[0]
        me = {
            "id": int(head) if head.isdigit() else 1,
            "is_bot": True,
            "first_name": "MindMate",
            "username": self.username,
        }
        if method == "getme":
            return me
        if method == "sendmessage":
            chat = int(params.get("chat_id", 0))
            with self._lock:
                self._replies[chat].append(str(params.get("text", "")))
            return {
                "message_id": next(self._ids),
                "from": me,
                "chat": {"id": chat, "type": "private"},
                "date": int(time.time()),
                "text": str(params.get("text", "")),
            }
        if method == "setwebhook":
            self.webhook = str(params.get("url", ""))
        if method == "deletewebhook":
            self.webhook = ""
        if method == "getwebhookinfo":
            return {"url": self.webhook, "has_custom_certificate": False, "pending_update_count": 0}
        return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        capture = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # head and body are two writes: no 40 ms delayed-ACK wait

            def do_POST(self) -> None:
                parts = self.path.strip("/").split("/")
                if len(parts) != 2 or not parts[0].startswith("bot"):
                    self._send(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                    return
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                kind = self.headers.get("Content-Type", "")
                params: dict[str, Any] = {}
                if raw and "json" in kind:
                    params = json.loads(raw)
                elif raw:
                    params = dict(parse_qsl(raw.decode()))
                result = capture._answer(parts[0][3:], parts[1].lower(), params)
                self._send(200, {"ok": True, "result": result})

            do_GET = do_POST

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: a request line names the bot's token."""

        return Handler
