//lint:file-ignore SA1019 the clients answer sampling and roots, deprecated from 2026-07-28 on, as 2025-11-25 clients do

package taskrouter_test

// A tool running as a 2025-11-25 task asks the client as any go-sdk
// handler does; the client answers through tasks/result.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// asked records the requests a client's handlers received.
type asked struct {
	mu   sync.Mutex
	meta []mcp.Meta
	msgs []string
}

func (a *asked) add(meta mcp.Meta, msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.meta, a.msgs = append(a.meta, meta), append(a.msgs, msg)
}

func (a *asked) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.msgs)
}

// check verifies each request carried the related-task key of taskID.
func (a *asked) check(t *testing.T, taskID string, want int) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.msgs) != want {
		t.Fatalf("the client got %d requests %q, want %d", len(a.msgs), a.msgs, want)
	}
	for i, m := range a.meta {
		rel, _ := m[taskrouter.RelatedTaskKey].(map[string]any)
		if rel["taskId"] != taskID {
			t.Errorf("request %d (%s): _meta %v, want %s with taskId %s", i, a.msgs[i], m, taskrouter.RelatedTaskKey, taskID)
		}
	}
}

// answering is a client that answers elicitations with answer, sampling
// with model m1 and lists one root.
func answering(a *asked, answer string) *mcp.ClientOptions {
	return &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			a.add(req.Params.Meta, req.Params.Message)
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"answer": answer}}, nil
		},
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			a.add(req.Params.Meta, "sampling")
			return &mcp.CreateMessageResult{Model: "m1", Role: "assistant", Content: &mcp.TextContent{Text: "hi"}}, nil
		},
	}
}

func httpClient(t *testing.T, url, token string, getStream bool, opts *mcp.ClientOptions, roots ...*mcp.Root) *sdkClient {
	return newSDKClientWith(t, &mcp.StreamableClientTransport{Endpoint: url + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{token}}, DisableStandaloneSSE: !getStream}, opts, roots...)
}

// waitStatus polls tasks/get until the task has status.
func waitStatus(t *testing.T, c *sdkClient, id, status string) wireTask {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := c.task(t, t.Context(), "tasks/get", id)
		if g.Status == status {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: status %s (%q), want %s", id, g.Status, g.StatusMessage, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func resultText(t *testing.T, c *sdkClient, ctx context.Context, id string) (string, bool) {
	t.Helper()
	res, err := c.call(ctx, "tasks/result", &idParams{TaskID: id})
	if err != nil {
		t.Fatalf("tasks/result: %v", err)
	}
	var ctr struct {
		Content []struct{ Text string } `json:"content"`
		IsError bool                    `json:"isError"`
	}
	res.decode(t, &ctr)
	if len(ctr.Content) == 0 {
		t.Fatalf("tasks/result %s", res.raw)
	}
	return ctr.Content[0].Text, ctr.IsError
}

func TestInputElicitation(t *testing.T) {
	for _, getStream := range []bool{true, false} {
		t.Run(map[bool]string{true: "with GET stream", false: "without GET stream"}[getStream], func(t *testing.T) {
			ctx := t.Context()
			rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
			var a asked
			c := httpClient(t, rep.URL, "tok-alice", false, answering(&a, "yes"))
			var stream <-chan string
			if getStream {
				// The go-sdk client (v1.8.0) opens no GET stream of its
				// own after probing 2026-07-28: open the session's here.
				stream = openStream(t, rep.URL+"/mcp", "tok-alice", c.cs.ID())
			}
			task := c.start(t, ctx, "elicit", map[string]any{"question": "Go?", "times": 3}, map[string]any{})
			g := waitStatus(t, c, task.TaskID, "input_required")
			if g.StatusMessage != "waiting for the user (elicitation)" {
				t.Errorf("status message %q", g.StatusMessage)
			}
			if a.count() != 0 {
				t.Fatal("the request went out before tasks/result")
			}
			if txt, isErr := resultText(t, c, ctx, task.TaskID); isErr || txt != "answers: accept:yes,accept:yes,accept:yes" {
				t.Fatalf("tasks/result: %q (isError %v)", txt, isErr)
			}
			a.check(t, task.TaskID, 3)
			if g := c.task(t, ctx, "tasks/get", task.TaskID); g.Status != "completed" {
				t.Errorf("after the result: %s", g.Status)
			}
			if stream != nil {
				// The owner's session with a stream heard input_required.
				waitLine(t, stream, `"method":"notifications/tasks/status"`, `"status":"input_required"`, task.TaskID)
			}
		})
	}
}

// openStream opens the standalone SSE stream of session sid (with a
// bearer token unless it is "") and returns its lines.
func openStream(t *testing.T, url, token, sid string) <-chan string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: HTTP %d", resp.StatusCode)
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines
}

// waitLine waits for a line holding every one of parts.
func waitLine(t *testing.T, lines <-chan string, parts ...string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the stream ended with no line holding %q", parts)
			}
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return
			}
		case <-deadline:
			t.Fatalf("no line holding %q", parts)
		}
	}
}

func TestInputSamplingAndRoots(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	var a asked
	c := httpClient(t, rep.URL, "tok-alice", false, answering(&a, "yes"), &mcp.Root{URI: "file:///work", Name: "work"})
	for tool, want := range map[string]string{
		"sample":       "model m1: hi",
		"sample_tools": "model m1: 1 blocks",
		"roots":        "roots: file:///work",
	} {
		task := c.start(t, ctx, tool, map[string]any{"question": "hello?"}, map[string]any{})
		waitStatus(t, c, task.TaskID, "input_required")
		if txt, isErr := resultText(t, c, ctx, task.TaskID); isErr || txt != want {
			t.Errorf("%s: tasks/result %q (isError %v), want %q", tool, txt, isErr, want)
		}
	}
}

// A request the client declared no capability for fails at once, as the
// SDK fails it: the task never waits for input.
func TestInputWithoutCapability(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	c := newSDKClientWith(t, &mcp.StreamableClientTransport{Endpoint: rep.URL + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{"tok-alice"}}}, &mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}})
	for tool, want := range map[string]string{
		"elicit": "client does not support elicitation",
		"sample": "client does not support sampling",
		"roots":  "client does not support roots",
	} {
		task := c.start(t, ctx, tool, map[string]any{"question": "q"}, map[string]any{})
		txt, isErr := resultText(t, c, ctx, task.TaskID)
		if !isErr || !strings.Contains(txt, want) {
			t.Errorf("%s: %q (isError %v), want an error saying %q", tool, txt, isErr, want)
		}
		g := c.task(t, ctx, "tasks/get", task.TaskID)
		if g.Status != "failed" {
			t.Errorf("%s: status %s, want failed", tool, g.Status)
		}
	}
}

func TestInputCancelWhileWaiting(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	var a asked
	c := httpClient(t, rep.URL, "tok-alice", false, answering(&a, "yes"))
	task := c.start(t, ctx, "elicit", map[string]any{"question": "q"}, map[string]any{})
	waitStatus(t, c, task.TaskID, "input_required")
	if g := c.task(t, ctx, "tasks/cancel", task.TaskID); g.Status != "cancelled" {
		t.Fatalf("tasks/cancel: %s", g.Status)
	}
	waitClosed(t, rep.probe.Stopped(task.TaskID), "the handler's wait to end")
	if g := c.task(t, ctx, "tasks/get", task.TaskID); g.Status != "cancelled" {
		t.Errorf("after the handler returned: %s", g.Status)
	}
	res, err := c.call(ctx, "tasks/result", &idParams{TaskID: task.TaskID})
	if err == nil {
		t.Errorf("tasks/result of a cancelled task: %s, want its error", res.raw)
	}
	if a.count() != 0 {
		t.Errorf("a cancelled task's request reached the client")
	}
}

// A request still pending when a tasks/result ends goes out again with the
// next one; an answer is stored once.
func TestInputRedeliveredByNextResult(t *testing.T) {
	ctx := t.Context()
	rec := &recorder{}
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{opts: taskrouter.Options{Observer: rec.observer()}})
	delivered, release := make(chan struct{}), make(chan struct{})
	var n int
	var mu sync.Mutex
	c := httpClient(t, rep.URL, "tok-alice", false, &mcp.ClientOptions{
		ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			mu.Lock()
			n++
			first := n == 1
			mu.Unlock()
			if first { // the user walks away: this tasks/result ends unanswered
				close(delivered)
				<-release
				return nil, errors.New("too late")
			}
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"answer": "later"}}, nil
		},
	})
	task := c.start(t, ctx, "elicit", map[string]any{"question": "q"}, map[string]any{})
	waitStatus(t, c, task.TaskID, "input_required")
	short, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := c.call(short, "tasks/result", &idParams{TaskID: task.TaskID})
		done <- err
	}()
	<-delivered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the abandoned tasks/result: %v", err)
	}
	// The client gave up at once; the server sees it when the request's
	// stream closes. Only then is an answer late.
	rec.eventually(t, "the server ends the abandoned tasks/result", func() bool { return rec.waiters == 0 })
	close(release) // the late answer belongs to a request nobody waits for
	if g := c.task(t, ctx, "tasks/get", task.TaskID); g.Status != "input_required" {
		t.Fatalf("after an unanswered delivery: %s, want input_required", g.Status)
	}
	if txt, _ := resultText(t, c, ctx, task.TaskID); txt != "answers: accept:later" {
		t.Fatalf("the second tasks/result: %q", txt)
	}
}

// The client answers with a JSON-RPC error: the handler gets it, as it
// would on a plain call, and the task ends as the handler decides.
func TestInputErrorAnswer(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	c := httpClient(t, rep.URL, "tok-alice", false, &mcp.ClientOptions{
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return nil, errors.New("the user's client broke")
		},
	})
	task := c.start(t, ctx, "elicit", map[string]any{"question": "q"}, map[string]any{})
	waitStatus(t, c, task.TaskID, "input_required")
	// The go-sdk passes a handler's JSON-RPC error on as the call's error:
	// the task's outcome is the client's error.
	_, err := c.call(ctx, "tasks/result", &idParams{TaskID: task.TaskID})
	if err == nil || !strings.Contains(err.Error(), "the user's client broke") {
		t.Fatalf("tasks/result: %v, want the client's error", err)
	}
	if g := c.task(t, ctx, "tasks/get", task.TaskID); g.Status != "failed" {
		t.Errorf("status %s, want failed", g.Status)
	}
}

// One session creates the task on replica A; another session of the same
// user answers through tasks/result on replica B. Another user sees a
// missing task and gets no request.
func TestInputAcrossReplicas(t *testing.T) {
	ctx := t.Context()
	store := newStore(t, taskstore.Config{})
	repA := newReplica(t, store, replicaOptions{})
	repB := newReplica(t, store, replicaOptions{})
	var onA, onB, bob asked
	a := httpClient(t, repA.URL, "tok-alice", true, answering(&onA, "from A"))
	b := httpClient(t, repB.URL, "tok-alice", false, answering(&onB, "from B"))
	eve := httpClient(t, repB.URL, "tok-bob", false, answering(&bob, "from bob"))
	task := a.start(t, ctx, "elicit", map[string]any{"question": "q", "times": 2}, map[string]any{})
	waitStatus(t, b, task.TaskID, "input_required")
	_, err := eve.call(ctx, "tasks/result", &idParams{TaskID: task.TaskID})
	wantRPCCode(t, "another user's tasks/result", err, -32602)
	if txt, _ := resultText(t, b, ctx, task.TaskID); txt != "answers: accept:from B,accept:from B" {
		t.Fatalf("tasks/result on B: %q", txt)
	}
	onB.check(t, task.TaskID, 2)
	onA.check(t, task.TaskID, 0)
	bob.check(t, task.TaskID, 0)
	if g := a.task(t, ctx, "tasks/get", task.TaskID); g.Status != "completed" {
		t.Errorf("on A: %s", g.Status)
	}
}

// Over stdio the request goes out on the one stream.
func TestInputStdio(t *testing.T) {
	ctx := t.Context()
	var a asked
	r, c := newStdioClient(t, answering(&a, "stdio"))
	task := c.start(t, ctx, "elicit", map[string]any{"question": "q"}, map[string]any{})
	if txt, _ := resultText(t, c, ctx, task.TaskID); txt != "answers: accept:stdio" {
		t.Fatalf("tasks/result: %q", txt)
	}
	a.check(t, task.TaskID, 1)
	if err := r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// A plain (non-task) call's requests are the SDK's, untouched.
func TestInputPlainCallUntouched(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	var a asked
	c := httpClient(t, rep.URL, "tok-alice", true, answering(&a, "plain"))
	res, err := c.cs.CallTool(ctx, &mcp.CallToolParams{Name: "elicit", Arguments: map[string]any{"question": "q"}})
	if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != "answers: accept:plain" {
		t.Fatalf("plain call: %+v, %v", res, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.meta[0][taskrouter.RelatedTaskKey]; ok {
		t.Errorf("a plain call's request carried the related-task key: %v", a.meta[0])
	}
}

// A resumable tool taken over by another replica asks again: its re-run
// declares the original client's capabilities, the claim dropped the dead
// attempt's request, and the new request's key carries the attempt.
func TestInputTakeoverAsksAgain(t *testing.T) {
	ctx := t.Context()
	store := newStore(t, taskstore.Config{})
	var reps []*replica
	for range 2 {
		rep := newReplica(t, store, replicaOptions{opts: fastLeases})
		mcp.AddTool(rep.server, &mcp.Tool{Name: "resumable_ask"}, func(ctx context.Context, req *mcp.CallToolRequest, in askIn) (*mcp.CallToolResult, any, error) {
			h := taskrouter.TaskHandle(ctx)
			res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{Message: fmt.Sprintf("attempt %d?", h.Attempt())})
			if err != nil {
				return nil, nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("attempt %d: %s", h.Attempt(), res.Action)}}}, nil, nil
		})
		rep.router.SetTaskSupport("resumable_ask", taskrouter.TaskOptional)
		rep.router.SetResumable("resumable_ask", 3)
		reps = append(reps, rep)
	}
	a, b := reps[0], reps[1]
	var onA, onB asked
	ca := httpClient(t, a.URL, "tok-alice", false, answering(&onA, "a"))
	task := ca.start(t, ctx, "resumable_ask", map[string]any{"question": "q"}, map[string]any{})
	waitStatus(t, ca, task.TaskID, "input_required")
	taskrouter.StopLeaseKeeper(a.router) // A freezes with the request pending
	cb := httpClient(t, b.URL, "tok-alice", false, answering(&onB, "b"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec, err := store.Get(ctx, "alice", task.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Lease.Attempt == 2 && rec.Task.Status == taskstore.StatusInputRequired {
			if want := `{"elicitation/create#1@2":{"method":"elicitation/create","params":{"mode":"form","message":"attempt 2?"}}}`; string(rec.InputRequests) != want {
				t.Fatalf("the re-run's request: %s, want %s", rec.InputRequests, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no second attempt asking: %s attempt %d, requests %s", rec.Task.Status, rec.Lease.Attempt, rec.InputRequests)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if g := cb.task(t, ctx, "tasks/get", task.TaskID); string(g.Meta[taskstore.AttemptKey]) != "2" {
		t.Errorf("tasks/get of the resumed task: _meta %s, want %s 2", g.Meta, taskstore.AttemptKey)
	}
	if txt, _ := resultText(t, cb, ctx, task.TaskID); txt != "attempt 2: accept" {
		t.Fatalf("tasks/result on B: %q", txt)
	}
	onB.check(t, task.TaskID, 1)
	onA.check(t, task.TaskID, 0)
}

// On 2026-07-28 the same handler code works: the request waits in the
// record (tasks/get shows it), the client answers with tasks/update, and
// the handler gets the SDK's result type. A client that declared no
// elicitation gets the SDK's refusal at once.
func TestInput20260728(t *testing.T) {
	url := server20260728(t)
	elicit := map[string]any{"elicitation": map[string]any{}}
	a := mustOK(t, req20260728{method: "tools/call", caps: elicit,
		params: map[string]any{"name": "elicit", "arguments": map[string]any{"question": "Go?"}}}.do(t, url))
	id := a.str(t, "taskId")
	got := awaitStatus(t, url, id, "input_required")
	var reqs map[string]struct {
		Method string `json:"method"`
		Params struct {
			Message string `json:"message"`
		} `json:"params"`
	}
	if err := json.Unmarshal(got.result["inputRequests"], &reqs); err != nil || len(reqs) != 1 {
		t.Fatalf("inputRequests %s (%v)", got.result["inputRequests"], err)
	}
	for key, r := range reqs {
		if r.Method != "elicitation/create" || r.Params.Message != "Go? (1)" {
			t.Fatalf("input request %s: %+v", key, r)
		}
		mustOK(t, req20260728{method: "tasks/update", params: map[string]any{"taskId": id, "inputResponses": map[string]any{
			key: map[string]any{"action": "accept", "content": map[string]any{"answer": "yes"}},
		}}}.do(t, url))
	}
	done := awaitStatus(t, url, id, "completed")
	if !strings.Contains(string(done.result["result"]), "answers: accept:yes") {
		t.Errorf("result %s", done.result["result"])
	}

	a = mustOK(t, req20260728{method: "tools/call",
		params: map[string]any{"name": "elicit", "arguments": map[string]any{"question": "Go?"}}}.do(t, url))
	// A tool error: on 2026-07-28 the task completes with isError.
	refused := awaitStatus(t, url, a.str(t, "taskId"), "completed")
	if res := string(refused.result["result"]); !strings.Contains(res, `"isError":true`) || !strings.Contains(res, "client does not support elicitation") {
		t.Errorf("without the capability: %s", refused.raw)
	}
}

// answerTransport lets a test replace what the client answers to the
// server's requests.
type answerTransport struct {
	mcp.Transport
	answer func(*jsonrpc.Response) []*jsonrpc.Response
}

func (t *answerTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &answerConn{Connection: c, answer: t.answer}, nil
}

type answerConn struct {
	mcp.Connection
	answer func(*jsonrpc.Response) []*jsonrpc.Response
}

func (c *answerConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	r, ok := msg.(*jsonrpc.Response)
	if !ok {
		return c.Connection.Write(ctx, msg)
	}
	for _, m := range c.answer(r) {
		if err := c.Connection.Write(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// Hostile answers: of the wrong shape, too large, duplicated, to an id
// nobody asked. Each has a clear outcome, and nothing is applied twice.
func TestInputHostileAnswers(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{MaxVariablesSize: 2048}), replicaOptions{})
	hostile := func(answer func(*jsonrpc.Response) []*jsonrpc.Response) *sdkClient {
		var a asked
		return newSDKClientWith(t, &answerTransport{answer: answer, Transport: &mcp.StreamableClientTransport{
			Endpoint: rep.URL + "/mcp", HTTPClient: &http.Client{Transport: bearer{"tok-alice"}}, DisableStandaloneSSE: true}},
			answering(&a, "fine"))
	}
	run := func(c *sdkClient, times int) (string, bool, string) {
		task := c.start(t, ctx, "elicit", map[string]any{"question": "q", "times": times}, map[string]any{})
		waitStatus(t, c, task.TaskID, "input_required")
		txt, isErr := resultText(t, c, ctx, task.TaskID)
		return txt, isErr, c.task(t, ctx, "tasks/get", task.TaskID).Status
	}

	wrong := hostile(func(r *jsonrpc.Response) []*jsonrpc.Response {
		return []*jsonrpc.Response{{ID: r.ID, Result: json.RawMessage(`{"action":5}`)}}
	})
	if txt, isErr, status := run(wrong, 1); !isErr || status != "failed" || !strings.Contains(txt, "elicitation/create") {
		t.Errorf("wrong shape: %q (isError %v), %s; want the SDK's decoding error, failed", txt, isErr, status)
	}

	big := hostile(func(r *jsonrpc.Response) []*jsonrpc.Response {
		res := json.RawMessage(`{"action":"accept","content":{"answer":"` + strings.Repeat("x", 4096) + `"}}`)
		return []*jsonrpc.Response{{ID: r.ID, Result: res}}
	})
	if txt, isErr, status := run(big, 1); !isErr || status != "failed" || !strings.Contains(txt, "not stored") || !strings.Contains(txt, "too large") {
		t.Errorf("too large: %q (isError %v), %s; want the store's refusal, failed", txt, isErr, status)
	}

	twice := hostile(func(r *jsonrpc.Response) []*jsonrpc.Response {
		stray, _ := jsonrpc.MakeID(float64(987654))
		return []*jsonrpc.Response{r, r, {ID: stray, Result: r.Result}}
	})
	if txt, isErr, status := run(twice, 2); isErr || status != "completed" || txt != "answers: accept:fine,accept:fine" {
		t.Errorf("duplicated answers: %q (isError %v), %s", txt, isErr, status)
	}
}

// A client that never answers: the task waits until its ttl, then its
// handler's wait ends with it.
func TestInputNeverAnswered(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	var a asked
	c := httpClient(t, rep.URL, "tok-alice", false, answering(&a, "never"))
	task := c.start(t, ctx, "elicit", map[string]any{"question": "q"}, map[string]any{"ttl": 400})
	waitStatus(t, c, task.TaskID, "input_required")
	waitClosed(t, rep.probe.Stopped(task.TaskID), "the handler's wait to end at the ttl")
	_, err := c.call(ctx, "tasks/get", &idParams{TaskID: task.TaskID})
	wantRPCCode(t, "tasks/get after the ttl", err, -32602)
}
