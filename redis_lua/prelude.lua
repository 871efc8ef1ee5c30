-- Helpers of the scripts that start with them (see redisLuaScript).
-- Times are Unix milliseconds, as Redis keeps them: a record expiring at
-- E ms is expired once now >= E, and its key carries PEXPIREAT E-1, which
-- Redis applies as "gone once now > E-1": the same instant, so the scripts
-- and the server's own expiry agree, and a plain GET, EXISTS or MGET never
-- shows an expired record.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function prune(ids, exp, act, now, n)
  local old = redis.call('ZRANGEBYSCORE', exp, '-inf', string.format('%.0f', now), 'LIMIT', 0, n)
  if #old > 0 then
    redis.call('ZREM', ids, unpack(old))
    redis.call('ZREM', exp, unpack(old))
    redis.call('ZREM', act, unpack(old))
  end
  return #old
end
local function act_score(e)
  if e == '' then return '+inf' end
  return e
end
-- The status index (see redisBackend): idx holds "CODE ID OWNER" for every
-- indexed record, sexp "ID OWNER" scored by the record's expiry (ms).
-- STATUS_CODES are the codes a record can have, '' (no status) included,
-- so the entry of a record whose status is not known is among the
-- members status_variants names.
local function status_variants(km)
  local m = {}
  for _, c in ipairs(STATUS_CODES) do m[#m + 1] = c .. ' ' .. km end
  return m
end
-- Drops up to n index entries of expired records; returns how many.
local function status_prune(idx, sexp, now, n)
  local old = redis.call('ZRANGEBYSCORE', sexp, '-inf', string.format('%.0f', now), 'LIMIT', 0, n)
  if #old == 0 then return 0 end
  local m = {}
  for _, km in ipairs(old) do
    for _, c in ipairs(STATUS_CODES) do m[#m + 1] = c .. ' ' .. km end
  end
  redis.call('ZREM', idx, unpack(m))
  redis.call('ZREM', sexp, unpack(old))
  return #old
end
