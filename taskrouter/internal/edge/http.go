package edge

import (
	"bytes"
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

// HTTPConfig configures HTTP; zero fields take the defaults of
// taskrouter.HTTPOptions, whose doc says what each does.
type HTTPConfig struct {
	MaxBodyBytes     int64
	MaxBufferedBytes int64
	BodyTimeout      time.Duration
	Serve20260728    http.Handler
	// Refused, when set, is told the HTTP status of each request refused
	// for its body (413 too large, 503 over the budget).
	Refused func(status int)
}

// HTTP wraps the SDK's streamable HTTP handler h (or anything in front of
// it): each request body is read once, bounded, and rewritten; the answers
// are rewritten on the way out (stand-ins, unknown methods).
func (e *Edge) HTTP(h http.Handler, cfg HTTPConfig) http.Handler {
	he := &httpEdge{e: e, next: h, next20260728: cfg.Serve20260728, limit: mcp.DefaultMaxRequestBodyBytes, timeout: 30 * time.Second, refused: cfg.Refused}
	if cfg.MaxBodyBytes > 0 {
		he.limit = cfg.MaxBodyBytes
	}
	if cfg.BodyTimeout > 0 {
		he.timeout = cfg.BodyTimeout
	}
	total := 16 * he.limit
	if cfg.MaxBufferedBytes > 0 {
		total = cfg.MaxBufferedBytes
	}
	he.budget = semaphore.NewWeighted(total) // the body bytes held by all requests
	return he
}

type httpEdge struct {
	e            *Edge
	next         http.Handler // 2025-11-25
	next20260728 http.Handler // nil: not served
	limit        int64
	timeout      time.Duration
	budget       *semaphore.Weighted
	refused      func(status int)
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
		rw := &responseWriter{ResponseWriter: w, e: e.e, hold400: true}
		if id := req.Header.Get("Mcp-Session-Id"); req.Method == http.MethodGet && id != "" && e.e.onStream != nil {
			// The SDK answers 200 only for a live session's stream, after
			// authentication.
			rw.onOK = func() { e.e.onStream(id) }
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
		if e.refused != nil && (status == http.StatusServiceUnavailable || status == http.StatusRequestEntityTooLarge) {
			e.refused(status)
		}
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		w.Header().Set("Connection", "close")
		http.Error(w, http.StatusText(status), status)
		return
	}
	d := decision{rev: rev, upgrade: e.next20260728 != nil, marks: e.e.marks}
	var token string
	d.token = func() string { // asked by the rewriter for a tasks/result only
		if token == "" {
			token = e.e.addRequest(req.Context())
		}
		return token
	}
	defer func() {
		if token != "" {
			e.e.removeRequest(token)
		}
	}()
	out, reqs, err := rewriteBody(body, d)
	if err != nil {
		code := protocol.CodeInvalidRequest
		if errors.Is(err, errMalformed) {
			code = protocol.CodeParseError
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
	rw := &responseWriter{ResponseWriter: w, e: e.e, hold400: rev == protocol.Rev20251125}
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
	writeRPCError(w, http.StatusBadRequest, r.id, protocol.CodeHeaderMismatch, msg)
	return false
}

// responseWriter rewrites the Router's stand-in messages in the SSE events
// the SDK writes, whatever its Write boundaries (complete lines are
// rewritten; a partial line waits for its end), and, when hold400 is set,
// holds back a plain-text 400 so that finish can turn "unsupported method"
// into a JSON-RPC error.
type responseWriter struct {
	http.ResponseWriter
	e        *Edge
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
		if _, err := w.ResponseWriter.Write(w.e.rewriteLines(line)); err != nil {
			return 0, err
		}
		p = p[i+1:]
	}
	last := bytes.LastIndexByte(p, '\n')
	if last < len(p)-1 {
		w.partial = append([]byte(nil), p[last+1:]...)
	}
	if last >= 0 {
		if _, err := w.ResponseWriter.Write(w.e.rewriteLines(p[:last+1])); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// rewriteLines rewrites the data: lines of complete SSE lines.
func (e *Edge) rewriteLines(p []byte) []byte {
	if !bytes.Contains(p, []byte(e.marker)) {
		return p
	}
	var out []byte
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		line := p[:i+1]
		p = p[i+1:]
		if data, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			if msg, ok := rewriteOutbound(bytes.TrimSpace(data), e.marker); ok {
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
