package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestExampleProgram runs the README's program as a user would (with a
// token, on the memory store): a request without the token is refused, and
// a task made through one session is read and awaited through another
// session of the same user.
func TestExampleProgram(t *testing.T) {
	bin := buildExample(t, "")
	url := startExample(t, bin, "-token", "alice:s3cret")
	testSharedTasks(t, url, url)
}

// buildExample builds this program with tags.
func buildExample(t *testing.T, tags string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "example")
	if out, err := exec.Command("go", "build", "-tags", tags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startExample runs the program on a free loopback port until the test
// ends, and returns its endpoint.
func startExample(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`MCP server on (http://\S+/mcp)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case url := <-found:
		return url
	case <-time.After(30 * time.Second):
		t.Fatal("the example printed no address")
		return ""
	}
}

// post sends one JSON-RPC message and returns the HTTP status, the session
// id header and the JSON-RPC response (the data of the first SSE event, or
// the JSON body).
func post(t *testing.T, url, token, session, body string) (int, string, map[string]json.RawMessage) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	data := string(raw)
	for _, l := range strings.Split(data, "\n") {
		if d, ok := strings.CutPrefix(l, "data: "); ok {
			data = d
			break
		}
	}
	var msg map[string]json.RawMessage
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(data), &msg); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
	}
	return resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), msg
}

// session opens a 2025-11-25 session with token.
func session(t *testing.T, url, token string) string {
	t.Helper()
	code, sid, _ := post(t, url, token, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}`)
	if code != http.StatusOK || sid == "" {
		t.Fatalf("initialize: HTTP %d, session %q", code, sid)
	}
	post(t, url, token, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return sid
}

// testSharedTasks makes a task through a session on a and awaits it
// through another session, of the same user, on b.
func testSharedTasks(t *testing.T, a, b string) {
	if code, _, _ := post(t, a, "", "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}`); code != http.StatusUnauthorized {
		t.Errorf("initialize without a token: HTTP %d, want 401", code)
	}
	sa := session(t, a, "s3cret")
	_, _, res := post(t, a, "s3cret", sa, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"report","arguments":{"topic":"replicas"},"task":{"ttl":60000}}}`)
	var created struct {
		Task struct{ TaskID, Status string }
	}
	if err := json.Unmarshal(res["result"], &created); err != nil || created.Task.TaskID == "" {
		t.Fatalf("tools/call as a task: %s %s", res["result"], res["error"])
	}
	id := created.Task.TaskID

	sb := session(t, b, "s3cret")
	_, _, res = post(t, b, "s3cret", sb, `{"jsonrpc":"2.0","id":3,"method":"tasks/get","params":{"taskId":"`+id+`"}}`)
	if !strings.Contains(string(res["result"]), `"status":"working"`) {
		t.Errorf("tasks/get through the other session: %s %s", res["result"], res["error"])
	}
	_, _, res = post(t, b, "s3cret", sb, `{"jsonrpc":"2.0","id":4,"method":"tasks/result","params":{"taskId":"`+id+`"}}`)
	if !strings.Contains(string(res["result"]), "Report on replicas: all good.") {
		t.Errorf("tasks/result through the other session: %s %s", res["result"], res["error"])
	}
}
