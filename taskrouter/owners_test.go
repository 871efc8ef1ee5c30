package taskrouter_test

// End-to-end tests with github.com/mark3labs/mcp-go's client, a client this
// project did not write, over real HTTP on loopback.

import (
	"net/http"
	"strings"
	"testing"

	mg "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Owner isolation, through an independent client (mcp-go): another owner's
// task answers exactly like a missing one.

func TestMCPGoOwnerIsolation(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	alice := newMGClient(t, rep.URL, "tok-alice", "2025-11-25")
	bob := newMGClient(t, rep.URL, "tok-bob", "2025-11-25")

	task := alice.callTask(ctx, "block", map[string]any{}, map[string]any{})
	waitClosed(t, rep.probe.Started(task.TaskId), "start")
	for _, m := range []string{"tasks/get", "tasks/result", "tasks/cancel"} {
		resp := bob.raw(ctx, m, map[string]any{"taskId": task.TaskId})
		wantCode(t, "bob "+m, resp, -32602)
		if resp.Error != nil && resp.Error.Message != "task not found" {
			t.Errorf("bob %s: message %q, want the same as for a missing task", m, resp.Error.Message)
		}
	}
	if l, err := bob.ListTasks(ctx, mg.ListTasksRequest{}); err != nil || len(l.Tasks) != 0 {
		t.Errorf("bob's list: %+v, %v", l, err)
	}
	if l, err := alice.ListTasks(ctx, mg.ListTasksRequest{}); err != nil || len(l.Tasks) != 1 {
		t.Errorf("alice's list: %+v, %v", l, err)
	}
	if g := getTask(ctx, t, alice, task.TaskId); g.Status != mg.TaskStatusWorking {
		t.Errorf("bob's attempts changed alice's task: %+v", g)
	}
	alice.CancelTask(ctx, mg.CancelTaskRequest{Params: mg.CancelTaskParams{TaskId: task.TaskId}})

	// No token, or a bad one: refused before MCP.
	for _, tok := range []string{"", "tok-mallory"} {
		req, _ := http.NewRequest("POST", rep.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tasks/list"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("token %q: status %d, want 401", tok, resp.StatusCode)
		}
	}
}

// Without auth, tasks bind to the session (SessionOwner); anonymous
// requests are refused unless the store allows them.
func TestMCPGoSessionOwners(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{noAuth: true, opts: taskrouter.Options{Owner: taskrouter.SessionOwner}})
	a := newMGClient(t, rep.URL, "", "2025-11-25")
	b := newMGClient(t, rep.URL, "", "") // probes with server/discover, then falls back to initialize
	if _, err := b.ListTools(ctx, mg.ListToolsRequest{}); err != nil {
		t.Fatalf("after the server/discover probe: %v", err)
	}
	task := a.callTask(ctx, "echo", map[string]any{"text": "s"}, map[string]any{})
	if _, err := a.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: task.TaskId}}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "other session", b.raw(ctx, "tasks/get", map[string]any{"taskId": task.TaskId}), -32602)

	anon := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{noAuth: true})
	c := newMGClient(t, anon.URL, "", "2025-11-25")
	resp := c.raw(ctx, "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{}, "task": map[string]any{}})
	wantCode(t, "anonymous refused", resp, -32602)
	if resp.Error != nil && !strings.Contains(resp.Error.Message, "anonymous") {
		t.Errorf("message %q", resp.Error.Message)
	}
	anonOK := newReplica(t, newStore(t, taskstore.Config{AllowAnonymous: true}), replicaOptions{noAuth: true})
	d := newMGClient(t, anonOK.URL, "", "2025-11-25")
	d.callTask(ctx, "echo", map[string]any{}, map[string]any{})
}
