-- KEYS: idx exp. ARGV: n. Drops up to n entries of expired records;
-- returns how many.
return status_prune(KEYS[1], KEYS[2], now_ms(), tonumber(ARGV[1]))
