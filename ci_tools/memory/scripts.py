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

# KEYS: target keys. ARGV[1]: "1" to replace. Then per key: ttl-ms (0 = none), payload.
# Each restored key is read back at once: reply per key {1, same, pttl}, where same is 1
# when its DUMP now equals the payload (0: another encoding, compare values instead);
# or the error text (BUSYKEY, payload version …) when RESTORE refused.
RESTORE = """
local replace = ARGV[1] == '1'
local out = {}
for i, key in ipairs(KEYS) do
  local ttl, payload = ARGV[2 * i], ARGV[2 * i + 1]
  local reply
  if replace then
    reply = redis.pcall('RESTORE', key, ttl, payload, 'REPLACE')
  else
    reply = redis.pcall('RESTORE', key, ttl, payload)
  end
  if type(reply) == 'table' and reply.err then
    out[i] = reply.err
  else
    local same = 0
    if redis.call('DUMP', key) == payload then same = 1 end
    out[i] = {1, same, redis.call('PTTL', key)}
  end
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
