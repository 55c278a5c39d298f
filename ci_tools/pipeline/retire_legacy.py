"""finish-move's last part: the daily user's legacy memory retired from the old bot's Redis.

The move's copy (runbook step 6) read the daily user's keys from the old bot's Redis (staging's)
and left them there, so that send-back could put them back on it. Once finish-move has made the old
bot the testers' bot under its own prefix (``dev:``) and closed the way back, nothing reads those
keys any more, but every develop and feature/* job reaches them through staging's ``REDIS_URL``:
the person's whole history up to the move. They are retired here, through the memory package
(``ci_tools/memory``), as any write to a target is made:

* what: under the OLD prefix (the old bot's before finish-move), the user's keys by the config's
  ``memory_patterns`` (``keys.discover``), the keys the coverage audit finds naming them
  (``keys.uncovered``; never a key of another prefix that begins with the old one, such as ``dev:``
  or production's), the kit's arrival record of them (``kit:arrival:<id>``), and the pipeline's
  records of the way back (``meta:moved``, ``meta:sent_back``) when they hold no other user's field
  (else they stay, and the run names them);
* of the memory keys among them, only what production got: a key the move's copy read as it is
  now (production's ``meta:moved``, from this very Redis), or the last send-back left (its
  ``meta:sent_back``), or that production holds byte for byte under its prefix. Anything else is
  news production never got (what the user told the old bot after the copy, a key no pattern
  names, another bot's keys of the same person): the backup is an artifact that expires, so such a
  key stays where it is, and the run names it (``Retired.news``), unless the owner named the choice
  to retire it too (``--legacy-news retire``);
* first a backup of exactly that (``files.RecordWriter``: encrypted with ``MEMORY_SNAPSHOT_KEY``;
  the workflow keeps it as the run's artifact before anything is deleted: ``Stage.PLAN`` then
  ``Stage.WRITE``);
* then each key deleted only if it still holds what the backup holds (``writer.Writer.delete``:
  compare-and-set on the DUMP digest); a key changed since is left and named;
* the undo is the memory package's own (``ci-tools memory undo BACKUP --apply`` with
  ``TARGET_REDIS_URL`` the old bot's Redis, or send-back.yml's undo with this run's id).

Production's Redis is only read here (its move record, and the keys no record vouches for); one
that does not answer, or refuses the password, stops the run in one line before anything is backed
up or removed. The run says how many keys it retired and where the backup is, never a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import redis

from ci_tools.context import Context
from ci_tools.errors import ConfigError, InputError, RemoteError
from ci_tools.memory import moved
from ci_tools.memory.files import RecordFile, RecordWriter
from ci_tools.memory.keys import KIT_ARRIVAL, KeySpace, discover, uncovered
from ci_tools.memory.model import CONNECTION_ERRORS, show, stamp
from ci_tools.memory.records import BATCH, Record, read_records
from ci_tools.memory.servers import connect, label, server_id
from ci_tools.memory.writer import ABSENT, Writer, fingerprint, fingerprints
from ci_tools.pipeline import send_back_record
from ci_tools.pipeline.old_bot import new_env, old_env
from ci_tools.pipeline.send_back import NEW_REDIS, OLD_VARIABLE, move_record

OLD_REDIS = "STAGING_REDIS_URL"  # the old bot's Redis as production holds it (SOURCE_REDIS_URL)
RETIRES = "the daily user's legacy keys (finish-move)"  # the backup header's word: what wrote it
RECORDS = (moved.RECORD, send_back_record.RECORD)  # one field per user: whole keys only when the user's alone


@dataclass
class Retired:
    """What the retirement did: how many keys, where the backup is, what it left."""

    prefix: str  # the old prefix the keys were under
    backup: Path | None = None
    backed_up: int = 0
    deleted: list[bytes] = field(default_factory=list)
    changed: list[bytes] = field(default_factory=list)  # changed since the backup: left, named
    gone: list[bytes] = field(default_factory=list)  # absent already (an earlier run removed them, or they expired)
    shared: list[str] = field(default_factory=list)  # records holding other users' fields too: left
    news: list[bytes] = field(default_factory=list)  # what production never got: left, named
    news_retired: bool = False  # the owner chose to retire ``news`` too (only the backup keeps it)
    nothing: str = ""  # why nothing was to be retired ("" when something was)
    unreached: str = ""  # why they were left where they are, though there may be some ("" when reached)

    @property
    def names_changed(self) -> str:
        return _names(self.changed)

    @property
    def names_news(self) -> str:
        return _names(self.news)


def _names(keys: list[bytes]) -> str:
    return ", ".join(show(k) for k in keys[:5]) + (" …" if len(keys) > 5 else "")


WHY_KEY = (
    "finish-move needs MEMORY_SNAPSHOT_KEY: it backs up the daily user's legacy keys "
    "(encrypted, this run's artifact) before it removes them from the old bot's Redis"
)


def old_prefix(ctx: Context, service_prefix: str | None, finished: str | None = None) -> str:
    """The prefix the old bot read before finish-move: its service's ``KEY_PREFIX``, unless that is
    the testers' prefix already (a rerun), then the one the first run noted in the service's
    ``MOVE_FINISHED`` (``noted``: after ``init --staging-prefix`` the config says the testers' too),
    else the config's (staging's ``key_prefix`` until ``init --staging-prefix`` runs after step 9)."""
    new = ctx.config.move.old_bot_prefix
    if service_prefix is not None and service_prefix != new:
        return service_prefix
    if finished and (found := _NOTED.search(finished)):
        return found.group(1)
    return old_env(ctx).key_prefix


_NOTED = re.compile(r"\(legacy prefix '([^']*)'\)")


def noted(prefix: str) -> str:
    """The old prefix as ``MOVE_FINISHED`` keeps it, for ``old_prefix`` on a rerun (one with a quote
    could be misread: not noted, the config's is used)."""
    return "(legacy prefix unnoted)" if "'" in prefix else f"(legacy prefix '{prefix}')"


def _client(ctx: Context) -> redis.Redis:
    url = ctx.secret(OLD_REDIS, purpose="the old bot's Redis (SOURCE_REDIS_URL)")
    return connect(url, "old bot's", timeout=ctx.timeout, variable=OLD_VARIABLE)


def _other_namespaces(ctx: Context, prefix: str) -> tuple[bytes, ...]:
    """Prefixes that begin with the old one but are not it (``dev:`` under ``""``): never the user's legacy keys."""
    config = ctx.config
    known = {config.move.old_bot_prefix, *(env.key_prefix for env in config.environments.values())}
    return tuple(p.encode() for p in sorted(known) if p != prefix and p.startswith(prefix))


def _same_as_production(ctx: Context, prefix: str) -> bool:
    """The old bot's Redis is production's own and the old prefix production's: its keys are production's memory."""
    production = ctx.optional("REDIS_URL")
    if production is None or prefix != new_env(ctx).key_prefix:
        return False
    return server_id(production) == server_id(ctx.secret(OLD_REDIS))


def _legacy_keys(
    ctx: Context, client: redis.Redis, user_id: int, prefix: str
) -> tuple[list[bytes], list[str], list[bytes]]:
    """The user's keys under ``prefix`` that production got (patterns, the audit's, the arrival
    record) and the records of the way back they alone hold; the records they share with another
    user, by name; the keys production never got (``_news``)."""
    patterns = old_env(ctx).memory_patterns
    space = KeySpace(prefix.encode(), patterns if KIT_ARRIVAL in patterns else (*patterns, KIT_ARRIVAL), user_id)
    found = set(discover(client, space))
    others = _other_namespaces(ctx, prefix)
    found |= {k for k in uncovered(client, prefix.encode(), user_id, found) if not k.startswith(others)}
    found -= set(news := _news(ctx, client, prefix, user_id, sorted(found)))
    shared = []
    for name in RECORDS:
        key = (prefix + name).encode()
        if client.type(key) not in (b"hash", "hash"):  # absent, or a bot's own key by that name: not ours
            continue
        fields = client.hkeys(key)
        if str(user_id).encode() not in fields:
            continue
        if len(fields) == 1:
            found.add(key)
        else:
            shared.append(prefix + name)
    return sorted(found), shared, news


def _news(ctx: Context, client: redis.Redis, prefix: str, user_id: int, keys: list[bytes]) -> list[bytes]:
    """Of ``keys``, the memory production never got: not as the move's copy read it (production's
    record, of this Redis), not as the last send-back left it, not byte for byte what production
    holds under its own prefix. The kit's arrival record is bookkeeping, not memory (a send-back
    rewrites it by design). The records' guards are the old bot's own DUMP digests; production's
    keys are compared by DUMP, else by type and value (``_holds``: servers of other versions
    serialise differently). The keys' TTLs are not compared: production's is its bot's own."""
    arrival = (prefix + KIT_ARRIVAL.format(user_id=user_id)).encode()
    memory = [key for key in keys if key != arrival]
    now = dict(zip(memory, fingerprints(client, memory), strict=True))
    try:
        sent = send_back_record.read(client, prefix, user_id)
    except (ConfigError, redis.ResponseError):  # the bot's own key by the record's name: it vouches for nothing
        sent = None
    mine = {record.key: record for record in read_records(client, memory)}
    production = _production(ctx)  # from here on, a failure is production's (the old bot's were read above)
    try:
        try:
            move = move_record(ctx, new_env(ctx), user_id, client=production)
        except ConfigError:  # a production bot's own key by the record's name: it vouches for nothing
            move = None
        known = [record.guards for record in (move, sent) if record is not None]
        unvouched = [key for key in memory if all(now[key] != guards.get(key, ABSENT) for guards in known)]
        new_prefix = new_env(ctx).key_prefix.encode()
        theirs = list(read_records(production, [new_prefix + key[len(prefix) :] for key in unvouched]))
    except (*CONNECTION_ERRORS, RemoteError, redis.AuthenticationError) as exc:
        raise RemoteError(
            f"production's Redis stopped answering ({type(exc).__name__}) while the legacy keys were compared with "
            "it: nothing was removed",
            hint=_RERUN,
        ) from None
    finally:
        production.close()
    return [key for key, held in zip(unvouched, theirs, strict=True) if not _holds(held, mine[key])]


def _holds(theirs: Record, mine: Record) -> bool:
    """Production holds the old bot's key as it is: the same DUMP, or (servers of other versions
    serialise differently: a Valkey old bot, a Redis production) the same type and value, compared
    byte for byte; a stream only by its DUMP (its consumer groups are in no value read here)."""
    if fingerprint(theirs.dump) == fingerprint(mine.dump):
        return True
    return theirs.exists and mine.type == theirs.type != "stream" and mine.value == theirs.value


_RERUN = "run finish-move again once it answers (its settings are done; it goes on from there)"


def _production(ctx: Context) -> redis.Redis:
    """Production's Redis, to be read only; one that cannot be reached says so in one line, with the rerun."""
    url = ctx.secret(NEW_REDIS, purpose="production's Redis, read only")
    try:
        return connect(url, "production's", timeout=ctx.timeout)
    except (ConfigError, RemoteError) as exc:
        refused = "password" in exc.message
        raise type(exc)(
            f"{exc.message.replace('the production', 'production')}, so the legacy keys could not be compared with "
            "what production got: nothing was removed",
            hint=f"check {NEW_REDIS} (production's), then {_RERUN}" if refused else _RERUN,
        ) from None


def back_up(ctx: Context, user_id: int, prefix: str, out_dir: Path, *, retire_news: bool = False) -> Retired:
    """The backup of exactly what the retirement deletes (nothing is deleted here): what production
    got, and what it never got only when the owner chose so (``retire_news``)."""
    new = ctx.config.move.old_bot_prefix
    if prefix == new:
        return Retired(prefix, nothing=f"the old bot's prefix before finish-move was {new!r} already")
    if not ctx.optional(OLD_REDIS):  # a forced finish without the old bot's Redis: the move is done, the keys stay
        return Retired(
            prefix,
            unreached=f"without {OLD_REDIS} (production's SOURCE_REDIS_URL) the old bot's Redis cannot be reached: "
            "run finish-move again with it (force, if this run was forced) before you remove it",
        )
    if _same_as_production(ctx, prefix):
        raise ConfigError(
            f"{OLD_REDIS} (production's SOURCE_REDIS_URL) reaches production's own Redis and the old prefix is "
            f"production's ({prefix!r}): those keys are production's memory, so none was retired",
            hint="set SOURCE_REDIS_URL in production's environment to staging's Key Value (the old bot's), then "
            "run finish-move again",
        )
    client = _client(ctx)
    url = ctx.secret(OLD_REDIS)
    header = {
        "kind": "backup",
        "user_id": user_id,
        "env": old_env(ctx).name,
        "prefix": prefix,
        "server": label(url),
        "server_id": server_id(url),
        "retires": RETIRES,
    }
    path = out_dir / f"user{user_id}-{old_env(ctx).name}-retire-backup-{stamp()}.jsonl"
    try:
        keys, shared, news = _legacy_keys(ctx, client, user_id, prefix)
        if retire_news:
            keys = sorted({*keys, *news})
        with RecordWriter(path, header, ctx.snapshot_fernet()) as writer:
            for start in range(0, len(keys), BATCH):
                for record in read_records(client, keys[start : start + BATCH]):
                    if record.exists and record.dump is not None:
                        writer.write(record)
    except CONNECTION_ERRORS as exc:
        raise RemoteError(
            f"the old bot's Redis stopped answering while the daily user's legacy keys were backed up "
            f"({type(exc).__name__}): nothing was removed",
            hint="run finish-move again once it answers (its settings are done; it goes on from there)",
        ) from None
    finally:
        client.close()
    return Retired(prefix, backup=path, backed_up=writer.count, shared=shared, news=news, news_retired=retire_news)


def find_backup(out_dir: Path, user_id: int) -> Path:
    """The newest retirement backup of ``user_id`` in ``out_dir`` (a rerun adds one holding what is left)."""
    found = sorted(out_dir.glob(f"user{user_id}-*-retire-backup-*.jsonl")) if out_dir.is_dir() else []
    if not found:
        raise InputError(
            f"{out_dir} holds no backup of user {user_id}'s legacy keys, so nothing was removed",
            hint="run finish-move --stage plan first (it writes the backup), with the same --out",
        )
    return found[-1]


def delete(ctx: Context, backup: Path, user_id: int) -> Retired:
    """Delete each key the backup holds, only if it still holds what the backup holds."""
    file = RecordFile(backup, ctx.snapshot_fernet())
    file.check()  # a cut-off or damaged backup is refused before anything is deleted
    header = file.header
    url = ctx.secret(OLD_REDIS, purpose="the old bot's Redis (SOURCE_REDIS_URL)")
    if header.get("retires") != RETIRES or header.get("user_id") != user_id:
        raise InputError(
            f"{backup.name} is no backup of user {user_id}'s legacy keys, so nothing was removed",
            hint="pass the --out folder finish-move --stage plan wrote",
        )
    if header.get("server_id") != server_id(url):
        raise InputError(
            f"{backup.name} was taken on {header.get('server')}, but {OLD_REDIS} is {label(url)}: nothing was removed",
            hint=f"point {OLD_REDIS} (production's SOURCE_REDIS_URL) at the old bot's Redis",
        )
    targets = [(r.key, fingerprint(r.dump)) for r in file.records() if r.exists and r.dump is not None]
    result = Retired(str(header.get("prefix", "")), backup=backup, backed_up=len(targets))
    client = _client(ctx)
    writer = Writer(client)
    try:
        for start in range(0, len(targets), BATCH):
            writer.delete(targets[start : start + BATCH])
        # The guard refuses an absent key too: one a rerun (or its TTL) removed is gone, not "still there".
        unchanged = writer.result.changed
        present = [bool(n) for n in _exists(client, unchanged)]
    except CONNECTION_ERRORS as exc:
        raise RemoteError(
            f"the old bot's Redis stopped answering while the daily user's legacy keys were removed "
            f"({type(exc).__name__}): {len(writer.result.written)} of {len(targets)} removed; the backup of all "
            f"of them is {backup}",
            hint="run finish-move again once it answers: it removes the rest (and backs them up first)",
        ) from None
    finally:
        client.close()
    result.deleted = writer.result.written
    result.changed = [k for k, there in zip(unchanged, present, strict=True) if there]
    result.gone = [k for k, there in zip(unchanged, present, strict=True) if not there]
    return result


def _exists(client: redis.Redis, keys: list[bytes]) -> list[int]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.exists(key)
    return pipe.execute() if keys else []
