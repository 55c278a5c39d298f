"""What the bot says. Every handler records the visit, so "last seen" proves the user is here.

Who gets the bot at all is the kit's (``release_kit.gate``): a bot that has moved (``MOVED_TO``)
answers everyone with the new link, and on a bot with a tester allowlist (``TESTER_IDS``,
staging) anyone else gets only the production bot's link; no handler here runs for them.

Each write passes the update's id, so the write and the "this update took effect" marker land
together (``MemoryStore``); a redelivery of an update that took effect is acknowledged before
any handler runs (``once``), never repeated. Each visit also passes this bot's id: the profile
records which bot the user talks to and since when (``ci-tools finish-move`` reads it).
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from mindmate.conversation import effect_id, reply
from mindmate.settings import Settings
from mindmate.store import MemoryStore

HELP = (
    "I'm MindMate. Talk to me any time.\n"
    "/remember <something> — I'll keep it\n"
    "/recall — what I remember about you\n"
    "/forget <n> or /forget all — let something go\n"
    "/version — which MindMate you are talking to"
)
Context = ContextTypes.DEFAULT_TYPE
log = logging.getLogger("mindmate")


def register(application: Application, settings: Settings, store: MemoryStore) -> None:  # type: ignore[type-arg, unused-ignore]
    """Attach the handlers, behind the redelivery check (group -1 runs before them)."""

    async def once(update: Update, context: Context) -> None:
        """Telegram's redelivery of an update that already took effect: acknowledged, not repeated.
        A Redis error here stops the update (the kit answers 503: delivered again later)."""
        if effect_id(update) is not None and await store.took_effect(update.update_id):
            log.info("update %s already took effect: acknowledged, not repeated", update.update_id)
            raise ApplicationHandlerStop

    application.add_handler(TypeHandler(Update, once), group=-1)

    def user_id(update: Update) -> int:
        # Commands and text messages always have a sender; channel posts never match them.
        assert update.effective_user is not None
        return update.effective_user.id

    async def seen(update: Update, *, final: bool = False) -> bool:
        """Record the visit; ``final`` when it is the handler's only write (marks the update)."""
        user = update.effective_user
        if user is None:
            return False
        return await store.touch(user.id, user.first_name, user.username, effect_id(update) if final else None)

    async def start(update: Update, context: Context) -> None:
        first = await seen(update, final=True)
        name = update.effective_user.first_name if update.effective_user else "there"
        greeting = f"Hello, {name}! " + ("Nice to meet you." if first else "Good to see you again.")
        await reply(update, f"{greeting}\n\n{HELP}")

    async def remember(update: Update, context: Context) -> None:
        fact = " ".join(context.args or []).strip()
        if not fact:
            await seen(update, final=True)
            await reply(update, "Tell me what to remember: /remember <something>")
            return
        await seen(update)
        count = await store.remember(user_id(update), fact, effect_id(update))
        await reply(update, f"I'll remember that. ({count} things so far)")

    async def recall(update: Update, context: Context) -> None:
        await seen(update, final=True)
        facts = await store.recall(user_id(update))
        if not facts:
            await reply(update, "I don't remember anything yet. Try /remember.")
            return
        lines = "\n".join(f"{i}. {fact}" for i, fact in enumerate(facts, 1))
        await reply(update, f"Here's what I remember:\n{lines}")

    async def forget(update: Update, context: Context) -> None:
        await seen(update)
        arg = " ".join(context.args or []).strip().lower()
        if arg == "all":
            await store.forget(user_id(update), None, effect_id(update))
            await reply(update, "Done. I've let all of it go.")
            return
        try:
            fact = await store.forget(user_id(update), int(arg), effect_id(update))
        except (ValueError, IndexError):
            await reply(update, "Which one? /forget <number from /recall> or /forget all")
            return
        await reply(update, f"Forgotten: {fact}")

    async def version(update: Update, context: Context) -> None:
        await seen(update, final=True)
        await reply(update, f"MindMate {settings.env} @ {settings.short_commit}")

    async def chat(update: Update, context: Context) -> None:
        await seen(update)
        text = update.effective_message.text if update.effective_message else ""
        await store.append_history(user_id(update), text or "", effect_id(update))
        await reply(update, "I'm listening. (/recall shows what I remember)")

    application.add_handler(CommandHandler("start", start))
    application.add_handler(CommandHandler("help", start))
    application.add_handler(CommandHandler("remember", remember))
    application.add_handler(CommandHandler("recall", recall))
    application.add_handler(CommandHandler("forget", forget))
    application.add_handler(CommandHandler("version", version))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, chat))
