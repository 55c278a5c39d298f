"""``send-back``: the daily user's way back during the move's window.

The new bot failed them in the first days; their old bot (staging's, reading their legacy keys)
still runs. Send-back puts them back on it with what they told the new bot since the move: their
keys (and the kit's arrival record of them: ``carried``) are copied from production (read only, never
changed) into the old bot's keys, through the
same path as the migration's copy (``ci_tools.memory``): a snapshot of production's keys, a backup
of every old-bot key the write touches, a compare-and-set write that leaves a key the old bot changed
meanwhile alone, a read-back, and an undo from the backup. Then the old bot sends them one message.

Before anything is read for writing, the old bot must be able to serve them: its service reads the
keys the copy writes (``KEY_PREFIX`` as the config says; after finish-move it reads ``dev:`` and serves
testers only, and send-back is over), it is no signpost (``MOVED_TO``), its tester allowlist (if any)
admits the user, and ``/healthz`` shows it running as that bot on that prefix. Each refusal is one line
with the fix, before any write.

Nor may a send-back overwrite what the user told the old bot since an earlier one: each send-back
records what it left in the old bot's keys (``send_back_record``), and one that finds them changed
since (the user talked to the old bot) is refused in one line, before anything is read for writing;
production's newer memory stays where it is, so nothing either bot heard is lost. An undo keeps
that record true.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis

from ci_tools.clients.health import NotTheContract, Unreachable, health_of
from ci_tools.clients.telegram import BotInfo, TelegramError
from ci_tools.context import Context
from ci_tools.errors import ConfigError, InputError, RemoteError
from ci_tools.memory import moved, ops
from ci_tools.memory.files import RecordFile
from ci_tools.memory.keys import KIT_ARRIVAL
from ci_tools.memory.model import CONNECTION_ERRORS, Conflict, Outcome, Stage, Uncovered
from ci_tools.memory.servers import connect, identity, server_id
from ci_tools.memory.writer import fingerprints
from ci_tools.needs import Secrets
from ci_tools.pipeline import send_back_record as record
from ci_tools.pipeline.cutover import whose
from ci_tools.pipeline.old_bot import (
    FINISHED_VAR,
    new_env,
    old_env,
    old_secret,
    old_service,
    prefix_of,
    service_settings,
    testers,
)
from ci_tools.settings import Environment

OLD_REDIS = "STAGING_REDIS_URL"  # the old bot's Redis as production holds it (SOURCE_REDIS_URL)
NEW_REDIS = "REDIS_URL"  # production's own Redis: read, never written
OLD_VARIABLE = "SOURCE_REDIS_URL (production's; STAGING_REDIS_URL on a laptop)"  # where the old bot's URL lives
# Its undo also keeps the send-back record true (``undo_send_back``): never ``memory undo``.
UNDO_COMMAND = "ci-tools send-back --undo {backup} --apply"


@dataclass(frozen=True)
class SendBack:
    user_id: int
    apply: bool
    stage: Stage
    out_dir: Path
    text: str = ""  # "" = the config's send_back_text
    uncovered: Uncovered = Uncovered.REFUSE
    resume_command: str = ""
    undo_command: str = ""  # "" = UNDO_COMMAND; the CLI's names the workflow's undo in Actions
    replace: bool = False  # what they told the old bot since the pipeline knew its keys: replaced (backup keeps it)


@dataclass(frozen=True)
class OldBot:
    """The bot the daily user goes back to, as its service runs it now."""

    env: Environment
    bot: BotInfo
    prefix: str  # where it reads memory: where the copy writes
    token: str = dataclasses.field(repr=False)


@dataclass
class SentBack:
    old: OldBot
    outcome: Outcome
    told: str | None = None  # the message the old bot sent, once the write is verified
    already: bool = False  # nothing to write: an earlier send-back put them there (no second message)


def memory_context(ctx: Context, *, source: bool = True) -> Context:
    """The memory copy's view: production's Redis as its source (unless ``source`` is False: an
    undo writes the old bot's alone), the old bot's as its target."""
    values = {"TARGET_REDIS_URL": ctx.secret(OLD_REDIS, purpose="the old bot's Redis (SOURCE_REDIS_URL)")}
    if source:
        values["SOURCE_REDIS_URL"] = ctx.secret(NEW_REDIS, purpose="production's Redis, read only")
    if key := ctx.optional("MEMORY_SNAPSHOT_KEY"):
        values["MEMORY_SNAPSHOT_KEY"] = key
    return dataclasses.replace(ctx, secrets=Secrets(values))


def ready_old_bot(ctx: Context, user_id: int) -> OldBot:
    """The old bot, checked able to serve ``user_id`` from the keys the copy writes; else one line."""
    env = old_env(ctx)
    token = old_secret(ctx, "TELEGRAM_BOT_TOKEN", "the old bot's token: it tells the user")
    bot = whose(ctx, token, f"{env.name.upper()}_TELEGRAM_BOT_TOKEN")
    with old_service(ctx) as api:
        settings = service_settings(api)
    where = f"@{bot.username} ({env.render_service})"
    if finished := settings.get(FINISHED_VAR):
        raise InputError(
            f"the move was finished on {finished.split()[0]} (finish-move): {where} is the testers' staging bot "
            "now, so there is nothing to send the daily user back to",
            hint="fix the new bot forward instead (a release, or rollback.yml)",
        )
    if settings.get("MOVED_TO"):
        raise InputError(
            f"{where} answers everyone with https://t.me/{settings['MOVED_TO']} (MOVED_TO)",
            hint=f"delete MOVED_TO on {env.render_service} and redeploy it, then send back",
        )
    allowed = testers(settings)
    if allowed is not None and user_id not in allowed:
        raise InputError(
            f"{where} serves only its testers (TESTER_IDS), and user {user_id} is not one of them",
            hint=f"add {user_id} to TESTER_IDS on {env.render_service} and redeploy it, then send back",
        )
    prefix = prefix_of(settings)
    if prefix is not None and prefix != env.key_prefix:
        raise InputError(
            f"{where} reads keys under {prefix or 'no prefix'!r}, but {env.name}'s config says "
            f"{env.key_prefix or 'no prefix'!r}: the copy would land where it does not look",
            hint="make them agree (ci-tools init) before sending back",
        )
    _running(ctx, env, bot)
    return OldBot(env, bot, env.key_prefix, token)


def _running(ctx: Context, env: Environment, bot: BotInfo) -> None:
    """``/healthz`` shows the old bot serving as ``bot`` on its prefix with Redis up (skipped without one)."""
    if env.health_url is None:
        return
    try:
        health = health_of(env.health_url, ctx.request_timeout(10))
    except Unreachable as exc:
        raise RemoteError(
            f"the old bot's service does not answer {env.health_url} ({exc.kind})",
            hint="bring it back first: the daily user would be sent to a bot that does not answer",
        ) from None
    except NotTheContract as exc:
        raise RemoteError(f"the old bot's {env.health_path} is not the health contract: {exc}") from None
    problems = []
    if health.bot_id != bot.id:
        problems.append(f"it runs @{health.bot_username}, not @{bot.username}")
    if health.key_prefix != env.key_prefix:
        problems.append(f"it reads {health.key_prefix or 'no prefix'!r}")
    if health.moved_to:
        problems.append(f"it is a signpost to @{health.moved_to}")
    if not health.redis_ok:
        problems.append("its Redis does not answer")
    if problems:
        raise RemoteError(
            f"the old bot cannot serve the daily user now: {'; '.join(problems)}",
            hint=f"look at {env.render_service} first (ci-tools status {env.name})",
        )


def send_back(ctx: Context, request: SendBack) -> SentBack:
    """Check the old bot, copy the user's keys back into it (as ``request.stage`` says), then tell them."""
    old = ready_old_bot(ctx, request.user_id)
    new = new_env(ctx)
    refuse_production_as_target(ctx)
    copy = ops.between(
        ctx.config,
        request.user_id,
        new.name,
        old.env.name,
        request.out_dir,
        target_prefix=old.prefix,
        patterns=carried(new),
        apply=request.apply,
        policy=Conflict.REPLACE,  # the old bot's keys hold the older memory: replaced, kept in the backup
        legacy_target=True,  # a legacy bot's Redis may carry no marker; another environment's is refused
        uncovered=request.uncovered,
        resume_command=request.resume_command,
        undo_command=request.undo_command or UNDO_COMMAND,
        stage=request.stage,
    )
    replacing = refuse_over_what_they_said(ctx, old, new, copy.patterns, request.user_id, replace=request.replace)
    if not request.replace:
        copy = dataclasses.replace(copy, on_event=_checked_again(ctx, old, new, copy, request.user_id))
    outcome = ops.copy_user(memory_context(ctx), copy)
    outcome.warnings[:0] = [replacing[0]] if replacing else []
    result = SentBack(old, outcome)
    if outcome.applied and request.stage is not Stage.PLAN:
        replaced = replacing[1] if replacing else None
        try:
            keep_record(ctx, old.prefix, copy.patterns, request.user_id, outcome.changed, replaced=replaced)
        except RemoteError as exc:  # before the message: the rerun finds nothing to write and sends none
            raise RemoteError(
                exc.message,
                hint=f"their memory is on @{old.bot.username}, but they were not told: run the same send-back "
                f"again to record it (it writes nothing more), then tell them yourself: https://t.me/{old.bot.username}",
            ) from None
    if outcome.applied and request.stage is not Stage.PLAN and not outcome.written and not outcome.changed:
        # A rerun (a double dispatch, a re-run of the green run) finds the old bot's keys equal to
        # production's: the user was told when they were written, and gets no second message.
        result.already = True
    elif outcome.applied and request.stage is not Stage.PLAN:
        result.told = tell(ctx, old, request.user_id, request.text or ctx.config.move.send_back_text)
    return result


def refuse_over_what_they_said(
    ctx: Context, old: OldBot, new: Environment, patterns: tuple[str, ...], user_id: int, *, replace: bool
) -> tuple[str, dict[bytes, str]] | None:
    """What the user told the old bot since the pipeline last knew its keys (the move's copy, or an
    earlier send-back) would be overwritten: refused before anything is read for writing, unless the
    owner chose to (``replace``; the backup keeps it, and undo puts it back): then the ⚠ line to show
    and the replaced keys by their guards (the record keeps them, so an undo leaves them said)."""
    move = move_record(ctx, new, user_id)
    client = connect(
        ctx.secret(OLD_REDIS, purpose="the old bot's Redis"), "old bot's", timeout=ctx.timeout, variable=OLD_VARIABLE
    )
    try:
        found = record.said_since(client, old.prefix, patterns, user_id, move)
    except CONNECTION_ERRORS as exc:
        raise RemoteError(f"the old bot's Redis stopped answering ({type(exc).__name__})") from None
    finally:
        client.close()
    if found is not None and found.keys:
        found = _unlike_production(ctx, found, old.prefix, new.key_prefix)
    if found is None or not found.keys:
        return None
    names = ", ".join(k.decode(errors="replace") for k in found.keys[:3]) + (" …" if len(found.keys) > 3 else "")
    when = _when(found.at)
    line = f"user {user_id} told @{old.bot.username} more since {found.by} of {when} ({names} changed there)"
    if replace:
        told = f"⚠ {line}: replaced as asked (--old-bot-changes replace); this run's backup keeps it for the undo"
        return told, found.guards
    which = "a second send-back" if found.by == "the send-back" else "a send-back"
    raise InputError(
        f"{line}: {which} would overwrite it",
        hint="production keeps what they told the new bot: to move them forward with what the old bot heard, "
        "runbook steps 6 (on_conflict replace) and 7; to send them back anyway, the same send-back with "
        "--old-bot-changes replace (the workflow's old_bot_changes input): its backup keeps what it replaces",
    )


def _unlike_production(ctx: Context, found: record.SaidSince, old_prefix: str, new_prefix: str) -> record.SaidSince:
    """``found`` without the keys the old bot holds exactly as production does: nothing said there is
    overwritten by writing what it already holds. That is the state a send-back leaves when its
    record was not kept (the old bot's Redis failed after the verified write), and the rerun the
    failure's hint asks for must not read its own write as the user's words. Guards are compared as
    each server computes them: servers that serialise differently leave the keys counted as said."""
    names = [new_prefix.encode() + key[len(old_prefix) :] for key in found.keys]
    client = connect(
        ctx.secret(NEW_REDIS, purpose="production's Redis, read only"),
        "production's",
        timeout=ctx.timeout,
        variable=NEW_REDIS,
    )
    try:
        theirs = fingerprints(client, names)
    except CONNECTION_ERRORS as exc:
        raise RemoteError(f"production's Redis stopped answering ({type(exc).__name__})") from None
    finally:
        client.close()
    keys = [key for key, guard in zip(found.keys, theirs, strict=True) if found.guards[key] != guard]
    return dataclasses.replace(found, keys=keys, guards={key: found.guards[key] for key in keys})


def _checked_again(
    ctx: Context, old: OldBot, new: Environment, copy: ops.CopyRequest, user_id: int
) -> Callable[[str, int], None]:
    """The same check once more when the copy has read its backup, before its first write: a message
    to the old bot between the first check and that read would be in the backup, and the
    compare-and-set (which guards only against changes after the backup) would overwrite it."""
    earlier = copy.on_event

    def on_event(event: str, n: int) -> None:
        if event == "planned":
            refuse_over_what_they_said(ctx, old, new, copy.patterns, user_id, replace=False)
        if earlier is not None:
            earlier(event, n)

    return on_event


def _when(at: int) -> str:
    """A record's time as the refusal says it; a time no clock can show (a corrupted record) as unknown."""
    try:
        return f"{datetime.fromtimestamp(at, UTC):%Y-%m-%d %H:%M} UTC" if at > 0 else "an unknown time"
    except (ValueError, OverflowError, OSError):
        return "an unknown time"


def move_record(
    ctx: Context, new: Environment, user_id: int, *, client: redis.Redis | None = None
) -> moved.Moved | None:
    """Production's record of the move's copy (``memory/moved.py``), when it read the old bot's Redis
    as this run reaches it (a copy from any other server says nothing about the old bot's keys).
    ``client``: production's, already connected (left open)."""
    production = client or connect(
        ctx.secret(NEW_REDIS, purpose="production's Redis"), "production's", timeout=ctx.timeout, variable=NEW_REDIS
    )
    try:
        found = moved.read(production, new.key_prefix, user_id)
    except CONNECTION_ERRORS as exc:
        raise RemoteError(f"production's Redis stopped answering ({type(exc).__name__})") from None
    finally:
        if client is None:
            production.close()
    if found is None or (
        found.readable and found.source != server_id(ctx.secret(OLD_REDIS, purpose="the old bot's Redis"))
    ):
        return None
    return found  # an unreadable one too: it vouches for no key, so every key of the old bot counts as said


def keep_record(
    ctx: Context,
    prefix: str,
    patterns: tuple[str, ...],
    user_id: int,
    not_ours: list[bytes],
    *,
    replaced: dict[bytes, str] | None = None,
    undoing: bool = False,
) -> None:
    """After a write or an undo: the old bot's keys as the pipeline left them (see send_back_record)."""
    client = connect(
        ctx.secret(OLD_REDIS, purpose="the old bot's Redis"), "old bot's", timeout=ctx.timeout, variable=OLD_VARIABLE
    )
    try:
        record.keep(client, prefix, patterns, user_id, not_ours=tuple(not_ours), replaced=replaced, undoing=undoing)
    except CONNECTION_ERRORS as exc:
        raise RemoteError(
            f"the old bot's Redis stopped answering while the send-back was recorded ({type(exc).__name__})",
            hint="the copy itself is done and verified; run the same send-back again to record it",
        ) from None
    finally:
        client.close()


def carried(new: Environment) -> tuple[str, ...]:
    """The user's memory and the kit's arrival record of them (``KIT_ARRIVAL``): on the old bot it
    names the new bot as the one they wrote to last, so finish-move sees them sent back until they
    write to the old bot (whose kit then records them as its own again, later than the new bot's)."""
    return new.memory_patterns if KIT_ARRIVAL in new.memory_patterns else (*new.memory_patterns, KIT_ARRIVAL)


def refuse_production_as_target(ctx: Context) -> None:
    """The old bot's Redis is staging's Key Value, never production's own: a secret pasted into the
    wrong place (``SOURCE_REDIS_URL`` = production's Redis) would write the old bot's keys into
    production's Redis (its ``prod:`` keys untouched, so the copy's own checks pass) and tell the
    user a bot serves them that never saw the copy. Refused before any read for writing."""
    clients = [
        connect(ctx.secret(name, purpose=purpose), purpose, timeout=ctx.timeout, variable=name)
        for name, purpose in ((NEW_REDIS, "production's Redis"), (OLD_REDIS, "the old bot's Redis"))
    ]
    try:
        same = identity(clients[0]) == identity(clients[1])
    except CONNECTION_ERRORS as exc:
        raise RemoteError(f"a Redis stopped answering ({type(exc).__name__})") from None
    finally:
        for client in clients:
            client.close()
    if same:
        raise ConfigError(
            f"{OLD_REDIS} (production's SOURCE_REDIS_URL) reaches production's own Redis, not the old bot's: "
            "send-back never writes production's Redis",
            hint="set SOURCE_REDIS_URL in production's environment to staging's Key Value (the old bot's)",
        )


def tell(ctx: Context, old: OldBot, user_id: int, text: str) -> str:
    """The one message: the old bot writes to the user (sendMessage is never blindly retried)."""
    link = f"https://t.me/{old.bot.username}"
    try:
        with ctx.telegram(old.token) as telegram:
            telegram.send_message(user_id, text)
    except TelegramError as exc:
        if exc.code in (400, 403):
            raise RemoteError(
                f"their memory is back on @{old.bot.username}, but it cannot write to user {user_id} "
                f"({exc.code} {exc.description})",
                hint=f"tell them yourself: {link}",
            ) from None
        raise
    return text


def undo_send_back(ctx: Context, backup: Path, out_dir: Path, *, apply: bool) -> tuple[Path | None, int, list[bytes]]:
    """Put the old bot's keys back as the send-back's backup recorded them (production untouched)."""
    found = find_backup(backup)
    done = ops.undo_backup(memory_context(ctx, source=False), found, out_dir, apply=apply)
    if apply:
        header = RecordFile(found, ctx.snapshot_fernet()).header
        user_id, prefix = header.get("user_id"), header.get("prefix")
        if isinstance(user_id, int) and isinstance(prefix, str):
            keep_record(ctx, prefix, carried(new_env(ctx)), user_id, done[2], undoing=True)
    return done


def find_backup(given: Path) -> Path:
    """``given`` itself, or the one backup in the folder a workflow downloaded the artifact to."""
    if given.is_file():
        return given
    if not given.is_dir():
        raise InputError(f"{given} does not exist", hint="pass the backup file or the folder it was downloaded to")
    found = sorted(given.rglob("*-backup-*.jsonl"))
    if len(found) != 1:
        raise InputError(
            f"{given} holds {len(found)} backups, not one",
            hint="pass the send-back apply run's artifact (its run_id), or the one backup file",
        )
    return found[0]


WHY_KEY = "send-back needs MEMORY_SNAPSHOT_KEY, so the snapshot and backup are kept (encrypted) as this run's artifact"
