-- KEYS: rec ids exp act [run]. ARGV: id value expiry_ms|"" pexpireat_ms|""
-- max_active max_stored active(0|1) channel message run_member|"" code
-- status_km status_key|"" status_exp_key|"". The message is the change
-- published, "O ID 1". On a single server (status_key given: the status
-- index, named in ARGV, not KEYS, as a cluster would refuse it) the record
-- enters the status index as "CODE ID OWNER" (status_km is "ID OWNER"),
-- with its expiry in status_exp_key; an entry that an earlier, expired
-- record at this key left there goes.
-- Returns 0 created, 1 exists, 2 active quota, 3 stored bound.
local now = now_ms()
prune(KEYS[2], KEYS[3], KEYS[4], now, PRUNE_BATCH)
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
local nows = string.format('%.0f', now)
local max_active = tonumber(ARGV[5])
if max_active > 0 and ARGV[7] == '1' then
  if redis.call('ZCOUNT', KEYS[4], '(' .. nows, '+inf') >= max_active then return 2 end
end
local max_stored = tonumber(ARGV[6])
if max_stored > 0 then
  local live = redis.call('ZCARD', KEYS[2]) - redis.call('ZCOUNT', KEYS[3], '-inf', nows)
  if live >= max_stored then return 3 end
end
-- A record that expired before it was made is never stored.
if ARGV[3] ~= '' and tonumber(ARGV[3]) <= now then return 0 end
if KEYS[5] then redis.call('ZADD', KEYS[5], 0, ARGV[10]) end
redis.call('PUBLISH', ARGV[8], ARGV[9])
local new_ids = redis.call('EXISTS', KEYS[2]) == 0
redis.call('ZADD', KEYS[2], 0, ARGV[1])
if ARGV[13] ~= '' then
  redis.call('ZADD', ARGV[13], 0, ARGV[11] .. ' ' .. ARGV[12])
  local earlier
  if ARGV[3] == '' then
    earlier = redis.call('ZREM', ARGV[14], ARGV[12]) == 1
  else
    earlier = redis.call('ZADD', ARGV[14], ARGV[3], ARGV[12]) == 0
  end
  if earlier then
    local stale = {}
    for _, c in ipairs(STATUS_CODES) do
      if c ~= ARGV[11] then stale[#stale + 1] = c .. ' ' .. ARGV[12] end
    end
    redis.call('ZREM', ARGV[13], unpack(stale))
  end
end
if ARGV[7] == '1' then redis.call('ZADD', KEYS[4], act_score(ARGV[3]), ARGV[1]) else redis.call('ZREM', KEYS[4], ARGV[1]) end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('PERSIST', KEYS[2])
  redis.call('PERSIST', KEYS[3])
  redis.call('PERSIST', KEYS[4])
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
-- The id index lives as long as its longest-lived member: GT never
-- shortens it, and leaves a permanent index (one holding a record that
-- never expires) alone. The other indexes go with it, never before: the
-- quota count needs every expiry-indexed id to be in the id index.
if new_ids then redis.call('PEXPIREAT', KEYS[2], ARGV[4]) else redis.call('PEXPIREAT', KEYS[2], ARGV[4], 'GT') end
local ids_until = redis.call('PEXPIRETIME', KEYS[2])
if ids_until < 0 then
  redis.call('PERSIST', KEYS[3])
  redis.call('PERSIST', KEYS[4])
else
  redis.call('PEXPIREAT', KEYS[3], ids_until)
  redis.call('PEXPIREAT', KEYS[4], ids_until)
end
return 0
