"""Tell the owner in Telegram what happened to their bot: the environment's own bot writes one
short message to ``OWNER_CHAT_ID`` — and to no other chat, ever.

An owner who is not watching the dashboard hears of a release only through GitHub's failed-run
e-mail; this puts releases, rollbacks, failed watches and memory restores in their pocket, each
with the commit and the link to the run. A message is something to act on from a phone, so it
carries buttons that open the right page: the run, the rollback workflow's dispatch page (the
commits to name are in the message), and the hold workflow's, which stops releases until the owner
is back at a laptop. Only production's messages carry those two: holds are production's alone,
and the rollback form opens on production, so a staging message offering them would act on the
wrong bot. Buttons are a convenience, the message is not: when Telegram refuses the keyboard (a
400 for a URL it will not take, say a GitHub Enterprise host without a dot), the message goes
again without buttons and the run says so. Telling is best effort: a failure to tell (the owner
never started that bot: Telegram's 403, or 400 "chat not found" when the bot never saw
them) is a warning, never the reason a release fails.
"""

from __future__ import annotations

from ci_tools.actions import Runner
from ci_tools.clients.telegram import TelegramError
from ci_tools.context import Context
from ci_tools.errors import RemoteError
from ci_tools.output import say
from ci_tools.redact import redact
from ci_tools.settings import Environment

LIMIT = 4096  # sendMessage's text limit


# The workflows a button dispatches from the owner's phone: GitHub's page of a workflow with a
# workflow_dispatch trigger has the "Run workflow" form (docs.github.com, "Manually running a workflow").
ACTIONS = (("Roll back", "rollback.yml"), ("Hold releases", "hold.yml"))


def owner_message(ctx: Context, env: Environment, text: str) -> str:
    """The message: which bot, what happened, then where to read more (the run), nothing else.
    Redacted as every line ci-tools prints is: a failure line may carry a webhook URL, and a bot
    on python-telegram-bot's own ``run_webhook`` has its token as that URL's path."""
    link = ctx.runner.run_url
    return redact(f"@{env.bot_username} ({env.name}): {text}" + (f"\n{link}" if link else ""))


def owner_buttons(runner: Runner, *, production: bool) -> list[list[dict[str, str]]]:
    """URL buttons (an InlineKeyboardMarkup's rows): the run, then — for production only — what the
    owner may do about it. None without a repository (a run outside Actions): a button must open a
    real page."""
    if not runner.repository:
        return []
    workflows = f"{runner.server}/{runner.repository}/actions/workflows"
    run = runner.run_url
    rows = [[{"text": "Open the run", "url": run}]] if run else []
    if not production:
        return rows
    return [*rows, [{"text": label, "url": f"{workflows}/{name}"} for label, name in ACTIONS]]


def notify(ctx: Context, env: Environment, text: str) -> str | None:
    """Send ``text`` to the owner with ``env``'s bot; None when sent, else the warning to show.
    Sent without the buttons Telegram refused, it is sent: the run says so in a warning of its own."""
    owner, token = ctx.optional("OWNER_CHAT_ID"), ctx.optional("TELEGRAM_BOT_TOKEN")
    if not owner:
        return "OWNER_CHAT_ID is not set, so the owner was not told (ci-tools init asks for it)"
    if not token:
        return "TELEGRAM_BOT_TOKEN is not set, so the owner was not told"
    try:
        chat = int(owner.strip())
    except ValueError:
        return "OWNER_CHAT_ID is not a Telegram user id (digits), so the owner was not told"
    try:
        with ctx.telegram(token, budget=ctx.request_timeout(15)) as telegram:
            message = owner_message(ctx, env, text)[:LIMIT]
            rows = owner_buttons(ctx.runner, production=env.cutover_target)
            try:
                telegram.send_message(chat, message, **({"reply_markup": {"inline_keyboard": rows}} if rows else {}))
            except TelegramError as exc:
                if not rows or exc.code != 400 or "chat not found" in exc.description:
                    raise
                telegram.send_message(chat, message)  # the message matters, its buttons do not
                line = (
                    f"Telegram refused the message's buttons (400 {exc.description}): the owner was told without them"
                )
                say(f"⚠ {line}")
                ctx.runner.annotate("warning", line, title="owner told without buttons")
    except TelegramError as exc:
        if exc.code == 403:
            return (
                f"the owner was not told: Telegram refused (403 {exc.description}); "
                f"open @{env.bot_username} once and press Start so it may write to you"
            )
        if exc.code == 400 and "chat not found" in exc.description:
            # The Bot API's answer for a user the bot has never seen: a wrong id, or an owner
            # who never opened this bot (403 is for one it knows who never started it).
            return (
                f"the owner was not told: @{env.bot_username} has never seen the chat in OWNER_CHAT_ID "
                f"(400 {exc.description}); check that OWNER_CHAT_ID is your numeric Telegram id, "
                f"then open @{env.bot_username} once and press Start so it may write to you"
            )
        return f"the owner was not told: Telegram answered {exc.code} {exc.description}"
    except RemoteError as exc:
        return f"the owner was not told: {exc.message}"
    return None
