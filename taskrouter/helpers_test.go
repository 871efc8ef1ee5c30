package taskrouter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// quiet is the Logger of the routers tests and benchmarks make, unless a
// test reads the log (a nil Logger would be slog.Default(): a line per
// task event on stderr, and time spent writing them in benchmarks).
var quiet = slog.New(slog.DiscardHandler)

// Bearer tokens of the test servers: token -> user (the task owner).
var testTokens = map[string]string{"tok-alice": "alice", "tok-bob": "bob"}

// probe records what the test tools saw, so tests can tell that a
// handler really ran, and stopped.
type probe struct {
	mu      sync.Mutex
	started map[string]chan struct{} // task id -> closed when "block" starts
	stopped map[string]chan struct{} // task id -> closed when "block" returns
}

func newProbe() *probe {
	return &probe{started: map[string]chan struct{}{}, stopped: map[string]chan struct{}{}}
}

func (p *probe) ch(m map[string]chan struct{}, id string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := m[id]
	if c == nil {
		c = make(chan struct{})
		m[id] = c
	}
	return c
}

func (p *probe) Started(id string) chan struct{} { return p.ch(p.started, id) }
func (p *probe) Stopped(id string) chan struct{} { return p.ch(p.stopped, id) }

func waitClosed(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting: %s", what)
	}
}

type textIn struct {
	Text string `json:"text,omitempty"`
}

type sleepIn struct {
	Ms int `json:"ms"`
}

// newMCPServer is a go-sdk server with the test tools, made task-capable
// by r.
func newMCPServer(t testing.TB, r *taskrouter.Router, p *probe) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "taskrouter-test", Version: "1"}, nil)
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
		return text("echo: " + in.Text), nil, nil
	})
	r.SetTaskSupport("echo", taskrouter.TaskOptional)
	mcp.AddTool(s, &mcp.Tool{Name: "plain"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
		return text("plain: " + in.Text), nil, nil
	}) // forbidden: no task support declared
	mcp.AddTool(s, &mcp.Tool{Name: "must_task"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
		if taskrouter.TaskHandle(ctx) == nil {
			return nil, nil, errors.New("not running as a task")
		}
		return text("task: " + in.Text), nil, nil
	})
	r.SetTaskSupport("must_task", taskrouter.TaskRequired)
	mcp.AddTool(s, &mcp.Tool{Name: "sleep"}, func(ctx context.Context, req *mcp.CallToolRequest, in sleepIn) (*mcp.CallToolResult, any, error) {
		tok := req.Params.GetProgressToken()
		for i := 1; i <= 4; i++ {
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(time.Duration(in.Ms) * time.Millisecond / 4):
			}
			if tok != nil {
				_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(i), Total: 4})
			}
		}
		return text(fmt.Sprintf("slept %dms", in.Ms)), nil, nil
	})
	r.SetTaskSupport("sleep", taskrouter.TaskOptional)
	mcp.AddTool(s, &mcp.Tool{Name: "block"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
		h := taskrouter.TaskHandle(ctx)
		if h == nil {
			return nil, nil, errors.New("block runs only as a task")
		}
		close(p.Started(h.ID()))
		defer close(p.Stopped(h.ID()))
		<-ctx.Done()
		return text("finished after all"), nil, nil // must not undo a cancel
	})
	r.SetTaskSupport("block", taskrouter.TaskOptional)
	mcp.AddTool(s, &mcp.Tool{Name: "chatty"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
		// Reports progress until cancelled, then (ignoring the cancel, as
		// handlers may) five times more: those must not reach the client.
		h := taskrouter.TaskHandle(ctx)
		defer close(p.Stopped(h.ID()))
		tok := req.Params.GetProgressToken()
		after := 0
		for i := 1; after < 5; i++ {
			progress := float64(i)
			if ctx.Err() != nil {
				after++
				progress = float64(995 + after)
			}
			_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: progress})
			time.Sleep(10 * time.Millisecond)
		}
		return nil, nil, ctx.Err()
	})
	r.SetTaskSupport("chatty", taskrouter.TaskOptional)
	mcp.AddTool(s, &mcp.Tool{Name: "fail"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
	})
	r.SetTaskSupport("fail", taskrouter.TaskOptional)
	mcp.AddTool(s, &mcp.Tool{Name: "boom"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
		panic("boom")
	})
	r.SetTaskSupport("boom", taskrouter.TaskOptional)
	s.AddTool(&mcp.Tool{Name: "rpcerr", InputSchema: map[string]any{"type": "object"}}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return nil, &jsonrpc.Error{Code: -32042, Message: "custom failure", Data: json.RawMessage(`{"why":"testing"}`)}
	})
	r.SetTaskSupport("rpcerr", taskrouter.TaskOptional)
	mcp.AddTool(s, &mcp.Tool{Name: "vars"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
		h := taskrouter.TaskHandle(ctx)
		if err := h.SetVariables(ctx, map[string]any{"seen": in.Text}); err != nil {
			return nil, nil, err
		}
		v, ok, err := taskstore.Variable[string](ctx, h, "seen")
		if err != nil || !ok {
			return nil, nil, fmt.Errorf("variable: %v %v", ok, err)
		}
		owner, _ := taskrouter.Owner(ctx)
		return text("vars: " + v + " owner: " + owner), nil, nil
	})
	r.SetTaskSupport("vars", taskrouter.TaskOptional)
	addInputTools(s, r, p)
	if err := r.Install(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// replica is one MCP server (a router over a store) behind real HTTP on
// loopback.
type replica struct {
	router *taskrouter.Router
	server *mcp.Server
	http   *httptest.Server
	probe  *probe
	URL    string
}

// newStore opens a fresh memory store.
func newStore(t testing.TB, cfg taskstore.Config) *taskstore.Store {
	s, err := mcptasks.Open(context.Background(), "memory://", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type replicaOptions struct {
	noAuth bool               // no bearer tokens: owners from opts.Owner
	opts   taskrouter.Options // router options
	stream *mcp.StreamableHTTPOptions
	edge   *taskrouter.HTTPOptions // HTTPHandler's options
	// userSuffix is appended to the users of testTokens.
	userSuffix string
}

// newReplica serves a task-capable server over store, with bearer auth
// (testTokens) unless ro.noAuth.
func newReplica(t testing.TB, store *taskstore.Store, ro replicaOptions) *replica {
	p := newProbe()
	if ro.opts.Logger == nil {
		ro.opts.Logger = quiet
	}
	r := taskrouter.New(store, ro.opts)
	s := newMCPServer(t, r, p)
	var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, ro.stream)
	if !ro.noAuth {
		h = auth.RequireBearerToken(func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
			if u, ok := testTokens[token]; ok {
				return &auth.TokenInfo{UserID: u + ro.userSuffix, Expiration: time.Now().Add(time.Hour)}, nil
			}
			return nil, auth.ErrInvalidToken
		}, nil)(h)
	}
	hs := httptest.NewServer(r.HTTPHandler(h, ro.edge))
	rep := &replica{router: r, server: s, http: hs, probe: p, URL: hs.URL}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.CloseClientConnections()
		hs.Close()
	})
	return rep
}
