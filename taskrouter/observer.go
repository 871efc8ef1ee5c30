package taskrouter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Observer is told what the Router does, for metrics and traces: package
// otelmetrics turns it into OpenTelemetry instruments and spans, and
// anything else may. Every field is optional and nil ones are skipped, so
// the zero Observer costs nothing. The funcs run synchronously on the
// Router's goroutines, some on every request: they must be quick, must not
// block, and must not call the Router.
type Observer struct {
	// TaskCreated: this replica created a task.
	TaskCreated func(TaskCreated)
	// TaskEnded: a write of this replica ended a task: its run's outcome
	// (completed or failed, also the failure written at shutdown), a
	// tasks/cancel, or the end of an orphan (a task whose replica
	// stopped). Each end is reported once, by the replica that wrote it,
	// whichever replica created or ran the task. A handler that ends its
	// own task through its Handle (rather than by returning) is not
	// reported.
	TaskEnded func(TaskEnded)
	// Running is called with +1 when a task's run starts on this replica
	// and with -1 when it stops: their sum is the tasks running here.
	Running func(delta int)
	// InputWaiting is called with +1 when a task running here starts
	// waiting for its client's input and with -1 when it stops waiting.
	InputWaiting func(delta int)
	// ResultWaiters is called with +1 when a tasks/result call starts
	// waiting here for a task to end and with -1 when it returns.
	ResultWaiters func(delta int)
	// OrphanEnded: this replica ended a task whose replica stopped while
	// running it (also reported to TaskEnded, as failed).
	OrphanEnded func()
	// TakenOver: this replica claimed a resumable task whose replica
	// stopped (or released it at shutdown), to run its tool again.
	TakenOver func()
	// Heartbeats is called after each heartbeat of this replica with how
	// long ago each other replica's heartbeat counter was last seen to
	// move, on this replica's clock (measured at this replica's
	// heartbeats, so to within Options.Heartbeat); a replica silent for
	// Options.LeaseTimeout is presumed dead, and its entry goes once its
	// tasks are ended or taken over. ages is nil when this replica's own
	// heartbeat or its read of the others failed: then they are unknown.
	// The map is the callee's.
	Heartbeats func(ages map[string]time.Duration)
	// Feed is called when the store's change feed comes up (true) or goes
	// down (false; waiters poll until it is back). A backend without a
	// feed never calls it.
	Feed func(up bool)
	// Refused: a request was refused for a limit; reason is one of the
	// Refused* constants.
	Refused func(reason string)
	// Operation: an MCP request or notification was handled, from the
	// time the Router's middleware received it until it answered (for a
	// blocked tasks/result, the whole wait).
	Operation func(Operation)

	// The span hooks. A start hook gets the context the work is about to
	// run in and returns the one it runs in instead (derived from it, such
	// as one holding a span, so the handler's own spans nest in it) and
	// the func the Router calls, once, when that work ends.

	// Request: the Router's middleware received an MCP request or
	// notification; end is called when the handler answered (for a
	// blocked tasks/result, after the whole wait).
	Request func(ctx context.Context, r RequestStart) (context.Context, func(RequestEnd))
	// Run: a task's run starts on this replica: its first attempt, on the
	// replica that created it, or a later one, on a replica that took it
	// over (RunStart.Attempt ≥ 2). RunStart.Trace is the trace context of
	// its creating tools/call (params._meta's, or what TraceContext gave),
	// from the task's record, so a run on any replica can join that trace.
	// end is called when the run stopped, with the task's status as the
	// run left it.
	Run func(ctx context.Context, r RunStart) (context.Context, func(RunEnd))
	// InputAsked: a task's handler running here asked its client
	// (Elicit, CreateMessage, ListRoots): the request now waits in the
	// task's record. ctx is the handler's (it holds what Run returned).
	// end is called when the handler has the answer, or stopped waiting.
	InputAsked func(ctx context.Context, in Input) func(InputEnd)
	// InputAnswered: the client's answer to a task's input request arrived
	// at this replica and was stored: through the tasks/result that sent
	// the request to the client (2025-11-25) or through tasks/update
	// (2026-07-28). ctx is that request's (it holds what Request
	// returned). The handler, on whichever replica runs it, takes it next.
	InputAnswered func(ctx context.Context, in Input)
	// TraceContext, when set, gives the W3C trace context to keep in the
	// record of a task created in ctx (for a tools/call, the context
	// Request returned: its span's), so the run's span is a child of the
	// request's span, also when the client sent no trace context. It is
	// checked like params._meta's; "" (or a malformed one) keeps
	// params._meta's.
	TraceContext func(ctx context.Context) (traceparent, tracestate string)
}

// RequestStart describes an MCP request received.
type RequestStart struct {
	// Method is the JSON-RPC method (mcp.method.name).
	Method string
	// Protocol is the revision that serves it, as in Operation.
	Protocol string
	// Session identifies the MCP session of a 2025-11-25 request over
	// HTTP: a digest of its id, not the id, which is the credential of
	// the session's tasks under SessionOwner; "" without a session
	// (stdio, 2026-07-28).
	Session string
	// Tool is the tool of a tools/call (gen_ai.tool.name), else "".
	Tool string
	// Trace is the W3C trace context of the request's params._meta
	// (traceparent, tracestate), checked by taskstore.NewTraceContext:
	// nil when there is none or it is malformed.
	Trace *taskstore.TraceContext
}

// RequestEnd describes how a request ended.
type RequestEnd struct {
	// TaskID is the task the request created (a tools/call that became a
	// task) or named (tasks/get, tasks/result, tasks/cancel,
	// tasks/update), or "".
	TaskID string
	// Status is that task's status as the request saw it last, or "" when
	// it saw none.
	Status taskstore.Status
	// TaskTrace is the trace context kept in that task's record (that of
	// the tools/call that created it), when the request read the record;
	// a tasks/* call of a client that sent none may link to it.
	TaskTrace *taskstore.TraceContext
	// ErrorType is as in Operation.
	ErrorType string
}

// RunStart describes a task's run starting on this replica.
type RunStart struct {
	TaskID string
	// Method is the method of the request the task runs ("tools/call").
	Method string
	Tool   string
	// Attempt counts the task's runs: 1, then +1 for each takeover.
	Attempt int
	// Runner is this replica's id (Options.Runner).
	Runner string
	// Trace is the trace context kept in the task's record, or nil.
	Trace *taskstore.TraceContext
}

// RunEnd describes how a run stopped.
type RunEnd struct {
	// Status is the task's status as the run left it or last saw it; ""
	// when it did not learn it (see ErrorType).
	Status taskstore.Status
	// ErrorType is "" when the run completed the task; else the JSON-RPC
	// code of the error it failed with ("-32603"), "tool_error" for a tool
	// result with isError, "cancelled", "lease_lost" (another replica runs
	// the task now, or ended it as orphaned), "expired", "gone" (deleted)
	// or "_OTHER".
	ErrorType string
}

// Input describes one input request of a task: Key is its key in the
// task's inputRequests, Method the request's method
// ("elicitation/create", "sampling/createMessage", "roots/list"), or ""
// for a key of the handler's own (Handle.AwaitInput).
type Input struct {
	TaskID string
	Key    string
	Method string
}

// InputEnd describes how a handler's wait for input ended: ErrorType is
// "" when it got an answer, else as in Operation (the client's JSON-RPC
// error code, "cancelled" when the wait ended first, or "_OTHER").
type InputEnd struct {
	ErrorType string
}

// TaskCreated describes a task just created.
type TaskCreated struct {
	// Tool is the tool the task runs ("" for a task started without one).
	Tool string
	// Protocol is the protocol revision of the request that created it:
	// "2025-11-25" or "2026-07-28".
	Protocol string
}

// TaskEnded describes a task just ended.
type TaskEnded struct {
	Tool   string
	Status taskstore.Status
	// Duration is the task's time from creation to this end, from the
	// stored timestamps (so the same on any replica, and spanning every
	// attempt of a task taken over).
	Duration time.Duration
}

// Operation describes an MCP request or notification handled.
type Operation struct {
	// Method is the JSON-RPC method (mcp.method.name).
	Method string
	// Protocol is the protocol revision that served it: "2025-11-25"
	// (also for clients of older revisions) or "2026-07-28".
	Protocol string
	// Tool is the tool of a tools/call (gen_ai.tool.name), else "".
	Tool     string
	Duration time.Duration
	// ErrorType is "" when it succeeded; else the JSON-RPC error code of
	// its error answer ("-32602"), "tool_error" for a tools/call result
	// with isError, "cancelled" when the request's context ended first,
	// or "_OTHER".
	ErrorType string
}

// Reasons of Observer.Refused.
const (
	// RefusedQuota: the owner has taskstore.Config.MaxActiveTasks active tasks.
	RefusedQuota = "quota"
	// RefusedStorageFull: the owner keeps taskstore.Config.MaxStoredTasks tasks.
	RefusedStorageFull = "storage_full"
	// RefusedRateLimit: the owner creates tasks faster than
	// taskstore.Config.CreatesPerSecond.
	RefusedRateLimit = "rate_limit"
	// RefusedWaits: the owner holds Options.MaxWaitsPerOwner waits
	// (tasks/result calls, listen streams) on this replica.
	RefusedWaits = "waits"
	// RefusedBodyBudget: the request bodies held at once would exceed
	// HTTPOptions.MaxBufferedBytes (HTTP 503).
	RefusedBodyBudget = "body_budget"
	// RefusedBodyTooLarge: a request body exceeds HTTPOptions.MaxBodyBytes
	// (HTTP 413).
	RefusedBodyTooLarge = "body_too_large"
	// RefusedShuttingDown: a task was asked for while the Router shuts down.
	RefusedShuttingDown = "shutting_down"
)

// The Router's side of its Observer: each method skips a nil func.

func (o *Observer) created(tool, protocol string) {
	if o.TaskCreated != nil {
		o.TaskCreated(TaskCreated{Tool: tool, Protocol: protocol})
	}
}

func (o *Observer) ended(rec *taskstore.TaskRecord) {
	if o.TaskEnded != nil && rec != nil {
		o.TaskEnded(TaskEnded{Tool: rec.Tool(), Status: rec.Task.Status,
			Duration: max(rec.Task.LastUpdatedAt.Sub(rec.Task.CreatedAt), 0)})
	}
}

func (o *Observer) running(delta int) {
	if o.Running != nil {
		o.Running(delta)
	}
}

func (o *Observer) inputWaiting(delta int) {
	if o.InputWaiting != nil {
		o.InputWaiting(delta)
	}
}

func (o *Observer) resultWaiters(delta int) {
	if o.ResultWaiters != nil {
		o.ResultWaiters(delta)
	}
}

func (o *Observer) orphanEnded() {
	if o.OrphanEnded != nil {
		o.OrphanEnded()
	}
}

func (o *Observer) takenOver() {
	if o.TakenOver != nil {
		o.TakenOver()
	}
}

func (o *Observer) refused(reason string) {
	if o.Refused != nil {
		o.Refused(reason)
	}
}

// refusedFor reports the refusal err is, if it is one.
func (o *Observer) refusedFor(err error) {
	if o.Refused == nil {
		return
	}
	switch {
	case errors.Is(err, taskstore.ErrQuotaExceeded):
		o.Refused(RefusedQuota)
	case errors.Is(err, taskstore.ErrStorageFull):
		o.Refused(RefusedStorageFull)
	case errors.Is(err, taskstore.ErrRateLimited):
		o.Refused(RefusedRateLimit)
	}
}

// operation reports a request the receiving middleware handled (ctx
// carries its carrier).
func (o *Observer) operation(ctx context.Context, method string, req mcp.Request, d time.Duration, res mcp.Result, err error) {
	op := Operation{Method: method, Protocol: revisionOf(ctx).String(), Duration: d, ErrorType: errorType(ctx, res, err)}
	if cr, ok := req.(*mcp.CallToolRequest); ok && cr.Params != nil {
		op.Tool = cr.Params.Name
	}
	o.Operation(op)
}

// spanNote is where the handler of a request tells the Request hook's end
// the task it created or named; it is in the request's context only when
// Observer.Request is set.
type spanNote struct {
	taskID string
	status taskstore.Status
	trace  *taskstore.TraceContext
}

type spanNoteKey struct{}

// noteTask tells the request's Request hook of its task (rec may be nil:
// then only the id is known).
func noteTask(ctx context.Context, id string, rec *taskstore.TaskRecord) {
	n, _ := ctx.Value(spanNoteKey{}).(*spanNote)
	if n == nil {
		return
	}
	n.taskID = id
	if rec != nil {
		n.taskID, n.status, n.trace = rec.Task.TaskID, rec.Task.Status, rec.Trace
	}
}

// requestStart describes req for Observer.Request.
func requestStart(ctx context.Context, method string, req mcp.Request) RequestStart {
	rs := RequestStart{Method: method, Protocol: revisionOf(ctx).String(), Trace: traceOf(req)}
	if s := req.GetSession(); s != nil && s.ID() != "" {
		rs.Session = sessionDigest(s.ID())
	}
	if cr, ok := req.(*mcp.CallToolRequest); ok && cr.Params != nil {
		rs.Tool = cr.Params.Name
	}
	return rs
}

// sessionDigest is how a session id appears to the Observer: a short
// SHA-256 digest, stable per session (as logOwner shows a session owner).
func sessionDigest(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// traceOf is the W3C trace context of req's params._meta, checked; nil
// when it has none or it is malformed (then it is ignored).
func traceOf(req mcp.Request) *taskstore.TraceContext {
	meta := protocol.Meta(req)
	if meta == nil {
		return nil
	}
	tp, _ := meta["traceparent"].(string)
	if tp == "" {
		return nil
	}
	ts, _ := meta["tracestate"].(string)
	return taskstore.NewTraceContext(tp, ts)
}

// inputMethod is the method of an input key that ask made
// ("elicitation/create#3"), or "" for a key of the handler's own.
func inputMethod(key string) string {
	if m, _, ok := strings.Cut(key, "#"); ok && asksClient(m) {
		return m
	}
	return ""
}

// inputAnswered reports the answers accepted for a task's input keys.
func (o *Observer) inputAnswered(ctx context.Context, taskID string, keys []string) {
	if o.InputAnswered == nil {
		return
	}
	for _, k := range keys {
		o.InputAnswered(ctx, Input{TaskID: taskID, Key: k, Method: inputMethod(k)})
	}
}

// runErrorType is RunEnd.ErrorType of a task the run saw end.
func runErrorType(rec *taskstore.TaskRecord) string {
	switch rec.Task.Status {
	case taskstore.StatusCancelled:
		return "cancelled"
	case taskstore.StatusFailed:
		if rec.Error != nil {
			return strconv.Itoa(rec.Error.Code)
		}
		return "tool_error"
	}
	return ""
}

// outcomeErrorType is RunEnd.ErrorType of an outcome the run stored.
func outcomeErrorType(out Outcome) string {
	switch {
	case out.Err != nil:
		return strconv.Itoa(out.Err.Code)
	case out.IsError:
		return "tool_error"
	}
	return ""
}

// httpRefused is the edge's report of a request body it refused (an HTTP
// status).
func (r *Router) httpRefused(status int) {
	switch status {
	case http.StatusServiceUnavailable:
		r.opts.Observer.refused(RefusedBodyBudget)
	case http.StatusRequestEntityTooLarge:
		r.opts.Observer.refused(RefusedBodyTooLarge)
	}
}

// errorType is Operation.ErrorType of an answer.
func errorType(ctx context.Context, res mcp.Result, err error) string {
	var we *jsonrpc.Error
	switch {
	case err == nil:
		if cr, ok := res.(*mcp.CallToolResult); ok && cr.IsError {
			return "tool_error"
		}
		return ""
	case errors.As(err, &we):
		return strconv.FormatInt(we.Code, 10)
	case ctx.Err() != nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	}
	return "_OTHER"
}
