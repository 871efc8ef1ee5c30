-- KEYS: idx exp. ARGV: min max count (ZRANGEBYLEX bounds). Drops up to
-- PRUNE_BATCH entries of expired records first, then returns up to count
-- members between min and max.
status_prune(KEYS[1], KEYS[2], now_ms(), PRUNE_BATCH)
return redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
