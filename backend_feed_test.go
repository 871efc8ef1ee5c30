//go:build redis || postgres

package mcptasks

import (
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// subscribed subscribes to n's changes until the test ends, waits for the
// first Resync, and returns a function that gives the next change (failing
// the test after 10 s without one).
func subscribed(t *testing.T, n taskstore.Notifier) func() taskstore.Change {
	changes := make(chan taskstore.Change, 64)
	go n.Subscribe(t.Context(), func(c taskstore.Change) { changes <- c })
	next := func() taskstore.Change {
		t.Helper()
		select {
		case c := <-changes:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no change within 10 s")
		}
		return taskstore.Change{}
	}
	if c := next(); !c.Resync {
		t.Fatalf("first change %+v, want a Resync", c)
	}
	return next
}
