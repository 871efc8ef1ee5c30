//go:build dynamodb

package main

import (
	"net/url"
	"syscall"
	"testing"
)

// DynamoDB has no change feed: these replicas poll (in batches).
func dynamoStoreURL(t *testing.T) string {
	t.Helper()
	ep := testServerEnv(t, "MCPTASKS_TEST_DYNAMODB_ENDPOINT", "scripts/dynamodb_up.sh")
	return "dynamodb://replicas_" + randomSuffix() + "?region=us-east-1&create_table=true&endpoint=" + url.QueryEscape(ep)
}

func TestReplicaKilledDynamoDB(t *testing.T) {
	testReplicaKilled(t, "dynamodb", dynamoStoreURL(t))
}

func TestReplicaFrozenDynamoDB(t *testing.T) {
	testReplicaFrozen(t, "dynamodb", dynamoStoreURL(t))
}

func TestReplicaResumedAfterKillDynamoDB(t *testing.T) {
	testReplicaResumed(t, "dynamodb", dynamoStoreURL(t), syscall.SIGKILL)
}
