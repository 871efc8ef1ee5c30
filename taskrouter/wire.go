package taskrouter

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ---- incoming: params.task of tools/call -> _meta[taskMetaKey] ----

// privateMetaPrefix begins every _meta key the router uses to talk to
// itself through the SDK; a client's own such keys are dropped on the way in.
const privateMetaPrefix = "io.mcptasks/"

// rewriteParams removes every private _meta key a client sent itself and,
// for a tools/call (isCall), moves params.task into _meta[taskMetaKey]. It
// reports whether it changed params.
func rewriteParams(params json.RawMessage, isCall bool) (json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(params, &m) != nil || m == nil {
		return params, false
	}
	var meta map[string]json.RawMessage
	if raw, ok := m["_meta"]; ok {
		if json.Unmarshal(raw, &meta) != nil {
			return params, false // not an object: the SDK rejects it
		}
	}
	changed := false
	for k := range meta {
		if strings.HasPrefix(k, privateMetaPrefix) {
			delete(meta, k)
			changed = true
		}
	}
	if task, ok := m["task"]; ok && isCall {
		delete(m, "task")
		changed = true
		if string(bytes.TrimSpace(task)) != "null" {
			if meta == nil {
				meta = map[string]json.RawMessage{}
			}
			meta[taskMetaKey] = task
		}
	}
	if !changed {
		return params, false
	}
	if meta != nil {
		mb, err := json.Marshal(meta)
		if err != nil {
			return params, false
		}
		m["_meta"] = mb
	}
	out, err := json.Marshal(m)
	if err != nil {
		return params, false
	}
	return out, true
}

// rewriteMessage applies rewriteParams to one JSON-RPC message.
func rewriteMessage(msg json.RawMessage) (json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(msg, &m) != nil || m == nil {
		return msg, false
	}
	raw, ok := m["params"]
	if !ok {
		return msg, false
	}
	var method string
	_ = json.Unmarshal(m["method"], &method)
	params, changed := rewriteParams(raw, method == "tools/call")
	if !changed {
		return msg, false
	}
	m["params"] = params
	out, err := json.Marshal(m)
	if err != nil {
		return msg, false
	}
	return out, true
}

// rewriteBody rewrites the requests in an HTTP body (a message or a batch):
// private _meta keys out, tools/call's params.task in.
func rewriteBody(body []byte) []byte {
	// Fast path: no "task" anywhere, and no escapes that could spell it.
	if !bytes.Contains(body, []byte("task")) && !bytes.Contains(body, []byte(`\`)) {
		return body
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var batch []json.RawMessage
		if json.Unmarshal(trimmed, &batch) != nil {
			return body
		}
		changed := false
		for i, msg := range batch {
			if out, ok := rewriteMessage(msg); ok {
				batch[i], changed = out, true
			}
		}
		if !changed {
			return body
		}
		out, err := json.Marshal(batch)
		if err != nil {
			return body
		}
		return out
	}
	if out, ok := rewriteMessage(trimmed); ok {
		return out
	}
	return body
}

// ---- outgoing: stand-in progress notification -> notifications/tasks/status ----

// statusMessage returns the notifications/tasks/status message that msg
// (a JSON-RPC message) stands in for, if it is one of ours.
func (r *Router) statusMessage(msg []byte) ([]byte, bool) {
	if out, ok := r.ackMessage(msg); ok {
		return out, true
	}
	method, params, ok := r.statusParams(msg)
	if !ok {
		return nil, false
	}
	out := make([]byte, 0, len(params)+64)
	out = append(out, `{"jsonrpc":"2.0","method":"`+method+`","params":`...)
	out = append(out, params...)
	out = append(out, '}')
	return out, true
}

// statusParams returns the method and params of the notification that msg,
// a stand-in progress notification, stands for: notifications/tasks/status
// (2025-11-25) or notifications/tasks (2026-07-28, listen.go).
func (r *Router) statusParams(msg []byte) (string, json.RawMessage, bool) {
	if !bytes.Contains(msg, []byte(r.sdk.marker)) {
		return "", nil, false
	}
	var m struct {
		Method string `json:"method"`
		Params struct {
			Meta          map[string]json.RawMessage `json:"_meta"`
			ProgressToken any                        `json:"progressToken"`
		} `json:"params"`
	}
	if json.Unmarshal(msg, &m) != nil || m.Method != "notifications/progress" || m.Params.ProgressToken != r.sdk.marker {
		return "", nil, false
	}
	if params, ok := m.Params.Meta[modernStatusMetaKey]; ok {
		return "notifications/tasks", params, true
	}
	task, ok := m.Params.Meta[statusMetaKey]
	return "notifications/tasks/status", task, ok
}

// ackMessage moves the agreed task ids that onListenAck put in the _meta of
// a notifications/subscriptions/acknowledged message into
// params.notifications.taskIds, where SEP-2663 puts them.
func (r *Router) ackMessage(msg []byte) ([]byte, bool) {
	if !bytes.Contains(msg, []byte(r.ackMetaKey())) {
		return nil, false
	}
	var m map[string]json.RawMessage
	var method string
	if json.Unmarshal(msg, &m) != nil || json.Unmarshal(m["method"], &method) != nil || method != "notifications/subscriptions/acknowledged" {
		return nil, false
	}
	params, ok := r.ackParams(m["params"])
	if !ok {
		return nil, false
	}
	m["params"] = params
	out, err := json.Marshal(m)
	return out, err == nil
}

// ackParams is ackMessage on the params of the acknowledgement.
func (r *Router) ackParams(raw json.RawMessage) (json.RawMessage, bool) {
	key := r.ackMetaKey()
	if !bytes.Contains(raw, []byte(key)) {
		return nil, false
	}
	var p, meta map[string]json.RawMessage
	if json.Unmarshal(raw, &p) != nil || json.Unmarshal(p["_meta"], &meta) != nil {
		return nil, false
	}
	ids, ok := meta[key]
	if !ok {
		return nil, false
	}
	delete(meta, key)
	n := map[string]json.RawMessage{}
	if raw, ok := p["notifications"]; ok && string(raw) != "null" && json.Unmarshal(raw, &n) != nil {
		return nil, false
	}
	n["taskIds"] = ids
	p["notifications"], _ = json.Marshal(n)
	p["_meta"], _ = json.Marshal(meta)
	out, err := json.Marshal(p)
	return out, err == nil
}

// rewriteOutput rewrites the stand-in notifications in a chunk the SDK
// writes to an HTTP response: one SSE event (the SDK writes each event in
// one Write) or one JSON message.
func (r *Router) rewriteOutput(p []byte) []byte {
	if !bytes.Contains(p, []byte(r.sdk.marker)) {
		return p
	}
	if t := bytes.TrimSpace(p); len(t) > 0 && t[0] == '{' {
		if out, ok := r.statusMessage(t); ok {
			return out
		}
		return p
	}
	lines := bytes.Split(p, []byte("\n"))
	changed := false
	for i, line := range lines {
		data, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok {
			continue
		}
		if out, ok := r.statusMessage(data); ok {
			lines[i] = append([]byte("data: "), out...)
			changed = true
		}
	}
	if !changed {
		return p
	}
	return bytes.Join(lines, []byte("\n"))
}

// ---- HTTP ----

// HTTPOptions configure HTTPHandler.
type HTTPOptions struct {
	// MaxBodyBytes is the largest request body that is inspected; larger
	// ones pass through unchanged for the SDK to reject. Default
	// mcp.DefaultMaxRequestBodyBytes; keep it equal to the SDK handler's
	// StreamableHTTPOptions.MaxRequestBodyBytes.
	MaxBodyBytes int64
	// Stateless, when set, serves protocol 2026-07-28 requests and with them
	// the tasks extension (io.modelcontextprotocol/tasks): give it an
	// mcp.StreamableHTTPHandler with Stateless: true over the same server
	// (behind the same authentication as the handler HTTPHandler wraps). A
	// request is 2026-07-28 when its MCP-Protocol-Version header, or its
	// _meta protocol version, says 2026-07-28 or later. Nil: such requests
	// go to the wrapped handler, and server/discover is refused, so clients
	// fall back to initialize (2025-11-25).
	Stateless http.Handler
}

// HTTPHandler wraps the SDK's streamable HTTP handler (or anything in front
// of it, such as auth.RequireBearerToken): it moves params.task of
// tools/call into the private _meta key the Router reads, turns the
// Router's stand-in notifications into notifications/tasks/status, and
// answers a call of an unknown method with a JSON-RPC error (-32601)
// where the SDK would answer a plain-text HTTP 400.
func (r *Router) HTTPHandler(h http.Handler, opts *HTTPOptions) http.Handler {
	limit := int64(mcp.DefaultMaxRequestBodyBytes)
	if opts != nil && opts.MaxBodyBytes > 0 {
		limit = opts.MaxBodyBytes
	}
	var stateless http.Handler
	if opts != nil {
		stateless = opts.Stateless
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body []byte
		if stateless != nil && modernHeader(req) && req.Method != http.MethodPost {
			stateless.ServeHTTP(w, req) // it answers 405
			return
		}
		if req.Method == http.MethodPost && req.Body != nil {
			buf, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
			if err != nil {
				http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
				return
			}
			if stateless != nil && int64(len(buf)) <= limit && (modernHeader(req) || modernBody(buf)) {
				r.serveModern(w, req, buf, stateless)
				return
			}
			if int64(len(buf)) <= limit {
				body = rewriteBody(buf)
				req.Body = io.NopCloser(bytes.NewReader(body))
				req.ContentLength = int64(len(body))
				req.Header.Set("Content-Length", strconv.Itoa(len(body)))
			} else {
				// Too large: let the SDK see all of it and reject it.
				req.Body = struct {
					io.Reader
					io.Closer
				}{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}
			}
		}
		sw := &statusWriter{ResponseWriter: w, r: r}
		h.ServeHTTP(sw, req)
		sw.finish(body)
	})
}

// statusWriter rewrites the Router's stand-in notifications, and holds
// back a plain-text 400 so that finish can turn "unsupported method" into
// a JSON-RPC error.
type statusWriter struct {
	http.ResponseWriter
	r        *Router
	held     bool
	heldBody bytes.Buffer
}

func (w *statusWriter) WriteHeader(code int) {
	if code == http.StatusBadRequest && bytes.HasPrefix([]byte(w.Header().Get("Content-Type")), []byte("text/plain")) {
		w.held = true
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.held {
		return w.heldBody.Write(p)
	}
	if _, err := w.ResponseWriter.Write(w.r.rewriteOutput(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *statusWriter) Flush() {
	if w.held {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) finish(body []byte) {
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
	// Modern serves protocol 2026-07-28 and with it the tasks extension
	// (io.modelcontextprotocol/tasks) on this transport too: a request whose
	// _meta protocol version is 2026-07-28 or later is served as
	// HTTPHandler's stateless route serves it (without the HTTP headers),
	// including notifications/tasks on subscriptions/listen. Clients that
	// speak both (go-sdk v1.8.0) then pick 2026-07-28.
	Modern bool
}

// TransportWith is Transport with options (nil: the defaults).
func (r *Router) TransportWith(t mcp.Transport, opts *TransportOptions) mcp.Transport {
	return &transport{inner: t, r: r, modern: opts != nil && opts.Modern}
}

type transport struct {
	inner  mcp.Transport
	r      *Router
	modern bool
}

func (t *transport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{Connection: c, r: t.r, modern: t.modern}, nil
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
	r      *Router
	modern bool
}

func (c *conn) Read(ctx context.Context) (jsonrpc.Message, error) {
	msg, err := c.Connection.Read(ctx)
	req, ok := msg.(*jsonrpc.Request)
	if !ok || err != nil {
		return msg, err
	}
	if c.modern && modernParams(req.Params) {
		// Protocol 2026-07-28 (the per-request _meta protocol version):
		// marked as serveModern marks it. stdio has no Mcp-Name header.
		var params map[string]json.RawMessage
		if json.Unmarshal(req.Params, &params) == nil {
			if p, err := markModern(req.Method, params); err == nil {
				req.Params = p
			}
		}
		return msg, nil
	}
	if params, changed := rewriteParams(req.Params, req.Method == "tools/call"); changed {
		req.Params = params
	}
	return msg, err
}

// modernParams reports whether request params carry a 2026-07-28 (or
// later) _meta protocol version.
func modernParams(params json.RawMessage) bool {
	if !bytes.Contains(params, []byte("io.modelcontextprotocol/protocolVersion")) {
		return false
	}
	var p struct {
		Meta map[string]any `json:"_meta"`
	}
	if json.Unmarshal(params, &p) != nil {
		return false
	}
	v, _ := p.Meta["io.modelcontextprotocol/protocolVersion"].(string)
	return v >= protocol20260728
}

func (c *conn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if req, ok := msg.(*jsonrpc.Request); ok && req.Method == "notifications/subscriptions/acknowledged" && !req.IsCall() {
		if params, ok := c.r.ackParams(req.Params); ok {
			msg = &jsonrpc.Request{Method: req.Method, Params: params}
		}
	}
	if req, ok := msg.(*jsonrpc.Request); ok && req.Method == "notifications/progress" && !req.IsCall() {
		if bytes.Contains(req.Params, []byte(c.r.sdk.marker)) {
			var p struct {
				Meta          map[string]json.RawMessage `json:"_meta"`
				ProgressToken any                        `json:"progressToken"`
			}
			if json.Unmarshal(req.Params, &p) == nil && p.ProgressToken == c.r.sdk.marker {
				if task, ok := p.Meta[modernStatusMetaKey]; ok {
					msg = &jsonrpc.Request{Method: "notifications/tasks", Params: task}
				} else if task, ok := p.Meta[statusMetaKey]; ok {
					msg = &jsonrpc.Request{Method: "notifications/tasks/status", Params: task}
				}
			}
		}
	}
	return c.Connection.Write(ctx, msg)
}

// ---- protocol 2026-07-28 over HTTP ----

const protocol20260728 = "2026-07-28"

// modernHeader reports whether the MCP-Protocol-Version header names
// 2026-07-28 or later (versions are dates, so they compare as strings).
func modernHeader(req *http.Request) bool {
	v := strings.TrimSpace(req.Header.Get("Mcp-Protocol-Version"))
	return v != "" && v >= protocol20260728
}

// modernBody reports whether a single JSON-RPC message carries a
// 2026-07-28 (or later) _meta protocol version.
func modernBody(body []byte) bool {
	if !bytes.Contains(body, []byte("io.modelcontextprotocol/protocolVersion")) {
		return false
	}
	var m struct {
		Params json.RawMessage `json:"params"`
	}
	return json.Unmarshal(body, &m) == nil && modernParams(m.Params)
}

// serveModern checks and marks a 2026-07-28 request, then hands it to the
// stateless handler. For tasks/get, tasks/update and tasks/cancel the
// Mcp-Name header must equal params.taskId (SEP-2663, SEP-2243): a missing
// or different one is HTTP 400 with -32020. The private _meta keys are
// stripped from what the client sent, params.task (a 2025-11-25 field) is
// dropped, and modernMetaKey is set, which is how the Router knows the
// request's protocol.
func (r *Router) serveModern(w http.ResponseWriter, req *http.Request, body []byte, next http.Handler) {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || m == nil {
		// Not a single JSON-RPC message: the SDK answers it.
		next.ServeHTTP(w, withBody(req, body))
		return
	}
	var method string
	_ = json.Unmarshal(m["method"], &method)
	var params map[string]json.RawMessage
	if raw, ok := m["params"]; ok && json.Unmarshal(raw, &params) != nil {
		next.ServeHTTP(w, withBody(req, body))
		return
	}
	switch method {
	case "tasks/get", "tasks/update", "tasks/cancel":
		var taskID string
		_ = json.Unmarshal(params["taskId"], &taskID)
		name, present := req.Header["Mcp-Name"]
		got := ""
		if present && len(name) > 0 {
			got = strings.TrimSpace(name[0]) // RFC 9110: surrounding whitespace is not part of the value
		}
		if !present || got != taskID {
			msg := "header mismatch: Mcp-Name header value " + strconv.Quote(got) + " does not match params.taskId"
			if !present {
				msg = "missing required Mcp-Name header for method " + strconv.Quote(method)
			}
			writeRPCError(w, http.StatusBadRequest, m["id"], CodeHeaderMismatch, msg)
			return
		}
	}
	if _, isCall := m["id"]; isCall || method != "" {
		pb, err := markModern(method, params)
		if err != nil {
			next.ServeHTTP(w, withBody(req, body))
			return
		}
		m["params"] = pb
		if out, err := json.Marshal(m); err == nil {
			body = out
		}
	}
	next.ServeHTTP(&modernWriter{ResponseWriter: w, r: r}, withBody(req, body))
}

// markModern returns a 2026-07-28 request's params as the Router reads
// them: the private _meta keys a client sent are dropped, modernMetaKey is
// set, params.task (a 2025-11-25 field) is dropped, and the taskIds of a
// subscriptions/listen, which the SDK's NotificationSubscriptions has no
// field for, are carried in _meta.
func markModern(method string, params map[string]json.RawMessage) (json.RawMessage, error) {
	if params == nil {
		params = map[string]json.RawMessage{}
	}
	meta := map[string]json.RawMessage{}
	if raw, ok := params["_meta"]; ok {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, err
		}
	}
	if meta == nil {
		meta = map[string]json.RawMessage{}
	}
	for k := range meta {
		if strings.HasPrefix(k, privateMetaPrefix) {
			delete(meta, k)
		}
	}
	meta[modernMetaKey] = json.RawMessage("true")
	if method == "subscriptions/listen" {
		var n struct {
			TaskIDs json.RawMessage `json:"taskIds"`
		}
		if raw, ok := params["notifications"]; ok && json.Unmarshal(raw, &n) == nil && len(n.TaskIDs) > 0 && string(n.TaskIDs) != "null" {
			meta[listenMetaKey] = n.TaskIDs
		}
	}
	delete(params, "task")
	mb, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	params["_meta"] = mb
	return json.Marshal(params)
}

// modernWriter rewrites the Router's stand-in messages on the 2026-07-28
// route (the notifications/tasks of a subscriptions/listen stream and its
// acknowledgement).
type modernWriter struct {
	http.ResponseWriter
	r *Router
}

func (w *modernWriter) Write(p []byte) (int, error) {
	if _, err := w.ResponseWriter.Write(w.r.rewriteOutput(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *modernWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *modernWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func withBody(req *http.Request, body []byte) *http.Request {
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return req
}

func writeRPCError(w http.ResponseWriter, status int, id json.RawMessage, code int, msg string) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{JSONRPC: "2.0", ID: id, Error: struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, msg}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
