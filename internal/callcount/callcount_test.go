package callcount_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/internal/callcount"
	"github.com/mcptasks/mcptasks/taskstore"
)

// feedOnly has a backend's change feed and none of its batch calls.
type feedOnly struct {
	taskstore.Backend
	taskstore.Notifier
}

// statusOnly has a backend's status index and nothing else optional.
type statusOnly struct {
	taskstore.Backend
	taskstore.StatusIndex
}

func TestWrapKeepsOptionalInterfaces(t *testing.T) {
	mem, err := mcptasks.OpenBackend(t.Context(), "memory://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	for _, tc := range []struct {
		name string
		b    taskstore.Backend
		want [4]bool // Notifier, BatchGetter, BatchUpdater, StatusIndex
	}{
		{"memory", mem, [4]bool{true, true, true, true}},
		{"plain", struct{ taskstore.Backend }{mem}, [4]bool{}},
		{"feed only", feedOnly{mem, mem.(taskstore.Notifier)}, [4]bool{true, false, false, false}},
		{"status index only", statusOnly{mem, mem.(taskstore.StatusIndex)}, [4]bool{false, false, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := callcount.Wrap(tc.b)
			_, feed := w.(taskstore.Notifier)
			_, getMany := w.(taskstore.BatchGetter)
			_, updateMany := w.(taskstore.BatchUpdater)
			_, statusIndex := w.(taskstore.StatusIndex)
			if got := [4]bool{feed, getMany, updateMany, statusIndex}; got != tc.want {
				t.Errorf("Notifier, BatchGetter, BatchUpdater, StatusIndex: %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCounts(t *testing.T) {
	ctx := t.Context()
	mem, err := mcptasks.OpenBackend(ctx, "memory://")
	if err != nil {
		t.Fatal(err)
	}
	b, c := callcount.Wrap(mem)
	s := taskstore.New(b, taskstore.Config{PollInterval: time.Hour})
	t.Cleanup(func() { s.Close() })
	rec, err := s.Create(ctx, "alice", taskstore.CreateRequest{RequestMethod: "tools/call"})
	if err != nil {
		t.Fatal(err)
	}
	before := c.Snapshot()
	if _, err := s.Get(ctx, "alice", rec.Task.TaskID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.(taskstore.BatchGetter).GetMany(ctx, []taskstore.Key{{Owner: "alice", TaskID: rec.Task.TaskID}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Heartbeat(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	rt := taskstore.NewRuntime(s)
	if p, err := rt.ListAllOwners(ctx, taskstore.ListFilter{Status: taskstore.StatusWorking}, "", 10); err != nil || len(p.Tasks) != 1 {
		t.Fatalf("ListAllOwners through the wrapper: %v, %v", p, err)
	}
	if n, err := rt.CountByStatus(ctx); err != nil || n[taskstore.StatusWorking] != 1 {
		t.Fatalf("CountByStatus through the wrapper: %v, %v", n, err)
	}
	since := c.Snapshot().Sub(before)
	if diff := cmp.Diff(callcount.Counts{"Get": 1, "GetMany": 1, "Heartbeat": 1, "ListByStatus": 1, "CountByStatus": 1}, since); diff != "" {
		t.Errorf("counts since the snapshot (-want +got):\n%s", diff)
	}
	if got, want := since.Without("Heartbeat").String(), "4 (Get×1 GetMany×1 ListByStatus×1 CountByStatus×1)"; got != want {
		t.Errorf("String %q, want %q", got, want)
	}
	if got, want := c.Take().String(), "6 (Create×1 Get×1 GetMany×1 Heartbeat×1 ListByStatus×1 CountByStatus×1)"; got != want {
		t.Errorf("Take %q, want %q", got, want)
	}
	if n := c.Take().Total(); n != 0 {
		t.Errorf("%d calls after Take, want 0", n)
	}
}
