// Package edge is a router's transport edge, for HTTP and for stdio (any
// mcp.Transport): where the protocol revision of a request is decided,
// once, and written with what the go-sdk would drop (a tools/call's
// params.task, a listen's taskIds) into one carrier in the request's _meta,
// which the router's middleware takes out (Take). Over HTTP it also bounds
// request bodies (size, total held, time), checks the Mcp-Name header of
// 2026-07-28 task requests, and turns the SDK's plain-text 400 for an
// unknown method into a JSON-RPC error.
//
// Stand-ins: the go-sdk cannot send a custom notification, so the router
// sends a progress notification whose _meta carries, under a per-process
// marker, the message it stands for (StandIn, StandInMeta); the edge
// rewrites it into that message on the way out. The marker is random, and
// a client's own io.mcptasks/ keys are dropped on the way in, so no client
// can forge either.
package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/internal/jsonwalk"
	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
)

// privateMetaPrefix begins every _meta key the router uses to talk to
// itself through the SDK. A client's own such keys (in any letter case)
// are dropped on the way in.
const privateMetaPrefix = "io.mcptasks/"

// carrierKey is the _meta key of the one carrier from the edge to the
// router's middleware.
const carrierKey = "io.mcptasks/edge"

// Edge is the transport edge of one router.
type Edge struct {
	marker   string                 // progress token and _meta key of the stand-ins
	onStream func(id string)        // an HTTP session opened its standalone stream
	marks    func(tool string) bool // tools whose calls carry a carrier, even an empty one

	mu       sync.Mutex
	requests map[string]context.Context // token -> the HTTP request of a tasks/result
	last     atomic.Uint64              // the last token
}

// New returns an edge; onStream (may be nil) is told the id of each HTTP
// session whose standalone SSE stream the SDK accepted; marks (may be nil)
// names the tools whose every call carries a carrier, so that the router
// can tell such a call that came through no edge.
func New(onStream func(sessionID string), marks func(tool string) bool) *Edge {
	var b [16]byte
	rand.Read(b[:])
	return &Edge{marker: "io.mcptasks/status-" + hex.EncodeToString(b[:]), onStream: onStream, marks: marks,
		requests: map[string]context.Context{}}
}

// StandIn sends on ss the progress notification that the edge turns into
// the notification method with params.
func (e *Edge) StandIn(ctx context.Context, ss *mcp.ServerSession, method string, params any) error {
	key, value := e.StandInMeta(method, params)
	return ss.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: e.marker, Meta: mcp.Meta{key: value}})
}

// StandInMeta is the _meta entry that makes the edge send method with
// params instead of the notification that carries it.
func (e *Edge) StandInMeta(method string, params any) (key string, value any) {
	return e.marker, map[string]any{"method": method, "params": params}
}

// addRequest names an HTTP request that carries a tasks/result, so that
// its wait can end with it.
func (e *Edge) addRequest(ctx context.Context) string {
	// Unique is enough: clients cannot write the carrier.
	tok := strconv.FormatUint(e.last.Add(1), 36)
	e.mu.Lock()
	e.requests[tok] = ctx
	e.mu.Unlock()
	return tok
}

func (e *Edge) removeRequest(tok string) {
	e.mu.Lock()
	delete(e.requests, tok)
	e.mu.Unlock()
}

// Request is the context of the HTTP request a carrier's Request names, or
// nil (not HTTP, or the request has ended).
func (e *Edge) Request(c Carrier) context.Context {
	if c.Request == "" {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.requests[c.Request]
}

// Carrier is what the edge decided about one request. It travels in the
// request's _meta as the JSON object {"protocol", "task", "listen",
// "request"} (members present only when set).
type Carrier struct {
	// Protocol is "2026-07-28" for requests of that revision; empty is
	// 2025-11-25.
	Protocol string
	// Task is params.task of a 2025-11-25 tools/call (which the SDK drops).
	Task json.RawMessage
	// Listen is params.notifications.taskIds of a 2026-07-28
	// subscriptions/listen (which the SDK has no field for).
	Listen json.RawMessage
	// Request names the HTTP request of a tasks/result (see Edge.Request).
	Request string
	// Passed is set by Take when the request carried a carrier: it came
	// through an edge. Every call of a tool the edge marks carries one.
	Passed bool
}

// Revision is the request's protocol revision.
func (c Carrier) Revision() protocol.Revision { return protocol.ParseRevision(c.Protocol) }

// members encodes c's members (the rewriter wraps them in the carrier).
// Task and Listen are raw JSON as received; Protocol and Request are this
// package's own strings, which need no escaping.
func (c Carrier) members() [][]byte {
	var out [][]byte
	if c.Protocol != "" {
		out = append(out, []byte(`"protocol":"`+c.Protocol+`"`))
	}
	if c.Task != nil {
		out = append(out, jsonwalk.Keyed("task", c.Task))
	}
	if c.Listen != nil {
		out = append(out, jsonwalk.Keyed("listen", c.Listen))
	}
	if c.Request != "" {
		out = append(out, []byte(`"request":"`+c.Request+`"`))
	}
	return out
}

// Take removes the carrier from req's _meta (the SDK has decoded it into a
// map) and returns it; a request that came through no edge has none.
func Take(req mcp.Request) Carrier {
	meta := protocol.Meta(req)
	raw, ok := meta[carrierKey]
	if !ok {
		return Carrier{}
	}
	delete(meta, carrierKey)
	m, _ := raw.(map[string]any)
	c := Carrier{Passed: true}
	c.Protocol, _ = m["protocol"].(string)
	c.Request, _ = m["request"].(string)
	if v, ok := m["task"]; ok {
		c.Task, _ = json.Marshal(v)
	}
	if v, ok := m["listen"]; ok {
		c.Listen, _ = json.Marshal(v)
	}
	return c
}
