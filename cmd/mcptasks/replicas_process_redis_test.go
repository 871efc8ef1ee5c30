//go:build redis

package main

import (
	"syscall"
	"testing"
)

func redisStoreURL(t *testing.T, env string) string {
	t.Helper()
	return testServerEnv(t, env, "scripts/redis_up.sh") + "?prefix=replicas-" + randomSuffix() + ":"
}

func TestReplicaKilledRedis(t *testing.T) {
	testReplicaKilled(t, "redis", redisStoreURL(t, "MCPTASKS_TEST_REDIS_URL"))
}

func TestReplicaKilledRedisCluster(t *testing.T) {
	testReplicaKilled(t, "redis", redisStoreURL(t, "MCPTASKS_TEST_REDIS_CLUSTER_URL"))
}

func TestReplicaKilledRedisSentinel(t *testing.T) {
	testReplicaKilled(t, "redis", redisStoreURL(t, "MCPTASKS_TEST_REDIS_SENTINEL_URL"))
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

func TestReplicaInputRedis(t *testing.T) {
	testReplicaInput(t, "redis", redisStoreURL(t, "MCPTASKS_TEST_REDIS_URL"))
}

func TestReplicaInputRedisCluster(t *testing.T) {
	testReplicaInput(t, "redis", redisStoreURL(t, "MCPTASKS_TEST_REDIS_CLUSTER_URL"))
}

func TestReplicaInputRedisSentinel(t *testing.T) {
	testReplicaInput(t, "redis", redisStoreURL(t, "MCPTASKS_TEST_REDIS_SENTINEL_URL"))
}
