//go:build postgres

package main

import "testing"

func TestOperatorCLIPostgres(t *testing.T) {
	testOperatorCLI(t, "postgres", postgresStoreURL(t))
}
