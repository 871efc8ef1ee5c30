package taskstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// countingCapture counts the backend calls a Store makes.
type countingCapture struct {
	captureBackend
	gets, updates atomic.Int64
}

func (c *countingCapture) Get(ctx context.Context, owner, id string) (Record, error) {
	c.gets.Add(1)
	return c.captureBackend.Get(ctx, owner, id)
}

func (c *countingCapture) Update(ctx context.Context, rec Record, v uint64) (uint64, error) {
	c.updates.Add(1)
	return c.captureBackend.Update(ctx, rec, v)
}

func (c *countingCapture) take() string {
	return fmt.Sprintf("Get×%d Update×%d", c.gets.Swap(0), c.updates.Swap(0))
}

func newCounting(t *testing.T) (*Store, *countingCapture) {
	cb := &countingCapture{captureBackend: captureBackend{recs: map[string]Record{}}}
	return New(cb, Config{MaxActiveTasks: -1, MaxStoredTasks: -1}), cb
}

// TestHandleOneCASPerUncontendedMutation: a handle that knows the task's
// version mutates it with one compare-and-swap and no read; the Store
// itself stays stateless (a read, then a swap).
func TestHandleOneCASPerUncontendedMutation(t *testing.T) {
	ctx := t.Context()
	s, cb := newCounting(t)
	rec, err := s.Create(ctx, "alice", CreateRequest{RequestMethod: "tools/call"})
	if err != nil {
		t.Fatal(err)
	}
	h := s.HandleFor(rec)
	steps := []struct {
		what string
		do   func() error
		want string
	}{
		{"first SetVariables", func() error { return h.SetVariables(ctx, map[string]any{"a": 1}) }, "Get×0 Update×1"},
		{"second SetVariables", func() error { return h.SetVariables(ctx, map[string]any{"b": 2}) }, "Get×0 Update×1"},
		{"RequireInput", func() error { return h.RequireInput(ctx, "?") }, "Get×0 Update×1"},
		{"Resume", func() error { return h.Resume(ctx) }, "Get×0 Update×1"},
		{"Complete", func() error { return h.Complete(ctx, map[string]any{"ok": true}) }, "Get×0 Update×1"},
		{"Store.SetVariables (stateless)", func() error {
			_, err := s.SetVariables(ctx, "alice", rec.Task.TaskID, map[string]json.RawMessage{"c": json.RawMessage(`3`)})
			return err
		}, "Get×1 Update×1"},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		if got := cb.take(); got != st.want {
			t.Errorf("%s: %s, want %s", st.what, got, st.want)
		}
	}
	got, err := s.Get(ctx, "alice", rec.Task.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]json.RawMessage{"a": json.RawMessage(`1`), "b": json.RawMessage(`2`), "c": json.RawMessage(`3`)}
	if d := cmp.Diff(want, got.Variables, sameJSON); d != "" || got.Task.Status != StatusCompleted || got.Version != 7 {
		t.Fatalf("status %s, version %d, variables (-want +got):\n%s", got.Task.Status, got.Version, d)
	}
}

// TestHandleStaleRecord: after another writer changed the task, a handle's
// mutation loses its swap, re-reads once and lands on the fresh record; a
// change its stale copy would refuse is judged on fresh data instead.
func TestHandleStaleRecord(t *testing.T) {
	ctx := t.Context()
	s, cb := newCounting(t)
	rec, err := s.Create(ctx, "alice", CreateRequest{RequestMethod: "tools/call"})
	if err != nil {
		t.Fatal(err)
	}
	h := s.HandleFor(rec) // knows: working, version 1
	id := rec.Task.TaskID
	if _, err := s.UpdateStatus(ctx, "alice", id, StatusInputRequired, "elsewhere"); err != nil {
		t.Fatal(err)
	}
	cb.take()
	// The stale copy says working, where Resume is refused; the fresh
	// record says input_required, where it is allowed.
	if err := h.Resume(ctx); err != nil {
		t.Fatalf("Resume judged on the stale copy: %v", err)
	}
	if got := cb.take(); got != "Get×1 Update×1" {
		t.Errorf("refused on the stale copy: %s, want Get×1 Update×1", got)
	}
	if _, err := s.SetVariables(ctx, "alice", id, map[string]json.RawMessage{"other": json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	cb.take()
	if err := h.SetVariables(ctx, map[string]any{"mine": 2}); err != nil {
		t.Fatal(err)
	}
	if got := cb.take(); got != "Get×1 Update×2" {
		t.Errorf("conflict: %s, want Get×1 Update×2 (a lost swap, a read, a swap)", got)
	}
	got, _ := s.Get(ctx, "alice", id)
	if len(got.Variables) != 2 || got.Task.Status != StatusWorking {
		t.Fatalf("lost an update: %s %v", got.Task.Status, got.Variables)
	}
	// A refusal that holds on fresh data is returned as it is.
	if err := h.Resume(ctx); !errors.Is(err, ErrInvalidTransition) {
		t.Fatalf("Resume of a working task: %v, want ErrInvalidTransition", err)
	}
}

// TestHandleConcurrentNoLostUpdate: handles of one task on many goroutines
// (each its own handle, and one shared) lose no update.
func TestHandleConcurrentNoLostUpdate(t *testing.T) {
	ctx := t.Context()
	s, _ := newCounting(t)
	rec, err := s.Create(ctx, "alice", CreateRequest{RequestMethod: "tools/call"})
	if err != nil {
		t.Fatal(err)
	}
	shared := s.HandleFor(rec)
	var wg sync.WaitGroup
	const n = 16
	errs := make(chan error, 2*n)
	for i := range n {
		own := s.Handle("alice", rec.Task.TaskID)
		wg.Go(func() { errs <- own.SetVariables(ctx, map[string]any{fmt.Sprint("own", i): i}) })
		wg.Go(func() { errs <- shared.SetVariables(ctx, map[string]any{fmt.Sprint("shared", i): i}) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.Get(ctx, "alice", rec.Task.TaskID)
	if len(got.Variables) != 2*n {
		t.Fatalf("%d variables, want %d", len(got.Variables), 2*n)
	}
}
