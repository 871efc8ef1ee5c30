package taskrouter_test

// Benchmarks, run side by side in one process over streamable HTTP on
// loopback, all driven by the same minimal raw JSON-RPC client so that
// only the servers differ:
//
//	mcptasks/roundtrip     augmented tools/call + tasks/result (go-sdk + this package, memory store)
//	gosdk/2-plain-calls    two plain tools/call on the bare go-sdk server (the SDK's own cost)
//	mcptasks/2-plain-calls two plain tools/call with this package installed (overhead on non-task calls)
//	mcpgo/roundtrip        augmented tools/call + tasks/result on mcp-go's own in-memory tasks
//
//	go test -run '^$' -bench . -benchtime 2000x ./taskrouter/

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mgmcp "github.com/mark3labs/mcp-go/mcp"
	mgserver "github.com/mark3labs/mcp-go/server"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// rawSession is one MCP session of a minimal JSON-RPC-over-HTTP client.
type rawSession struct {
	url string
	sid string
	hc  *http.Client
	id  atomic.Int64
	ctx context.Context // of each request; nil: none
}

type rpcResponse struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (s *rawSession) post(body []byte) (*http.Response, error) {
	ctx := s.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	req, err := http.NewRequestWithContext(ctx, "POST", s.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if s.sid != "" {
		req.Header.Set("Mcp-Session-Id", s.sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
	return s.hc.Do(req)
}

func (s *rawSession) call(method string, params any) (json.RawMessage, error) {
	id := s.id.Add(1)
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	resp, err := s.post(body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if s.sid == "" {
		s.sid = resp.Header.Get("Mcp-Session-Id")
	}
	want := []byte(fmt.Sprint(id))
	var r rpcResponse
	found := false
	if ct := resp.Header.Get("Content-Type"); len(ct) >= 17 && ct[:17] == "text/event-stream" {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
			if !ok {
				continue
			}
			r = rpcResponse{}
			if json.Unmarshal(data, &r) == nil && bytes.Equal(r.ID, want) {
				found = true
				break
			}
		}
		io.Copy(io.Discard, resp.Body)
	} else {
		b, _ := io.ReadAll(resp.Body)
		found = json.Unmarshal(b, &r) == nil && bytes.Equal(r.ID, want)
		if !found {
			return nil, fmt.Errorf("%s: HTTP %d: %s", method, resp.StatusCode, b)
		}
	}
	if !found {
		return nil, fmt.Errorf("%s: no response (HTTP %d)", method, resp.StatusCode)
	}
	if r.Error != nil {
		return nil, fmt.Errorf("%s: error %d %s", method, r.Error.Code, r.Error.Message)
	}
	return r.Result, nil
}

func newRawSession(tb testing.TB, url string, hc *http.Client) *rawSession {
	s := &rawSession{url: url, hc: hc}
	if _, err := s.call("initialize", map[string]any{
		"protocolVersion": "2025-11-25", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "bench", "version": "1"},
	}); err != nil {
		tb.Fatal(err)
	}
	resp, err := s.post([]byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
	if err != nil {
		tb.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return s
}

var echoArgs = map[string]any{"text": "hi"}

// roundTripOf is an augmented tools/call followed by tasks/result.
func roundTripOf(s *rawSession) error {
	res, err := s.call("tools/call", map[string]any{"name": "echo", "arguments": echoArgs, "task": map[string]any{"ttl": 60000}})
	if err != nil {
		return err
	}
	var created struct {
		Task struct {
			TaskID string `json:"taskId"`
		} `json:"task"`
	}
	if err := json.Unmarshal(res, &created); err != nil || created.Task.TaskID == "" {
		return fmt.Errorf("no task in %s", res)
	}
	out, err := s.call("tasks/result", map[string]any{"taskId": created.Task.TaskID})
	if err != nil {
		return err
	}
	if !bytes.Contains(out, []byte("echo: hi")) {
		return fmt.Errorf("tasks/result %s", out)
	}
	return nil
}

func twoPlainCalls(s *rawSession) error {
	for range 2 {
		out, err := s.call("tools/call", map[string]any{"name": "echo", "arguments": echoArgs})
		if err != nil {
			return err
		}
		if !bytes.Contains(out, []byte("echo: hi")) {
			return fmt.Errorf("tools/call %s", out)
		}
	}
	return nil
}

// benchServers starts the three servers; the memory store's quota is off
// so benchmarks can create any number of tasks.
func benchServers(b *testing.B, storeURL string) map[string]string {
	cfg := taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1, AllowAnonymous: true}
	store, err := mcptasks.Open(context.Background(), storeURL, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })

	echo := func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "echo: " + in.Text}}}, nil, nil
	}
	serve := func(h http.Handler) string {
		hs := httptest.NewServer(h)
		b.Cleanup(func() { hs.CloseClientConnections(); hs.Close() })
		return hs.URL + "/mcp"
	}
	urls := map[string]string{}

	// go-sdk with this package.
	r := taskrouter.New(store, taskrouter.Options{Owner: taskrouter.SessionOwner, Logger: quiet})
	s := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, echo)
	r.SetTaskSupport("echo", taskrouter.TaskOptional)
	if err := r.Install(s); err != nil {
		b.Fatal(err)
	}
	urls["mcptasks"] = serve(r.HTTPHandler(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil), nil))
	b.Cleanup(func() { r.Shutdown(context.Background()) })

	// The bare go-sdk.
	bare := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	mcp.AddTool(bare, &mcp.Tool{Name: "echo"}, echo)
	urls["gosdk"] = serve(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return bare }, nil))

	// mcp-go with its in-memory tasks.
	mg := mgserver.NewMCPServer("bench", "1", mgserver.WithTaskCapabilities(true, true, true))
	mg.AddTool(mgmcp.NewTool("echo", mgmcp.WithTaskSupport(mgmcp.TaskSupportOptional), mgmcp.WithString("text")),
		func(ctx context.Context, req mgmcp.CallToolRequest) (*mgmcp.CallToolResult, error) {
			return mgmcp.NewToolResultText("echo: " + req.GetString("text", "")), nil
		})
	urls["mcpgo"] = serve(mgserver.NewStreamableHTTPServer(mg))
	return urls
}

// runSessions runs b.N operations spread over n sessions, one goroutine
// each; ns/op is wall time per operation.
func runSessions(b *testing.B, url string, n int, op func(*rawSession) error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(hc.CloseIdleConnections)
	sessions := make([]*rawSession, n)
	for i := range sessions {
		sessions[i] = newRawSession(b, url, hc)
	}
	for _, s := range sessions { // warm up
		if err := op(s); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	b.ReportAllocs()
	b.ResetTimer()
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := op(s); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	storeURL := "memory://"
	if u := os.Getenv("MCPTASKS_BENCH_STORE"); u != "" {
		storeURL = u // e.g. a redis:// URL, with -tags redis
	}
	urls := benchServers(b, storeURL)
	for _, sessions := range []int{1, 16} {
		for _, c := range []struct {
			name, server string
			op           func(*rawSession) error
		}{
			{"mcptasks/roundtrip", "mcptasks", roundTripOf},
			{"gosdk/2-plain-calls", "gosdk", twoPlainCalls},
			{"mcptasks/2-plain-calls", "mcptasks", twoPlainCalls},
			{"mcpgo/roundtrip", "mcpgo", roundTripOf},
		} {
			b.Run(fmt.Sprintf("%s/sessions=%d", c.name, sessions), func(b *testing.B) {
				runSessions(b, urls[c.server], sessions, c.op)
			})
		}
	}
}

// BenchmarkHeapPerFinishedTask runs tasks to completion through the
// Router on the memory store and reports the heap kept per finished task
// (the stored record, plus anything the Router failed to release) and the
// goroutines left behind (none may be). It runs at least 5000 tasks
// whatever b.N is, so ns/op, B/op and allocs/op are reported per task run
// (the framework's own would divide by b.N).
func BenchmarkHeapPerFinishedTask(b *testing.B) {
	n := max(b.N, 5000)
	store, err := mcptasks.Open(context.Background(), "memory://", taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	r := taskrouter.New(store, taskrouter.Options{Logger: quiet})
	result := json.RawMessage(`{"content":[{"type":"text","text":"echo: hi"}]}`)
	work := func(context.Context) taskrouter.Outcome { return taskrouter.Outcome{Result: result} }
	ctx := context.Background()

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	b.ResetTimer()
	start := time.Now()
	for i := range n {
		if _, err := r.Start(ctx, taskrouter.StartRequest{Owner: fmt.Sprintf("owner-%d", i%50), Method: "tools/call", Tool: "echo"}, work); err != nil {
			b.Fatal(err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); r.Running() > 0; {
		if time.Now().After(deadline) {
			b.Fatal("tasks did not finish")
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	elapsed := time.Since(start)
	time.Sleep(10 * time.Millisecond) // runner goroutines exit after Running drops
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/op")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(n), "B/op")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(n), "allocs/op")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n), "heapB/task")
	b.ReportMetric(float64(runtime.NumGoroutine()-goroutines), "goroutines-left")
	if left := runtime.NumGoroutine() - goroutines; left > 0 {
		b.Errorf("%d goroutines left after %d tasks finished", left, n)
	}
	page, err := store.List(ctx, "owner-0", "", 1)
	if err != nil || len(page.Tasks) != 1 || page.Tasks[0].Task.Status != taskstore.StatusCompleted {
		b.Fatalf("tasks not kept as completed: %+v %v", page, err)
	}
	runtime.KeepAlive(r)
}

// BenchmarkInterleaved times each kind of request in one loop, one session
// per server, so that drift in machine load (shared cores) hits all kinds
// alike: a task-augmented tools/call, tasks/result right after it, a plain
// tools/call with this package installed, the same on the bare go-sdk,
// tasks/get, and mcp-go's task round trip (its tools/call + tasks/result).
// Compare taskcall+result with 2 x plain-gosdk (roundtrip/2plain) and with
// mcp-go's (roundtrip/mcpgo).
func BenchmarkInterleaved(b *testing.B) {
	urls := benchServers(b, "memory://")
	s := newRawSession(b, urls["mcptasks"], &http.Client{})
	g := newRawSession(b, urls["gosdk"], &http.Client{})
	m := newRawSession(b, urls["mcpgo"], &http.Client{})
	var took [6]time.Duration
	timed := func(i int, f func() (json.RawMessage, error)) json.RawMessage {
		t0 := time.Now()
		res, err := f()
		took[i] += time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	plain := map[string]any{"name": "echo", "arguments": echoArgs}
	var id map[string]any
	roundTrip := func() {
		res := timed(0, func() (json.RawMessage, error) {
			return s.call("tools/call", map[string]any{"name": "echo", "arguments": echoArgs, "task": map[string]any{}})
		})
		var c struct {
			Task struct {
				TaskID string `json:"taskId"`
			} `json:"task"`
		}
		json.Unmarshal(res, &c)
		id = map[string]any{"taskId": c.Task.TaskID}
		timed(1, func() (json.RawMessage, error) { return s.call("tasks/result", id) })
	}
	twoPlain := func() {
		for range 2 {
			timed(3, func() (json.RawMessage, error) { return g.call("tools/call", plain) })
		}
	}
	b.ResetTimer()
	for i := range b.N {
		// The task's run ends after tasks/result has its answer (the
		// router then notifies and logs), and that tail slows whatever
		// comes next: alternate the order, so that it falls half on the
		// plain calls and half on the other requests.
		if i%2 == 0 {
			roundTrip()
			twoPlain()
		} else {
			twoPlain()
			roundTrip()
		}
		timed(2, func() (json.RawMessage, error) { return s.call("tools/call", plain) })
		timed(4, func() (json.RawMessage, error) { return s.call("tasks/get", id) })
		timed(5, func() (json.RawMessage, error) { return nil, roundTripOf(m) })
	}
	took[3] /= 2 // per plain call
	for i, name := range []string{"taskcall", "result", "plain-mcptasks", "plain-gosdk", "get", "mcpgo-roundtrip"} {
		b.ReportMetric(float64(took[i].Microseconds())/float64(b.N), name+"-µs")
	}
	b.ReportMetric(float64(took[0]+took[1])/float64(2*took[3]), "roundtrip/2plain")
	b.ReportMetric(float64(took[0]+took[1])/float64(took[5]), "roundtrip/mcpgo")
	b.ReportMetric(0, "ns/op")
}
