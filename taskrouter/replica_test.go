package taskrouter_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	mg "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

// A sharedBackend gives two stores over one backend, as two replicas of a
// service would have.
type sharedBackend struct {
	name string
	open func(t *testing.T, cfg taskstore.Config) (a, b *taskstore.Store)
}

// sharedBackends lists the backends the replica tests run on; files built
// with a backend's tag add theirs.
var sharedBackends = []sharedBackend{{
	name: "memory",
	open: func(t *testing.T, cfg taskstore.Config) (*taskstore.Store, *taskstore.Store) {
		s := newStore(t, cfg) // one in-process store shared by two servers
		return s, s
	},
}, {
	// The same without a change feed or batch reads: the replicas poll.
	name: "memory-polled",
	open: func(t *testing.T, cfg taskstore.Config) (*taskstore.Store, *taskstore.Store) {
		b := plainBackend{mcptasks.NewMemoryBackend(0)}
		s := taskstore.New(b, cfg)
		t.Cleanup(func() { s.Close() })
		return s, s
	},
}}

// plainBackend hides every optional interface of its backend (the change
// feed, batch reads), as a backend without them would be.
type plainBackend struct{ taskstore.Backend }

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return "-" + hex.EncodeToString(b[:])
}

// Two replicas share one store: a task created on A is read, awaited and
// cancelled through B, and A's handler stops.
func TestTwoReplicas(t *testing.T) {
	for _, be := range sharedBackends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			poll := 100 * time.Millisecond
			sa, sb := be.open(t, taskstore.Config{PollInterval: poll})
			// Fresh users per run: a shared server may hold earlier runs' tasks.
			suffix := randomSuffix()
			ra := newReplica(t, sa, replicaOptions{userSuffix: suffix})
			rb := newReplica(t, sb, replicaOptions{userSuffix: suffix})
			onA := newMGClient(t, ra.URL, "tok-alice", "2025-11-25")
			onB := newMGClient(t, rb.URL, "tok-alice", "2025-11-25")
			bobB := newMGClient(t, rb.URL, "tok-bob", "2025-11-25")
			time.Sleep(100 * time.Millisecond) // listening streams

			task := onA.callTask(ctx, "block", map[string]any{}, map[string]any{})
			waitClosed(t, ra.probe.Started(task.TaskId), "handler start on A")
			if g := getTask(ctx, t, onB, task.TaskId); g.Status != mg.TaskStatusWorking {
				t.Fatalf("tasks/get on B: %+v", g)
			}
			if l, err := onB.ListTasks(ctx, mg.ListTasksRequest{}); err != nil || len(l.Tasks) != 1 || l.Tasks[0].TaskId != task.TaskId {
				t.Errorf("tasks/list on B: %+v, %v", l, err)
			}
			wantCode(t, "bob on B", bobB.raw(ctx, "tasks/get", map[string]any{"taskId": task.TaskId}), -32602)

			blocked := make(chan int, 1)
			go func() {
				resp := onB.raw(ctx, "tasks/result", map[string]any{"taskId": task.TaskId})
				code := 0
				if resp.Error != nil {
					code = resp.Error.Code
				}
				blocked <- code
			}()
			time.Sleep(50 * time.Millisecond)
			res, err := onB.CancelTask(ctx, mg.CancelTaskRequest{Params: mg.CancelTaskParams{TaskId: task.TaskId}})
			if err != nil || res.Status != mg.TaskStatusCancelled {
				t.Fatalf("tasks/cancel on B: %+v, %v", res, err)
			}
			cancelled := time.Now()
			waitClosed(t, ra.probe.Stopped(task.TaskId), "A's handler to stop after a cancel on B")
			t.Logf("A's handler stopped %v after the cancel on B (pollInterval %v)", time.Since(cancelled).Round(time.Millisecond), poll)
			select {
			case code := <-blocked:
				if code != -32603 {
					t.Errorf("blocked tasks/result on B answered code %d, want -32603 (cancelled)", code)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("tasks/result on B did not wake")
			}
			// A's runner noticed the cancel and told its owner's sessions.
			if _, ok := onA.waitNotification("notifications/tasks/status", func(n mg.JSONRPCNotification) bool {
				return n.Params.AdditionalFields["taskId"] == task.TaskId && n.Params.AdditionalFields["status"] == "cancelled"
			}); !ok {
				t.Error("no status notification on A for the cancel made on B")
			}
			if g := getTask(ctx, t, onA, task.TaskId); g.Status != mg.TaskStatusCancelled {
				t.Errorf("after A's handler returned: %+v", g)
			}

			// tasks/result on B wakes for a task that completes on A.
			t2 := onA.callTask(ctx, "sleep", map[string]any{"ms": 200}, map[string]any{})
			out, err := onB.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: t2.TaskId}})
			if err != nil || out.Content[0].(mg.TextContent).Text != "slept 200ms" {
				t.Fatalf("tasks/result on B: %+v, %v", out, err)
			}
		})
	}
}

// At shutdown, running tasks that do not finish in time are failed, not
// left working; tasks that finish in time complete.
func TestShutdownDrainsOrFails(t *testing.T) {
	ctx := t.Context()
	store := newStore(t, taskstore.Config{})
	rep := newReplica(t, store, replicaOptions{})
	c := newMGClient(t, rep.URL, "tok-alice", "2025-11-25")
	stuck := c.callTask(ctx, "block", map[string]any{}, map[string]any{})
	quick := c.callTask(ctx, "sleep", map[string]any{"ms": 100}, map[string]any{})
	waitClosed(t, rep.probe.Started(stuck.TaskId), "start")

	// The drain window is generous so that a loaded machine still finishes
	// the quick task inside it; the stuck one never finishes.
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := rep.router.Shutdown(sctx); err == nil {
		t.Error("Shutdown reported nothing although a task was still running")
	}
	for id, want := range map[string]taskstore.Status{stuck.TaskId: taskstore.StatusFailed, quick.TaskId: taskstore.StatusCompleted} {
		rec, err := store.Get(ctx, "alice", id)
		if err != nil || rec.Task.Status != want {
			t.Errorf("task %s after shutdown: %+v, %v; want %s", id, rec, err, want)
		}
	}
	resp := c.raw(ctx, "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{}, "task": map[string]any{}})
	wantCode(t, "create after shutdown", resp, -32603)
	waitClosed(t, rep.probe.Stopped(stuck.TaskId), "stuck handler cancelled")
	if n := rep.router.Running(); n != 0 {
		t.Errorf("%d runs left", n)
	}
}
