package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mgclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mg "github.com/mark3labs/mcp-go/mcp"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs "mcptasks serve" on a free loopback port and returns its
// endpoint URL; stop ends it as SIGINT would and returns its error.
func startServe(t *testing.T, args ...string) (url string, logs *syncBuffer, stop func() error) {
	t.Helper()
	url, _, logs, stop = startServeLines(t, args...)
	return url, logs, stop
}

// startServeLines is startServe that also returns the lines serve printed
// before its endpoint's.
func startServeLines(t *testing.T, args ...string) (url string, before []string, logs *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	logs = &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- serveMain(ctx, append([]string{"--addr", "127.0.0.1:0", "--drain", "2s"}, args...), pw, logs)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	re := regexp.MustCompile(`on (http://\S+/mcp), store (\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
			if m[2] != "memory://" && !slices.Contains(args, "--store") {
				t.Errorf("store printed as %q", m[2])
			}
			break
		}
		before = append(before, sc.Text())
	}
	go io.Copy(io.Discard, pr)
	if url == "" {
		cancel()
		t.Fatalf("serve printed no address; err %v; logs:\n%s", <-done, logs)
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(15 * time.Second):
				t.Fatal("serve did not stop")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return url, before, logs, stop
}

func connect(t testing.TB, url, token string) *mgclient.Client {
	t.Helper()
	var opts []transport.StreamableHTTPCOption
	if token != "" {
		opts = append(opts, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	}
	// These tests exercise the 2025-11-25 flow. serve also speaks
	// 2026-07-28, which mcp-go would pick after server/discover, so the
	// client is pinned to the legacy handshake (conformance_test.go covers
	// 2026-07-28).
	tr, err := transport.NewStreamableHTTP(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 these tests are of the 2025-11-25 flow (initialize, a session), which only the legacy-only client speaks
	c := mgclient.NewClient(tr, mgclient.WithLegacyProtocolOnly())
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := mg.InitializeRequest{}
	req.Params.ClientInfo = mg.Implementation{Name: "serve-test", Version: "1"}
	if _, err := c.Initialize(t.Context(), req); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return c
}

func startTask(t *testing.T, c *mgclient.Client, tool string, args map[string]any) string {
	t.Helper()
	resp, err := c.GetTransport().SendRequest(t.Context(), transport.JSONRPCRequest{
		JSONRPC: "2.0", ID: mg.NewRequestId(int64(time.Now().UnixNano())), Method: "tools/call",
		Params: map[string]any{"name": tool, "arguments": args, "task": map[string]any{}},
	})
	if err != nil || resp.Error != nil {
		if resp != nil && resp.Error != nil {
			t.Fatalf("tools/call %s as a task: %d %s", tool, resp.Error.Code, resp.Error.Message)
		}
		t.Fatalf("tools/call %s as a task: %v %+v", tool, err, resp)
	}
	var out struct{ Task mg.Task }
	json.Unmarshal(resp.Result, &out)
	return out.Task.TaskId
}

func TestServeDemoTools(t *testing.T) {
	url, logs, stop := startServe(t)
	c := connect(t, url, "")
	ctx := t.Context()

	tools, err := c.ListTools(ctx, mg.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]mg.TaskSupport{"sleep": "optional", "fail": "optional", "slow_report": "required",
		"ask_user": "optional", "ask_model": "optional",
		// The conformance fixtures (fixtures.go).
		"slow_compute": "optional", "failing_job": "required", "protocol_error_job": "optional",
		"confirm_delete": "optional", "multi_input": "optional", "test_tool_with_task": "required"}
	for _, tool := range tools.Tools {
		if tool.Name == "greet" {
			if tool.Execution != nil {
				t.Errorf("tool greet: execution %+v, want none (forbidden)", tool.Execution)
			}
			continue
		}
		if tool.Execution == nil || tool.Execution.TaskSupport != want[tool.Name] {
			t.Errorf("tool %s: execution %+v, want %s", tool.Name, tool.Execution, want[tool.Name])
		}
		delete(want, tool.Name)
	}
	if len(want) > 0 {
		t.Errorf("tools missing: %v", want)
	}

	id := startTask(t, c, "sleep", map[string]any{"seconds": 0.2})
	res, err := c.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: id}})
	if err != nil || res.Content[0].(mg.TextContent).Text != "slept 0.2 seconds" {
		t.Fatalf("sleep: %+v, %v", res, err)
	}
	id = startTask(t, c, "fail", map[string]any{"message": "no luck"})
	res, err = c.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: id}})
	if err != nil || !res.IsError || res.Content[0].(mg.TextContent).Text != "no luck" {
		t.Fatalf("fail: %+v, %v", res, err)
	}
	if g, _ := c.GetTask(ctx, mg.GetTaskRequest{Params: mg.GetTaskParams{TaskId: id}}); g == nil || g.Status != mg.TaskStatusFailed || g.StatusMessage != "no luck" {
		t.Errorf("failed task: %+v", g)
	}
	if _, err := c.CallTool(ctx, mg.CallToolRequest{Params: mg.CallToolParams{Name: "slow_report", Arguments: map[string]any{}}}); !strings.Contains(strings.ToLower(err.Error()), "method not found") {
		t.Errorf("slow_report without a task: %v", err)
	}
	id = startTask(t, c, "slow_report", map[string]any{"steps": 1, "topic": "tests"})
	res, err = c.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: id}})
	if err != nil || !strings.Contains(res.Content[0].(mg.TextContent).Text, "Report on tests") {
		t.Fatalf("slow_report: %+v, %v", res, err)
	}
	if g, _ := c.GetTask(ctx, mg.GetTaskRequest{Params: mg.GetTaskParams{TaskId: id}}); g == nil || g.Meta == nil || g.Meta.AdditionalFields["report.step"] != float64(1) {
		t.Errorf("slow_report variables in _meta: %+v", g)
	}

	// A task still running at shutdown is drained or failed, never left
	// working, and serve says so in its exit status.
	long := startTask(t, c, "sleep", map[string]any{"seconds": 60})
	var se statusError
	if err := stop(); !errors.As(err, &se) || se.code != exitTasksFailed {
		t.Fatalf("serve: %v, want exit status %d", err, exitTasksFailed)
	}
	out := logs.String()
	for _, want := range []string{"task created", "task finished", "task result retrieved", "owner=session:", "stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, long) || !strings.Contains(out, "server shut down before the task finished") {
		t.Errorf("the long task was not failed at shutdown:\n%s", out)
	}
}

func TestServeTokensAndHostChecks(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens")
	os.WriteFile(file, []byte("# token user\nsecret-b bob\n"), 0o600)
	url, logs, _ := startServe(t, "--token", "alice:secret-a", "--tokens-file", file)

	a := connect(t, url, "secret-a")
	b := connect(t, url, "secret-b")
	id := startTask(t, a, "sleep", map[string]any{"seconds": 0})
	if _, err := a.TaskResult(t.Context(), mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: id}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetTask(t.Context(), mg.GetTaskRequest{Params: mg.GetTaskParams{TaskId: id}}); err == nil {
		t.Error("bob read alice's task")
	}
	if !strings.Contains(logs.String(), "owner=alice") {
		t.Errorf("log lacks the owner:\n%s", logs)
	}

	post := func(host, origin, token string) int {
		req, _ := http.NewRequest("POST", url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if host != "" {
			req.Host = host
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	port := url[strings.LastIndex(url, ":")+1 : strings.LastIndex(url, "/")]
	for _, tc := range []struct {
		name, host, origin, token string
		want                      int
	}{
		{"no token", "", "", "", http.StatusUnauthorized},
		{"bad token", "", "", "nope", http.StatusUnauthorized},
		{"foreign Host", "evil.example:" + port, "", "secret-a", http.StatusForbidden},
		{"foreign Origin", "", "http://evil.example", "secret-a", http.StatusForbidden},
		{"own Origin", "", "http://localhost:" + port, "secret-a", http.StatusOK},
		{"localhost Host", "localhost:" + port, "", "secret-a", http.StatusOK},
	} {
		// A session-less ping gets past the checks and is answered by the SDK
		// (status 200 or a 400 about the missing session): what matters is
		// whether the checks refused it.
		got := post(tc.host, tc.origin, tc.token)
		if tc.want == http.StatusOK {
			if got == http.StatusForbidden || got == http.StatusUnauthorized {
				t.Errorf("%s: refused with %d", tc.name, got)
			}
		} else if got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestServeLogsNoSessionID: without tokens a task's owner is its session,
// whose id is the credential of those tasks; the log carries a stable
// digest of it instead, on every line that names the owner.
func TestServeLogsNoSessionID(t *testing.T) {
	url, logs, stop := startServe(t)
	c := connect(t, url, "")
	sid := c.GetTransport().(*transport.StreamableHTTP).GetSessionId()
	if sid == "" {
		t.Fatal("no session id")
	}
	id := startTask(t, c, "sleep", map[string]any{"seconds": 0})
	if _, err := c.TaskResult(t.Context(), mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: id}}); err != nil {
		t.Fatal(err)
	}
	long := startTask(t, c, "sleep", map[string]any{"seconds": 60})
	if _, err := c.CancelTask(t.Context(), mg.CancelTaskRequest{Params: mg.CancelTaskParams{TaskId: long}}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	sum := sha256.Sum256([]byte(sid))
	want := "owner=session:sha256:" + hex.EncodeToString(sum[:6])
	lines := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, sid) {
			t.Errorf("log line holds the session id: %s", line)
		}
		if strings.Contains(line, "owner=") {
			lines++
			if !strings.Contains(line, want) {
				t.Errorf("log line names the owner otherwise than %s: %s", want, line)
			}
		}
	}
	// created ×2, finished, retrieved, cancelled
	if lines < 5 {
		t.Errorf("%d log lines name the owner, want at least 5:\n%s", lines, out)
	}
}

// TestServeWithoutTokensOwners pins what serve -h and the README say about
// owners without tokens: 2025-11-25 sessions are isolated from each other,
// while every 2026-07-28 client is the one anonymous owner, so a task id
// is enough to read and cancel another client's task, and the task quota
// is shared.
func TestServeWithoutTokensOwners(t *testing.T) {
	url, _, _ := startServe(t)
	ctx := t.Context()

	a, b := connect(t, url, ""), connect(t, url, "")
	id := startTask(t, a, "sleep", map[string]any{"seconds": 60})
	if _, err := b.GetTask(ctx, mg.GetTaskRequest{Params: mg.GetTaskParams{TaskId: id}}); err == nil {
		t.Error("a second session read the first session's task")
	}
	if _, err := b.CancelTask(ctx, mg.CancelTaskRequest{Params: mg.CancelTaskParams{TaskId: id}}); err == nil {
		t.Error("a second session cancelled the first session's task")
	}
	if _, err := a.CancelTask(ctx, mg.CancelTaskRequest{Params: mg.CancelTaskParams{TaskId: id}}); err != nil {
		t.Errorf("the owning session cannot cancel its task: %v", err)
	}

	// 2026-07-28: "client A" starts tasks up to the quota; "client B" (any
	// other request without a token) reads and cancels them, and is out of
	// quota too.
	const quota = 100 // taskstore.Config default MaxActiveTasks (these tasks all keep running)
	var ids []string
	for range quota {
		_, res := modernCall(t, url, "", "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 60}}, "slow_compute")
		if res["error"] != nil {
			t.Fatalf("task %d: %s", len(ids)+1, res["error"])
		}
		ids = append(ids, field[string](t, res["result"], "taskId"))
	}
	_, res := modernCall(t, url, "", "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 60}}, "slow_compute")
	if res["error"] == nil || !strings.Contains(strings.ToLower(string(res["error"])), "quota") {
		t.Errorf("another anonymous client beyond the shared quota: %s %s", res["result"], res["error"])
	}
	_, res = modernCall(t, url, "", "tasks/get", map[string]any{"taskId": ids[0]}, ids[0])
	if s := field[string](t, res["result"], "status"); s != "working" {
		t.Errorf("another anonymous client reads the task: %s %s", res["result"], res["error"])
	}
	for _, id := range ids {
		if _, res := modernCall(t, url, "", "tasks/cancel", map[string]any{"taskId": id}, id); res["error"] != nil {
			t.Fatalf("another anonymous client cancels the task: %s", res["error"])
		}
	}
}

// TestServeMetrics: with --metrics-addr, serve answers /metrics in the
// Prometheus text format on a listener of its own, with what it did: a
// task created and running, one refused by --max-active-tasks.
func TestServeMetrics(t *testing.T) {
	const token = "secret-metrics"
	url, before, _, _ := startServeLines(t, "--metrics-addr", "127.0.0.1:0", "--max-active-tasks", "1", "--token", "alice:"+token)
	var metrics string
	for _, l := range before {
		if m := regexp.MustCompile(`metrics on (http://\S+/metrics)`).FindStringSubmatch(l); m != nil {
			metrics = m[1]
		}
	}
	if metrics == "" {
		t.Fatalf("serve printed no metrics address before its endpoint: %q", before)
	}
	_, res := modernCall(t, url, token, "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 60}}, "slow_compute")
	if res["error"] != nil {
		t.Fatalf("tools/call: %s", res["error"])
	}
	if _, res := modernCall(t, url, token, "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 60}}, "slow_compute"); res["error"] == nil {
		t.Fatal("a second active task was not refused with --max-active-tasks 1")
	}
	resp, err := http.Get(metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, ct)
	}
	for _, want := range []string{
		`mcptasks_tasks_created_total{gen_ai_tool_name="slow_compute",mcp_protocol_version="2026-07-28"} 1`,
		`mcptasks_tasks_running 1`,
		`mcptasks_refusals_total{mcptasks_refusal_reason="quota"} 1`,
		`mcptasks_store_call_duration_seconds_count{mcptasks_store_operation="create",mcptasks_store_outcome="refused"} 1`,
		`mcptasks_feed_up 1`,
		`# TYPE mcp_server_operation_duration_seconds histogram`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics has no line %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}
