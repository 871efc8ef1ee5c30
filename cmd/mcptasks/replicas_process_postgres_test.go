//go:build postgres

package main

import (
	"strings"
	"syscall"
	"testing"
)

func postgresStoreURL(t *testing.T) string {
	t.Helper()
	u := testServerEnv(t, "MCPTASKS_TEST_POSTGRES_URL", "scripts/postgres_up.sh")
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "table=replicas_" + randomSuffix() + "&create_table=true"
}

func TestReplicaKilledPostgres(t *testing.T) {
	testReplicaKilled(t, "postgres", postgresStoreURL(t))
}

func TestReplicaFrozenPostgres(t *testing.T) {
	testReplicaFrozen(t, "postgres", postgresStoreURL(t))
}

func TestReplicaResumedAfterShutdownPostgres(t *testing.T) {
	testReplicaResumed(t, "postgres", postgresStoreURL(t), syscall.SIGTERM)
}

func TestReplicaInputPostgres(t *testing.T) {
	testReplicaInput(t, "postgres", postgresStoreURL(t))
}
