-- KEYS: rec ids exp act. ARGV: id channel message status_key|""
-- status_exp_key status_km. Returns 1 if a live record was deleted; only
-- then is the message ("O ID 0") published. On a single server
-- (status_key given) the record's status index entries go too, whatever
-- its code (status_km is "ID OWNER").
local was = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if ARGV[4] ~= '' then
  redis.call('ZREM', ARGV[4], unpack(status_variants(ARGV[6])))
  redis.call('ZREM', ARGV[5], ARGV[6])
end
if was == 1 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return was
