//! The Lua scripts of [`RedisStore`](super::RedisStore), one per store operation. Every
//! script touches keys of one hash slot only, so each runs on Redis Cluster as on one node;
//! window time is the server's (`TIME`).

/// Takes up to `want` units of one key's window budget. The window is the server's: index =
/// unix ms ÷ window ms. A hash holds the window index and the units taken in it; a new window
/// starts at zero. Returns {granted, used, ms left in the window, window index}.
pub(super) const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local idx = math.floor(now / window)
local cur = redis.call('HMGET', KEYS[1], 'w', 'n')
local used = 0
if tonumber(cur[1]) == idx then used = tonumber(cur[2]) or 0 end
local granted = math.min(want, math.max(limit - used, 0))
if granted > 0 then
  used = used + granted
  redis.call('HSET', KEYS[1], 'w', idx, 'n', used)
  redis.call('PEXPIRE', KEYS[1], (idx + 1) * window - now + 1000)
end
return {granted, used, (idx + 1) * window - now, idx}
";

/// Cold start (Baldur): current if set; else the last safe limit, copied into current; else
/// the default, written. Clamped to [min, max]. Returns {limit, source}.
pub(super) const LOAD_LIMIT: &str = r"
local function clamp(v) return math.max(tonumber(ARGV[2]), math.min(tonumber(ARGV[3]), v)) end
local cur = redis.call('GET', KEYS[1])
if cur then return {clamp(tonumber(cur)), 'current'} end
local safe = redis.call('HGET', KEYS[2], 'limit')
if safe then
  local v = clamp(tonumber(safe))
  redis.call('SET', KEYS[1], v)
  return {v, 'safe'}
end
local v = clamp(tonumber(ARGV[1]))
redis.call('SET', KEYS[1], v)
return {v, 'default'}
";

/// Clamp-and-set (Baldur): sets the limit, optionally records it as the last safe limit with
/// its time. Returns {previous or -1, new}.
pub(super) const SET_LIMIT: &str = r"
local v = math.max(tonumber(ARGV[2]), math.min(tonumber(ARGV[3]), tonumber(ARGV[1])))
local prev = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], v)
if ARGV[4] == '1' then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[2], 'limit', v, 'updated_at', t[1])
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
end
if prev then return {tonumber(prev), v} end
return {-1, v}
";

/// Compare-and-set (Baldur): refuses with the limit in force unless it is the expected one or
/// absent. Returns {1, new} or {0, actual}.
pub(super) const CAS_LIMIT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) ~= tonumber(ARGV[1]) then return {0, tonumber(cur)} end
local v = math.max(tonumber(ARGV[3]), math.min(tonumber(ARGV[4]), tonumber(ARGV[2])))
redis.call('SET', KEYS[1], v)
return {1, v}
";

/// Heartbeat: this instance is alive now, with its report; instances silent for longer than
/// the time to live are dropped, with their reports. Both expire after twice the time to live
/// once every instance is gone. Returns {live instances, limit or -1, operator-state version}.
pub(super) const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - ttl - 1)
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl - 1)
  redis.call('HDEL', KEYS[3], unpack(gone))
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ttl * 2)
redis.call('PEXPIRE', KEYS[3], ttl * 2)
local n = redis.call('ZCARD', KEYS[2])
local limit = tonumber(redis.call('GET', KEYS[1]) or '-1')
local ops = tonumber(redis.call('HGET', KEYS[4], 'v') or '0')
return {n, limit, ops}
";

/// The live instances with their reports and the ms since their last heartbeat. Returns a flat
/// list {instance, ms ago, report, ...}.
pub(super) const MEMBERS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf', 'WITHSCORES')
local out = {}
for i = 1, #live, 2 do
  table.insert(out, live[i])
  table.insert(out, math.max(0, now - tonumber(live[i + 1])))
  table.insert(out, redis.call('HGET', KEYS[2], live[i]) or '')
end
return out
";

/// Compare-and-swap of the operator state, announced on its channel. Returns {1, version, ''}
/// or {0, version in force, document in force}.
pub(super) const WRITE_OPS: &str = r"
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if cur ~= tonumber(ARGV[1]) then
  return {0, cur, redis.call('HGET', KEYS[1], 'doc') or ''}
end
local v = cur + 1
redis.call('HSET', KEYS[1], 'v', v, 'doc', ARGV[2])
redis.call('PUBLISH', ARGV[3], v)
return {1, v, ''}
";

/// Extends one shared cooldown (a hash field "end ms:consecutive") to end `delay` ms from the
/// server's now unless it ends later, raising its count; the hash lives as long as its
/// longest cooldown. Returns the end.
pub(super) const EXTEND_COOLDOWN: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local sep = string.find(cur, ':')
  local cur_until = tonumber(string.sub(cur, 1, sep - 1))
  local cur_n = tonumber(string.sub(cur, sep + 1))
  if cur_until > until_ms then until_ms = cur_until end
  if cur_n > n then n = cur_n end
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d:%d', until_ms, n))
local ttl = redis.call('PTTL', KEYS[1])
if ttl < until_ms - now then redis.call('PEXPIRE', KEYS[1], until_ms - now + 1000) end
return until_ms
";

/// Every running cooldown of a group, as {key, ms left, count, ...}; ended ones are dropped.
pub(super) const COOLDOWNS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local v = all[i + 1]
  local sep = string.find(v, ':')
  local until_ms = tonumber(string.sub(v, 1, sep - 1))
  if until_ms > now then
    table.insert(out, all[i])
    table.insert(out, until_ms - now)
    table.insert(out, tonumber(string.sub(v, sep + 1)))
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
";

/// A cost debit (TK-025): like `TAKE`, but the debit is admitted in full when the budget was
/// not yet reached (the crossing debit counts in full) and refused after.
pub(super) const DEBIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local idx = math.floor(now / window)
local cur = redis.call('HMGET', KEYS[1], 'w', 'n')
local used = 0
if tonumber(cur[1]) == idx then used = tonumber(cur[2]) or 0 end
local granted = 0
if used < budget then
  granted = want
  used = used + want
  redis.call('HSET', KEYS[1], 'w', idx, 'n', used)
  redis.call('PEXPIRE', KEYS[1], (idx + 1) * window - now + 1000)
end
return {granted, used, (idx + 1) * window - now, idx}
";

/// Moves a key's use in window ARGV[1] by ARGV[2] (never below 0); nothing once it ended.
pub(super) const ADJUST: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'w', 'n')
if tonumber(cur[1]) ~= tonumber(ARGV[1]) then return 0 end
local n = math.max(0, (tonumber(cur[2]) or 0) + tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'n', n)
return 1
";

/// Durable dead-letter queue, append: makes sure the replay group exists, appends the entry,
/// trims the stream to its newest `max_len` entries and counts what was trimmed. KEYS: stream,
/// overflow counter; ARGV: payload, max_len, group. Returns {id, trimmed}.
pub(super) const DLQ_APPEND: &str = r"
pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[3], '0', 'MKSTREAM')
local id = redis.call('XADD', KEYS[1], '*', 'entry', ARGV[1])
local trimmed = redis.call('XTRIM', KEYS[1], 'MAXLEN', tonumber(ARGV[2]))
if trimmed > 0 then redis.call('INCRBY', KEYS[2], trimmed) end
return {id, trimmed}
";

/// Durable dead-letter queue, claim: entries another consumer left unacknowledged for
/// `min_idle` ms (`XAUTOCLAIM`), then new ones (`XREADGROUP >`), up to `count`. KEYS: stream;
/// ARGV: group, consumer, count, min_idle ms. Returns {id, payload, id, payload, …}.
pub(super) const DLQ_CLAIM: &str = r"
pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
local n = tonumber(ARGV[3])
local out = {}
local function keep(entries)
  for _, e in ipairs(entries) do
    if type(e) == 'table' and type(e[2]) == 'table' then
      out[#out + 1] = e[1]
      out[#out + 1] = e[2][2]
    end
  end
end
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[4], '0-0', 'COUNT', n)
keep(claimed[2])
local left = n - #out / 2
if left > 0 then
  local fresh = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', left, 'STREAMS', KEYS[1], '>')
  if type(fresh) == 'table' and fresh[1] then keep(fresh[1][2]) end
end
return out
";

/// Durable dead-letter queue, failed attempt: acknowledges and deletes the entry, appends its
/// new payload to the target stream (the queue again, or its failed list) and trims the target.
/// KEYS: stream, target, overflow counter; ARGV: group, id, payload, max_len. Trimming the
/// queue counts overflow. Returns the new id.
pub(super) const DLQ_RETRY: &str = r"
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
local id = redis.call('XADD', KEYS[2], '*', 'entry', ARGV[3])
local trimmed = redis.call('XTRIM', KEYS[2], 'MAXLEN', tonumber(ARGV[4]))
if trimmed > 0 and KEYS[1] == KEYS[2] then redis.call('INCRBY', KEYS[3], trimmed) end
return id
";

/// Durable dead-letter queue, counters. KEYS: stream, overflow, failed; ARGV: group. Returns
/// {len, in flight, overflow, failed}.
pub(super) const DLQ_COUNTS: &str = r"
local pending = 0
local ok, summary = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
if ok and type(summary) == 'table' then pending = tonumber(summary[1]) or 0 end
return {redis.call('XLEN', KEYS[1]), pending, tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('XLEN', KEYS[3])}
";

/// Durable dead-letter queue, keep-alive of a replayer's claims: for each id the consumer still
/// holds (`XPENDING` filtered by consumer), `XCLAIM … 0 JUSTID` by the same consumer resets
/// its idle time; an id another consumer took over is left alone. KEYS: stream; ARGV: group,
/// consumer, id… Returns the ids still held.
pub(super) const DLQ_TOUCH: &str = r"
local held = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if p[1] then
    local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    if claimed[1] then held[#held + 1] = ARGV[i] end
  end
end
return held
";

/// Durable dead-letter queue, acknowledgement after a replay: `XACK` and `XDEL`. KEYS: stream;
/// ARGV: group, id.
pub(super) const DLQ_ACK: &str = r"
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])
";
