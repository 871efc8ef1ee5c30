package mcptasks_test

import (
	"testing"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
	"github.com/mcptasks/mcptasks/taskstore/storetest"
)

// FuzzOwnerIsolation: no fuzzed owner string reads, lists, counts,
// cancels or overwrites another's task on the memory backend, or uses its
// cursor (a fresh store per input). The redis and dynamodb builds have
// such targets on real servers.
func FuzzOwnerIsolation(f *testing.F) {
	storetest.FuzzOwnerIsolation(f, func(t testing.TB) *taskstore.Store {
		b, err := mcptasks.OpenBackend(t.Context(), "memory://?sweep=0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return taskstore.New(b, storetest.IsolationConfig())
	}, false)
}
