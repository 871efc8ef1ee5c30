package taskrouter

import (
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter/internal/edge"
	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
)

// CodeHeaderMismatch answers an HTTP request whose Mcp-Name header does not
// match its body.
const CodeHeaderMismatch = protocol.CodeHeaderMismatch

// HTTPOptions configure HTTPHandler. The zero value is safe: bodies are
// bounded in size, in total and in time.
type HTTPOptions struct {
	// MaxBodyBytes is the largest request body accepted (larger: HTTP 413).
	// Default mcp.DefaultMaxRequestBodyBytes; keep it at most the SDK
	// handler's StreamableHTTPOptions.MaxRequestBodyBytes.
	MaxBodyBytes int64
	// MaxBufferedBytes bounds the request bodies held in memory at once,
	// all requests together (authenticated or not: the body is read before
	// the wrapped handler checks a token). A request that would exceed it
	// gets HTTP 503 with Retry-After. Default 16 × MaxBodyBytes. A body with
	// a Content-Length is read into one buffer of that size; a chunked one
	// grows by doubling, and one the rewriter changes is copied once (the
	// copy replaces it), so either may briefly need twice its size.
	MaxBufferedBytes int64
	// BodyTimeout is how long a request body may take to arrive (HTTP 408
	// after it). The deadline is lifted once the body is read, so long
	// tasks/result waits and SSE streams are not cut, which is why this is
	// not http.Server.ReadTimeout. Default 30s.
	BodyTimeout time.Duration
	// Serve20260728, when set, serves protocol 2026-07-28 requests and with them
	// the tasks extension (io.modelcontextprotocol/tasks): give it an
	// mcp.StreamableHTTPHandler with Stateless: true over the same server
	// (behind the same authentication as the handler HTTPHandler wraps). A
	// request is 2026-07-28 when its MCP-Protocol-Version header, or the
	// _meta protocol version of a single message, says 2026-07-28 or later.
	// Nil: such requests go to the wrapped handler, and server/discover is
	// refused, so clients fall back to initialize (2025-11-25).
	Serve20260728 http.Handler
}

// HTTPHandler wraps the SDK's streamable HTTP handler (or anything in front
// of it, such as auth.RequireBearerToken): it reads each request body once
// (bounded, see HTTPOptions), moves params.task of tools/call into the
// carrier the Router reads, turns the Router's stand-in notifications into
// notifications/tasks/status, and answers a call of an unknown method with
// a JSON-RPC error (-32601) where the SDK would answer a plain-text HTTP 400.
func (r *Router) HTTPHandler(h http.Handler, opts *HTTPOptions) http.Handler {
	var o HTTPOptions
	if opts != nil {
		o = *opts
	}
	return r.edge.HTTP(h, edge.HTTPConfig{MaxBodyBytes: o.MaxBodyBytes, MaxBufferedBytes: o.MaxBufferedBytes,
		BodyTimeout: o.BodyTimeout, Serve20260728: o.Serve20260728, Refused: r.httpRefused})
}

// Transport wraps a transport (such as &mcp.StdioTransport{}) so that the
// task field of tools/call reaches the Router and its status notifications
// go out as notifications/tasks/status. It serves protocol 2025-11-25 only
// (server/discover is refused, so clients fall back to initialize); see
// TransportWith to serve 2026-07-28 too.
func (r *Router) Transport(t mcp.Transport) mcp.Transport {
	return r.TransportWith(t, nil)
}

// TransportOptions configure TransportWith.
type TransportOptions struct {
	// Serve20260728 serves protocol 2026-07-28 and with it the tasks extension
	// (io.modelcontextprotocol/tasks) on this transport too: a request whose
	// _meta protocol version is 2026-07-28 or later is served as
	// HTTPHandler's stateless route serves it (without the HTTP headers),
	// including notifications/tasks on subscriptions/listen. Clients that
	// speak both (go-sdk v1.8.0) then pick 2026-07-28.
	Serve20260728 bool
}

// TransportWith is Transport with options (nil: the defaults).
func (r *Router) TransportWith(t mcp.Transport, opts *TransportOptions) mcp.Transport {
	return r.edge.Transport(t, opts != nil && opts.Serve20260728)
}
