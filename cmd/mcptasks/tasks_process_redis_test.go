//go:build redis

package main

import "testing"

func TestOperatorCLIRedis(t *testing.T) {
	testOperatorCLI(t, "redis", redisStoreURL(t, "MCPTASKS_TEST_REDIS_URL"))
}
