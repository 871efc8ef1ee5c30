package taskrouter_test

import (
	"context"
	"testing"
	"time"

	mg "github.com/mark3labs/mcp-go/mcp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/internal/callcount"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// methodCalls are the counts of the backend calls the Store makes for MCP
// methods (not the lease keeper's), as "2 (Create×1 Update×1)".
func methodCalls(c *callcount.Counter) string {
	return c.Take().Only("Create", "Get", "Update", "List", "Delete").String()
}

// TestBackendRoundTripsPerMethod pins how many backend calls each MCP
// method costs (the same on every backend: the Store makes the calls).
func TestBackendRoundTripsPerMethod(t *testing.T) {
	ctx := t.Context()
	b, err := mcptasks.OpenBackend(ctx, "memory://")
	if err != nil {
		t.Fatal(err)
	}
	// The backend alone, without its change feed and batch reads: the
	// Store's own calls (with an hour-long poll interval, no watch is
	// polled during the test).
	cb, calls := callcount.Wrap(struct{ taskstore.Backend }{b})
	store := taskstore.New(cb, taskstore.Config{PollInterval: time.Hour})
	t.Cleanup(func() { store.Close() })
	rep := newReplica(t, store, replicaOptions{})
	c := newMGClient(t, rep.URL, "tok-alice", "2025-11-25")
	idle := func() {
		for rep.router.Running() > 0 {
			time.Sleep(time.Millisecond)
		}
	}

	methodCalls(calls)
	task := c.callTask(ctx, "echo", map[string]any{"text": "x"}, map[string]any{})
	idle()
	created := methodCalls(calls)
	getTask(ctx, t, c, task.TaskId)
	get := methodCalls(calls)
	if _, err := c.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: task.TaskId}}); err != nil {
		t.Fatal(err)
	}
	result := methodCalls(calls)
	if _, err := c.ListTasksByPage(ctx, mg.ListTasksRequest{}); err != nil {
		t.Fatal(err)
	}
	list := methodCalls(calls)
	bt := c.callTask(ctx, "block", map[string]any{}, map[string]any{})
	waitClosed(t, rep.probe.Started(bt.TaskId), "start")
	methodCalls(calls)
	if _, err := c.CancelTask(ctx, mg.CancelTaskRequest{Params: mg.CancelTaskParams{TaskId: bt.TaskId}}); err != nil {
		t.Fatal(err)
	}
	idle() // the handler returns and its run ends
	cancel := methodCalls(calls)

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

// TestCheckpointRoundTrips: an uncontended checkpoint of a running task
// (Handle.SetVariables) is one backend call on every backend: the run
// knows its own write when it comes back on the change feed, and does not
// read it again. (Without a feed the poller reads each watched task's
// version once per poll interval, however many checkpoints, and a version
// the run wrote itself is not read again either: hub's TestFed. The long
// interval here keeps those reads out of the count.)
func TestCheckpointRoundTrips(t *testing.T) {
	const checkpoints = 20
	for _, be := range sharedBackends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			cfg := taskstore.Config{PollInterval: time.Hour}
			opened, _ := be.open(t, cfg)
			b, calls := callcount.Wrap(taskstore.NewRuntime(opened).Backend())
			store := taskstore.New(b, cfg)
			rep := newReplica(t, store, replicaOptions{userSuffix: randomSuffix()})
			gate, done := make(chan struct{}), make(chan struct{})
			mcp.AddTool(rep.server, &mcp.Tool{Name: "checkpoints"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
				h := taskrouter.TaskHandle(ctx)
				<-gate
				for i := range checkpoints {
					if err := h.SetVariables(ctx, map[string]any{"step": i}); err != nil {
						return nil, nil, err
					}
					time.Sleep(20 * time.Millisecond) // the echo comes back in between
				}
				close(done)
				<-ctx.Done()
				return nil, nil, ctx.Err()
			})
			rep.router.SetTaskSupport("checkpoints", taskrouter.TaskOptional)
			c := newMGClient(t, rep.URL, "tok-alice", "2025-11-25")
			task := c.callTask(ctx, "checkpoints", map[string]any{"text": "x"}, map[string]any{})
			time.Sleep(200 * time.Millisecond) // the run and its watch settle
			calls.Take()
			close(gate)
			<-done
			time.Sleep(300 * time.Millisecond) // the last echoes come back
			n := calls.Snapshot()
			updates, gets, polls := n["Update"], n["Get"], n["GetMany"]
			t.Logf("%d checkpoints: %d Update, %d Get, %d GetMany", checkpoints, updates, gets, polls)
			if updates != checkpoints || gets+polls != 0 {
				t.Errorf("%d checkpoints cost %d Update and %d reads, want %d and 0", checkpoints, updates, gets+polls, checkpoints)
			}
			if _, err := c.CancelTask(ctx, mg.CancelTaskRequest{Params: mg.CancelTaskParams{TaskId: task.TaskId}}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A cancel made on another replica between a run's own checkpoints still
// stops it: the run's handle may write on top of the cancelled record
// (variables may still change), and the record it then knows is the
// cancelled one.
func TestCancelUnderCheckpoints(t *testing.T) {
	for _, be := range sharedBackends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			sa, sb := be.open(t, taskstore.Config{PollInterval: 50 * time.Millisecond})
			suffix := randomSuffix()
			rep := newReplica(t, sa, replicaOptions{userSuffix: suffix})
			other := newReplica(t, sb, replicaOptions{userSuffix: suffix})
			started := make(chan string, 10)
			mcp.AddTool(rep.server, &mcp.Tool{Name: "busy"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
				h := taskrouter.TaskHandle(ctx)
				defer close(rep.probe.Stopped(h.ID()))
				started <- h.ID()
				// A checkpoint every millisecond. Without the pause, on a
				// loaded machine the cancel's compare-and-swap lost to the
				// loop 33 times in a row and gave up ("concurrent
				// modification", an error its client sees).
				for i := 0; ctx.Err() == nil; i++ {
					_ = h.SetVariables(context.WithoutCancel(ctx), map[string]any{"step": i})
					time.Sleep(time.Millisecond)
				}
				return nil, nil, ctx.Err()
			})
			rep.router.SetTaskSupport("busy", taskrouter.TaskOptional)
			c := newMGClient(t, rep.URL, "tok-alice", "2025-11-25")
			elsewhere := newMGClient(t, other.URL, "tok-alice", "2025-11-25")
			for range 5 {
				task := c.callTask(ctx, "busy", map[string]any{"text": "x"}, map[string]any{})
				<-started
				time.Sleep(20 * time.Millisecond)
				if _, err := elsewhere.CancelTask(ctx, mg.CancelTaskRequest{Params: mg.CancelTaskParams{TaskId: task.TaskId}}); err != nil {
					t.Fatal(err)
				}
				waitClosed(t, rep.probe.Stopped(task.TaskId), "the busy handler to stop after its cancel")
			}
		})
	}
}
