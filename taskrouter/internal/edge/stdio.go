package edge

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/internal/jsonwalk"
	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
)

// ---- stdio and other mcp.Transports ----

// Transport wraps t so that the task field of tools/call reaches the
// router and its stand-ins go out as what they stand for; serve20260728
// lets a request's _meta protocol version select 2026-07-28.
func (e *Edge) Transport(t mcp.Transport, serve20260728 bool) mcp.Transport {
	return &transport{inner: t, e: e, serve20260728: serve20260728}
}

type transport struct {
	inner         mcp.Transport
	e             *Edge
	serve20260728 bool
}

func (t *transport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{Connection: c, t: t}, nil
}

// SupportsProtocolVersion passes the inner transport's answer on.
func (t *transport) SupportsProtocolVersion(v string) bool {
	if p, ok := t.inner.(mcp.ProtocolVersionSupporter); ok {
		return p.SupportsProtocolVersion(v)
	}
	return true
}

type conn struct {
	mcp.Connection
	t *transport
}

// Read rewrites each request's params as HTTPHandler rewrites a body; a
// request the rewriter refuses is answered here and never reaches the SDK.
func (c *conn) Read(ctx context.Context) (jsonrpc.Message, error) {
	for {
		msg, err := c.Connection.Read(ctx)
		req, ok := msg.(*jsonrpc.Request)
		if err != nil || !ok {
			return msg, err
		}
		var pm *jsonwalk.Field
		if t := bytes.TrimSpace(req.Params); len(t) > 0 {
			req.Params = t
			pm = &jsonwalk.Field{End: len(t)}
		}
		params, _, err := rewriteParams(req.Params, pm, req.Method, decision{upgrade: c.t.serve20260728, marks: c.t.e.marks})
		if err == nil {
			if params != nil {
				req.Params = params
			}
			return req, nil
		}
		if req.IsCall() {
			resp := &jsonrpc.Response{ID: req.ID, Error: &jsonrpc.Error{Code: protocol.CodeInvalidRequest, Message: err.Error()}}
			if werr := c.Connection.Write(ctx, resp); werr != nil {
				return nil, werr
			}
		}
	}
}

// Write turns the Router's stand-in notifications into what they stand for.
func (c *conn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if req, ok := msg.(*jsonrpc.Request); ok && !req.IsCall() && bytes.Contains(req.Params, []byte(c.t.e.marker)) {
		method, _ := json.Marshal(req.Method)
		if out, ok := rewriteOutbound(notification(method, req.Params), c.t.e.marker); ok {
			if m, err := jsonrpc.DecodeMessage(out); err == nil {
				msg = m
			}
		}
	}
	return c.Connection.Write(ctx, msg)
}
