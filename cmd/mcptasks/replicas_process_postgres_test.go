//go:build postgres

package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

func postgresStoreURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("MCPTASKS_TEST_POSTGRES_URL")
	if u == "" {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") != "" {
			t.Fatal("MCPTASKS_TEST_POSTGRES_URL is not set (scripts/postgres_up.sh sets it)")
		}
		t.Skip("MCPTASKS_TEST_POSTGRES_URL is not set; run scripts/postgres_up.sh")
	}
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "table=replicas_" + randomSuffix() + "&create_table=true"
}

func TestReplicaKilledPostgres(t *testing.T) {
	testReplicaKilled(t, "postgres", postgresStoreURL(t))
}

func TestReplicaResumedAfterShutdownPostgres(t *testing.T) {
	testReplicaResumed(t, "postgres", postgresStoreURL(t), syscall.SIGTERM)
}
