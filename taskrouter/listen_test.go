package taskrouter_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcptasks/mcptasks/taskrouter"
)

// openListen sends a 2026-07-28 subscriptions/listen for taskIDs and
// returns the stream's messages as they arrive.
func openListen(t *testing.T, url, token string, taskIDs []string) <-chan map[string]json.RawMessage {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "sub-1", "method": "subscriptions/listen", "params": map[string]any{
		"_meta": map[string]any{
			"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
			"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "listen", "version": "1"},
			"io.modelcontextprotocol/clientCapabilities": map[string]any{"extensions": map[string]any{taskrouter.ExtensionID: map[string]any{}}},
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
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscriptions/listen: HTTP %d", resp.StatusCode)
	}
	out := make(chan map[string]json.RawMessage, 64)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m map[string]json.RawMessage
				if json.Unmarshal([]byte(data), &m) == nil {
					out <- m
				}
			}
		}
	}()
	return out
}

func recv(t *testing.T, c <-chan map[string]json.RawMessage) map[string]json.RawMessage {
	t.Helper()
	select {
	case m, ok := <-c:
		if !ok {
			t.Fatal("the listen stream ended")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("nothing on the listen stream for 10s")
	}
	return nil
}

type taskNote struct {
	TaskID        string                     `json:"taskId"`
	Status        string                     `json:"status"`
	InputRequests map[string]json.RawMessage `json:"inputRequests"`
	Result        json.RawMessage            `json:"result"`
	Meta          map[string]json.RawMessage `json:"_meta"`
}

// notes reads notifications/tasks until one has status until, and returns
// them; anything else on the stream fails the test.
func notes(t *testing.T, c <-chan map[string]json.RawMessage, until string) []taskNote {
	t.Helper()
	var out []taskNote
	for {
		m := recv(t, c)
		var method string
		_ = json.Unmarshal(m["method"], &method)
		if method != "notifications/tasks" {
			t.Fatalf("unexpected message %s", m)
		}
		var n taskNote
		if err := json.Unmarshal(m["params"], &n); err != nil {
			t.Fatal(err)
		}
		if string(n.Meta["io.modelcontextprotocol/subscriptionId"]) != `"sub-1"` {
			t.Errorf("notification without the subscription id: %s", m["params"])
		}
		out = append(out, n)
		if n.Status == until {
			return out
		}
	}
}

// TestListenFollowsInputRounds: the notifications of a task that asks for
// input carry its inputRequests, and follow it through tasks/update to
// completion; then the listen ends gracefully.
func TestListenFollowsInputRounds(t *testing.T) {
	url := server20260728(t)
	id := start20260728(t, url, "ask", "")
	c := openListen(t, url, "tok-alice", []string{id})

	ack := recv(t, c)
	var ap struct {
		Notifications struct {
			TaskIDs []string `json:"taskIds"`
		} `json:"notifications"`
	}
	if err := json.Unmarshal(ack["params"], &ap); err != nil || !bytes.Contains(ack["method"], []byte("acknowledged")) {
		t.Fatalf("first message %s, want the acknowledgement", ack)
	}
	if diff := cmp.Diff([]string{id}, ap.Notifications.TaskIDs); diff != "" {
		t.Errorf("acknowledged taskIds (-want +got):\n%s", diff)
	}

	asked := notes(t, c, "input_required")
	last := asked[len(asked)-1]
	if last.TaskID != id || last.InputRequests["name"] == nil {
		t.Fatalf("input_required notification %+v has no inputRequests.name", last)
	}
	mustOK(t, req20260728{method: "tasks/update", params: map[string]any{"taskId": id, "inputResponses": map[string]any{
		"name": map[string]any{"action": "accept", "content": map[string]any{"name": "Grace"}},
	}}}.do(t, url))
	done := notes(t, c, "completed")
	if final := done[len(done)-1]; !bytes.Contains(final.Result, []byte("Grace")) {
		t.Errorf("completed notification result %s", final.Result)
	}
	end := recv(t, c)
	if _, ok := end["id"]; !ok || !bytes.Contains(end["result"], []byte(`"complete"`)) {
		t.Errorf("after the last task: %s, want the listen's complete answer", end)
	}
}

// TestListenOnlyOwnTasks: another owner's task, or an unknown one, is not
// acknowledged and not reported; with nothing left the listen ends at once.
func TestListenOnlyOwnTasks(t *testing.T) {
	url := server20260728(t)
	alices := start20260728(t, url, "block", "")
	c := openListen(t, url, "tok-bob", []string{alices, "no-such-task"})
	ack := recv(t, c)
	var ap struct {
		Notifications struct {
			TaskIDs []string `json:"taskIds"`
		} `json:"notifications"`
	}
	if err := json.Unmarshal(ack["params"], &ap); err != nil || ap.Notifications.TaskIDs == nil || len(ap.Notifications.TaskIDs) != 0 {
		t.Errorf("ack %s, want taskIds []", ack["params"])
	}
	end := recv(t, c)
	if _, ok := end["id"]; !ok {
		t.Errorf("got %s, want the listen's answer", end)
	}
	mustOK(t, req20260728{method: "tasks/cancel", params: map[string]any{"taskId": alices}}.do(t, url))
}

// Listen streams count toward Options.MaxWaitsPerOwner with blocked
// tasks/result calls: a caller cannot hold more than that many watching
// goroutines on a replica, and a slot frees when a stream ends.
func TestListenStreamsBounded(t *testing.T) {
	url := server20260728With(t, taskrouter.Options{MaxWaitsPerOwner: 2})
	id := start20260728(t, url, "block", "")
	for range 2 {
		recv(t, openListen(t, url, "tok-alice", []string{id})) // the ack: it watches now
	}
	c := openListen(t, url, "tok-alice", []string{id})
	m := recv(t, c)
	var refused struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(mustJSON(t, m), &refused); refused.Error == nil || refused.Error.Code != -32603 ||
		!strings.Contains(refused.Error.Message, "at most 2 tasks/result calls and listen streams at once") {
		t.Fatalf("third listen stream: %s, want -32603 too many waits", mustJSON(t, m))
	}
	// Another caller has slots of its own.
	recv(t, openListen(t, url, "tok-bob", []string{"x"}))
	// Once the watched task ends, the streams end and free their slots.
	mustOK(t, req20260728{method: "tasks/cancel", params: map[string]any{"taskId": id}}.do(t, url))
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := recv(t, openListen(t, url, "tok-alice", []string{id}))
		if _, refused := m["error"]; !refused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("listen slots still taken 10s after the watched task ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
