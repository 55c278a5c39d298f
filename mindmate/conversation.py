"""How the bot answers: through Telegram, or — for the pipeline's probe user — into Redis.

``ci-tools probe`` holds a conversation with each release (``/start``, ``/remember
probe-<nonce>``, ``/recall``) through the real handlers and the real Redis, as a
user would. Its replies must not go to Telegram (the probe user is no real chat),
so while the webhook serves a signed update from the probe user that carries a
probe nonce, ``reply()`` keeps each answer under ``<prefix>probe:<nonce>`` for a
few minutes; the probe reads them from the signed ``GET /probe/<nonce>``.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from telegram import Update

from mindmate.store import MemoryStore


@dataclass(frozen=True)
class ProbeTurn:
    store: MemoryStore
    nonce: str


_probe: contextvars.ContextVar[ProbeTurn | None] = contextvars.ContextVar("probe", default=None)


def probing(turn: ProbeTurn | None) -> contextvars.Token[ProbeTurn | None]:
    """Route this task's replies to the probe (the webhook resets it after the update)."""
    return _probe.set(turn)


def done_probing(token: contextvars.Token[ProbeTurn | None]) -> None:
    _probe.reset(token)


def effect_id(update: Update) -> int | None:
    """The id to mark the update's effect with; none for the probe, which leaves nothing behind."""
    return None if _probe.get() is not None else update.update_id


async def reply(update: Update, text: str) -> None:
    turn = _probe.get()
    if turn is not None:
        await turn.store.keep_probe_reply(turn.nonce, text)
        return
    if update.effective_message:
        await update.effective_message.reply_text(text)
