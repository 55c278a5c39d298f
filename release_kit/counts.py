"""What the health answer says about the updates since this instance started.

A handler's exception is answered 200 (a retry would fail the same way), so Telegram's
``last_error`` never shows it; the health answer does, for the bake window after a release.
Telegram's own refusals of a reply (a user who blocked the bot) are not the code's failures and
are not counted, nor are the probe user's turns (the pipeline's, not traffic). Nothing of a
message is kept: the exception's type, the update's kind, when the last one was handled, and
when the instance started.
"""

from __future__ import annotations

import time
from typing import Any

from telegram import Update
from telegram.error import TelegramError

KINDS = ("message", "edited_message", "callback_query", "inline_query", "channel_post", "my_chat_member")


class UpdateCounts:
    def __init__(self) -> None:
        self.handled = 0
        self.failed = 0
        self.last_failure: dict[str, str] | None = None
        self.last_handled_at: float | None = None
        # When this instance started: with nothing handled yet, the pipeline's quiet moment reads a
        # recent start as a conversation a restart may have cut short, not as a quiet bot.
        self.started_at = time.time()

    def count(self, update: Update, failures: list[BaseException]) -> None:
        self.handled += 1
        self.last_handled_at = time.time()
        own = [f for f in failures if not isinstance(f, TelegramError)]
        if own:
            self.failed += 1
            kind = next((k for k in KINDS if getattr(update, k, None) is not None), "update")
            self.last_failure = {"error": type(own[-1]).__name__, "kind": kind}

    def json(self) -> dict[str, Any]:
        return {
            "handled": self.handled,
            "failed": self.failed,
            "last_failure": self.last_failure,
            "last_handled_at": self.last_handled_at,
            "started_at": self.started_at,
        }
