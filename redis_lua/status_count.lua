-- KEYS: idx exp. Drops the entries of expired records (up to
-- STATUS_COUNT_PRUNE of them), then returns the number of entries of each
-- code, in the order of STATUS_CODES.
local now = now_ms()
local left = STATUS_COUNT_PRUNE
while left > 0 do
  local n = status_prune(KEYS[1], KEYS[2], now, math.min(left, PRUNE_BATCH))
  if n < PRUNE_BATCH then break end
  left = left - n
end
local out = {}
for i, c in ipairs(STATUS_CODES) do
  out[i] = redis.call('ZLEXCOUNT', KEYS[1], '[' .. c .. ' ', '(' .. c .. '!')
end
return out
