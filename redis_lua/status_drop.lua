-- Drops every status index entry of one record, whatever its code.
-- KEYS: idx exp. ARGV: status_km ("ID OWNER").
redis.call('ZREM', KEYS[1], unpack(status_variants(ARGV[1])))
return redis.call('ZREM', KEYS[2], ARGV[1])
