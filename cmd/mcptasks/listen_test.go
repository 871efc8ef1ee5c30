package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// listen opens a 2026-07-28 subscriptions/listen stream over HTTP and
// returns its messages, one JSON-RPC message per SSE event, as they come.
func listen(t *testing.T, url, token string, taskIDs []string, declare bool) (status int, msgs <-chan map[string]json.RawMessage) {
	t.Helper()
	caps := map[string]any{}
	if declare {
		caps["extensions"] = map[string]any{"io.modelcontextprotocol/tasks": map[string]any{}}
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 41, "method": "subscriptions/listen", "params": map[string]any{
		"_meta": map[string]any{
			"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
			"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "listen-test", "version": "1"},
			"io.modelcontextprotocol/clientCapabilities": caps,
		},
		"notifications": map[string]any{"taskIds": taskIDs},
	}})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "subscriptions/listen")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan map[string]json.RawMessage, 64)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				if d, ok := strings.CutPrefix(sc.Text(), "{"); ok {
					data = "{" + d // a plain JSON answer
				} else {
					continue
				}
			}
			var m map[string]json.RawMessage
			if json.Unmarshal([]byte(data), &m) == nil {
				out <- m
			}
		}
	}()
	return resp.StatusCode, out
}

func nextMsg(t *testing.T, msgs <-chan map[string]json.RawMessage) map[string]json.RawMessage {
	t.Helper()
	select {
	case m, ok := <-msgs:
		if !ok {
			t.Fatal("listen stream ended early")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message on the listen stream within 10s")
	}
	return nil
}

// TestListenTaskNotifications: a 2026-07-28 client's subscriptions/listen
// with taskIds gets an acknowledgement naming only its own tasks, then
// notifications/tasks (DetailedTask, with the subscription id) until the
// task is terminal, then the graceful end of the stream. Another owner's
// task is neither acknowledged nor reported.
func TestListenTaskNotifications(t *testing.T) {
	url, _, _ := startServe(t, "--token", "alice:secret-a", "--token", "bob:secret-b")
	call := func(token string, seconds float64) string {
		_, res := modernCall(t, url, token, "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": seconds}}, "slow_compute")
		if res["error"] != nil {
			t.Fatalf("tools/call: %s", res["error"])
		}
		return field[string](t, res["result"], "taskId")
	}
	mine := call("secret-a", 0.5)
	theirs := call("secret-b", 0.5)

	status, msgs := listen(t, url, "secret-a", []string{mine, theirs, "no-such-task", mine}, true)
	if status != http.StatusOK {
		t.Fatalf("HTTP %d", status)
	}
	ack := nextMsg(t, msgs)
	if got := field[string](t, json.RawMessage(mustJSON(t, ack)), "method"); got != "notifications/subscriptions/acknowledged" {
		t.Fatalf("first message %s, want the acknowledgement", mustJSON(t, ack))
	}
	var ackParams struct {
		Meta          map[string]any `json:"_meta"`
		Notifications struct {
			TaskIDs []string `json:"taskIds"`
		} `json:"notifications"`
	}
	if err := json.Unmarshal(ack["params"], &ackParams); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{mine}, ackParams.Notifications.TaskIDs); diff != "" {
		t.Errorf("acknowledged taskIds (-want +got):\n%s", diff)
	}
	if ackParams.Meta["io.modelcontextprotocol/subscriptionId"] != float64(41) {
		t.Errorf("ack _meta = %v, want the subscription id 41", ackParams.Meta)
	}
	for k := range ackParams.Meta {
		if strings.HasPrefix(k, "io.mcptasks/") {
			t.Errorf("private _meta key %q leaked into the ack", k)
		}
	}

	var statuses []string
	for {
		m := nextMsg(t, msgs)
		if _, isResponse := m["id"]; isResponse {
			if rt := field[string](t, m["result"], "resultType"); rt != "complete" {
				t.Errorf("listen ended with %s", mustJSON(t, m))
			}
			break
		}
		var method string
		_ = json.Unmarshal(m["method"], &method)
		if method != "notifications/tasks" {
			t.Fatalf("unexpected message on the listen stream: %s", mustJSON(t, m))
		}
		var p struct {
			TaskID     string                     `json:"taskId"`
			Status     string                     `json:"status"`
			ResultType *string                    `json:"resultType"`
			TTLMs      *int64                     `json:"ttlMs"`
			Result     json.RawMessage            `json:"result"`
			Meta       map[string]json.RawMessage `json:"_meta"`
		}
		if err := json.Unmarshal(m["params"], &p); err != nil {
			t.Fatal(err)
		}
		if p.TaskID != mine {
			t.Fatalf("notification for task %q, want only %q", p.TaskID, mine)
		}
		if p.ResultType != nil || p.TTLMs == nil {
			t.Errorf("params not a DetailedTask: %s", m["params"])
		}
		if string(p.Meta["io.modelcontextprotocol/subscriptionId"]) != "41" {
			t.Errorf("notification _meta has no subscription id: %s", m["params"])
		}
		statuses = append(statuses, p.Status)
		if p.Status == "completed" && len(p.Result) == 0 {
			t.Errorf("completed notification without result: %s", m["params"])
		}
	}
	t.Logf("statuses notified: %v", statuses)
	if len(statuses) == 0 || statuses[len(statuses)-1] != "completed" {
		t.Errorf("statuses %v, want them to end with completed", statuses)
	}

	t.Run("extension not declared", func(t *testing.T) {
		_, msgs := listen(t, url, "secret-a", []string{mine}, false)
		m := nextMsg(t, msgs)
		var e struct {
			Code int `json:"code"`
		}
		if err := json.Unmarshal(m["error"], &e); err != nil || e.Code != -32021 {
			t.Errorf("got %s, want error -32021", mustJSON(t, m))
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
