"""What the bot says. Every handler records the visit, so "last seen" proves the user is here."""

from __future__ import annotations

from telegram import Update
from telegram.ext import (
    Application,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from mindmate.settings import Settings
from mindmate.store import MemoryStore

HELP = (
    "I'm MindMate. Talk to me any time.\n"
    "/remember <something> — I'll keep it\n"
    "/recall — what I remember about you\n"
    "/forget <n> or /forget all — let something go\n"
    "/version — which MindMate you are talking to"
)


def register(application: Application, settings: Settings, store: MemoryStore) -> None:
    """Attach the handlers; a bot that has moved answers everything with the new link."""
    if settings.moved_to:
        link = f"https://t.me/{settings.moved_to}"

        async def signpost(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            if update.effective_message:
                await update.effective_message.reply_text(link)

        application.add_handler(MessageHandler(filters.ALL, signpost))
        return

    async def seen(update: Update) -> bool:
        user = update.effective_user
        if user is None:
            return False
        return await store.touch(user.id, user.first_name, user.username)

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        first = await seen(update)
        name = update.effective_user.first_name if update.effective_user else "there"
        greeting = f"Hello, {name}! " + ("Nice to meet you." if first else "Good to see you again.")
        await update.effective_message.reply_text(f"{greeting}\n\n{HELP}")

    async def remember(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await seen(update)
        fact = " ".join(context.args or []).strip()
        if not fact:
            await update.effective_message.reply_text(
                "Tell me what to remember: /remember <something>"
            )
            return
        count = await store.remember(update.effective_user.id, fact)
        await update.effective_message.reply_text(f"I'll remember that. ({count} things so far)")

    async def recall(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await seen(update)
        facts = await store.recall(update.effective_user.id)
        if not facts:
            await update.effective_message.reply_text(
                "I don't remember anything yet. Try /remember."
            )
            return
        lines = "\n".join(f"{i}. {fact}" for i, fact in enumerate(facts, 1))
        await update.effective_message.reply_text(f"Here's what I remember:\n{lines}")

    async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await seen(update)
        arg = " ".join(context.args or []).strip().lower()
        user_id = update.effective_user.id
        if arg == "all":
            await store.forget(user_id, None)
            await update.effective_message.reply_text("Done. I've let all of it go.")
            return
        try:
            fact = await store.forget(user_id, int(arg))
        except (ValueError, IndexError):
            await update.effective_message.reply_text(
                "Which one? /forget <number from /recall> or /forget all"
            )
            return
        await update.effective_message.reply_text(f"Forgotten: {fact}")

    async def version(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await seen(update)
        await update.effective_message.reply_text(
            f"MindMate {settings.env} @ {settings.short_commit}"
        )

    async def chat(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await seen(update)
        text = update.effective_message.text or ""
        await store.append_history(update.effective_user.id, text)
        await update.effective_message.reply_text("I'm listening. (/recall shows what I remember)")

    application.add_handler(CommandHandler("start", start))
    application.add_handler(CommandHandler("help", start))
    application.add_handler(CommandHandler("remember", remember))
    application.add_handler(CommandHandler("recall", recall))
    application.add_handler(CommandHandler("forget", forget))
    application.add_handler(CommandHandler("version", version))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, chat))
