"""The one way anything is written to a target: compare-and-set against the backup.

Every key a write touches was backed up first, with its guard: the SHA-1 of its DUMP payload then,
or '' when absent (``fingerprint``). Each write is one server-side script that checks atomically that
the key still holds exactly that, and only then writes. A key that changed since (the bot appended
meanwhile) is left alone and reported as ``changed``: it holds what the user said after the backup.

Three writes share the guard: RESTORE of a DUMP payload with its TTL; for a target that refuses the
payload (another server's DUMP version: Valkey 9 → Redis 7), the value built type by type under a
temporary name and renamed over the key only if unchanged (a crash mid-build never leaves a
half-written key); and delete of a key that was absent (an undo).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import redis

from ci_tools.errors import RemoteError
from ci_tools.memory.records import Record, now_ms, read_records

# The guard every write passes, put before each script below (``fingerprint`` computes the same in Python).
UNCHANGED = """
local function unchanged(key, guard)
  local dump = redis.call('DUMP', key)
  if guard == '' then return dump == false end
  return dump ~= false and redis.sha1hex(dump) == guard
end
"""

# KEYS: target keys. ARGV per key: guard, ttl-ms (0 = none), payload.
# Reply per key: 'changed' when the guard failed (nothing written); the error text when
# RESTORE refused (payload version …); else {1, same, pttl}, where same is 1 when the key's
# DUMP now equals the payload (0: another encoding, compare values instead).
RESTORE = """
local out = {}
for i, key in ipairs(KEYS) do
  local guard, ttl, payload = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  if not unchanged(key, guard) then out[i] = 'changed' else
    local reply = redis.pcall('RESTORE', key, ttl, payload, 'REPLACE')
    if type(reply) == 'table' and reply.err then out[i] = reply.err else
      local same = 0
      if redis.call('DUMP', key) == payload then same = 1 end
      out[i] = {1, same, redis.call('PTTL', key)}
    end
  end
end
return out
"""

# KEYS: pairs of (what takes the key's place, the key): a temporary key renamed over it, or the key
# itself, which deletes it (an undo of a key that was absent). ARGV: each key's guard. A failed guard
# drops the temporary key and leaves the key alone; a temporary key whose TTL ran out on the way (less
# left than a round trip) leaves it too, as a key expired before the write would. Reply per pair:
# 1 (swapped) | 0 (changed) | 2 (expired).
SWAP = """
local out = {}
for i = 1, #ARGV do
  local from, key = KEYS[2 * i - 1], KEYS[2 * i]
  if from ~= key and redis.call('EXISTS', from) == 0 then out[i] = 2
  elseif unchanged(key, ARGV[i]) then
    if from == key then redis.call('DEL', key) else redis.call('RENAME', from, key) end
    out[i] = 1
  else
    if from ~= key then redis.call('DEL', from) end
    out[i] = 0
  end
end
return out
"""

ABSENT = ""  # the guard of a key that did not exist
PARTIAL = b"\x00ci-tools-partial"


def fingerprint(dump: bytes | None) -> str:
    """The guard of a key whose DUMP payload is ``dump`` (None: absent); Lua's sha1hex."""
    return ABSENT if dump is None else hashlib.sha1(dump, usedforsecurity=False).hexdigest()


def fingerprints(client: redis.Redis, keys: list[bytes]) -> list[str]:
    """The guards of ``keys`` now, in their order (send-back's record of what it left)."""
    return [fingerprint(record.dump) for record in read_records(client, keys)]


def typed_write(pipe: Any, key: bytes, record: Record) -> None:
    """Write ``record``'s value to ``key`` with the command of its type."""
    value = record.value
    if record.type == "string":
        pipe.append(key, value)
    elif record.type == "list":
        pipe.rpush(key, *value)
    elif record.type == "hash":
        pipe.hset(key, mapping=dict(value))
    elif record.type == "set":
        pipe.sadd(key, *value)
    elif record.type == "zset":
        pipe.zadd(key, dict(value))
    elif record.type == "stream":
        for entry_id, fields in value:
            # Flat pairs, not a dict: an entry may repeat a field name (XADD takes any pairs).
            pipe.execute_command("XADD", key, entry_id, *(part for pair in fields for part in pair))
        if not value:
            # A stream may exist with no entries (XDEL, XTRIM, MKSTREAM): made so, or the rename fails.
            pipe.execute_command("XADD", key, "0-1", "", "")
            pipe.execute_command("XDEL", key, "0-1")


@dataclass
class WriteResult:
    written: list[bytes] = field(default_factory=list)
    expired: list[bytes] = field(default_factory=list)  # ran out of time before being written
    changed: list[bytes] = field(default_factory=list)  # not as backed up any more: left alone
    fallback: bool = False  # the target refused DUMP payloads: typed writes were used
    # Read back in the same script as the RESTORE: key -> (DUMP equals the payload, pttl).
    read_back: dict[bytes, tuple[bool, int]] = field(default_factory=dict)


class Writer:
    """Writes records to one target, each only over what its backup recorded."""

    def __init__(self, client: redis.Redis) -> None:
        self.client, self.result = client, WriteResult()
        self._restore = client.register_script(UNCHANGED + RESTORE)
        self._swap_script = client.register_script(UNCHANGED + SWAP)

    def write_batch(self, items: list[tuple[bytes, Record, str]]) -> None:
        """Each item: the target key, what to put there, and the guard it is written over."""
        live: list[tuple[bytes, Record, str, int]] = []
        at = now_ms()
        for key, record, guard in items:
            remaining = record.remaining_ms(at)
            if remaining is not None and remaining <= 0:
                self.result.expired.append(key)  # never resurrect a key as immortal
                continue
            live.append((key, record, guard, remaining or 0))
        if not self.result.fallback:  # else the target refused payloads before: typed writes only
            payloads = [item for item in live if item[1].dump is not None]
            live = [item for item in live if item[1].dump is None] + self._restored(payloads, at)
        self._typed(live)  # none left: an empty pipeline sends nothing

    def _restored(self, items: list[tuple[bytes, Record, str, int]], at: int) -> list[tuple[bytes, Record, str, int]]:
        """RESTORE a batch in one guarded script call; return what must be written by type. Each TTL
        sent is the one left at ``at``, and its read-back is kept as if read then too (less the call's
        time): a big batch slow to send (tens of MB, a busy runner) is not taken for a wrong TTL."""
        if not items:
            return []
        args: list[Any] = [arg for _, record, guard, ttl in items for arg in (guard, ttl, record.dump)]
        replies = self._restore(keys=[k for k, _, _, _ in items], args=args, client=self.client)
        took = now_ms() - at
        refused = []
        for item, reply in zip(items, replies, strict=True):
            if isinstance(reply, list):
                self.result.written.append(item[0])
                pttl = int(reply[2])
                self.result.read_back[item[0]] = (reply[1] == 1, max(pttl - took, 0) if pttl >= 0 else pttl)
                continue
            text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
            if text == "changed":
                self.result.changed.append(item[0])
            elif "payload version" in text.lower():
                self.result.fallback = True
                refused.append(item)
            else:
                raise RemoteError(f"RESTORE of {item[0]!r} failed on the target: {text[:200]}")
        return refused

    def _typed(self, items: list[tuple[bytes, Record, str, int]]) -> None:
        """Each value built type by type under a temporary name, then renamed if unchanged."""
        pipe = self.client.pipeline(transaction=True)
        for key, record, _, ttl in items:
            temp = key + PARTIAL
            pipe.delete(temp)
            typed_write(pipe, temp, record)
            if ttl:
                pipe.pexpire(temp, ttl)
        pipe.execute()
        self._swap([(key + PARTIAL, key, guard) for key, _, guard, _ in items])
        # Only a TTL lets a temporary key go by itself: one without had been removed by something else.
        if gone := [key for key, _, _, ttl in items if not ttl and key in self.result.expired]:
            raise RemoteError(f"the value built for {gone[0]!r} vanished before it took the key's place")

    def delete(self, targets: list[tuple[bytes, str]]) -> None:
        self._swap([(key, key, guard) for key, guard in targets])

    def _swap(self, swaps: list[tuple[bytes, bytes, str]]) -> None:
        if not swaps:
            return
        keys = [k for source, key, _ in swaps for k in (source, key)]
        replies = self._swap_script(keys=keys, args=[guard for _, _, guard in swaps], client=self.client)
        for (_, key, _), swapped in zip(swaps, replies, strict=True):
            {1: self.result.written, 0: self.result.changed, 2: self.result.expired}[swapped].append(key)
