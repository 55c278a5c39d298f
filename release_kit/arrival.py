"""The arrival record: per user, which bot saw them last, when they first wrote to it, when last.

``ci-tools finish-move`` waits its window from the daily user's first message to the new bot, and
sees a user sent back to the old bot by who they wrote to last. An owner's bot keeps its memory
in its own layout, so the kit keeps this record itself, for every bot served by
``kit.run_webhook``/``kit.asgi`` (the health level), with no handler change:

``<prefix>kit:arrival:<user id>``, a hash of ``bot_id`` (the answering bot's id, the token's part
before ``:``), ``since`` (unix seconds: their first update to that bot since the hash named
another bot, or since there was none) and ``last`` (unix seconds: their latest update).

The record is not the user's memory: a migration's copy leaves it behind, so the new bot's first
update from them is their arrival; send-back carries production's record to the old bot, so
finish-move sees them sent back (the old bot holds the new bot's record) until they write to it
(then it is the old bot's again, and later than the new bot's).

One round trip per update (one script: read, compare, write, atomically), before the handlers
run. It never fails an update: a Redis that cannot keep it is logged, and the webhook answers as
the handlers fared (503 only when they could not reach memory: the existing rule); the user's next
message makes it good (a lost first one starts the window later: finish-move only waits longer).
Not recorded: the probe user (the pipeline's, not traffic), updates without a user (channel posts),
a user leaving or blocking the bot (``my_chat_member``: not a message to it), and anyone the
signpost answers instead of the handlers (nothing of them is stored).
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from telegram import Update

ARRIVAL = "kit:arrival:{user_id}"
BOT_FIELD, SINCE_FIELD, LAST_FIELD = "bot_id", "since", "last"
_NOT_WRITING = ("my_chat_member", "chat_member", "chat_join_request")

# KEYS[1] the record, ARGV[1] this bot's id, ARGV[2] now: a new bot (or none) starts `since` anew.
_RECORD = """
if redis.call('HGET', KEYS[1], 'bot_id') ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'bot_id', ARGV[1], 'since', ARGV[2])
end
return redis.call('HSET', KEYS[1], 'last', ARGV[2])
"""


def arrival_key(prefix: str, user_id: int) -> str:
    return f"{prefix}{ARRIVAL.format(user_id=user_id)}"


class Arrivals:
    def __init__(self, client: aioredis.Redis, prefix: str, probe_user_id: int) -> None:
        self.client = client
        self.prefix = prefix
        self.probe_user_id = probe_user_id

    def whose(self, update: Update) -> int | None:
        """The user this update is a message from, if it counts as writing to the bot."""
        user = update.effective_user
        if user is None or user.is_bot or user.id == self.probe_user_id:
            return None
        if any(getattr(update, kind, None) is not None for kind in _NOT_WRITING):
            return None
        return user.id

    async def record(self, update: Update, bot_id: int) -> None:
        """Note the update in its user's record (nothing for an update that is not a user's message)."""
        user_id = self.whose(update)
        if user_id is None:
            return
        await self.client.eval(_RECORD, 1, arrival_key(self.prefix, user_id), str(bot_id), str(int(time.time())))
