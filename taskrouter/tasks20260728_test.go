package taskrouter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// server20260728 serves the test tools, plus "ask" (asks for one input while
// running, then echoes the answer), to 2026-07-28 and 2025-11-25 clients
// over real HTTP, with bearer tokens (testTokens).
func server20260728(t *testing.T) string {
	t.Helper()
	return server20260728With(t, taskrouter.Options{})
}

func server20260728With(t *testing.T, opts taskrouter.Options) string {
	t.Helper()
	store := newStore(t, taskstore.Config{PollInterval: 20 * time.Millisecond})
	r := taskrouter.New(store, opts)
	s := newMCPServer(t, r, newProbe())
	mcp.AddTool(s, &mcp.Tool{Name: "ask"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
		h := taskrouter.TaskHandle(ctx)
		if h == nil {
			return nil, nil, errors.New("ask runs only as a task")
		}
		got, err := h.AwaitInput(ctx, map[string]any{"name": map[string]any{
			"method": "elicitation/create",
			"params": map[string]any{"message": "your name?", "requestedSchema": map[string]any{"type": "object"}},
		}}, "waiting for a name")
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "answer: " + string(got["name"])}}}, nil, nil
	})
	r.SetTaskSupport("ask", taskrouter.TaskOptional)
	get := func(*http.Request) *mcp.Server { return s }
	authed := auth.RequireBearerToken(func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		if u, ok := testTokens[token]; ok {
			return &auth.TokenInfo{UserID: u, Expiration: time.Now().Add(time.Hour)}, nil
		}
		return nil, auth.ErrInvalidToken
	}, nil)
	hs := httptest.NewServer(r.HTTPHandler(authed(mcp.NewStreamableHTTPHandler(get, nil)), &taskrouter.HTTPOptions{
		Serve20260728: authed(mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{Stateless: true})),
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.Shutdown(ctx)
		hs.CloseClientConnections()
		hs.Close()
	})
	return hs.URL
}

// req20260728 is one 2026-07-28 request.
type req20260728 struct {
	token   string // default tok-alice
	method  string
	params  map[string]any
	noExt   bool           // do not declare the tasks extension
	mcpName *string        // nil: params.taskId for tasks/*, params.name for tools/call
	noName  bool           // send no Mcp-Name header
	caps    map[string]any // more client capabilities (elicitation…)
}

type rpcAnswer struct {
	status int
	result map[string]json.RawMessage
	err    *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	raw []byte
}

func (q req20260728) do(t *testing.T, url string) rpcAnswer {
	t.Helper()
	params := map[string]any{}
	for k, v := range q.params {
		params[k] = v
	}
	caps := map[string]any{}
	for k, v := range q.caps {
		caps[k] = v
	}
	if !q.noExt {
		caps["extensions"] = map[string]any{taskrouter.ExtensionID: map[string]any{}}
	}
	params["_meta"] = map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "test-20260728", "version": "1"},
		"io.modelcontextprotocol/clientCapabilities": caps,
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 3, "method": q.method, "params": params})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", q.method)
	token := q.token
	if token == "" {
		token = "tok-alice"
	}
	req.Header.Set("Authorization", "Bearer "+token)
	name := q.mcpName
	if name == nil {
		for _, k := range []string{"taskId", "name"} {
			if v, ok := q.params[k].(string); ok {
				name = &v
				break
			}
		}
	}
	if name != nil && !q.noName {
		req.Header.Set("Mcp-Name", *name)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if i := bytes.LastIndex(b, []byte("data: ")); i >= 0 {
		b = bytes.TrimSpace(b[i+len("data: "):])
	}
	a := rpcAnswer{status: resp.StatusCode, raw: b}
	var m struct {
		Result map[string]json.RawMessage `json:"result"`
		Error  *struct {
			Code    int             `json:"code"`
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: not JSON-RPC (HTTP %d): %s", q.method, resp.StatusCode, b)
	}
	a.result, a.err = m.Result, m.Error
	return a
}

func (a rpcAnswer) str(t *testing.T, key string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(a.result[key], &s); err != nil {
		t.Fatalf("no string %q in %s", key, a.raw)
	}
	return s
}

func (a rpcAnswer) keys() []string {
	var out []string
	for k := range a.result {
		out = append(out, k)
	}
	return out
}

func mustOK(t *testing.T, a rpcAnswer) rpcAnswer {
	t.Helper()
	if a.err != nil || a.status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", a.status, a.raw)
	}
	return a
}

func wantError20260728(t *testing.T, a rpcAnswer, code int) {
	t.Helper()
	if a.err == nil || a.err.Code != code {
		t.Fatalf("got %s, want error %d", a.raw, code)
	}
}

// awaitStatus polls tasks/get until the task has status want.
func awaitStatus(t *testing.T, url, id, want string) rpcAnswer {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := mustOK(t, req20260728{method: "tasks/get", params: map[string]any{"taskId": id}}.do(t, url))
		if a.str(t, "status") == want {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: status %s, want %s: %s", id, a.str(t, "status"), want, a.raw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func start20260728(t *testing.T, url, tool, text string) string {
	t.Helper()
	a := mustOK(t, req20260728{method: "tools/call", params: map[string]any{"name": tool, "arguments": map[string]any{"text": text}}}.do(t, url))
	if rt := a.str(t, "resultType"); rt != "task" {
		t.Fatalf("tools/call %s: resultType %q, want task: %s", tool, rt, a.raw)
	}
	return a.str(t, "taskId")
}

func Test20260728Gating(t *testing.T) {
	url := server20260728(t)
	id := start20260728(t, url, "echo", "x")

	for _, tc := range []struct {
		name   string
		method string
		params map[string]any
	}{
		{"required tool", "tools/call", map[string]any{"name": "must_task", "arguments": map[string]any{}}},
		{"tasks/get", "tasks/get", map[string]any{"taskId": id}},
		{"tasks/update", "tasks/update", map[string]any{"taskId": id, "inputResponses": map[string]any{}}},
		{"tasks/cancel", "tasks/cancel", map[string]any{"taskId": id}},
	} {
		t.Run(tc.name+" without the extension is -32021", func(t *testing.T) {
			a := req20260728{method: tc.method, params: tc.params, noExt: true}.do(t, url)
			wantError20260728(t, a, taskrouter.CodeMissingRequiredClientCapability)
			var data struct {
				RequiredCapabilities struct {
					Extensions map[string]json.RawMessage `json:"extensions"`
				} `json:"requiredCapabilities"`
			}
			if err := json.Unmarshal(a.err.Data, &data); err != nil || data.RequiredCapabilities.Extensions[taskrouter.ExtensionID] == nil {
				t.Errorf("error data %s does not name the extension", a.err.Data)
			}
		})
	}
	t.Run("optional tool without the extension is a plain call", func(t *testing.T) {
		a := mustOK(t, req20260728{method: "tools/call", params: map[string]any{"name": "echo", "arguments": map[string]any{"text": "p"}}, noExt: true}.do(t, url))
		if a.str(t, "resultType") != "complete" || a.result["taskId"] != nil || a.result["content"] == nil {
			t.Errorf("got %s, want a plain complete result", a.raw)
		}
	})
	t.Run("forbidden tool with the extension is a plain call", func(t *testing.T) {
		a := mustOK(t, req20260728{method: "tools/call", params: map[string]any{"name": "plain", "arguments": map[string]any{"text": "p"}}}.do(t, url))
		if a.str(t, "resultType") != "complete" || a.result["taskId"] != nil {
			t.Errorf("got %s, want a plain complete result", a.raw)
		}
	})
	t.Run("removed methods are -32601", func(t *testing.T) {
		for _, m := range []string{"tasks/result", "tasks/list"} {
			wantError20260728(t, req20260728{method: m, params: map[string]any{"taskId": id}}.do(t, url), -32601)
		}
	})
	t.Run("server/discover advertises the extension, not capabilities.tasks", func(t *testing.T) {
		a := mustOK(t, req20260728{method: "server/discover"}.do(t, url))
		var caps struct {
			Tasks      json.RawMessage            `json:"tasks"`
			Extensions map[string]json.RawMessage `json:"extensions"`
		}
		if err := json.Unmarshal(a.result["capabilities"], &caps); err != nil || caps.Extensions[taskrouter.ExtensionID] == nil || caps.Tasks != nil {
			t.Errorf("capabilities %s", a.result["capabilities"])
		}
	})
}

func Test20260728CreateTaskResultIsFlat(t *testing.T) {
	url := server20260728(t)
	a := mustOK(t, req20260728{method: "tools/call", params: map[string]any{"name": "block", "arguments": map[string]any{}}}.do(t, url))
	for _, k := range []string{"resultType", "taskId", "status", "createdAt", "lastUpdatedAt", "ttlMs", "pollIntervalMs"} {
		if a.result[k] == nil {
			t.Errorf("CreateTaskResult has no %s: %s", k, a.raw)
		}
	}
	for _, k := range []string{"task", "ttl", "pollInterval", "requestState"} {
		if a.result[k] != nil {
			t.Errorf("CreateTaskResult has %s: %s", k, a.raw)
		}
	}
	if a.str(t, "resultType") != "task" || a.str(t, "status") != "working" {
		t.Errorf("got %s", a.raw)
	}
	var ttl, poll float64
	_ = json.Unmarshal(a.result["ttlMs"], &ttl)
	_ = json.Unmarshal(a.result["pollIntervalMs"], &poll)
	if ttl != float64(time.Hour/time.Millisecond) || poll != 20 {
		t.Errorf("ttlMs %v, pollIntervalMs %v; want the store's 3600000 and 20", ttl, poll)
	}
	// Durable before answering: an immediate tasks/get finds it.
	mustOK(t, req20260728{method: "tasks/get", params: map[string]any{"taskId": a.str(t, "taskId")}}.do(t, url))
	mustOK(t, req20260728{method: "tasks/cancel", params: map[string]any{"taskId": a.str(t, "taskId")}}.do(t, url))
}

func Test20260728DetailedTask(t *testing.T) {
	url := server20260728(t)
	t.Run("completed inlines result", func(t *testing.T) {
		a := awaitStatus(t, url, start20260728(t, url, "echo", "hi"), "completed")
		var res struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		}
		if err := json.Unmarshal(a.result["result"], &res); err != nil || len(res.Content) != 1 || res.Content[0].Text != "echo: hi" {
			t.Errorf("result %s", a.result["result"])
		}
		if a.str(t, "resultType") != "complete" || a.result["error"] != nil || a.result["inputRequests"] != nil || a.result["requestState"] != nil {
			t.Errorf("got %s", a.raw)
		}
	})
	t.Run("isError completes with the result", func(t *testing.T) {
		a := awaitStatus(t, url, start20260728(t, url, "fail", "bad input"), "completed")
		var res struct {
			IsError bool `json:"isError"`
		}
		if err := json.Unmarshal(a.result["result"], &res); err != nil || !res.IsError {
			t.Errorf("result %s, want isError", a.result["result"])
		}
	})
	t.Run("JSON-RPC error fails with error", func(t *testing.T) {
		a := awaitStatus(t, url, start20260728(t, url, "rpcerr", ""), "failed")
		var e struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(a.result["error"], &e); err != nil || e.Code != -32042 || e.Message != "custom failure" {
			t.Errorf("error %s", a.result["error"])
		}
		if a.result["result"] != nil {
			t.Errorf("failed task shows a result: %s", a.raw)
		}
	})
	t.Run("input_required inlines inputRequests", func(t *testing.T) {
		id := start20260728(t, url, "ask", "")
		defer func() {
			mustOK(t, req20260728{method: "tasks/cancel", params: map[string]any{"taskId": id}}.do(t, url))
		}()
		a := awaitStatus(t, url, id, "input_required")
		var reqs map[string]struct {
			Method string `json:"method"`
		}
		if err := json.Unmarshal(a.result["inputRequests"], &reqs); err != nil || reqs["name"].Method != "elicitation/create" {
			t.Errorf("inputRequests %s", a.result["inputRequests"])
		}
	})
	t.Run("another owner's task is -32602", func(t *testing.T) {
		id := start20260728(t, url, "echo", "mine")
		wantError20260728(t, req20260728{token: "tok-bob", method: "tasks/get", params: map[string]any{"taskId": id}}.do(t, url), -32602)
		wantError20260728(t, req20260728{token: "tok-bob", method: "tasks/cancel", params: map[string]any{"taskId": id}}.do(t, url), -32602)
	})
	t.Run("unknown task is -32602", func(t *testing.T) {
		wantError20260728(t, req20260728{method: "tasks/get", params: map[string]any{"taskId": "no-such-task"}}.do(t, url), -32602)
	})
}

func Test20260728Update(t *testing.T) {
	url := server20260728(t)
	id := start20260728(t, url, "ask", "")
	awaitStatus(t, url, id, "input_required")

	// An answer to a key that is not pending is acknowledged and ignored.
	a := mustOK(t, req20260728{method: "tasks/update", params: map[string]any{"taskId": id, "inputResponses": map[string]any{"other": 1}}}.do(t, url))
	if diff := cmp.Diff([]string{"resultType"}, a.keys()); diff != "" || a.str(t, "resultType") != "complete" {
		t.Errorf("ack %s (-want +got keys):\n%s", a.raw, diff)
	}
	awaitStatus(t, url, id, "input_required")

	mustOK(t, req20260728{method: "tasks/update", params: map[string]any{"taskId": id, "inputResponses": map[string]any{
		"name": map[string]any{"action": "accept", "content": map[string]any{"name": "Ada"}},
	}}}.do(t, url))
	done := awaitStatus(t, url, id, "completed")
	if !bytes.Contains(done.result["result"], []byte(`Ada`)) {
		t.Errorf("result %s does not carry the answer", done.result["result"])
	}

	// Updating a terminal task is acknowledged; an unknown one is -32602,
	// and so is a missing inputResponses.
	mustOK(t, req20260728{method: "tasks/update", params: map[string]any{"taskId": id, "inputResponses": map[string]any{"name": 1}}}.do(t, url))
	wantError20260728(t, req20260728{method: "tasks/update", params: map[string]any{"taskId": "no-such-task", "inputResponses": map[string]any{}}}.do(t, url), -32602)
	wantError20260728(t, req20260728{method: "tasks/update", params: map[string]any{"taskId": id}}.do(t, url), -32602)
}

func Test20260728CancelIsAnIdempotentAck(t *testing.T) {
	url := server20260728(t)
	id := mustOK(t, req20260728{method: "tools/call", params: map[string]any{"name": "block", "arguments": map[string]any{}}}.do(t, url)).str(t, "taskId")
	for i := range 2 { // the second cancels a terminal task
		a := mustOK(t, req20260728{method: "tasks/cancel", params: map[string]any{"taskId": id}}.do(t, url))
		if string(a.raw) == "" || len(a.result) != 1 || a.str(t, "resultType") != "complete" {
			t.Errorf("cancel #%d: got %s, want exactly {resultType:complete}", i+1, a.raw)
		}
	}
	awaitStatus(t, url, id, "cancelled")
	// A completed task too.
	done := start20260728(t, url, "echo", "x")
	awaitStatus(t, url, done, "completed")
	mustOK(t, req20260728{method: "tasks/cancel", params: map[string]any{"taskId": done}}.do(t, url))
	awaitStatus(t, url, done, "completed") // not undone
	wantError20260728(t, req20260728{method: "tasks/cancel", params: map[string]any{"taskId": "no-such-task"}}.do(t, url), -32602)
}

func Test20260728McpNameHeader(t *testing.T) {
	url := server20260728(t)
	id := start20260728(t, url, "echo", "x")
	empty, wrong := "", "some-other-task"
	for _, method := range []string{"tasks/get", "tasks/update", "tasks/cancel"} {
		params := map[string]any{"taskId": id, "inputResponses": map[string]any{}}
		for _, tc := range []struct {
			name    string
			mcpName *string
		}{{"missing", nil}, {"empty", &empty}, {"different", &wrong}} {
			t.Run(method+" "+tc.name, func(t *testing.T) {
				a := req20260728{method: method, params: params, mcpName: tc.mcpName, noName: tc.mcpName == nil}.do(t, url)
				if a.status != http.StatusBadRequest {
					t.Errorf("HTTP %d, want 400", a.status)
				}
				wantError20260728(t, a, taskrouter.CodeHeaderMismatch)
			})
		}
		t.Run(method+" matching", func(t *testing.T) {
			mustOK(t, req20260728{method: method, params: params}.do(t, url))
		})
	}
}
