//go:build redis

package main

import (
	"os"
	"syscall"
	"testing"
)

func redisStoreURL(t *testing.T, env string) string {
	t.Helper()
	u := os.Getenv(env)
	if u == "" {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") != "" {
			t.Fatalf("%s is not set (scripts/redis_up.sh sets it)", env)
		}
		t.Skipf("%s is not set; run scripts/redis_up.sh", env)
	}
	return u + "?prefix=replicas-" + randomSuffix() + ":"
}

func TestReplicaKilledRedis(t *testing.T) {
	testReplicaKilled(t, "redis", redisStoreURL(t, "MCPTASKS_TEST_REDIS_URL"))
}

func TestReplicaKilledRedisCluster(t *testing.T) {
	testReplicaKilled(t, "redis", redisStoreURL(t, "MCPTASKS_TEST_REDIS_CLUSTER_URL"))
}

func TestReplicaFrozenRedis(t *testing.T) {
	testReplicaFrozen(t, "redis", redisStoreURL(t, "MCPTASKS_TEST_REDIS_URL"))
}

func TestReplicaResumedAfterKillRedis(t *testing.T) {
	testReplicaResumed(t, "redis", redisStoreURL(t, "MCPTASKS_TEST_REDIS_URL"), syscall.SIGKILL)
}

func TestReplicaResumedAfterShutdownRedis(t *testing.T) {
	testReplicaResumed(t, "redis", redisStoreURL(t, "MCPTASKS_TEST_REDIS_URL"), syscall.SIGTERM)
}
