package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	mg "github.com/mark3labs/mcp-go/mcp"
)

// modernCall sends one 2026-07-28 request (stateless: per-request _meta,
// the standard headers) and returns the HTTP status and the decoded
// JSON-RPC response.
func modernCall(t testing.TB, url, token, method string, params map[string]any, name string) (int, map[string]json.RawMessage) {
	t.Helper()
	if params == nil {
		params = map[string]any{}
	}
	req, err := modernRequest(t.Context(), url, token, method, params, name, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, lastJSONRPC(b)
}

// modernRequest builds one 2026-07-28 request: params with the
// per-request _meta (the client's capabilities caps, plus the tasks
// extension) and the standard headers.
func modernRequest(ctx context.Context, url, token, method string, params map[string]any, name string, caps map[string]any) (*http.Request, error) {
	caps["extensions"] = map[string]any{"io.modelcontextprotocol/tasks": map[string]any{}}
	params["_meta"] = map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "both-flows", "version": "1"},
		"io.modelcontextprotocol/clientCapabilities": caps,
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", method)
	if name != "" {
		req.Header.Set("Mcp-Name", name)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, nil
}

// lastJSONRPC decodes an HTTP answer's JSON-RPC message: the body, or an
// SSE answer's last data line; nil when it is not JSON-RPC (such as a
// plain-text 401).
func lastJSONRPC(b []byte) map[string]json.RawMessage {
	if i := bytes.LastIndex(b, []byte("data: ")); i >= 0 {
		b = bytes.TrimSpace(b[i+len("data: "):])
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(b, &out); err != nil {
		return nil
	}
	return out
}

func field[T any](t testing.TB, raw json.RawMessage, key string) T {
	t.Helper()
	var m map[string]json.RawMessage
	var v T
	if err := json.Unmarshal(raw, &m); err != nil || json.Unmarshal(m[key], &v) != nil {
		t.Fatalf("no %s in %s", key, raw)
	}
	return v
}

// TestBothProtocolsOneStore: a 2025-11-25 session and 2026-07-28 requests
// of the same user read and cancel each other's tasks in one store, each on
// its own wire.
func TestBothProtocolsOneStore(t *testing.T) {
	url, _, _ := startServe(t, "--token", "alice:secret-a")
	legacy := connect(t, url, "secret-a")
	ctx := t.Context()

	// A task made by a 2026-07-28 request: the session reads and cancels it.
	_, res := modernCall(t, url, "secret-a", "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 60}}, "slow_compute")
	if res["error"] != nil {
		t.Fatalf("tools/call: %s", res["error"])
	}
	id := field[string](t, res["result"], "taskId")
	if rt := field[string](t, res["result"], "resultType"); rt != "task" {
		t.Fatalf("resultType %q", rt)
	}
	got, err := legacy.GetTask(ctx, mg.GetTaskRequest{Params: mg.GetTaskParams{TaskId: id}})
	if err != nil || got.Status != "working" {
		t.Fatalf("legacy tasks/get of a 2026-07-28 task: %+v %v", got, err)
	}
	if _, err := legacy.CancelTask(ctx, mg.CancelTaskRequest{Params: mg.CancelTaskParams{TaskId: id}}); err != nil {
		t.Fatalf("legacy tasks/cancel: %v", err)
	}
	_, res = modernCall(t, url, "secret-a", "tasks/get", map[string]any{"taskId": id}, id)
	if s := field[string](t, res["result"], "status"); s != "cancelled" {
		t.Fatalf("2026-07-28 tasks/get after a legacy cancel: %s", res["result"])
	}
	// Cancelling again is an acknowledgement on the new wire.
	_, res = modernCall(t, url, "secret-a", "tasks/cancel", map[string]any{"taskId": id}, id)
	if string(res["result"]) != `{"resultType":"complete"}` {
		t.Fatalf("idempotent cancel: %s %s", res["result"], res["error"])
	}

	// A task made by the session: the new wire inlines its result; a tool
	// error (failed in 2025-11-25) shows as completed with isError.
	ok := startTask(t, legacy, "sleep", map[string]any{"seconds": 0})
	bad := startTask(t, legacy, "fail", map[string]any{"message": "no luck"})
	deadline := time.Now().Add(10 * time.Second)
	for _, tc := range []struct {
		id      string
		isError bool
	}{{ok, false}, {bad, true}} {
		for {
			_, res = modernCall(t, url, "secret-a", "tasks/get", map[string]any{"taskId": tc.id}, tc.id)
			if field[string](t, res["result"], "status") != "working" || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if s := field[string](t, res["result"], "status"); s != "completed" {
			t.Fatalf("task %s: status %s in %s", tc.id, s, res["result"])
		}
		result := field[map[string]any](t, res["result"], "result")
		if isErr, _ := result["isError"].(bool); isErr != tc.isError {
			t.Errorf("task %s: result %v, want isError %v", tc.id, result, tc.isError)
		}
	}

	// Another user cannot see it; tasks/result is gone; Mcp-Name is checked.
	if status, res := modernCall(t, url, "", "tasks/get", map[string]any{"taskId": ok}, ok); status != http.StatusUnauthorized {
		t.Errorf("tasks/get without a token: HTTP %d %v", status, res)
	}
	if _, res = modernCall(t, url, "secret-a", "tasks/result", map[string]any{"taskId": ok}, ok); field[int](t, res["error"], "code") != -32601 {
		t.Errorf("tasks/result on the new wire: %s", res["error"])
	}
	status, res := modernCall(t, url, "secret-a", "tasks/get", map[string]any{"taskId": ok}, "")
	if status != http.StatusBadRequest || field[int](t, res["error"], "code") != -32020 {
		t.Errorf("tasks/get without Mcp-Name: HTTP %d %s", status, res["error"])
	}
}
