package runcost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Memory is what running tasks hold in this process, per task.
type Memory struct {
	// Path is how the tasks were started: "Router.Start" (this module
	// alone) or "go-sdk tools/call" (a task-augmented call through an
	// installed go-sdk server, whose request the run holds).
	Path  string `json:"path"`
	Tasks int    `json:"tasks"`
	// HeapPerTask is the live heap (after a GC) per running task, less
	// StoredPerTask.
	HeapPerTask float64 `json:"heapBytesPerTask"`
	// StackPerTask is the goroutine stack memory in use per running task,
	// GoroutinesPerTask the goroutines.
	StackPerTask      float64 `json:"stackBytesPerTask"`
	GoroutinesPerTask float64 `json:"goroutinesPerTask"`
	// StoredPerTask is the live heap per task stored and not running, in
	// this process: the memory backend's record on memory://, next to
	// nothing on a remote store.
	StoredPerTask float64 `json:"storedBytesPerTask"`
}

type sample struct {
	heap, stack uint64
	goroutines  int
}

func measure() sample {
	runtime.GC()
	runtime.GC() // what the first one's finalizers freed
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return sample{heap: m.HeapAlloc, stack: m.StackInuse, goroutines: runtime.NumGoroutine()}
}

// memory measures n running tasks of r that start(ctx) starts, each of
// which calls started.Add once it runs, and release ends: first the heap
// of n tasks stored (not running) of the same shape and owners, then that
// of the running ones, less the stored share. It keeps no task itself:
// the caller deletes the owners' tasks.
func (e *Env) memory(ctx context.Context, path string, n int, owner func(int) string, r *taskrouter.Router,
	start func(context.Context) error, started *countdown, release func()) (Memory, error) {
	base := measure()
	err := parallel(ctx, n, func(ctx context.Context, i int) error {
		_, err := e.Store.Create(ctx, owner(i), taskstore.CreateRequest{RequestMethod: "tools/call",
			Variables: toolVars(blockTool), Runner: r.Runner()})
		return err
	})
	if err != nil {
		return Memory{}, err
	}
	withStored := measure()
	defer release()
	if err := start(ctx); err != nil {
		return Memory{}, err
	}
	if err := started.wait(ctx, e.Timeout, "runs started"); err != nil {
		return Memory{}, err
	}
	running := measure()
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	m := Memory{Path: path, Tasks: n, StoredPerTask: per(withStored.heap, base.heap),
		StackPerTask:      per(running.stack, withStored.stack),
		GoroutinesPerTask: float64(running.goroutines-withStored.goroutines) / float64(n)}
	m.HeapPerTask = per(running.heap, withStored.heap) - m.StoredPerTask
	release()
	return m, e.waitIdle(ctx, r)
}

// blockTool is the tool of the memory measurements: it runs until released.
const blockTool = "runcost_block"

// StartMemory measures n tasks running through Router.Start, each blocked
// until released.
func (e *Env) StartMemory(ctx context.Context, n int) (Memory, error) {
	r := taskrouter.New(e.Store, taskrouter.Options{Logger: quiet(), Runner: e.Prefix + "-memory-start"})
	defer e.shutdown(r)
	result := json.RawMessage(`{"content":[{"type":"text","text":"done"}]}`)
	workOf := func(started *countdown, gate <-chan struct{}) taskrouter.Work {
		return func(ctx context.Context) taskrouter.Outcome {
			started.Add()
			select {
			case <-gate:
			case <-ctx.Done():
			}
			return taskrouter.Outcome{Result: result}
		}
	}
	names := make([]string, owners)
	for i := range names {
		names[i] = e.owner("memory-start", i)
	}
	defer func() { e.deleteOwned(context.WithoutCancel(ctx), names) }()
	startAll := func(ctx context.Context, n int, work taskrouter.Work) error {
		for i := range n {
			if _, err := r.Start(ctx, taskrouter.StartRequest{Owner: names[i%owners], Method: "tools/call", Tool: blockTool}, work); err != nil {
				return err
			}
		}
		return nil
	}
	// A few tasks first, so that what is made once is not counted.
	const warm = 10
	open := make(chan struct{})
	close(open)
	if err := startAll(ctx, warm, workOf(newCountdown(warm), open)); err != nil {
		return Memory{}, err
	}
	if err := e.waitIdle(ctx, r); err != nil {
		return Memory{}, err
	}
	started, gate := newCountdown(n), make(chan struct{})
	return e.memory(ctx, "Router.Start", n, func(i int) string { return names[i%owners] }, r,
		func(ctx context.Context) error { return startAll(ctx, n, workOf(started, gate)) },
		started, sync.OnceFunc(func() { close(gate) }))
}

// SDKMemory measures n tasks running through a go-sdk server: a client
// over an in-memory connection (the stdio edge, Router.Transport) calls a
// tool as a task n times, each run blocked until released.
func (e *Env) SDKMemory(ctx context.Context, n int) (Memory, error) {
	owner := e.Prefix + "-memory-sdk"
	r := taskrouter.New(e.Store, taskrouter.Options{Logger: quiet(), Runner: owner,
		Owner: func(context.Context, mcp.Request) string { return owner }})
	defer e.shutdown(r)
	started, gate := newCountdown(n), make(chan struct{})
	server := mcp.NewServer(&mcp.Implementation{Name: "runcost", Version: "1"}, nil)
	type blockArgs struct {
		Hold bool `json:"hold"`
	}
	mcp.AddTool(server, &mcp.Tool{Name: blockTool}, func(ctx context.Context, _ *mcp.CallToolRequest, in blockArgs) (*mcp.CallToolResult, any, error) {
		if in.Hold {
			started.Add()
			select {
			case <-gate:
			case <-ctx.Done():
			}
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil, nil
	})
	r.SetTaskSupport(blockTool, taskrouter.TaskRequired)
	if err := r.Install(server); err != nil {
		return Memory{}, err
	}
	st, ct := mcp.NewInMemoryTransports()
	ss, err := server.Connect(ctx, r.Transport(st), nil)
	if err != nil {
		return Memory{}, err
	}
	c, err := dialRaw(ctx, ct)
	if err != nil {
		ss.Close()
		return Memory{}, err
	}
	// The session goes first: the ends of n tasks need not be notified
	// to it (one at a time, over a synchronous pipe).
	release := sync.OnceFunc(func() {
		c.conn.Close()
		ss.Close()
		close(gate)
	})
	defer release()
	defer func() { e.deleteOwned(context.WithoutCancel(ctx), []string{owner}) }()
	call := func(ctx context.Context, n int, hold bool) error {
		params, _ := json.Marshal(map[string]any{"name": blockTool, "arguments": blockArgs{Hold: hold}, "task": map[string]any{}})
		return c.calls(ctx, "tools/call", params, n)
	}
	// A few tasks first, so that what is made once is not counted.
	if err := call(ctx, 10, false); err != nil {
		return Memory{}, err
	}
	if err := e.waitIdle(ctx, r); err != nil {
		return Memory{}, err
	}
	return e.memory(ctx, "go-sdk tools/call", n, func(int) string { return owner }, r,
		func(ctx context.Context) error { return call(ctx, n, true) }, started, release)
}

// rawClient is a minimal MCP client on a connection: it sends requests and
// reads their responses, dropping what else the server sends.
type rawClient struct {
	conn      mcp.Connection
	responses chan *jsonrpc.Response
	next      int64
}

// dialRaw connects to t and initializes a 2025-11-25 session.
func dialRaw(ctx context.Context, t mcp.Transport) (*rawClient, error) {
	conn, err := t.Connect(ctx)
	if err != nil {
		return nil, err
	}
	c := &rawClient{conn: conn, responses: make(chan *jsonrpc.Response, 64)}
	go func() {
		defer close(c.responses)
		for {
			msg, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			if resp, ok := msg.(*jsonrpc.Response); ok {
				c.responses <- resp
			}
		}
	}()
	if err := c.calls(ctx, "initialize", json.RawMessage(`{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"runcost","version":"1"}}`), 1); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.Write(ctx, &jsonrpc.Request{Method: "notifications/initialized", Params: json.RawMessage(`{}`)}); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// calls sends n requests of method with params, then waits for their
// responses.
func (c *rawClient) calls(ctx context.Context, method string, params json.RawMessage, n int) error {
	sent := make(chan error, 1)
	go func() {
		for range n {
			c.next++
			id, _ := jsonrpc.MakeID(float64(c.next))
			if err := c.conn.Write(ctx, &jsonrpc.Request{ID: id, Method: method, Params: params}); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for range n {
		var resp *jsonrpc.Response
		select {
		case resp = <-c.responses:
		case <-ctx.Done():
			return ctx.Err()
		}
		if resp == nil {
			return errors.New("the connection closed")
		}
		if resp.Error != nil {
			return fmt.Errorf("%s: %w", method, resp.Error)
		}
	}
	return <-sent
}
