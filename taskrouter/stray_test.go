package taskrouter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// unconfirmedBackend stores a create and then reports it failed, as Redis
// with wait_replicas does when no replica confirms the write in time.
// With late set, it reports the create failed at once and stores it a
// moment later, as a server that answers again after a stall runs a
// command its client gave up on.
type unconfirmedBackend struct {
	taskstore.Backend
	fail, late atomic.Bool
}

func (b *unconfirmedBackend) Create(ctx context.Context, rec taskstore.Record, lim taskstore.Limits) error {
	if b.fail.Load() && b.late.Load() {
		time.AfterFunc(300*time.Millisecond, func() { b.Backend.Create(context.Background(), rec, lim) })
		return fmt.Errorf("%w: redis create: the server has stopped answering", taskstore.ErrBackend)
	}
	if err := b.Backend.Create(ctx, rec, lim); err != nil || !b.fail.Load() {
		return err
	}
	return fmt.Errorf("%w: redis create: 0 of the 1 replicas asked for confirmed the write", taskstore.ErrNotDurable)
}

// A create that fails for its caller but was stored holds this replica's
// lease with no run: the replica ends it (StrayMessage) instead of leaving
// it working, and holding a quota slot, until it expires. Its other tasks
// run on. Found by TestRobustnessRedisCluster (wait_replicas=1 while a
// promoted master had no replica yet).
func TestCreateStoredDespiteAnErrorIsEnded(t *testing.T) {
	t.Run("Unconfirmed", func(t *testing.T) { testStray(t, false) })
	// Stored 300 ms after the error: the first searches find nothing.
	t.Run("StoredLater", func(t *testing.T) { testStray(t, true) })
}

func testStray(t *testing.T, late bool) {
	ub := &unconfirmedBackend{Backend: taskstore.NewRuntime(newStore(t, taskstore.Config{})).Backend()}
	ub.late.Store(late)
	store := taskstore.New(ub, taskstore.Config{})
	r := taskrouter.New(store, fastLeases)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		r.Shutdown(ctx) // its one run is failed: it never ends by itself
	})
	block := func(ctx context.Context) taskrouter.Outcome {
		<-ctx.Done()
		return taskrouter.Outcome{Result: json.RawMessage(`{"content":[]}`)}
	}
	live, err := r.Start(t.Context(), taskrouter.StartRequest{Owner: "alice", Method: "tools/call"}, block)
	if err != nil {
		t.Fatal(err)
	}
	ub.fail.Store(true)
	if _, err := r.Start(t.Context(), taskrouter.StartRequest{Owner: "alice", Method: "tools/call"}, block); !errors.Is(err, taskstore.ErrBackend) {
		t.Fatalf("the unconfirmed create answered %v", err)
	}
	ub.fail.Store(false)
	var page *taskstore.Page
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if page, err = store.List(t.Context(), "alice", "", 10); err != nil {
			t.Fatal(err)
		}
		if len(page.Tasks) == 2 || time.Now().After(deadline) {
			break
		}
	}
	if len(page.Tasks) != 2 {
		t.Fatalf("list: %+v, want the two tasks", page)
	}
	var stray string
	for _, task := range page.Tasks {
		if task.Task.TaskID != live.Task.TaskID {
			stray = task.Task.TaskID
		}
	}
	var rec *taskstore.TaskRecord
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if rec, err = store.Get(t.Context(), "alice", stray); err != nil {
			t.Fatal(err)
		}
		if rec.Task.Status != taskstore.StatusWorking || time.Now().After(deadline) {
			break
		}
	}
	if rec.Task.Status != taskstore.StatusFailed || rec.Task.StatusMessage != taskrouter.StrayMessage {
		t.Errorf("the stored task is %s %q, want failed %q", rec.Task.Status, rec.Task.StatusMessage, taskrouter.StrayMessage)
	}
	if got, err := store.Get(t.Context(), "alice", live.Task.TaskID); err != nil || got.Task.Status != taskstore.StatusWorking {
		t.Errorf("the running task: %v %+v, want it working", err, got)
	}
}
