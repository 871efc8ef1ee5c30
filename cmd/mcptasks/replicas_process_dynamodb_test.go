//go:build dynamodb

package main

import (
	"net/url"
	"os"
	"syscall"
	"testing"
)

// DynamoDB has no change feed: these replicas poll (in batches).
func dynamoStoreURL(t *testing.T) string {
	t.Helper()
	ep := os.Getenv("MCPTASKS_TEST_DYNAMODB_ENDPOINT")
	if ep == "" {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") != "" {
			t.Fatal("MCPTASKS_TEST_DYNAMODB_ENDPOINT is not set (scripts/dynamodb_up.sh sets it)")
		}
		t.Skip("MCPTASKS_TEST_DYNAMODB_ENDPOINT is not set; run scripts/dynamodb_up.sh")
	}
	return "dynamodb://replicas_" + randomSuffix() + "?region=us-east-1&create_table=true&endpoint=" + url.QueryEscape(ep)
}

func TestReplicaKilledDynamoDB(t *testing.T) {
	testReplicaKilled(t, "dynamodb", dynamoStoreURL(t))
}

func TestReplicaResumedAfterKillDynamoDB(t *testing.T) {
	testReplicaResumed(t, "dynamodb", dynamoStoreURL(t), syscall.SIGKILL)
}
