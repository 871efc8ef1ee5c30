//go:build redis

package main

import (
	"crypto/rand"
	"os"
	"testing"
)

// TestExampleProgramReplicasRedis keeps the README's promise for its
// program: two processes of it over one Redis, with the same token, share
// the user's tasks (a task made on A is read and awaited on B).
func TestExampleProgramReplicasRedis(t *testing.T) {
	u := os.Getenv("MCPTASKS_TEST_REDIS_URL")
	if u == "" {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") == "1" {
			t.Fatal("MCPTASKS_TEST_REDIS_URL is not set (scripts/redis_up.sh sets it)")
		}
		t.Skip("MCPTASKS_TEST_REDIS_URL is not set; run scripts/redis_up.sh")
	}
	store := u + "?prefix=example-" + rand.Text() + ":"
	bin := buildExample(t, "redis")
	a := startExample(t, bin, "-token", "alice:s3cret", "-store", store)
	b := startExample(t, bin, "-token", "alice:s3cret", "-store", store)
	testSharedTasks(t, a, b)
}
