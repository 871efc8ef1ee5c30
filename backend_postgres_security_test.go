//go:build postgres

package mcptasks

import (
	"testing"

	"github.com/mcptasks/mcptasks/taskstore"
	"github.com/mcptasks/mcptasks/taskstore/storetest"
)

// FuzzPostgresOwnerIsolation: no fuzzed owner string reaches another's
// task on a real PostgreSQL (one table per fuzzing process).
//
//	go test -tags postgres -run '^$' -fuzz FuzzPostgresOwnerIsolation -fuzztime 20s .
func FuzzPostgresOwnerIsolation(f *testing.F) {
	newBackend := newPostgresFactory(postgresTestURL(f))
	// Opened here: the fuzz function itself may not use f.
	s := taskstore.New(newBackend(f), storetest.IsolationConfig())
	storetest.FuzzOwnerIsolation(f, func(testing.TB) *taskstore.Store { return s }, true)
}
