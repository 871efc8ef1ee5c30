package taskrouter_test

// End-to-end tests with github.com/mark3labs/mcp-go's client, a client this
// project did not write, over real HTTP on loopback.

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mgclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mg "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

type mgClient struct {
	*mgclient.Client
	t     testing.TB
	id    atomic.Int64
	mu    sync.Mutex
	notes []mg.JSONRPCNotification
	note  chan struct{} // signalled on each notification
}

// newMGClient connects an mcp-go client to url with the bearer token (none
// when ""), listening for server notifications on the standalone stream.
func newMGClient(t testing.TB, url, token, protocol string) *mgClient {
	t.Helper()
	// The notifications these tests watch (tasks/status, progress) come on
	// the 2025-11-25 standalone GET stream, which 2026-07-28 removed; that
	// protocol's subscriptions/listen is tested in listen_test.go.
	//lint:ignore SA1019 the tests speak the 2025-11-25 protocol on purpose and need its GET stream
	opts := []transport.StreamableHTTPCOption{transport.WithContinuousListening()}
	if token != "" {
		opts = append(opts, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	}
	c, err := mgclient.NewStreamableHttpClient(url+"/mcp", opts...)
	if err != nil {
		t.Fatal(err)
	}
	mc := &mgClient{Client: c, t: t, note: make(chan struct{}, 1000)}
	c.OnNotification(func(n mg.JSONRPCNotification) {
		mc.mu.Lock()
		mc.notes = append(mc.notes, n)
		mc.mu.Unlock()
		mc.note <- struct{}{}
	})
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := mg.InitializeRequest{}
	req.Params.ProtocolVersion = protocol
	req.Params.ClientInfo = mg.Implementation{Name: "mcp-go-test", Version: "1"}
	if _, err := c.Initialize(ctx, req); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return mc
}

// raw sends one request through the client's transport and returns the
// JSON-RPC response as it came.
func (c *mgClient) raw(ctx context.Context, method string, params any) *transport.JSONRPCResponse {
	c.t.Helper()
	resp, err := c.GetTransport().SendRequest(ctx, transport.JSONRPCRequest{
		JSONRPC: "2.0", ID: mg.NewRequestId(1000 + c.id.Add(1)), Method: method, Params: params,
	})
	if err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	return resp
}

// callTask sends a task-augmented tools/call through the transport (the
// client's CallTool cannot parse a CreateTaskResult in v1.2.1).
func (c *mgClient) callTask(ctx context.Context, tool string, args any, task map[string]any) mg.Task {
	c.t.Helper()
	resp := c.raw(ctx, "tools/call", map[string]any{"name": tool, "arguments": args, "task": task})
	if resp.Error != nil {
		c.t.Fatalf("tools/call %s as a task: %d %s", tool, resp.Error.Code, resp.Error.Message)
	}
	var out struct {
		Task map[string]json.RawMessage `json:"task"`
	}
	if err := json.Unmarshal(resp.Result, &out); err != nil {
		c.t.Fatalf("CreateTaskResult: %v in %s", err, resp.Result)
	}
	if _, ok := out.Task["ttl"]; !ok {
		c.t.Errorf("CreateTaskResult task has no ttl: %s", resp.Result)
	}
	var task2 struct {
		Task mg.Task `json:"task"`
	}
	if err := json.Unmarshal(resp.Result, &task2); err != nil {
		c.t.Fatal(err)
	}
	return task2.Task
}

// wantCode asserts a JSON-RPC error code.
func wantCode(t testing.TB, what string, resp *transport.JSONRPCResponse, code int) {
	t.Helper()
	if resp.Error == nil {
		t.Errorf("%s: got result %s, want error %d", what, resp.Result, code)
		return
	}
	if resp.Error.Code != code {
		t.Errorf("%s: got error %d %q, want code %d", what, resp.Error.Code, resp.Error.Message, code)
	}
}

func (c *mgClient) notifications(method string) []mg.JSONRPCNotification {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []mg.JSONRPCNotification
	for _, n := range c.notes {
		if n.Method == method {
			out = append(out, n)
		}
	}
	return out
}

// waitNotification waits until pred holds for some notification.
func (c *mgClient) waitNotification(method string, pred func(mg.JSONRPCNotification) bool) (mg.JSONRPCNotification, bool) {
	deadline := time.After(5 * time.Second)
	for {
		for _, n := range c.notifications(method) {
			if pred(n) {
				return n, true
			}
		}
		select {
		case <-c.note:
		case <-deadline:
			return mg.JSONRPCNotification{}, false
		}
	}
}

func getTask(ctx context.Context, t testing.TB, c *mgClient, id string) *mg.GetTaskResult {
	t.Helper()
	res, err := c.GetTask(ctx, mg.GetTaskRequest{Params: mg.GetTaskParams{TaskId: id}})
	if err != nil {
		t.Fatalf("tasks/get: %v", err)
	}
	return res
}

func TestMCPGoRoundTrip(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	c := newMGClient(t, rep.URL, "tok-alice", "2025-11-25")

	caps := c.GetServerCapabilities()
	if caps.Tasks == nil || caps.Tasks.List == nil || caps.Tasks.Cancel == nil || caps.Tasks.Requests == nil ||
		caps.Tasks.Requests.Tools == nil || caps.Tasks.Requests.Tools.Call == nil {
		t.Fatalf("capabilities.tasks incomplete: %+v", caps.Tasks)
	}
	tools, err := c.ListTools(ctx, mg.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	support := map[string]string{}
	for _, tool := range tools.Tools {
		if tool.Execution != nil {
			support[tool.Name] = string(tool.Execution.TaskSupport)
		}
	}
	for name, want := range map[string]string{"echo": "optional", "must_task": "required", "plain": ""} {
		if support[name] != want {
			t.Errorf("tool %s: execution.taskSupport %q, want %q", name, support[name], want)
		}
	}

	// A plain call of an optional tool still works.
	plain, err := c.CallTool(ctx, mg.CallToolRequest{Params: mg.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "now"}}})
	if err != nil || len(plain.Content) != 1 || plain.Content[0].(mg.TextContent).Text != "echo: now" {
		t.Fatalf("plain call: %+v, %v", plain, err)
	}

	task := c.callTask(ctx, "echo", map[string]any{"text": "hi"}, map[string]any{"ttl": 60000})
	if task.Status != mg.TaskStatusWorking || task.TTL == nil || *task.TTL != 60000 || task.PollInterval == nil {
		t.Fatalf("created task: %+v", task)
	}
	res, err := c.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: task.TaskId}})
	if err != nil {
		t.Fatalf("tasks/result: %v", err)
	}
	if len(res.Content) != 1 || res.Content[0].(mg.TextContent).Text != "echo: hi" {
		t.Errorf("tasks/result content: %+v", res.Content)
	}
	if rel, _ := res.Meta.AdditionalFields[taskrouter.RelatedTaskKey].(map[string]any); rel["taskId"] != task.TaskId {
		t.Errorf("tasks/result _meta related-task: %+v", res.Meta)
	}
	got := getTask(ctx, t, c, task.TaskId)
	if got.Status != mg.TaskStatusCompleted || got.TaskId != task.TaskId {
		t.Errorf("tasks/get after completion: %+v", got)
	}
	waited, err := c.WaitForTask(ctx, mg.GetTaskRequest{Params: mg.GetTaskParams{TaskId: task.TaskId}}, 10*time.Millisecond)
	if err != nil || waited.Status != mg.TaskStatusCompleted {
		t.Errorf("WaitForTask: %+v, %v", waited, err)
	}
	list, err := c.ListTasks(ctx, mg.ListTasksRequest{})
	if err != nil || len(list.Tasks) != 1 || list.Tasks[0].TaskId != task.TaskId {
		t.Errorf("tasks/list: %+v, %v", list, err)
	}

	// The required tool runs as a task and sees its handle.
	rt := c.callTask(ctx, "must_task", map[string]any{"text": "x"}, map[string]any{})
	res, err = c.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: rt.TaskId}})
	if err != nil || res.Content[0].(mg.TextContent).Text != "task: x" {
		t.Errorf("required tool as a task: %+v, %v", res, err)
	}
	// Variables set through the handle show in tasks/get _meta; the handler
	// sees the owner.
	vt := c.callTask(ctx, "vars", map[string]any{"text": "v1"}, map[string]any{})
	res, err = c.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: vt.TaskId}})
	if err != nil || res.Content[0].(mg.TextContent).Text != "vars: v1 owner: alice" {
		t.Errorf("vars tool: %+v, %v", res, err)
	}
	if g := getTask(ctx, t, c, vt.TaskId); g.Meta == nil || g.Meta.AdditionalFields["seen"] != "v1" {
		t.Errorf("tasks/get _meta lacks the variable: %+v", g.Meta)
	}
}

func TestMCPGoErrorCodes(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{MaxActiveTasks: 5}), replicaOptions{})
	c := newMGClient(t, rep.URL, "tok-alice", "2025-11-25")
	done := c.callTask(ctx, "echo", map[string]any{"text": "x"}, map[string]any{})
	if _, err := c.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: done.TaskId}}); err != nil {
		t.Fatal(err)
	}
	missing := "0000000000000000-00000000000000000000000000000000"
	for _, tc := range []struct {
		name   string
		method string
		params any
		code   int
	}{
		{"get unknown id", "tasks/get", map[string]any{"taskId": missing}, -32602},
		{"get malformed id", "tasks/get", map[string]any{"taskId": "nope"}, -32602},
		{"get no id", "tasks/get", map[string]any{}, -32602},
		{"result unknown id", "tasks/result", map[string]any{"taskId": missing}, -32602},
		{"cancel unknown id", "tasks/cancel", map[string]any{"taskId": missing}, -32602},
		{"cancel terminal task", "tasks/cancel", map[string]any{"taskId": done.TaskId}, -32602},
		{"list bad cursor", "tasks/list", map[string]any{"cursor": "not-a-cursor"}, -32602},
		{"forbidden tool as task", "tools/call", map[string]any{"name": "plain", "arguments": map[string]any{}, "task": map[string]any{}}, -32601},
		{"unknown tool as task", "tools/call", map[string]any{"name": "nosuch", "task": map[string]any{}}, -32601},
		{"required tool without task", "tools/call", map[string]any{"name": "must_task", "arguments": map[string]any{}}, -32601},
		{"ttl above maximum", "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{}, "task": map[string]any{"ttl": 25 * 3600 * 1000}}, -32602},
		{"negative ttl", "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{}, "task": map[string]any{"ttl": -5}}, -32602},
		{"task not an object", "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{}, "task": 7}, -32602},
		{"unknown method", "server/nosuch", map[string]any{}, -32601},
		{"server/discover probe", "server/discover", map[string]any{}, -32601},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.name, c.raw(ctx, tc.method, tc.params), tc.code)
		})
	}

	t.Run("cancel terminal message", func(t *testing.T) {
		resp := c.raw(ctx, "tasks/cancel", map[string]any{"taskId": done.TaskId})
		if resp.Error == nil || !strings.Contains(resp.Error.Message, "completed") {
			t.Errorf("got %+v", resp.Error)
		}
	})
	t.Run("quota is internal error", func(t *testing.T) {
		// The quota counts active tasks: 5 blocked ones fill it, finished ones do not.
		for range 5 {
			tk := c.callTask(ctx, "block", map[string]any{}, map[string]any{})
			defer c.raw(ctx, "tasks/cancel", map[string]any{"taskId": tk.TaskId})
		}
		resp := c.raw(ctx, "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{}, "task": map[string]any{}})
		wantCode(t, "over quota", resp, -32603)
		if !strings.Contains(resp.Error.Message, "wait for a running task to finish") {
			t.Errorf("the quota error does not say what to do: %q", resp.Error.Message)
		}
	})
}

func TestMCPGoOutcomes(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	c := newMGClient(t, rep.URL, "tok-alice", "2025-11-25")

	t.Run("isError fails the task and replays the result", func(t *testing.T) {
		task := c.callTask(ctx, "fail", map[string]any{"text": "disk on fire"}, map[string]any{})
		res, err := c.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: task.TaskId}})
		if err != nil || !res.IsError || res.Content[0].(mg.TextContent).Text != "disk on fire" {
			t.Fatalf("tasks/result: %+v, %v", res, err)
		}
		g := getTask(ctx, t, c, task.TaskId)
		if g.Status != mg.TaskStatusFailed || g.StatusMessage != "disk on fire" {
			t.Errorf("tasks/get: %+v", g)
		}
	})
	t.Run("JSON-RPC error is stored and replayed", func(t *testing.T) {
		task := c.callTask(ctx, "rpcerr", map[string]any{}, map[string]any{})
		resp := c.raw(ctx, "tasks/result", map[string]any{"taskId": task.TaskId})
		if resp.Error == nil || resp.Error.Code != -32042 || resp.Error.Message != "custom failure" {
			t.Fatalf("tasks/result: %+v", resp)
		}
		if b, _ := json.Marshal(resp.Error.Data); string(b) != `{"why":"testing"}` {
			t.Errorf("error data %s", b)
		}
		if g := getTask(ctx, t, c, task.TaskId); g.Status != mg.TaskStatusFailed || g.StatusMessage != "custom failure" {
			t.Errorf("tasks/get: %+v", g)
		}
	})
	t.Run("bad arguments surface as the tool's own error", func(t *testing.T) {
		task := c.callTask(ctx, "sleep", map[string]any{"ms": "not a number"}, map[string]any{})
		g, err := c.WaitForTask(ctx, mg.GetTaskRequest{Params: mg.GetTaskParams{TaskId: task.TaskId}}, 10*time.Millisecond)
		if err != nil || g.Status != mg.TaskStatusFailed {
			t.Fatalf("got %+v, %v", g, err)
		}
		// What a plain call answers is what tasks/result replays.
		plainResp := c.raw(ctx, "tools/call", map[string]any{"name": "sleep", "arguments": map[string]any{"ms": "not a number"}})
		resp := c.raw(ctx, "tasks/result", map[string]any{"taskId": task.TaskId})
		if (plainResp.Error == nil) != (resp.Error == nil) {
			t.Errorf("plain call answered %+v, tasks/result %+v", plainResp, resp)
		}
	})
	t.Run("panic fails the task", func(t *testing.T) {
		task := c.callTask(ctx, "boom", map[string]any{}, map[string]any{})
		resp := c.raw(ctx, "tasks/result", map[string]any{"taskId": task.TaskId})
		if resp.Error == nil || resp.Error.Code != -32603 || !strings.Contains(resp.Error.Message, "panicked") {
			t.Fatalf("tasks/result: %+v", resp)
		}
		if g := getTask(ctx, t, c, task.TaskId); g.Status != mg.TaskStatusFailed {
			t.Errorf("tasks/get: %+v", g)
		}
	})
	t.Run("pollInterval requested is honoured and stored", func(t *testing.T) {
		task := c.callTask(ctx, "echo", map[string]any{}, map[string]any{"pollInterval": 1234})
		if task.PollInterval == nil || *task.PollInterval != 1234 {
			t.Errorf("created: %+v", task.PollInterval)
		}
		if g := getTask(ctx, t, c, task.TaskId); g.PollInterval == nil || *g.PollInterval != 1234 {
			t.Errorf("tasks/get: %+v", g.PollInterval)
		}
	})
	t.Run("ttl omitted takes the default", func(t *testing.T) {
		task := c.callTask(ctx, "echo", map[string]any{}, map[string]any{})
		if task.TTL == nil || *task.TTL != int64(time.Hour/time.Millisecond) {
			t.Errorf("ttl %v", task.TTL)
		}
	})
}

func TestMCPGoResultBlocksAndCancel(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	c := newMGClient(t, rep.URL, "tok-alice", "2025-11-25")

	t.Run("result blocks until terminal", func(t *testing.T) {
		task := c.callTask(ctx, "sleep", map[string]any{"ms": 300}, map[string]any{})
		start := time.Now()
		res, err := c.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: task.TaskId}})
		if err != nil || res.Content[0].(mg.TextContent).Text != "slept 300ms" {
			t.Fatalf("%+v, %v", res, err)
		}
		if el := time.Since(start); el < 250*time.Millisecond {
			t.Errorf("tasks/result returned after %v, before the task ended", el)
		}
	})
	t.Run("result honours the caller's cancellation", func(t *testing.T) {
		task := c.callTask(ctx, "block", map[string]any{}, map[string]any{})
		waitClosed(t, rep.probe.Started(task.TaskId), "handler start")
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := c.TaskResult(cctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: task.TaskId}})
		if err == nil {
			t.Fatal("tasks/result returned for a working task")
		}
		if _, err := c.CancelTask(ctx, mg.CancelTaskRequest{Params: mg.CancelTaskParams{TaskId: task.TaskId}}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("cancel marks cancelled and stops the handler", func(t *testing.T) {
		task := c.callTask(ctx, "block", map[string]any{}, map[string]any{})
		waitClosed(t, rep.probe.Started(task.TaskId), "handler start")
		// A tasks/result blocked meanwhile wakes with the cancellation.
		resultErr := make(chan *transport.JSONRPCResponse, 1)
		go func() { resultErr <- c.raw(ctx, "tasks/result", map[string]any{"taskId": task.TaskId}) }()
		res, err := c.CancelTask(ctx, mg.CancelTaskRequest{Params: mg.CancelTaskParams{TaskId: task.TaskId}})
		if err != nil || res.Status != mg.TaskStatusCancelled {
			t.Fatalf("tasks/cancel: %+v, %v", res, err)
		}
		waitClosed(t, rep.probe.Stopped(task.TaskId), "handler stop after cancel")
		select {
		case resp := <-resultErr:
			wantCode(t, "tasks/result of a cancelled task", resp, -32603)
		case <-time.After(5 * time.Second):
			t.Fatal("blocked tasks/result did not wake on cancel")
		}
		// The handler returned a result after the cancel: the task stays cancelled.
		time.Sleep(50 * time.Millisecond)
		if g := getTask(ctx, t, c, task.TaskId); g.Status != mg.TaskStatusCancelled {
			t.Errorf("after the handler returned: %+v", g)
		}
		_, err = c.CancelTask(ctx, mg.CancelTaskRequest{Params: mg.CancelTaskParams{TaskId: task.TaskId}})
		if !errors.Is(err, mg.ErrInvalidParams) {
			t.Errorf("second cancel: %v, want invalid params", err)
		}
	})
}

func TestMCPGoNotifications(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	alice := newMGClient(t, rep.URL, "tok-alice", "2025-11-25")
	bob := newMGClient(t, rep.URL, "tok-bob", "2025-11-25")
	time.Sleep(100 * time.Millisecond) // let the listening GET streams open

	// Progress on the original token, marked with the related task.
	resp := alice.raw(ctx, "tools/call", map[string]any{
		"name": "sleep", "arguments": map[string]any{"ms": 200}, "task": map[string]any{},
		"_meta": map[string]any{"progressToken": "p-1"},
	})
	if resp.Error != nil {
		t.Fatal(resp.Error)
	}
	var created struct{ Task mg.Task }
	json.Unmarshal(resp.Result, &created)
	id := created.Task.TaskId

	status, ok := alice.waitNotification("notifications/tasks/status", func(n mg.JSONRPCNotification) bool {
		return n.Params.AdditionalFields["taskId"] == id && n.Params.AdditionalFields["status"] == "completed"
	})
	if !ok {
		t.Fatalf("no notifications/tasks/status for %s; got %+v", id, alice.notifications("notifications/tasks/status"))
	}
	if _, has := status.Params.AdditionalFields["ttl"]; !has {
		t.Errorf("status notification without ttl: %+v", status.Params)
	}
	progress := alice.notifications("notifications/progress")
	if len(progress) == 0 || len(progress) > 4 {
		t.Errorf("got %d progress notifications, want 1..4", len(progress))
	}
	for _, p := range progress {
		if p.Params.AdditionalFields["progressToken"] != "p-1" {
			t.Errorf("progress on token %v", p.Params.AdditionalFields["progressToken"])
		}
		if rel, _ := p.Params.Meta[taskrouter.RelatedTaskKey].(map[string]any); rel["taskId"] != id {
			t.Errorf("progress without related-task: %+v", p.Params.Meta)
		}
	}
	// Cancel notifies too.
	bt := alice.callTask(ctx, "block", map[string]any{}, map[string]any{})
	waitClosed(t, rep.probe.Started(bt.TaskId), "start")
	if _, err := alice.CancelTask(ctx, mg.CancelTaskRequest{Params: mg.CancelTaskParams{TaskId: bt.TaskId}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := alice.waitNotification("notifications/tasks/status", func(n mg.JSONRPCNotification) bool {
		return n.Params.AdditionalFields["taskId"] == bt.TaskId && n.Params.AdditionalFields["status"] == "cancelled"
	}); !ok {
		t.Error("no status notification for the cancel")
	}
	// Only the owner hears about its tasks.
	time.Sleep(100 * time.Millisecond)
	if n := bob.notifications("notifications/tasks/status"); len(n) != 0 {
		t.Errorf("bob got alice's status notifications: %+v", n)
	}
	if n := bob.notifications("notifications/progress"); len(n) != 0 {
		t.Errorf("bob got alice's progress: %+v", n)
	}
	// Nothing leaks the stand-in form.
	for _, n := range alice.notifications("notifications/progress") {
		if _, bad := n.Params.Meta["io.mcptasks/status"]; bad {
			t.Errorf("stand-in status notification reached the client: %+v", n)
		}
	}
}
