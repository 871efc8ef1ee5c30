-- KEYS: ids exp act. Removes every expired entry; returns how many.
return prune(KEYS[1], KEYS[2], KEYS[3], now_ms(), 1e9)
