-- KEYS: rec ids exp act. ARGV: id channel message. Returns 1 if a live
-- record was deleted; only then is the message ("O ID 0") published.
local was = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if was == 1 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return was
