"""The move record: what a copy read from its source, kept on its target, so the way back knows it.

After a copy from the old bot into production (runbook step 6) the user may go on talking to the
old bot, and a later send-back would overwrite what they said there. Redis keeps no history, so an
applied copy records on the target the guard (``writer.fingerprint``) of every source key whose
value the target now holds, and which server it read them from (``server_id``, never the password).
A send-back counts an old-bot key as said since only when it matches neither this record nor its
own (``pipeline/send_back_record``).

One hash, ``<target prefix>meta:moved``, a field per user id: a name without the user's id, so no
later copy counts it as one of their keys. The copy's backup keeps the field as it was
(``moved_before``) and an undo puts that back with the keys.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass

import redis

from ci_tools.errors import ConfigError

RECORD = "meta:moved"


@dataclass(frozen=True)
class Moved:
    """When the copy ran, the server it read, and each source key's guard as it read it."""

    at: int
    source: str
    guards: dict[bytes, str]
    readable: bool = True  # False: the field is there but cannot be read (it vouches for no key, of any server)


def guards_json(guards: dict[bytes, str]) -> dict[str, str]:
    """Guards as JSON: key names, which may be any bytes, kept byte for byte (surrogateescape)."""
    return {key.decode("utf-8", "surrogateescape"): guard for key, guard in guards.items()}


def guards_from_json(data: dict[str, object]) -> dict[bytes, str]:
    return {key.encode("utf-8", "surrogateescape"): str(guard) for key, guard in data.items()}


def record_key(client: redis.Redis, prefix: str, name: str = RECORD) -> bytes:
    """The record's key; refused in one line when the bot holds a key of its own by that name (a
    bot on the empty prefix may), before anything is written."""
    key = (prefix + name).encode()
    kind = client.type(key)
    if (found := kind.decode() if isinstance(kind, bytes) else str(kind)) not in ("hash", "none"):
        shown = key.decode(errors="replace")
        raise ConfigError(
            f"the Redis holds {shown} as a {found}: a key of the bot's own has the name of the pipeline's "
            "record of the move (a hash), which would overwrite it or fail on it",
            hint=f"rename the bot's {shown} (or give the bot a KEY_PREFIX of its own), then run again",
        )
    return key


def keep(client: redis.Redis, prefix: str, user_id: int, source: str, guards: dict[bytes, str]) -> None:
    """Record the move; a copy run again over the same keys (nothing written) leaves the record as it
    was, its ``at`` included: the move happened then, and a second apply is a no-op on the target."""
    found = read(client, prefix, user_id)
    if found is not None and found.readable and (found.source, found.guards) == (source, guards):
        return
    document = {"at": int(time.time()), "source": source, "guards": guards_json(guards)}
    client.hset(record_key(client, prefix), str(user_id), json.dumps(document, sort_keys=True))


def read(client: redis.Redis, prefix: str, user_id: int) -> Moved | None:
    """The user's move record; None when there is none. One that cannot be read (corrupted, another
    shape) is no record of the move: it vouches for no key, so every key the old bot holds counts as
    said, never read as an absent record (which a move from before the record would leave)."""
    if (raw := client.hget(record_key(client, prefix), str(user_id))) is None:
        return None
    try:
        data = json.loads(raw)
        return Moved(int(data["at"]), str(data["source"]), guards_from_json(data["guards"]))
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError):  # OverflowError: "at": Infinity
        return Moved(0, "", {}, readable=False)


def raw(client: redis.Redis, prefix: str, user_id: int) -> str | dict[str, str] | None:
    """The user's field as it is (None: absent), for a copy's backup to keep before it writes; bytes
    that are no UTF-8 (a corrupted field) as ``{"base64": …}``, so the undo writes them back exactly."""
    found = client.hget(record_key(client, prefix), str(user_id))
    if not isinstance(found, bytes):
        return found
    try:
        return found.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(found).decode()}


def put_back(client: redis.Redis, prefix: str, user_id: int, before: object) -> None:
    """An undo of a copy: the user's field as the copy's backup found it (``raw``; absent: removed).
    A value ``raw`` never returns (a backup edited by hand) leaves the field as it is."""
    key = record_key(client, prefix)
    if before is None:
        client.hdel(key, str(user_id))
    elif isinstance(before, str):
        client.hset(key, str(user_id), before)
    elif isinstance(before, dict) and isinstance(before.get("base64"), str):
        try:
            client.hset(key, str(user_id), base64.b64decode(before["base64"], validate=True))
        except binascii.Error:
            return
