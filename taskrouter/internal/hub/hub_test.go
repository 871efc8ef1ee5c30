package hub

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

func woken(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func rec(owner, id string, version uint64) *taskstore.TaskRecord {
	return &taskstore.TaskRecord{Task: taskstore.Task{TaskID: id}, OwnerID: owner, Version: version}
}

func TestChangedWakesWaitersNotRuns(t *testing.T) {
	h := New(10)
	wait, run, other := h.Watch("t1"), h.WatchStore("t1"), h.Watch("t2")
	listen, stop := h.Listen()
	defer stop()
	end := rec("alice", "t1", 3)
	h.Changed("t1", end)
	if !woken(wait.C) || woken(run.C) || woken(other.C) || !woken(listen) {
		t.Fatal("a local change must wake the task's waiters and the listeners, not its run nor other tasks")
	}
	if got := h.End(wait); got != end {
		t.Fatalf("End = %v, want the record handed over", got)
	}
	h.changed("t1", nil, true, 0) // as the feed does
	if !woken(wait.C) || !woken(run.C) || woken(other.C) {
		t.Fatal("a change in the store must wake every watch of the task")
	}
	h.ChangedAll()
	if !woken(wait.C) || !woken(run.C) || !woken(other.C) || !woken(listen) {
		t.Fatal("ChangedAll must wake everything")
	}
	h.Unwatch(wait)
	h.Unwatch(run)
	h.Unwatch(other)
	if len(h.watches) != 0 {
		t.Fatalf("%d tasks still watched after Unwatch", len(h.watches))
	}
}

// Fed tells a run the version the feed brought, or 0 when it must read:
// a change without a version, a resync.
func TestFed(t *testing.T) {
	h := New(10)
	run := h.WatchStore("t1")
	h.changed("t1", nil, true, 5)
	h.changed("t1", nil, true, 6)
	if v, fed := h.Fed(run); !woken(run.C) || !fed || v != 6 {
		t.Fatalf("versions 5 and 6 on the feed: Fed = %d, %v; want 6", v, fed)
	}
	if v, fed := h.Fed(run); fed || v != 0 {
		t.Fatalf("Fed must forget what it looked at: %d, %v", v, fed)
	}
	h.changed("t1", nil, true, 7)
	h.changed("t1", nil, true, 0) // a delete
	if v, fed := h.Fed(run); !fed || v != 0 {
		t.Fatalf("a change without a version: Fed = %d, %v; want 0, true", v, fed)
	}
	h.ChangedAll()
	if v, fed := h.Fed(run); !fed || v != 0 {
		t.Fatalf("a resync: Fed = %d, %v; want 0, true", v, fed)
	}
}

func TestPollOnceWakesWhatMoved(t *testing.T) {
	h := New(10)
	unseen := h.Watch("t0") // not yet read: not polled
	same, moved, gone := h.Watch("t1"), h.WatchStore("t2"), h.Watch("t3")
	h.Seen(same, rec("alice", "t1", 1), time.Nanosecond)
	h.Seen(moved, rec("alice", "t2", 1), time.Nanosecond)
	h.Seen(gone, rec("bob", "t3", 5), time.Nanosecond)
	var asked []taskstore.Key
	versions := func(_ context.Context, keys []taskstore.Key) (map[taskstore.Key]uint64, error) {
		asked = keys
		return map[taskstore.Key]uint64{{Owner: "alice", TaskID: "t1"}: 1, {Owner: "alice", TaskID: "t2"}: 2}, nil
	}
	time.Sleep(time.Millisecond)
	h.PollOnce(t.Context(), time.Second, versions)
	if len(asked) != 3 {
		t.Fatalf("asked for %v, want the three seen tasks in one batch", asked)
	}
	if woken(unseen.C) || woken(same.C) || !woken(moved.C) || !woken(gone.C) {
		t.Fatal("the poller must wake exactly the watches whose version moved or whose task is gone")
	}
	// A failed read wakes nothing; the next round tries again.
	time.Sleep(time.Millisecond)
	h.PollOnce(t.Context(), time.Second, func(context.Context, []taskstore.Key) (map[taskstore.Key]uint64, error) {
		return nil, errors.New("store down")
	})
	if woken(moved.C) || woken(gone.C) {
		t.Fatal("a failed poll must wake nothing")
	}
}

func TestHoldWaitBound(t *testing.T) {
	h := New(2)
	r1, err1 := h.HoldWait("alice", "x")
	_, err2 := h.HoldWait("alice", "x")
	_, err3 := h.HoldWait("alice", "poll instead")
	if err1 != nil || err2 != nil || err3 == nil {
		t.Fatalf("errors %v %v %v: want the third wait refused", err1, err2, err3)
	}
	var rpc *taskstore.RPCError
	if !errors.As(err3, &rpc) || rpc.Code != taskstore.CodeInternalError {
		t.Fatalf("refusal %v: want a -32603 RPCError", err3)
	}
	if _, err := h.HoldWait("bob", "x"); err != nil {
		t.Fatalf("another owner's wait refused: %v", err)
	}
	r1()
	if _, err := h.HoldWait("alice", "x"); err != nil {
		t.Fatalf("released wait not counted back: %v", err)
	}
}

// notifier is a change feed driven by the test.
type notifier struct{ changes chan taskstore.Change }

func (n notifier) Subscribe(ctx context.Context, fn func(taskstore.Change)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c, ok := <-n.changes:
			if !ok {
				return errors.New("feed dropped")
			}
			fn(c)
		}
	}
}

func TestFeed(t *testing.T) {
	h := New(10)
	run := h.WatchStore("t1")
	n := notifier{changes: make(chan taskstore.Change)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	var states []bool // what Feed told of the feed's state
	go func() {
		defer close(done)
		h.Feed(ctx, n, slog.New(slog.NewTextHandler(io.Discard, nil)), func(up bool) { states = append(states, up) })
	}()
	n.changes <- taskstore.Change{Resync: true}
	<-run.C // the (re)subscription wakes everything
	if !h.Pushing() {
		t.Fatal("feed up but Pushing is false")
	}
	n.changes <- taskstore.Change{Resync: true} // up still: not told again
	<-run.C
	n.changes <- taskstore.Change{TaskID: "t1"}
	<-run.C
	cancel()
	<-done
	if h.Pushing() {
		t.Fatal("feed ended but Pushing is true")
	}
	if len(states) != 2 || !states[0] || states[1] {
		t.Fatalf("feed states told: %v, want [true false]", states)
	}
}
