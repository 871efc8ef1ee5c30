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

func TestWrapKeepsOptionalInterfaces(t *testing.T) {
	mem, err := mcptasks.OpenBackend(t.Context(), "memory://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	for _, tc := range []struct {
		name                      string
		b                         taskstore.Backend
		feed, getMany, updateMany bool
	}{
		{"memory", mem, true, true, true},
		{"plain", struct{ taskstore.Backend }{mem}, false, false, false},
		{"feed only", feedOnly{mem, mem.(taskstore.Notifier)}, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := callcount.Wrap(tc.b)
			_, feed := w.(taskstore.Notifier)
			_, getMany := w.(taskstore.BatchGetter)
			_, updateMany := w.(taskstore.BatchUpdater)
			if got, want := [3]bool{feed, getMany, updateMany}, [3]bool{tc.feed, tc.getMany, tc.updateMany}; got != want {
				t.Errorf("Notifier, BatchGetter, BatchUpdater: %v, want %v", got, want)
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
	since := c.Snapshot().Sub(before)
	if diff := cmp.Diff(callcount.Counts{"Get": 1, "GetMany": 1, "Heartbeat": 1}, since); diff != "" {
		t.Errorf("counts since the snapshot (-want +got):\n%s", diff)
	}
	if got, want := since.Without("Heartbeat").String(), "2 (Get×1 GetMany×1)"; got != want {
		t.Errorf("String %q, want %q", got, want)
	}
	if got, want := c.Take().String(), "4 (Create×1 Get×1 GetMany×1 Heartbeat×1)"; got != want {
		t.Errorf("Take %q, want %q", got, want)
	}
	if n := c.Take().Total(); n != 0 {
		t.Errorf("%d calls after Take, want 0", n)
	}
}
