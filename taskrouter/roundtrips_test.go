package taskrouter_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mg "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

// countingBackend counts backend calls: each is one round trip to the
// storage server on a remote backend.
type countingBackend struct {
	taskstore.Backend
	mu sync.Mutex
	n  map[string]int
}

func (c *countingBackend) count(op string) {
	c.mu.Lock()
	c.n[op]++
	c.mu.Unlock()
}

func (c *countingBackend) take() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	total := 0
	for _, op := range []string{"Create", "Get", "Update", "List", "Delete"} {
		if c.n[op] > 0 {
			parts = append(parts, fmt.Sprintf("%s×%d", op, c.n[op]))
			total += c.n[op]
		}
	}
	c.n = map[string]int{}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, " "))
}

func (c *countingBackend) Create(ctx context.Context, rec taskstore.Record, lim taskstore.Limits) error {
	c.count("Create")
	return c.Backend.Create(ctx, rec, lim)
}

func (c *countingBackend) Get(ctx context.Context, owner, id string) (taskstore.Record, error) {
	c.count("Get")
	return c.Backend.Get(ctx, owner, id)
}

func (c *countingBackend) Update(ctx context.Context, rec taskstore.Record, v uint64) (uint64, error) {
	c.count("Update")
	return c.Backend.Update(ctx, rec, v)
}

func (c *countingBackend) List(ctx context.Context, owner, after string, limit int) ([]taskstore.Record, bool, error) {
	c.count("List")
	return c.Backend.List(ctx, owner, after, limit)
}

func (c *countingBackend) Delete(ctx context.Context, owner, id string) (bool, error) {
	c.count("Delete")
	return c.Backend.Delete(ctx, owner, id)
}

// TestBackendRoundTripsPerMethod pins how many backend calls each MCP
// method costs (the same on every backend: the Store makes the calls).
func TestBackendRoundTripsPerMethod(t *testing.T) {
	ctx := t.Context()
	b, err := mcptasks.OpenBackend(ctx, "memory://")
	if err != nil {
		t.Fatal(err)
	}
	cb := &countingBackend{Backend: b, n: map[string]int{}}
	store := taskstore.New(cb, taskstore.Config{PollInterval: time.Hour})
	t.Cleanup(func() { store.Close() })
	rep := newReplica(t, store, replicaOptions{})
	c := newMGClient(t, rep.URL, "tok-alice", "2025-11-25")
	idle := func() {
		for rep.router.Running() > 0 {
			time.Sleep(time.Millisecond)
		}
	}

	cb.take()
	task := c.callTask(ctx, "echo", map[string]any{"text": "x"}, map[string]any{})
	idle()
	created := cb.take()
	getTask(ctx, t, c, task.TaskId)
	get := cb.take()
	if _, err := c.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: task.TaskId}}); err != nil {
		t.Fatal(err)
	}
	result := cb.take()
	if _, err := c.ListTasksByPage(ctx, mg.ListTasksRequest{}); err != nil {
		t.Fatal(err)
	}
	list := cb.take()
	bt := c.callTask(ctx, "block", map[string]any{}, map[string]any{})
	waitClosed(t, rep.probe.Started(bt.TaskId), "start")
	cb.take()
	if _, err := c.CancelTask(ctx, mg.CancelTaskRequest{Params: mg.CancelTaskParams{TaskId: bt.TaskId}}); err != nil {
		t.Fatal(err)
	}
	idle() // the handler returns and its run ends
	cancel := cb.take()

	for _, row := range []struct{ what, got, want string }{
		// The run's handle starts from the created record: its end is one CAS.
		{"tools/call as a task, with its run to completion", created, "2 (Create×1 Update×1)"},
		{"tasks/get", get, "1 (Get×1)"},
		{"tasks/result (terminal task)", result, "1 (Get×1)"},
		{"tasks/list (one page)", list, "1 (List×1)"},
		{"tasks/cancel, with the run it stops", cancel, "2 (Get×1 Update×1)"},
	} {
		t.Logf("%-50s %s", row.what, row.got)
		if row.got != row.want {
			t.Errorf("%s: %s backend calls, want %s", row.what, row.got, row.want)
		}
	}
	t.Log("while running: 1 Get per pollInterval per running task (cancel watch); a blocked tasks/result: 1 Get per pollInterval")
}
