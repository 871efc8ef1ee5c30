-- KEYS: rec act [run]. ARGV: value expected active(0|1) runner_b64 id
-- channel member expiry_ms header_len indexed(0|1) code status_km
-- status_key|"" [run_member run_prefix]. value is the whole stored form
-- at version expected+1 with the caller's expiry (header_len bytes of
-- header): when the stored expiry is that one (it never changes) the
-- script stores value as it came; else it rebuilds the header with the
-- stored expiry. Returns the new version, -1 not found, -2 version
-- conflict, -3 the record gets a new runner whose index entry is not
-- written (a cluster: the caller writes it and calls again with indexed
-- 1), or, on a cluster, {new version, old code} when the status changed
-- (the caller drops the old entry, in another slot). Only the header is
-- read; KEEPTTL keeps the expiry. The active index is written only when
-- the active flag changes, the runner index only when the runner does,
-- the status index only when the status does: every script keeps the
-- first equal to the live records' flags, and the entry of a record's
-- runner is written before the record names it.
-- On a single server (run_prefix given: the runner index keys' start)
-- the entry in the index of the runner the record leaves is removed, so
-- a dead runner's index holds only the tasks still to act on; that key
-- is named from the stored header, not in KEYS, which a single server
-- allows (a cluster would refuse it: there the entry stays, a stale hint
-- RunnerTasks drops). Likewise the status index (status_key), whose
-- entry "CODE ID OWNER" moves from the stored code to the new one
-- (status_km is "ID OWNER"). The change published is "member VERSION"
-- (member is "O ID").
local head = redis.call('GETRANGE', KEYS[1], 0, 255)
if head == '' then return -1 end
local v, e, a, r = string.match(head, '^(%d+):(%d*):(%d*):()')
if v ~= ARGV[2] then return -2 end
if ARGV[15] then
  -- Matched only when the whole field is in head (ends with ':').
  local was = string.match(head, '^([^:]*):', r)
  if was and was ~= '' and was ~= ARGV[4] then
    redis.call('ZREM', ARGV[15] .. was .. '}:run', ARGV[14])
  end
end
-- A runner field cut off at 256 bytes reads as another runner: indexed again.
if ARGV[4] ~= '' and ARGV[10] ~= '1' and string.sub(head, r, r + #ARGV[4]) ~= ARGV[4] .. ':' then
  if not KEYS[3] then return -3 end
  redis.call('ZADD', KEYS[3], 0, ARGV[14])
end
local nv = tonumber(v) + 1
if e == ARGV[8] then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
else
  redis.call('SET', KEYS[1], string.format('%d:%s:%s%s:%s:', nv, e, ARGV[3], ARGV[11], ARGV[4]) .. string.sub(ARGV[1], tonumber(ARGV[9]) + 1), 'KEEPTTL')
end
-- The active field is the flag, then the status code (none in a record
-- of an earlier release).
if string.sub(a, 1, 1) ~= ARGV[3] then
  if ARGV[3] == '1' then
    if e == '' then redis.call('ZADD', KEYS[2], '+inf', ARGV[5]) else redis.call('ZADD', KEYS[2], e, ARGV[5]) end
  else
    redis.call('ZREM', KEYS[2], ARGV[5])
  end
end
redis.call('PUBLISH', ARGV[6], ARGV[7] .. string.format(' %d', nv))
local was_code = string.sub(a, 2)
if was_code ~= ARGV[11] then
  if ARGV[13] == '' then return {nv, was_code} end
  redis.call('ZREM', ARGV[13], was_code .. ' ' .. ARGV[12])
  redis.call('ZADD', ARGV[13], 0, ARGV[11] .. ' ' .. ARGV[12])
end
return nv
