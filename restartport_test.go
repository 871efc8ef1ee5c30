//go:build redis || dynamodb

package mcptasks

import (
	"testing"

	"github.com/mcptasks/mcptasks/internal/restartport"
)

// The Redis and DynamoDB fault tests start their servers themselves and
// restart them on the port they chose here (see restartport.Pick);
// scripts/postgres_up.sh picks and keeps a port of its own for the
// PostgreSQL ones.
func restartPort(t testing.TB) int { return restartport.Pick(t) }
