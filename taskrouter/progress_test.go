package taskrouter_test

// End-to-end tests with github.com/mark3labs/mcp-go's client, a client this
// project did not write, over real HTTP on loopback.

import (
	"encoding/json"
	"testing"
	"time"

	mg "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcptasks/mcptasks/taskstore"
)

// Progress notifications stop once the task is terminal, even when the
// handler goes on sending them.
func TestMCPGoNoProgressAfterCancel(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	c := newMGClient(t, rep.URL, "tok-alice", "2025-11-25")
	time.Sleep(100 * time.Millisecond) // listening stream
	resp := c.raw(ctx, "tools/call", map[string]any{
		"name": "chatty", "arguments": map[string]any{}, "task": map[string]any{},
		"_meta": map[string]any{"progressToken": "chat"},
	})
	if resp.Error != nil {
		t.Fatal(resp.Error)
	}
	var created struct{ Task mg.Task }
	json.Unmarshal(resp.Result, &created)
	if _, ok := c.waitNotification("notifications/progress", func(n mg.JSONRPCNotification) bool {
		return n.Params.AdditionalFields["progress"] == float64(3)
	}); !ok {
		t.Fatal("no progress before the cancel")
	}
	if _, err := c.CancelTask(ctx, mg.CancelTaskRequest{Params: mg.CancelTaskParams{TaskId: created.Task.TaskId}}); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, rep.probe.Stopped(created.Task.TaskId), "handler stop")
	time.Sleep(100 * time.Millisecond)
	for _, n := range c.notifications("notifications/progress") {
		if p, _ := n.Params.AdditionalFields["progress"].(float64); p >= 996 {
			t.Errorf("progress %v reached the client after the task was cancelled", p)
		}
	}
}
