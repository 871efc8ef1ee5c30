package taskrouter_test

// Hostile clients over real HTTP: what an unauthenticated or malicious
// client can make the HTTP edge hold, and what it can make the rewriter
// carry.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// rawPost posts body (with the bearer token, none when "") and returns the
// status and the body of the answer (the last SSE data line, if SSE).
func rawPost(t *testing.T, url, token, sid string, body []byte, header map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
	for k, v := range header {
		req.Header.Set(k, v)
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
	return resp.StatusCode, b
}

// stalledPost sends the headers of a POST with a body of size bytes, waits
// for the server to start reading it (its 100 Continue: the body's budget
// is held by then), sends a few bytes of it and leaves the connection open.
func stalledPost(t *testing.T, base string, size int) (net.Conn, *bufio.Reader) {
	t.Helper()
	u, _ := url.Parse(base)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", u.Host, size)
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "100") {
		t.Fatalf("stalled body: %q, %v; want 100 Continue", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // the blank line
		t.Fatal(err)
	}
	fmt.Fprint(c, `{"jsonrpc"`)
	return c, br
}

// createdTask returns the task id of a CreateTaskResult.
func createdTask(t *testing.T, res json.RawMessage) string {
	t.Helper()
	var created struct {
		Task struct {
			TaskID string `json:"taskId"`
		} `json:"task"`
	}
	if err := json.Unmarshal(res, &created); err != nil || created.Task.TaskID == "" {
		t.Fatalf("not a CreateTaskResult: %s", res)
	}
	return created.Task.TaskID
}

func TestHostileBodiesAreBoundedBeforeAuthentication(t *testing.T) {
	const limit = 1 << 20
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{edge: &taskrouter.HTTPOptions{
		MaxBodyBytes:     limit,
		MaxBufferedBytes: 2*limit + limit/2, // two bodies of the limit fit, not three
		BodyTimeout:      time.Second,
	}})
	big := bytes.Repeat([]byte(" "), limit-100)
	big = append(append([]byte(`{"jsonrpc":"2.0","id":1,"method":"ping"`), big...), '}')

	t.Run("a body above the limit is 413, unread", func(t *testing.T) {
		status, _ := rawPost(t, rep.URL, "", "", append(big, bytes.Repeat([]byte(" "), 200)...), nil)
		if status != http.StatusRequestEntityTooLarge {
			t.Errorf("HTTP %d, want 413", status)
		}
	})
	t.Run("unauthenticated bodies within the budget are answered 401", func(t *testing.T) {
		if status, _ := rawPost(t, rep.URL, "", "", big, nil); status != http.StatusUnauthorized {
			t.Errorf("HTTP %d, want 401", status)
		}
	})
	t.Run("stalled bodies hold the budget, the next body is 503, the stalled ones are cut", func(t *testing.T) {
		a, ar := stalledPost(t, rep.URL, limit)
		b, br := stalledPost(t, rep.URL, limit)
		if status, _ := rawPost(t, rep.URL, "", "", big, nil); status != http.StatusServiceUnavailable {
			t.Errorf("a third body while two stall: HTTP %d, want 503", status)
		}
		for _, c := range []struct {
			conn net.Conn
			r    *bufio.Reader
		}{{a, ar}, {b, br}} {
			c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(c.r, nil)
			if err != nil {
				t.Fatalf("stalled body: %v", err)
			}
			if resp.StatusCode != http.StatusRequestTimeout {
				t.Errorf("stalled body: HTTP %d, want 408", resp.StatusCode)
			}
		}
		// The budget is free again.
		if status, _ := rawPost(t, rep.URL, "", "", big, nil); status != http.StatusUnauthorized {
			t.Errorf("after the stalled bodies: HTTP %d, want 401", status)
		}
	})
}

// The body deadline ends with the body: a tasks/result that waits longer
// than BodyTimeout, and the session's SSE stream, are not cut.
func TestHostileBodyDeadlineIsLiftedAfterTheBody(t *testing.T) {
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{edge: &taskrouter.HTTPOptions{BodyTimeout: 200 * time.Millisecond}})
	s := newRawSession(t, rep.URL+"/mcp", &http.Client{Transport: bearer{"tok-alice"}})
	res, err := s.call("tools/call", map[string]any{"name": "sleep", "arguments": map[string]any{"ms": 1000}, "task": map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	created := createdTask(t, res)
	res, err = s.call("tasks/result", map[string]any{"taskId": created})
	if err != nil {
		t.Fatalf("tasks/result waiting longer than the body deadline: %v", err)
	}
	if !containsText(res, "slept 1000ms") {
		t.Errorf("tasks/result %s", res)
	}
}

// The rewriter carries what it does not move byte for byte: a body full of
// characters that JSON encoders escape for HTML is not inflated past the
// SDK's limit, and strings arrive as sent.
func TestHostileRewriterDoesNotInflate(t *testing.T) {
	const limit = 1 << 20
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{
		stream: &mcp.StreamableHTTPOptions{MaxRequestBodyBytes: limit},
		edge:   &taskrouter.HTTPOptions{MaxBodyBytes: limit},
	})
	s := newRawSession(t, rep.URL+"/mcp", &http.Client{Transport: bearer{"tok-alice"}})
	text := `<b>&amp;</b> \ "quoted" ` + "\u2028"
	pad := strings.Repeat("<>&", (limit-4096)/3) // 6x as \u003c… : far above the limit
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": map[string]any{
		"name": "echo", "arguments": map[string]any{"text": text}, "task": map[string]any{}, "_meta": map[string]any{"pad": pad}}})
	status, b := rawPost(t, rep.URL+"/mcp", "tok-alice", s.sid, buf.Bytes(), nil)
	var r rpcResponse
	if status != http.StatusOK || json.Unmarshal(b, &r) != nil || r.Error != nil {
		t.Fatalf("task call of %d bytes under a %d byte limit: HTTP %d %.200s", buf.Len(), limit, status, b)
	}
	res := r.Result
	created := createdTask(t, res)
	res, err := s.call("tasks/result", map[string]any{"taskId": created})
	if err != nil || !containsText(res, "echo: "+text) {
		t.Errorf("tasks/result %s, %v; want the text as sent", res, err)
	}
}

// A private key cannot be smuggled in a duplicated key (decoders disagree
// about which duplicate wins): such a message is refused. Keys in another
// letter case are other keys, for the SDK as for the rewriter, and change
// nothing.
func TestHostileDuplicateAndCaseKeys(t *testing.T) {
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	s := newRawSession(t, rep.URL+"/mcp", &http.Client{Transport: bearer{"tok-alice"}})
	res, err := s.call("tools/call", map[string]any{"name": "echo", "arguments": echoArgs, "task": map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	created := createdTask(t, res)
	id := created
	forged := `{"io.mcptasks/edge":{"protocol":"2026-07-28"}}`
	for name, body := range map[string]string{
		"params._meta twice": `{"jsonrpc":"2.0","id":9,"method":"tasks/get","params":{"taskId":"` + id + `","_meta":` + forged + `,"_meta":{}}}`,
		"params twice":       `{"jsonrpc":"2.0","id":9,"method":"tasks/get","params":{"taskId":"` + id + `"},"params":{"taskId":"` + id + `","_meta":` + forged + `}}`,
		"a _meta key twice":  `{"jsonrpc":"2.0","id":9,"method":"tasks/get","params":{"taskId":"` + id + `","_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`,
		"escaped duplicate":  `{"jsonrpc":"2.0","id":9,"method":"tasks/get","params":{"taskId":"` + id + `","_meta":{},"\u005fmeta":` + forged + `}}`,
	} {
		t.Run(name, func(t *testing.T) {
			status, b := rawPost(t, rep.URL+"/mcp", "tok-alice", s.sid, []byte(body), nil)
			var r rpcResponse
			if status != http.StatusBadRequest || json.Unmarshal(b, &r) != nil || r.Error == nil || r.Error.Code != -32600 {
				t.Errorf("HTTP %d %s, want 400 with -32600", status, b)
			}
		})
	}
	t.Run("private keys in any case are dropped; 2025-11-25 stays 2025-11-25", func(t *testing.T) {
		body := `{"jsonrpc":"2.0","id":9,"method":"tasks/get","params":{"taskId":"` + id + `","_meta":{"IO.MCPTASKS/edge":{"protocol":"2026-07-28"},"io.mcptasks/edge":{"protocol":"2026-07-28"}},"_META":` + forged + `}}`
		status, b := rawPost(t, rep.URL+"/mcp", "tok-alice", s.sid, []byte(body), nil)
		var r rpcResponse
		if status != http.StatusOK || json.Unmarshal(b, &r) != nil || r.Error != nil {
			t.Fatalf("HTTP %d %s", status, b)
		}
		var task map[string]json.RawMessage
		json.Unmarshal(r.Result, &task)
		if _, flat := task["ttl"]; !flat || task["resultType"] != nil {
			t.Errorf("answered %s, want the 2025-11-25 Task", r.Result)
		}
	})
}
