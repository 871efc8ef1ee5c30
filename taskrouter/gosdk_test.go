package taskrouter_test

// End-to-end tests with the official go-sdk client: over streamable HTTP,
// and over an in-memory pipe standing in for stdio.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

type idParams struct {
	mcp.ParamsBase
	TaskID string `json:"taskId"`
}

type cursorParams struct {
	mcp.ParamsBase
	Cursor string `json:"cursor,omitempty"`
}

// taskCallParams is a task-augmented tools/call. It is sent under the
// custom method name taskCallMethod, which taskCallTransport renames to
// tools/call on the way out: the SDK's client has no task field and would
// not parse a CreateTaskResult as a CallToolResult.
type taskCallParams struct {
	mcp.ParamsBase
	Name      string         `json:"name"`
	Arguments any            `json:"arguments,omitempty"`
	Task      map[string]any `json:"task"`
}

const taskCallMethod = "test/tools-call-as-task"

// rawResult keeps a result's JSON.
type rawResult struct {
	mcp.ResultBase
	raw json.RawMessage
}

func (r *rawResult) UnmarshalJSON(b []byte) error {
	r.raw = append(json.RawMessage(nil), b...)
	return nil
}

func (r *rawResult) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.raw, v); err != nil {
		t.Fatalf("decoding %s: %v", r.raw, err)
	}
}

type wireTask struct {
	TaskID        string                     `json:"taskId"`
	Status        string                     `json:"status"`
	StatusMessage string                     `json:"statusMessage"`
	TTL           *int64                     `json:"ttl"`
	PollInterval  *int64                     `json:"pollInterval"`
	Meta          map[string]json.RawMessage `json:"_meta"`
}

// taskCallTransport renames taskCallMethod to tools/call, and records the
// notifications the client reads (the SDK's client drops methods it does
// not know, such as notifications/tasks/status).
type taskCallTransport struct {
	mcp.Transport
	mu    sync.Mutex
	notes []*jsonrpc.Request
}

func (t *taskCallTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &taskCallConn{Connection: c, t: t}, nil
}

func (t *taskCallTransport) notifications(method string) []*jsonrpc.Request {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*jsonrpc.Request
	for _, n := range t.notes {
		if n.Method == method {
			out = append(out, n)
		}
	}
	return out
}

type taskCallConn struct {
	mcp.Connection
	t *taskCallTransport
}

func (c *taskCallConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if req, ok := msg.(*jsonrpc.Request); ok && req.Method == taskCallMethod {
		r2 := *req
		r2.Method = "tools/call"
		msg = &r2
	}
	return c.Connection.Write(ctx, msg)
}

func (c *taskCallConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	msg, err := c.Connection.Read(ctx)
	if req, ok := msg.(*jsonrpc.Request); ok && !req.IsCall() {
		c.t.mu.Lock()
		c.t.notes = append(c.t.notes, req)
		c.t.mu.Unlock()
	}
	return msg, err
}

type bearer struct{ token string }

func (b bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(req)
}

type sdkClient struct {
	cs *mcp.ClientSession
	tr *taskCallTransport
}

func newSDKClient(t testing.TB, inner mcp.Transport) *sdkClient {
	t.Helper()
	return newSDKClientWith(t, inner, nil)
}

// newSDKClientWith is newSDKClient with the client's options (handlers of
// server-to-client requests) and roots.
//
//lint:ignore SA1019 roots are deprecated from 2026-07-28 on; 2025-11-25 clients have them
func newSDKClientWith(t testing.TB, inner mcp.Transport, opts *mcp.ClientOptions, roots ...*mcp.Root) *sdkClient {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "go-sdk-test", Version: "1"}, opts)
	c.AddRoots(roots...) //lint:ignore SA1019 as above
	for _, err := range []error{
		mcp.AddSendingCustomMethod[*idParams, *rawResult](c, "tasks/get"),
		mcp.AddSendingCustomMethod[*idParams, *rawResult](c, "tasks/result"),
		mcp.AddSendingCustomMethod[*idParams, *rawResult](c, "tasks/cancel"),
		mcp.AddSendingCustomMethod[*cursorParams, *rawResult](c, "tasks/list"),
		mcp.AddSendingCustomMethod[*taskCallParams, *rawResult](c, taskCallMethod),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	tr := &taskCallTransport{Transport: inner}
	cs, err := c.Connect(context.Background(), tr, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return &sdkClient{cs: cs, tr: tr}
}

func newSDKHTTPClient(t testing.TB, url, token string) *sdkClient {
	return newSDKClient(t, &mcp.StreamableClientTransport{Endpoint: url + "/mcp", HTTPClient: &http.Client{Transport: bearer{token}}})
}

func (c *sdkClient) call(ctx context.Context, method string, p mcp.Params) (*rawResult, error) {
	switch p := p.(type) {
	case *idParams:
		return mcp.CallCustomMethod[*idParams, *rawResult](ctx, c.cs, method, p)
	case *cursorParams:
		return mcp.CallCustomMethod[*cursorParams, *rawResult](ctx, c.cs, method, p)
	case *taskCallParams:
		return mcp.CallCustomMethod[*taskCallParams, *rawResult](ctx, c.cs, method, p)
	}
	panic("unknown params type")
}

func (c *sdkClient) task(t testing.TB, ctx context.Context, method, id string) wireTask {
	t.Helper()
	res, err := c.call(ctx, method, &idParams{TaskID: id})
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	var w wireTask
	res.decode(t, &w)
	return w
}

func (c *sdkClient) start(t testing.TB, ctx context.Context, tool string, args any, task map[string]any) wireTask {
	t.Helper()
	res, err := c.call(ctx, taskCallMethod, &taskCallParams{Name: tool, Arguments: args, Task: task})
	if err != nil {
		t.Fatalf("tools/call %s as a task: %v", tool, err)
	}
	var out struct {
		Task wireTask `json:"task"`
	}
	res.decode(t, &out)
	return out.Task
}

func wantRPCCode(t testing.TB, what string, err error, code int64) {
	t.Helper()
	var we *jsonrpc.Error
	if !errors.As(err, &we) {
		t.Errorf("%s: error %v, want JSON-RPC error %d", what, err, code)
		return
	}
	if we.Code != code {
		t.Errorf("%s: code %d (%s), want %d", what, we.Code, we.Message, code)
	}
}

func TestGoSDKClientHTTP(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	c := newSDKHTTPClient(t, rep.URL, "tok-alice")
	if v := c.cs.InitializeResult().ProtocolVersion; v != "2025-11-25" {
		t.Errorf("negotiated %q", v)
	}

	task := c.start(t, ctx, "echo", map[string]any{"text": "sdk"}, map[string]any{"ttl": 30000})
	if task.Status != "working" || task.TTL == nil || *task.TTL != 30000 {
		t.Fatalf("created %+v", task)
	}
	res, err := c.call(ctx, "tasks/result", &idParams{TaskID: task.TaskID})
	if err != nil {
		t.Fatal(err)
	}
	var ctr struct {
		Content []struct{ Text string }      `json:"content"`
		Meta    map[string]map[string]string `json:"_meta"`
	}
	res.decode(t, &ctr)
	if len(ctr.Content) != 1 || ctr.Content[0].Text != "echo: sdk" || ctr.Meta[taskrouter.RelatedTaskKey]["taskId"] != task.TaskID {
		t.Errorf("tasks/result %s", res.raw)
	}
	if g := c.task(t, ctx, "tasks/get", task.TaskID); g.Status != "completed" {
		t.Errorf("tasks/get %+v", g)
	}
	lr, err := c.call(ctx, "tasks/list", &cursorParams{})
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Tasks      []wireTask `json:"tasks"`
		NextCursor *string    `json:"nextCursor"`
	}
	lr.decode(t, &list)
	if len(list.Tasks) != 1 || list.NextCursor != nil {
		t.Errorf("tasks/list %s", lr.raw)
	}

	block := c.start(t, ctx, "block", nil, map[string]any{})
	waitClosed(t, rep.probe.Started(block.TaskID), "start")
	if g := c.task(t, ctx, "tasks/cancel", block.TaskID); g.Status != "cancelled" {
		t.Errorf("tasks/cancel %+v", g)
	}
	waitClosed(t, rep.probe.Stopped(block.TaskID), "stop")

	_, err = c.call(ctx, "tasks/get", &idParams{TaskID: "missing"})
	wantRPCCode(t, "tasks/get missing", err, -32602)
	_, err = c.call(ctx, "tasks/cancel", &idParams{TaskID: block.TaskID})
	wantRPCCode(t, "cancel cancelled", err, -32602)
	_, err = c.call(ctx, "tasks/list", &cursorParams{Cursor: "zz"})
	wantRPCCode(t, "bad cursor", err, -32602)
	_, err = c.call(ctx, taskCallMethod, &taskCallParams{Name: "plain", Task: map[string]any{}})
	wantRPCCode(t, "forbidden", err, -32601)
	_, err = c.cs.CallTool(ctx, &mcp.CallToolParams{Name: "must_task"})
	wantRPCCode(t, "required", err, -32601)
	// A client cannot smuggle the private key in itself.
	plain, err := c.cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "p"}, Meta: mcp.Meta{"io.mcptasks/task": map[string]any{}}})
	if err != nil || plain.Content[0].(*mcp.TextContent).Text != "echo: p" {
		t.Errorf("plain call with a forged private key: %+v, %v", plain, err)
	}

	// Another user's task is invisible.
	bob := newSDKHTTPClient(t, rep.URL, "tok-bob")
	_, err = bob.call(ctx, "tasks/get", &idParams{TaskID: task.TaskID})
	wantRPCCode(t, "bob get", err, -32602)
}

// newStdioClient connects a go-sdk client with opts to a router's server
// over a stdio-like stream (an in-memory pipe), with the anonymous owner.
func newStdioClient(t *testing.T, opts *mcp.ClientOptions) (*taskrouter.Router, *sdkClient) {
	store := newStore(t, taskstore.Config{AllowAnonymous: true})
	r := taskrouter.New(store, taskrouter.Options{Logger: quiet})
	server := newMCPServer(t, r, newProbe())
	st, ct := mcp.NewInMemoryTransports()
	ss, err := server.Connect(t.Context(), r.Transport(st), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	return r, newSDKClientWith(t, ct, opts)
}

// Over a stdio-like stream (an in-memory pipe), with the anonymous owner.
func TestGoSDKClientStdio(t *testing.T) {
	ctx := t.Context()
	r, c := newStdioClient(t, nil)

	task := c.start(t, ctx, "sleep", map[string]any{"ms": 40}, map[string]any{})
	res, err := c.call(ctx, "tasks/result", &idParams{TaskID: task.TaskID})
	if err != nil {
		t.Fatal(err)
	}
	if want := "slept 40ms"; !json.Valid(res.raw) || !containsText(res.raw, want) {
		t.Errorf("tasks/result %s", res.raw)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(c.tr.notifications("notifications/tasks/status")) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	notes := c.tr.notifications("notifications/tasks/status")
	if len(notes) == 0 {
		t.Fatal("no notifications/tasks/status over stdio")
	}
	var w wireTask
	if err := json.Unmarshal(notes[0].Params, &w); err != nil || w.TaskID != task.TaskID || w.Status != "completed" {
		t.Errorf("status notification %s", notes[0].Params)
	}
	if err := r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func containsText(b []byte, s string) bool {
	var ctr struct {
		Content []struct{ Text string } `json:"content"`
	}
	return json.Unmarshal(b, &ctr) == nil && len(ctr.Content) > 0 && ctr.Content[0].Text == s
}
