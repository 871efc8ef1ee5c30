package taskrouter

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskstore"
)

// Observer is told what the Router does, for metrics: package otelmetrics
// turns it into OpenTelemetry instruments, and anything else may. Every
// field is optional and nil ones are skipped, so the zero Observer costs
// nothing. The funcs run synchronously on the Router's goroutines, some on
// every request: they must be quick, must not block, and must not call the
// Router.
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
