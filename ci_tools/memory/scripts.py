"""Server-side Lua for the per-key work, so Python pays per batch instead of per key.

A batch of 1,000 keys is one EVALSHA instead of ~6 commands a key: the read is
atomic (TTL, DUMP and value describe one moment), and so is the write (a batch of
RESTOREs lands whole or not at all). The read script never writes.
"""

from __future__ import annotations

# KEYS: the keys. ARGV[1]: elements above which a key is "big" (value left out, read
# in chunks by the caller). ARGV[2]: "1" to include DUMP payloads.
# Reply per key: {type} for a missing key, {type, pttl} for a big one,
# {type, pttl, value, dump-or-false} otherwise.
READ = """
local big = tonumber(ARGV[1])
local with_dump = ARGV[2] == '1'
local lengths = {hash='HLEN', set='SCARD', zset='ZCARD', stream='XLEN'}
local out = {}
for i, key in ipairs(KEYS) do
  local t = redis.call('TYPE', key)['ok']
  if t == 'none' or not (lengths[t] or t == 'string' or t == 'list') then
    out[i] = {t}
  else
    local pttl = redis.call('PTTL', key)
    local value
    -- strings are never chunked; a list is read up to one past the limit, which says
    -- whether it is big without a separate LLEN (one call a key saved: most keys are lists)
    if t == 'string' then value = redis.call('GET', key)
    elseif t == 'list' then
      value = redis.call('LRANGE', key, 0, big)
      if #value > big then value = nil end
    elseif redis.call(lengths[t], key) <= big then
      if t == 'hash' then value = redis.call('HGETALL', key)
      elseif t == 'set' then value = redis.call('SMEMBERS', key)
      elseif t == 'zset' then value = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
      else value = redis.call('XRANGE', key, '-', '+') end
    end
    if value == nil then
      out[i] = {t, pttl}
    else
      local dump = false
      if with_dump then dump = redis.call('DUMP', key) end
      out[i] = {t, pttl, value, dump}
    end
  end
end
return out
"""

# The guard every write to a target passes: the key still holds what its backup recorded.
# A guard is the SHA-1 of the key's DUMP payload when backed up, or '' when it was absent
# (ci_tools.memory.writer.fingerprint computes the same in Python). A key that changed since
# is left alone: it holds what the user said meanwhile, which no backup has.
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
RESTORE = (
    UNCHANGED
    + """
local out = {}
for i, key in ipairs(KEYS) do
  local guard, ttl, payload = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  if not unchanged(key, guard) then
    out[i] = 'changed'
  else
    local reply = redis.pcall('RESTORE', key, ttl, payload, 'REPLACE')
    if type(reply) == 'table' and reply.err then
      out[i] = reply.err
    else
      local same = 0
      if redis.call('DUMP', key) == payload then same = 1 end
      out[i] = {1, same, redis.call('PTTL', key)}
    end
  end
end
return out
"""
)

# KEYS: pairs of (temporary key, target key). ARGV: each target's guard.
# A value built under a temporary name (type by type, or part by part) takes the target's
# place only if the target is unchanged; else the temporary key is dropped. Reply per pair: 1 | 0.
RENAME = (
    UNCHANGED
    + """
local out = {}
for i = 1, #ARGV do
  local temp, key = KEYS[2 * i - 1], KEYS[2 * i]
  if unchanged(key, ARGV[i]) then
    redis.call('RENAME', temp, key)
    out[i] = 1
  else
    redis.call('DEL', temp)
    out[i] = 0
  end
end
return out
"""
)

# KEYS: keys to delete (an undo of a key that was absent). ARGV: their guards. Reply: 1 | 0.
DELETE = (
    UNCHANGED
    + """
local out = {}
for i, key in ipairs(KEYS) do
  if unchanged(key, ARGV[i]) then
    redis.call('DEL', key)
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""
)

# KEYS: keys. Reply per key: its guard now (see UNCHANGED). For big keys, whose DUMP stays
# on the server: only the digest crosses the wire.
FINGERPRINT = """
local out = {}
for i, key in ipairs(KEYS) do
  local dump = redis.call('DUMP', key)
  if dump == false then out[i] = '' else out[i] = redis.sha1hex(dump) end
end
return out
"""

# KEYS: target keys. ARGV: the DUMP payloads they should hold, in order.
# Reply per key: {1 if the key's DUMP equals the payload else 0, pttl}.
SAME_PAYLOAD = """
local out = {}
for i, key in ipairs(KEYS) do
  local dump = redis.call('DUMP', key)
  local same = 0
  if dump and dump == ARGV[i] then same = 1 end
  out[i] = {same, redis.call('PTTL', key)}
end
return out
"""
