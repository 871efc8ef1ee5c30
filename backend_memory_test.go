package mcptasks_test

import (
	"testing"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
	"github.com/mcptasks/mcptasks/taskstore/storetest"
)

func newMemory(t testing.TB) taskstore.Backend {
	b, err := mcptasks.OpenBackend(t.Context(), "memory://?sweep=50ms")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestMemoryConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, newMemory)
}
