package taskrouter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sync/semaphore"

	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
)

// This file is the transport edge: where the protocol revision of a request
// is decided (once) and written into the carrier, for HTTP and for stdio.

// CodeHeaderMismatch answers an HTTP request whose Mcp-Name header does not
// match its body.
const CodeHeaderMismatch = -32020

// JSON-RPC codes of the edge's own refusals.
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
)

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
	e := &httpEdge{r: r, next: h, limit: mcp.DefaultMaxRequestBodyBytes, timeout: 30 * time.Second}
	if opts != nil {
		e.next20260728 = opts.Serve20260728
		if opts.MaxBodyBytes > 0 {
			e.limit = opts.MaxBodyBytes
		}
		if opts.BodyTimeout > 0 {
			e.timeout = opts.BodyTimeout
		}
	}
	total := 16 * e.limit
	if opts != nil && opts.MaxBufferedBytes > 0 {
		total = opts.MaxBufferedBytes
	}
	e.budget = semaphore.NewWeighted(total) // the body bytes held by all requests
	return e
}

type httpEdge struct {
	r            *Router
	next         http.Handler // 2025-11-25
	next20260728 http.Handler // nil: not served
	limit        int64
	timeout      time.Duration
	budget       *semaphore.Weighted
}

func (e *httpEdge) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rev := protocol.Rev20251125
	if e.next20260728 != nil && protocol.ParseRevision(req.Header.Get("Mcp-Protocol-Version")) == protocol.Rev20260728 {
		rev = protocol.Rev20260728
	}
	if req.Method != http.MethodPost || req.Body == nil || req.Body == http.NoBody {
		if rev == protocol.Rev20260728 {
			e.next20260728.ServeHTTP(w, req) // it answers 405 to GET and DELETE
			return
		}
		rw := &responseWriter{ResponseWriter: w, r: e.r, hold400: true}
		if id := req.Header.Get("Mcp-Session-Id"); req.Method == http.MethodGet && id != "" {
			// The SDK answers 200 only for a live session's stream, after
			// authentication.
			rw.onOK = func() { e.r.sessions.NoteStream(id) }
		}
		e.next.ServeHTTP(rw, req)
		rw.finish(nil)
		return
	}
	body, held, status := e.readBody(w, req)
	var once sync.Once
	release := func() { once.Do(func() { e.budget.Release(held) }) }
	defer release()
	if status != 0 {
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		w.Header().Set("Connection", "close")
		http.Error(w, http.StatusText(status), status)
		return
	}
	d := decision{rev: rev, upgrade: e.next20260728 != nil}
	if bytes.Contains(body, []byte("tasks/result")) {
		d.token = e.r.sdk.addRequest(req.Context())
		defer e.r.sdk.removeRequest(d.token)
	}
	out, reqs, err := rewriteBody(body, d)
	if err != nil {
		code := codeInvalidRequest
		if errors.Is(err, errMalformed) {
			code = codeParseError
		}
		writeRPCError(w, http.StatusBadRequest, nil, code, err.Error())
		return
	}
	if len(reqs) == 1 {
		rev = reqs[0].rev
	}
	next := e.next
	if rev == protocol.Rev20260728 {
		next = e.next20260728
		if len(reqs) == 1 && !checkMcpName(w, req, reqs[0]) {
			return
		}
	}
	req.Body = &bodyReader{r: bytes.NewReader(out), done: release}
	req.ContentLength = int64(len(out))
	req.Header.Set("Content-Length", strconv.FormatInt(req.ContentLength, 10))
	rw := &responseWriter{ResponseWriter: w, r: e.r, hold400: rev == protocol.Rev20251125}
	next.ServeHTTP(rw, req)
	rw.finish(out) // not body: a rewritten body is not kept for the request's life
}

// readBody reads the body under the edge's deadline, size limit and
// budget. held is the budget taken (to release); status is an HTTP status
// to answer instead, or 0.
func (e *httpEdge) readBody(w http.ResponseWriter, req *http.Request) (body []byte, held int64, status int) {
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(e.timeout)); err == nil {
		defer rc.SetReadDeadline(time.Time{})
	}
	if req.ContentLength > e.limit {
		return nil, 0, http.StatusRequestEntityTooLarge
	}
	size := int64(64 << 10)
	if req.ContentLength >= 0 {
		size = req.ContentLength + 1 // +1: EOF is seen without growing
	}
	for {
		if int64(len(body)) == int64(cap(body)) {
			grow := min(max(size, int64(cap(body))), e.limit+1-int64(cap(body)))
			if grow <= 0 {
				return nil, held, http.StatusRequestEntityTooLarge
			}
			if !e.budget.TryAcquire(grow) {
				return nil, held, http.StatusServiceUnavailable
			}
			held += grow
			body = slices.Grow(body, int(grow))
		}
		n, err := req.Body.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var maxErr *http.MaxBytesError
			if errors.As(err, &maxErr) {
				return nil, held, http.StatusRequestEntityTooLarge
			}
			return nil, held, http.StatusRequestTimeout
		}
	}
	if int64(len(body)) > e.limit {
		return nil, held, http.StatusRequestEntityTooLarge
	}
	return body, held, 0
}

// addRequest names an HTTP request that may carry a tasks/result, so that
// its wait can end with it.
func (s *sdkState) addRequest(ctx context.Context) string {
	// Unique is enough: clients cannot write the carrier (the rewriter
	// drops their io.mcptasks/ keys).
	tok := strconv.FormatUint(s.lastRequest.Add(1), 36)
	s.mu.Lock()
	s.requests[tok] = ctx
	s.mu.Unlock()
	return tok
}

func (s *sdkState) removeRequest(tok string) {
	s.mu.Lock()
	delete(s.requests, tok)
	s.mu.Unlock()
}

// bodyReader hands the rewritten body to the wrapped handler and releases
// its budget once it is read.
type bodyReader struct {
	r    *bytes.Reader
	done func()
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.r.Reset(nil)
		b.done()
	}
	return n, err
}

func (b *bodyReader) Close() error { return nil }

// checkMcpName checks the Mcp-Name header of tasks/get, tasks/update and
// tasks/cancel, which must equal params.taskId (SEP-2663, SEP-2243): a
// missing or different one is HTTP 400 with -32020.
func checkMcpName(w http.ResponseWriter, req *http.Request, r request) bool {
	switch r.method {
	case "tasks/get", "tasks/update", "tasks/cancel":
	default:
		return true
	}
	var taskID string
	_ = json.Unmarshal(r.taskID, &taskID)
	name, present := req.Header["Mcp-Name"]
	got := ""
	if present && len(name) > 0 {
		got = strings.TrimSpace(name[0]) // RFC 9110: surrounding whitespace is not part of the value
	}
	if present && got == taskID {
		return true
	}
	msg := "header mismatch: Mcp-Name header value " + strconv.Quote(got) + " does not match params.taskId"
	if !present {
		msg = "missing required Mcp-Name header for method " + strconv.Quote(r.method)
	}
	writeRPCError(w, http.StatusBadRequest, r.id, CodeHeaderMismatch, msg)
	return false
}

// responseWriter rewrites the Router's stand-in messages in the SSE events
// the SDK writes, whatever its Write boundaries (complete lines are
// rewritten; a partial line waits for its end), and, when hold400 is set,
// holds back a plain-text 400 so that finish can turn "unsupported method"
// into a JSON-RPC error.
type responseWriter struct {
	http.ResponseWriter
	r        *Router
	hold400  bool
	held     bool
	heldBody bytes.Buffer
	sse      bool
	checked  bool
	partial  []byte // an SSE line not yet ended
	onOK     func() // run once when the answer is a 200
	answered bool
}

func (w *responseWriter) WriteHeader(code int) {
	if w.hold400 && code == http.StatusBadRequest && strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		w.held = true
		return
	}
	w.answer(code)
	w.ResponseWriter.WriteHeader(code)
}

// answer notes the status of the answer (Write and Flush before
// WriteHeader imply 200).
func (w *responseWriter) answer(code int) {
	if !w.answered {
		w.answered = true
		if code == http.StatusOK && w.onOK != nil {
			w.onOK()
		}
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.held {
		return w.heldBody.Write(p)
	}
	w.answer(http.StatusOK)
	if !w.checked {
		w.checked = true
		w.sse = strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream")
	}
	if !w.sse {
		return w.ResponseWriter.Write(p)
	}
	n := len(p)
	if len(w.partial) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			return n, nil
		}
		line := append(w.partial, p[:i+1]...)
		w.partial = nil
		if _, err := w.ResponseWriter.Write(w.r.rewriteLines(line)); err != nil {
			return 0, err
		}
		p = p[i+1:]
	}
	last := bytes.LastIndexByte(p, '\n')
	if last < len(p)-1 {
		w.partial = append([]byte(nil), p[last+1:]...)
	}
	if last >= 0 {
		if _, err := w.ResponseWriter.Write(w.r.rewriteLines(p[:last+1])); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// rewriteLines rewrites the data: lines of complete SSE lines.
func (r *Router) rewriteLines(p []byte) []byte {
	if !bytes.Contains(p, []byte(r.sdk.marker)) {
		return p
	}
	var out []byte
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		line := p[:i+1]
		p = p[i+1:]
		if data, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			if msg, ok := rewriteOutbound(bytes.TrimSpace(data), r.sdk.marker); ok {
				out = append(append(append(out, "data: "...), msg...), '\n')
				continue
			}
		}
		out = append(out, line...)
	}
	return out
}

func (w *responseWriter) Flush() {
	if w.held {
		return
	}
	w.answer(http.StatusOK)
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *responseWriter) finish(body []byte) {
	if len(w.partial) > 0 {
		w.ResponseWriter.Write(w.partial)
		w.partial = nil
	}
	if !w.held {
		return
	}
	if id, ok := unsupportedCall(body, w.heldBody.Bytes()); ok {
		resp, err := jsonrpc.EncodeMessage(&jsonrpc.Response{ID: id, Error: &jsonrpc.Error{
			Code: jsonrpc.CodeMethodNotFound, Message: string(bytes.TrimSpace(w.heldBody.Bytes()))}})
		if err == nil {
			h := w.ResponseWriter.Header()
			h.Set("Content-Type", "application/json")
			h.Del("Content-Length")
			h.Del("X-Content-Type-Options")
			w.ResponseWriter.WriteHeader(http.StatusOK)
			w.ResponseWriter.Write(resp)
			return
		}
	}
	w.ResponseWriter.WriteHeader(http.StatusBadRequest)
	w.ResponseWriter.Write(w.heldBody.Bytes())
}

// unsupportedCall reports whether the SDK refused body, a single call,
// because its method is unknown, and returns the call's id.
func unsupportedCall(body, answer []byte) (jsonrpc.ID, bool) {
	if !bytes.Contains(answer, []byte("unsupported")) || len(body) == 0 {
		return jsonrpc.ID{}, false
	}
	msg, err := jsonrpc.DecodeMessage(body)
	if err != nil {
		return jsonrpc.ID{}, false
	}
	call, ok := msg.(*jsonrpc.Request)
	if !ok || !call.IsCall() {
		return jsonrpc.ID{}, false
	}
	return call.ID, true
}

func writeRPCError(w http.ResponseWriter, status int, id json.RawMessage, code int, msg string) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	m, _ := json.Marshal(msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	out := append(append([]byte(`{"jsonrpc":"2.0","id":`), id...), `,"error":{"code":`+strconv.Itoa(code)+`,"message":`...)
	w.Write(append(append(out, m...), "}}"...))
}

// ---- stdio and other mcp.Transports ----

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
	return &transport{inner: t, r: r, serve20260728: opts != nil && opts.Serve20260728}
}

type transport struct {
	inner         mcp.Transport
	r             *Router
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
		var pm *member
		if t := bytes.TrimSpace(req.Params); len(t) > 0 {
			req.Params = t
			pm = &member{end: len(t)}
		}
		params, _, err := rewriteParams(req.Params, pm, req.Method, decision{upgrade: c.t.serve20260728})
		if err == nil {
			if params != nil {
				req.Params = params
			}
			return req, nil
		}
		if req.IsCall() {
			resp := &jsonrpc.Response{ID: req.ID, Error: &jsonrpc.Error{Code: codeInvalidRequest, Message: err.Error()}}
			if werr := c.Connection.Write(ctx, resp); werr != nil {
				return nil, werr
			}
		}
	}
}

// Write turns the Router's stand-in notifications into what they stand for.
func (c *conn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if req, ok := msg.(*jsonrpc.Request); ok && !req.IsCall() && bytes.Contains(req.Params, []byte(c.t.r.sdk.marker)) {
		method, _ := json.Marshal(req.Method)
		if out, ok := rewriteOutbound(notification(method, req.Params), c.t.r.sdk.marker); ok {
			if m, err := jsonrpc.DecodeMessage(out); err == nil {
				msg = m
			}
		}
	}
	return c.Connection.Write(ctx, msg)
}
