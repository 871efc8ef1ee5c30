-- KEYS: ids exp act. ARGV: record key prefix, after|"", limit.
-- Returns {more, id, value, id, value, …}: ids from the index, values
-- with one MGET per batch. Record keys are built from the prefix: they
-- share the owner's hash tag, so the same slot.
prune(KEYS[1], KEYS[2], KEYS[3], now_ms(), PRUNE_BATCH)
local limit = tonumber(ARGV[3])
local start = '+'
if ARGV[2] ~= '' then start = '(' .. ARGV[2] end
local out = {0}
local n = 0
while true do
  -- One more than needed, to learn whether more follow.
  local batch = math.min(limit - n, 1000) + 1
  local ids = redis.call('ZREVRANGEBYLEX', KEYS[1], start, '-', 'LIMIT', 0, batch)
  if #ids == 0 then return out end
  local keys = {}
  for i, id in ipairs(ids) do keys[i] = ARGV[1] .. id end
  local vals = redis.call('MGET', unpack(keys))
  for i, id in ipairs(ids) do
    if n == limit then
      out[1] = 1
      return out
    end
    if vals[i] then
      out[#out + 1] = id
      out[#out + 1] = vals[i]
      n = n + 1
    else
      -- Expired (or purged) but still indexed: drop the entry now.
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
      redis.call('ZREM', KEYS[3], id)
    end
  end
  if #ids < batch then return out end
  start = '(' .. ids[#ids]
end
