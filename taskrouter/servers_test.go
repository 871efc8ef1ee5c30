//go:build redis || dynamodb || postgres

package taskrouter_test

import (
	"os"
	"testing"
)

// Helpers for the tests against a backend's real server
// (replica_<backend>_test.go); with no backend tag there are none.

// requireEnv returns the named environment variable, or skips the test
// (fails it when MCPTASKS_TEST_REQUIRE=1).
func requireEnv(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") == "1" {
			t.Fatalf("%s is not set and MCPTASKS_TEST_REQUIRE=1", name)
		}
		t.Skipf("%s is not set: skipping (set it to a test server's URL to run this)", name)
	}
	return v
}
