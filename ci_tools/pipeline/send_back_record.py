"""What the pipeline last left in the old bot's keys for a user, so a later send-back can tell what
the user told the old bot since.

A send-back replaces the old bot's keys with production's. The first time that is right: the old
bot holds what it knew before the move. But once the user has talked to the old bot after a
send-back, the old bot knows things production does not, and a second send-back would overwrite
them. Redis keeps no history, so the send-back records, next to the old bot's keys, the guard
(``writer.fingerprint``: the SHA-1 of each key's DUMP, the compare-and-set's own) of every key of
the user as the pipeline left it; any key that differs later (or is new) is what the user said
since. The record is one hash, ``<old prefix>meta:sent_back``, a field per user id — pipeline
metadata like ``meta:env``, no memory, and a name without the user's id, so the coverage audit
of a later copy from the old bot never counts it as one of their keys.

An undo rewrites the record to what it left (minus the keys it left alone because the user
changed them), so after an undo a send-back still cannot overwrite what the user said.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import redis

from ci_tools.memory import moved
from ci_tools.memory.keys import KIT_ARRIVAL, KeySpace, discover
from ci_tools.memory.writer import ABSENT, fingerprints

RECORD = "meta:sent_back"


@dataclass(frozen=True)
class Record:
    """When the pipeline last wrote the user's keys on the old bot, and each key's guard then."""

    at: int
    guards: dict[bytes, str]
    # keys a send-back replaced by the owner's choice (--old-bot-changes replace), by the guard of what
    # the user had said there: an undo that puts that back leaves them counted as said
    replaced: dict[bytes, str] = field(default_factory=dict)


def _record_key(client: redis.Redis, prefix: str) -> bytes:
    return moved.record_key(client, prefix, RECORD)


def _field(user_id: int) -> bytes:
    return str(user_id).encode()


def _user_keys(client: redis.Redis, prefix: str, patterns: tuple[str, ...], user_id: int) -> list[bytes]:
    return discover(client, KeySpace(prefix.encode(), patterns, user_id))


def read(client: redis.Redis, prefix: str, user_id: int) -> Record | None:
    raw = client.hget(_record_key(client, prefix), _field(user_id))
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        guards = moved.guards_from_json(data["guards"])
        replaced = moved.guards_from_json(data.get("replaced", {}))
        return Record(int(data["at"]), guards, replaced)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError):  # OverflowError: "at": Infinity
        return Record(0, {})  # unreadable: nothing is known to be the pipeline's, so every key counts as said


def keep(
    client: redis.Redis,
    prefix: str,
    patterns: tuple[str, ...],
    user_id: int,
    *,
    not_ours: tuple[bytes, ...] = (),
    replaced: dict[bytes, str] | None = None,
    undoing: bool = False,
) -> None:
    """Record the user's keys on the old bot as they are now; ``not_ours``: keys the user changed
    during the write (left alone), kept out so they still count as said. ``replaced``: what this
    send-back replaced by the owner's choice (kept, by guard). ``undoing``: an undo of the recorded
    send-back, which keeps out the keys it put back to what that send-back replaced — still what the
    user said, never the pipeline's, so the next send-back without the choice refuses again."""
    keys = [key for key in _user_keys(client, prefix, patterns, user_id) if key not in not_ours]
    guards = dict(zip(keys, fingerprints(client, keys), strict=True))
    undone = read(client, prefix, user_id) if undoing else None
    if undone is not None:
        guards = {key: guard for key, guard in guards.items() if undone.replaced.get(key) != guard}
    document: dict[str, object] = {
        "at": int(time.time()),
        "guards": moved.guards_json(guards),
    }
    if replaced:
        document["replaced"] = moved.guards_json(replaced)
    client.hset(_record_key(client, prefix), _field(user_id), json.dumps(document, sort_keys=True))


@dataclass(frozen=True)
class SaidSince:
    """The keys the user changed on the old bot since the pipeline last knew them (``keys``), and
    which record knew them last: the send-back's or the move's copy's, and when."""

    keys: list[bytes]
    by: str
    at: int
    guards: dict[bytes, str] = field(default_factory=dict)  # each of ``keys`` by its guard now


def said_since(
    client: redis.Redis, prefix: str, patterns: tuple[str, ...], user_id: int, move: moved.Moved | None
) -> SaidSince | None:
    """The user's keys on the old bot that match neither what the last send-back left (this
    module's record) nor what the move's copy read (``move``, production's record of it): what
    they said there since. None when neither record knows the user's keys."""
    sent = read(client, prefix, user_id)
    if sent is None and move is None:
        return None
    known = [record.guards for record in (sent, move) if record is not None]
    keys = sorted({*(key for guards in known for key in guards), *_user_keys(client, prefix, patterns, user_id)})
    now = dict(zip(keys, fingerprints(client, keys), strict=True))
    if move is not None:
        # The move's copy leaves the kit's arrival record behind (it is no memory), so the move
        # record cannot know the old bot's; a send-back rewrites it by design (send_back.carried).
        arrival = (prefix + KIT_ARRIVAL.format(user_id=user_id)).encode()
        known[-1] = {**move.guards, arrival: now.get(arrival, ABSENT)}
    said = [key for key in keys if all(now[key] != guards.get(key, ABSENT) for guards in known)]
    latest = max((r for r in (sent, move) if r is not None), key=lambda r: r.at)
    by = "the send-back" if latest is sent else "the move's copy"
    return SaidSince(said, by, latest.at, {key: now[key] for key in said})
