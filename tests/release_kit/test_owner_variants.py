"""Owner bots unlike the fixture, on the kit: a JobQueue, non-blocking handlers, concurrency
settings, other Bot API calls. Each is python-telegram-bot used as its documentation shows; the
kit must leave what the handlers do unchanged, for real users and the probe alike."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import httpx
from telegram import Update
from telegram.ext import CommandHandler, ContextTypes, MessageHandler, filters

from release_kit import DEFAULT_PROBE_USER_ID as PROBE
from sandbox.ports import free_port
from tests.release_kit.test_kit import USER, kit_for, replies, serving, turn


def eventually(condition: Callable[[], object], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_job_added_in_a_probe_turn_leaves_every_later_job_reaching_telegram(redis_server, telegram):
    """APScheduler arms its next timer in the context of the call that added a job: after the
    probe's /start adds one, a real user's reminder runs in the probe turn's context."""

    async def remind(context: ContextTypes.DEFAULT_TYPE) -> None:
        await context.bot.send_message(USER, "time for tea")

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.job_queue is not None and update.message is not None
        context.job_queue.run_once(remind_probe, 0.1, chat_id=update.message.chat_id)
        await update.message.reply_text("I'll remind you")

    async def remind_probe(context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.job is not None and context.job.chat_id is not None
        await context.bot.send_message(context.job.chat_id, "your reminder")

    fake, port = telegram.add_bot("small_kit_bot"), free_port()
    telegram.start_chat(fake, USER)
    kit = kit_for(redis_server.url, telegram.url, port)
    application = kit.builder().token(fake.token).build()
    application.add_handler(CommandHandler("start", start))
    assert application.job_queue is not None
    application.job_queue.run_repeating(remind, interval=0.2, first=0.2)  # a real user's reminder
    with serving(kit.asgi(application, url_path="hook"), port) as url:
        assert eventually(lambda: telegram.replies_to(fake, USER))
        assert turn(url, telegram, fake, PROBE, "/start").status_code == 200
        assert eventually(lambda: "your reminder" in replies(url, fake))  # the probe's own: kept, not sent
        reached = len(telegram.replies_to(fake, USER))
        assert eventually(lambda: len(telegram.replies_to(fake, USER)) >= reached + 3), replies(url, fake)
        assert replies(url, fake) == ["I'll remind you", "your reminder"]
    assert all(sent == {"chat_id": USER, "text": "time for tea"} for sent in fake.sent)


def test_a_job_failing_after_the_update_that_armed_it_is_logged_not_noted_on_that_update(
    redis_server, telegram, caplog
):
    async def broken(context: ContextTypes.DEFAULT_TYPE) -> None:
        raise LookupError("the job's own bug")

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.job_queue is not None and update.message is not None
        context.job_queue.run_once(broken, 0.3)
        await update.message.reply_text("ok")

    fake, port = telegram.add_bot("small_kit_bot"), free_port()
    kit = kit_for(redis_server.url, telegram.url, port)
    application = kit.builder().token(fake.token).build()
    application.add_handler(CommandHandler("start", start))
    caplog.set_level(logging.ERROR, logger="release_kit")
    with serving(kit.asgi(application, url_path="hook"), port) as url:
        assert turn(url, telegram, fake, USER, "/start", nonce=None).status_code == 200
        assert eventually(lambda: "LookupError: the job's own bug" in caplog.text), caplog.text
        assert httpx.get(f"{url}/healthz").json()["updates"]["failed"] == 0  # the update itself went well


def test_a_probe_turn_answers_once_its_non_blocking_handlers_are_done_a_real_users_does_not_wait(
    redis_server, telegram
):
    """``block=False`` keeps a slow handler (an LLM call) from holding up the others; the probe
    reads the replies right after its answer, so its turn waits for them, a real user's does not."""
    gate = threading.Event()  # closed: the handler thinks until the test opens it
    gate.set()

    async def slow(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await asyncio.sleep(0.5)  # slow, as an LLM call is: long after process_update returned
        while not gate.is_set():
            await asyncio.sleep(0.01)
        await update.message.reply_text("thought about it")
        if update.message.text == "boom":
            import redis as redis_py

            raise redis_py.ConnectionError("Redis went away")

    fake, port = telegram.add_bot("small_kit_bot"), free_port()
    kit = kit_for(redis_server.url, telegram.url, port)
    application = kit.builder().token(fake.token).build()
    application.add_handler(MessageHandler(filters.TEXT, slow, block=False))
    with serving(kit.asgi(application, url_path="hook"), port) as url:
        assert turn(url, telegram, fake, PROBE, "hmm").status_code == 200
        assert replies(url, fake) == ["thought about it"]
        assert turn(url, telegram, fake, PROBE, "boom", nonce="n0nce-boom").status_code == 503  # comes again
        gate.clear()
        assert turn(url, telegram, fake, USER, "hmm", nonce=None).status_code == 200  # not waited for
        assert telegram.replies_to(fake, USER) == []
        gate.set()
        assert eventually(lambda: telegram.replies_to(fake, USER) == ["thought about it"])


def test_the_owners_error_handler_runs_on_a_storage_failure_even_added_after_kit_asgi(redis_server, telegram):
    """The kit's error handler stops the update on a storage failure (ApplicationHandlerStop),
    which also stops the error handlers after it: it has to be the last one."""
    import redis as redis_py

    seen: list[str] = []

    async def fails(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        raise redis_py.ConnectionError("Redis went away")

    async def owners_error_handler(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.append(type(context.error).__name__)

    fake, port = telegram.add_bot("small_kit_bot"), free_port()
    kit = kit_for(redis_server.url, telegram.url, port)
    application = kit.builder().token(fake.token).build()
    application.add_handler(MessageHandler(filters.ALL, fails))
    app = kit.asgi(application, url_path="hook")
    application.add_error_handler(owners_error_handler)  # a bot on its own server may set up later
    with serving(app, port) as url:
        assert turn(url, telegram, fake, USER, "hi", nonce=None).status_code == 503
    assert seen == ["ConnectionError"]


def test_calls_answered_with_objects_get_well_formed_ones_in_a_probe_turn(small_bot, telegram):
    """A quiz closes its poll, a referral bot hands out an invite link, a shop an invoice link:
    python-telegram-bot parses each answer into its type, and ``true`` there ends the handler."""
    from telegram import ChatInviteLink, LabeledPrice, Poll

    answers: list[object] = []

    async def busy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None and update.message is not None
        chat, bot = update.effective_chat.id, context.bot
        poll = await bot.send_poll(chat, "Tea or coffee?", ["tea", "coffee"])
        answers.append(await bot.stop_poll(chat, poll.message_id))
        answers.append(await bot.create_chat_invite_link(-1001234567890, name="friends"))
        answers.append(await bot.export_chat_invite_link(-1001234567890))
        answers.append(await bot.create_invoice_link("Premium", "a month", "p1", "XTR", [LabeledPrice("m", 100)]))
        await update.message.reply_text("done")

    with small_bot(busy) as (url, fake):
        assert turn(url, telegram, fake, PROBE, "/shop").status_code == 200
        assert replies(url, fake) == ["[sendPoll]", "done"]
    poll, link, exported, invoice = answers
    assert isinstance(poll, Poll) and poll.is_closed and isinstance(link, ChatInviteLink)
    assert isinstance(exported, str) and isinstance(invoice, str) and fake.sent == []


def test_a_storage_error_the_owner_wraps_in_their_own_is_still_a_503(small_bot, telegram):
    """A memory layer that turns Redis's errors into its own (``raise ... from exc``): the update
    did not take effect all the same, and Telegram must deliver it again."""
    import redis as redis_py

    class MemoryUnavailable(Exception):
        pass

    async def remembers(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            raise redis_py.ConnectionError("Redis went away")
        except redis_py.RedisError as exc:
            raise MemoryUnavailable("could not save your note") from exc

    with small_bot(remembers) as (url, fake):
        assert turn(url, telegram, fake, USER, "/remember tea", nonce=None).status_code == 503
