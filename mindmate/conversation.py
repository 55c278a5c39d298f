"""How the bot answers: through Telegram; for the pipeline's probe user, into Redis (the kit's).

``ci-tools probe`` holds a conversation with each release (``/start``, ``/remember
probe-<nonce>``, ``/recall``) through the real handlers and the real Redis, as a user would.
Its replies must not go to Telegram (the probe user is no real chat): the bot is built with
``kit.builder()``, whose request layer keeps them for the probe (``release_kit.request``), so
``reply()`` sends as it would for anyone. What the bot itself must know of a probe turn is one
thing: it leaves no "took effect" marker behind (``effect_id``).
"""

from __future__ import annotations

from telegram import Update

from release_kit import probe_nonce


def effect_id(update: Update) -> int | None:
    """The id to mark the update's effect with; none for the probe, which leaves nothing behind."""
    return None if probe_nonce() is not None else update.update_id


async def reply(update: Update, text: str) -> None:
    if update.effective_message:
        await update.effective_message.reply_text(text)
