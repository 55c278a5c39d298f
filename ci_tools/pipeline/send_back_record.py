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
from dataclasses import dataclass

import redis

from ci_tools.errors import ConfigError
from ci_tools.memory.keys import KeySpace, discover
from ci_tools.memory.writer import ABSENT, fingerprints

RECORD = "meta:sent_back"


@dataclass(frozen=True)
class Record:
    """When the pipeline last wrote the user's keys on the old bot, and each key's guard then."""

    at: int
    guards: dict[bytes, str]


def _record_key(client: redis.Redis, prefix: str) -> bytes:
    """The record's key; refused in one line when the old bot holds a key of its own by that name
    (a bot on the empty prefix may), before anything is read for writing or written."""
    key = (prefix + RECORD).encode()
    kind = client.type(key)
    found = kind.decode() if isinstance(kind, bytes) else str(kind)
    if found not in ("hash", "none"):
        name = key.decode(errors="replace")
        raise ConfigError(
            f"the old bot's Redis holds {name} as a {found}: a key of the bot's own has the name of the "
            "send-back record (a hash), which would overwrite it or fail on it",
            hint=f"rename the bot's {name} (or give the old bot a KEY_PREFIX of its own), then send back again",
        )
    return key


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
        guards = {key.encode("utf-8", "surrogateescape"): str(guard) for key, guard in data["guards"].items()}
        return Record(int(data["at"]), guards)
    except (ValueError, KeyError, TypeError, AttributeError):
        return Record(0, {})  # unreadable: nothing is known to be the pipeline's, so every key counts as said


def keep(
    client: redis.Redis,
    prefix: str,
    patterns: tuple[str, ...],
    user_id: int,
    *,
    not_ours: tuple[bytes, ...] = (),
) -> None:
    """Record the user's keys on the old bot as they are now; ``not_ours``: keys the user changed
    during the write (left alone), kept out so they still count as said."""
    keys = [key for key in _user_keys(client, prefix, patterns, user_id) if key not in not_ours]
    guards = dict(zip(keys, fingerprints(client, keys), strict=True))
    document = {
        "at": int(time.time()),
        "guards": {key.decode("utf-8", "surrogateescape"): guard for key, guard in guards.items()},
    }
    client.hset(_record_key(client, prefix), _field(user_id), json.dumps(document, sort_keys=True))


def said_since(
    client: redis.Redis, prefix: str, patterns: tuple[str, ...], user_id: int
) -> tuple[Record, list[bytes]] | None:
    """The record and the user's keys on the old bot that differ from it (what they said there
    since); None when no send-back was recorded for them."""
    record = read(client, prefix, user_id)
    if record is None:
        return None
    keys = sorted({*record.guards, *_user_keys(client, prefix, patterns, user_id)})
    now = dict(zip(keys, fingerprints(client, keys), strict=True))
    return record, [key for key in keys if now[key] != record.guards.get(key, ABSENT)]
