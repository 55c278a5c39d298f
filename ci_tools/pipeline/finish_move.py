"""``finish-move``: runbook step 9, the end of the daily user's move, no earlier than its window allows.

Until now the daily user's old bot (staging's) kept serving them from their legacy keys, so that
``send-back`` could put them back on it. Finishing the move gives that bot to the testers: its
service gets its own key prefix (``[tool.ci_tools.move] old_bot_prefix``, ``dev:``), a tester
allowlist (``TESTER_IDS``; anyone else is sent to the new bot, ``PRODUCTION_BOT``), no ``MOVED_TO``,
and ``MOVE_FINISHED`` records when; its live commit is deployed again so the instance reads them,
and ``/healthz`` must report the new prefix. If that deploy fails, the settings go back (Render
keeps the old instance serving). Then the cutover's rollback window on production closes
(``cutover --finish``: the previous production bot is forgotten), and the run names what the owner
removes by hand: production's ``SOURCE_REDIS_URL``, the old bot's Redis, which nothing needs now.

When: no earlier than ``window_days`` (3) after the daily user's first message to the new bot (or
their last message to the old bot, when that came later: sent back and moved forward again). The
kit keeps that moment for any bot it serves, whatever the bot's own keys (docs/CONTRACT.md, "the
arrival record"): ``<prefix>kit:arrival:<id>`` in production's Redis names the bot that saw them last
(``bot_id``) and since when (``since``), so the run reads it there, and compares its ``last`` with the
old bot's record: a user who wrote to the old bot last, or who was sent back (send-back carries the
new bot's record to the old bot, which names the new bot until they write to the old bot) and has
not written to the old bot since, is not on the new one. An old
deployed mindmate kept the same moment in its profile (``old_bot.visits`` reads it where no record
exists). Without a record (a bot the kit does not serve keeps none: the refusal names the kit line
that gives it), or before the window, it refuses in one line saying when it may run; ``force`` goes
anyway, and the run names what it overrode.

Last, nothing reads the daily user's legacy keys any more (the old bot's prefix before this run), so
they are retired from the old bot's Redis (``retire_legacy``): backed up first (encrypted, this run's
artifact), then removed where they still match the backup; ``ci-tools memory undo`` puts them back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ci_tools.clients.health import NotTheContract, Unreachable, health_of
from ci_tools.clients.render import RenderAPI
from ci_tools.clients.telegram import BotInfo
from ci_tools.context import Context
from ci_tools.errors import FatalError, InputError, RemoteError, VerificationError
from ci_tools.memory.model import Stage
from ci_tools.pipeline import cutover, retire_legacy
from ci_tools.pipeline.deploy import follow
from ci_tools.pipeline.old_bot import (
    FINISHED_VAR,
    Visits,
    arrival_key,
    legacy_profile_key,
    new_env,
    old_env,
    old_service,
    prefix_of,
    service_settings,
    visits,
)
from ci_tools.settings import Environment

Status = Callable[[str], None]
OLD_REDIS = "STAGING_REDIS_URL"  # the old bot's Redis as production holds it (SOURCE_REDIS_URL)


@dataclass(frozen=True)
class FinishRequest:
    user_id: int
    tester_ids: tuple[int, ...]
    force: bool = False
    timeout: float = 900  # the old bot's redeploy
    deadline: float = 90  # for its /healthz to report the new prefix
    poll: float = 2.0
    out_dir: Path = Path("memory-out")  # the backup of the daily user's legacy keys
    stage: Stage = Stage.ALL  # PLAN: all but their removal (the backup is kept first); WRITE: that alone
    retire_news: bool = False  # the owner's choice: retire what production never got too (only the backup keeps it)


@dataclass(frozen=True)
class Timing:
    """When the move may finish, from the new bot's record of the daily user."""

    arrived: datetime | None  # their first message to the new bot
    may_from: datetime | None  # arrived + window_days
    refusal: str | None  # why not now (None: it may)


@dataclass
class Finished:
    new_bot: BotInfo
    old: Environment
    timing: Timing
    forced: bool
    changed: list[str] = field(default_factory=list)  # the old bot's settings this run changed
    deployed: str | None = None  # the old bot's redeploy
    window: str = ""  # what became of the cutover's rollback window
    retired: retire_legacy.Retired | None = None  # the daily user's legacy keys on the old bot's Redis


def timing(ctx: Context, user_id: int, new_bot: BotInfo, now: datetime | None = None) -> Timing:
    """Is the daily user on the new bot, and since when? The refusal says when it may run."""
    config, new, old = ctx.config, new_env(ctx), old_env(ctx)
    now = now or datetime.now(UTC)
    window = timedelta(days=config.move.window_days)
    here = visits(ctx, "REDIS_URL", new.key_prefix, user_id, "production")
    there = visits(ctx, OLD_REDIS, old.key_prefix, user_id, "old bot's") if ctx.optional(OLD_REDIS) else None
    name = f"@{new_bot.username}"
    if here is None or (not here.kit and here.bot_id is None and here.since is None):
        # A profile without bot_id/bot_since is no old mindmate's record: today's mindmate keeps one
        # for every user, so a missing record (a Redis refusing the kit's EVAL) must read as missing.
        return Timing(
            None,
            None,
            f"{name} holds no arrival record of user {user_id} ({arrival_key(new.key_prefix, user_id)}): "
            "the window starts with their first message to it, and the kit records it for a bot it serves "
            "(kit.run_webhook(application, ...) in place of application.run_webhook(...), docs/ADOPTING.md; "
            "a bot on the kit that logs 'arrival record not kept' has a Redis that refuses its EVAL)",
        )
    if here.not_a_record:
        return Timing(
            None,
            None,
            f"{arrival_key(new.key_prefix, user_id)} in production's Redis is not a hash, so not the kit's "
            f"arrival record of user {user_id}, and the kit cannot keep one there: delete that key, and the "
            f"window starts with their next message to {name}",
        )
    if here.bot_id != new_bot.id or here.since_at is None:
        where = arrival_key(new.key_prefix, user_id) if here.kit else legacy_profile_key(new.key_prefix, user_id)
        return Timing(
            None,
            None,
            f"{name} has no record of user {user_id} writing to it ({where} names {_bot(here)}): "
            "the window starts with their first message to it",
        )
    arrived = here.since_at
    if there is None and not ctx.optional(OLD_REDIS):
        # Without the old bot's Redis nothing shows a send-back: refused rather than guessed.
        return Timing(
            arrived,
            None,
            f"without {OLD_REDIS} (production's SOURCE_REDIS_URL: the old bot's Redis) finish-move cannot see "
            f"whether user {user_id} was sent back to @{old.bot_username}; remove SOURCE_REDIS_URL only after it ran",
        )
    if (
        there is not None
        and there.kit
        and there.bot_id == new_bot.id
        and (there.last_seen or 0) <= (here.last_seen or 0)
    ):
        # Only send-back puts the new bot's record in the old bot's Redis, and the old bot's kit makes
        # it its own at their first message there: they were sent back and have not written to it
        # since, even if they wrote to the new bot once more (not having read the send-back's message).
        # (An old deployed mindmate keeps the carried record as it is, but its profile's last_seen,
        # later than the new bot's, says they wrote to it: the check after next.)
        return Timing(
            arrived,
            None,
            f"@{old.bot_username} holds {name}'s arrival record of user {user_id} (send-back carried it, as of "
            f"{_when(there.last_seen)}): they were sent back and have not written to @{old.bot_username} since",
        )
    if there is not None and not there.kit and there.last_seen is not None and there.last_seen == here.last_seen:
        # The old bot holds production's own copy of their profile (an old deployed mindmate's, no
        # record): a send-back, and they wrote to neither bot since. Finishing now would take away the
        # bot they were just sent back to. An old bot's own kit record is no copy: the same second there
        # and here is a message to each bot within one second, not a send-back.
        return Timing(
            arrived,
            None,
            f"@{old.bot_username} holds {name}'s record of user {user_id} as of their last message "
            f"({_when(there.last_seen)}): they were sent back and have not written to {name} since",
        )
    if there is not None and (there.last_seen or 0) > (here.last_seen or 0):
        return Timing(
            arrived,
            None,
            f"user {user_id} wrote to @{old.bot_username} after their last message to {name} "
            f"({_when(there.last_seen)}): they are on the old bot (sent back?), not on the new one",
        )
    since_what = f"user {user_id}'s first message to {name}"
    if there is not None and there.bot_id != new_bot.id and there.last_seen and there.last_seen > arrived.timestamp():
        # They wrote to the old bot after their first message to the new one (sent back, then moved
        # forward again; or both bots in use): the record keeps only that first message, so the window
        # counts from their last message to the old bot, no earlier. It can only wait longer.
        arrived = datetime.fromtimestamp(there.last_seen, UTC)
        since_what = f"user {user_id}'s last message to @{old.bot_username}, after which they are on {name}"
    may_from = arrived + window
    if now < may_from:
        return Timing(
            arrived,
            may_from,
            f"the move may finish from {may_from:%Y-%m-%d %H:%M} UTC, {_days(config.move.window_days)} after "
            f"{since_what} ({arrived:%Y-%m-%d %H:%M} UTC)",
        )
    return Timing(arrived, may_from, None)


def _bot(seen: Visits) -> str:
    return f"bot {seen.bot_id}" if seen.bot_id is not None else "no bot"


def _when(stamp: int | None) -> str:
    return f"{datetime.fromtimestamp(stamp, UTC):%Y-%m-%d %H:%M} UTC" if stamp else "unknown"


def _days(days: float) -> str:
    return f"{days:g} day{'' if days == 1 else 's'}"


def finish_move(ctx: Context, request: FinishRequest, *, on_status: Status = lambda line: None) -> Finished:
    new, old = new_env(ctx), old_env(ctx)
    ctx.require_snapshot_key(retire_legacy.WHY_KEY)
    new_bot = cutover.whose(ctx, ctx.secret("TELEGRAM_BOT_TOKEN", purpose="the new bot's"), "TELEGRAM_BOT_TOKEN")
    when = timing(ctx, request.user_id, new_bot)
    if when.refusal and not request.force:
        raise InputError(when.refusal, hint="dispatch finish-move again then, or with force to finish now")
    if not request.tester_ids:
        raise InputError(
            "finish-move needs at least one tester id: the old bot will serve them alone",
            hint="pass --tester-ids (your own Telegram id), or set OWNER_CHAT_ID",
        )
    result = Finished(new_bot, old, when, forced=when.refusal is not None)
    wanted = {
        "KEY_PREFIX": ctx.config.move.old_bot_prefix,
        "TESTER_IDS": ",".join(str(t) for t in request.tester_ids),
        "PRODUCTION_BOT": new_bot.username,
    }
    with old_service(ctx, seconds=request.timeout) as api:
        before = service_settings(api)
        legacy = retire_legacy.old_prefix(ctx, prefix_of(before), before.get(FINISHED_VAR))
        result.changed = [name for name, value in wanted.items() if before.get(name) != value]
        if before.get("MOVED_TO"):
            result.changed.append("MOVED_TO")
        if result.changed or not before.get(FINISHED_VAR):
            try:
                for name in result.changed:
                    if name == "MOVED_TO":
                        api.delete_env_var(name)
                    else:
                        api.set_env_var(name, wanted[name])
                on_status(f"{old.render_service}: {', '.join(result.changed) or 'nothing'} set")
                result.deployed = _redeploy(api, request, on_status)
                _serves(ctx, old, wanted["KEY_PREFIX"], request)
            except FatalError as failure:
                said = _put_back(api, before, result.changed)
                raise VerificationError(
                    f"the old bot did not come back as the testers' bot ({failure.message}); {said}",
                    hint=f"look at {old.render_service}, then run finish-move again",
                ) from None
            # The old prefix kept where a rerun finds it: by then the service and the config may both say dev:.
            noted = retire_legacy.noted(legacy)
            finished = f"{datetime.now(UTC):%Y-%m-%d} {noted} @{new_bot.username} user {request.user_id}"
            api.set_env_var(FINISHED_VAR, finished)
    result.window = _close_window(ctx, new)
    result.retired = _retire(ctx, request, legacy)
    return result


def _retire(ctx: Context, request: FinishRequest, prefix: str) -> retire_legacy.Retired:
    """The daily user's legacy keys, now that nothing reads them: backed up, then (unless only the plan
    stage runs: the workflow keeps the backup as an artifact first) removed where they match it."""
    planned = retire_legacy.back_up(ctx, request.user_id, prefix, request.out_dir, retire_news=request.retire_news)
    if request.stage is Stage.PLAN or planned.backup is None:
        return planned
    done = retire_legacy.delete(ctx, planned.backup, request.user_id)
    done.shared, done.news, done.news_retired = planned.shared, planned.news, planned.news_retired
    return done


def retire_from_backup(ctx: Context, request: FinishRequest) -> retire_legacy.Retired:
    """``--stage write``: the keys the plan stage backed up (in ``out_dir``) removed where they match it."""
    ctx.require_snapshot_key(retire_legacy.WHY_KEY)
    backup = retire_legacy.find_backup(request.out_dir, request.user_id)
    return retire_legacy.delete(ctx, backup, request.user_id)


def _redeploy(api: RenderAPI, request: FinishRequest, on_status: Status) -> str | None:
    """Deploy the old bot's live commit again: a service reads its variables when it starts."""
    deadline = time.monotonic() + request.timeout
    live = api.live()
    if live is None or not live.commit:
        raise RemoteError("the old bot's service has no live deploy to start again")
    known = {d.id for d in api.deploys(max_pages=1)}
    created = api.create_once(
        lambda: api.create_deploy(live.commit or ""),
        lambda: api.created_since(known, live.commit or "", "api"),
        on_status=on_status,
    )
    final = follow(api, live.commit, created.id if created else None, known, deadline, request.poll, on_status)
    return final.id


def _serves(ctx: Context, env: Environment, prefix: str, request: FinishRequest) -> None:
    """The redeployed old bot reports its new prefix on /healthz (skipped without a health path)."""
    if env.health_url is None:
        return
    deadline = time.monotonic() + request.deadline
    seen = "no answer"
    while time.monotonic() < deadline:
        try:
            health = health_of(env.health_url, ctx.request_timeout(10))
        except (Unreachable, NotTheContract) as exc:
            seen = str(exc) or type(exc).__name__
        else:
            if health.key_prefix == prefix and health.redis_ok:
                return
            seen = f"prefix {health.key_prefix!r}, Redis {'ok' if health.redis_ok else 'down'}"
        time.sleep(min(request.poll, max(0.0, deadline - time.monotonic())))
    raise RemoteError(f"{env.health_path} did not report prefix {prefix!r} in {request.deadline:g}s ({seen})")


def _put_back(api: RenderAPI, before: dict[str, str | None], changed: list[str]) -> str:
    try:
        for name in changed:
            was = before.get(name)
            if was is None:
                api.delete_env_var(name)
            else:
                api.set_env_var(name, was)
    except FatalError as exc:
        return f"putting its settings back failed too ({exc.message}): look at the service now"
    return "its settings were put back (Render kept the previous instance serving)"


def _close_window(ctx: Context, new: Environment) -> str:
    """The cutover's rollback window on production: closed now (its previous bot forgotten)."""
    request = cutover.CutoverRequest(
        commit="",
        api_key=ctx.secret("RENDER_API_KEY"),
        service_id=ctx.secret("RENDER_SERVICE_ID", purpose=f"{new.render_service}'s id"),
        webhook_secret=None,
    )
    try:
        forgotten, ends = cutover.finish(ctx, request, now=True)
    except InputError:
        return "the cutover's rollback window was closed already"
    early = f", {(ends - datetime.now(UTC)).days + 1} day(s) early" if ends and ends > datetime.now(UTC) else ""
    return f"the cutover's rollback window closed{early}: {forgotten} can no longer come back with cutover --back"
