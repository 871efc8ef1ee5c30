// Package taskrouter serves MCP tasks (protocol revision 2025-11-25) over a
// taskstore.Store: tasks/get, tasks/result, tasks/list, tasks/cancel and
// task-augmented tools/call, where the tool really runs in the background
// with a context and the task's handle.
//
// The Router has no transport of its own. Install plugs it into a go-sdk
// (github.com/modelcontextprotocol/go-sdk) server; HTTPHandler and Transport
// wrap the streamable HTTP handler or a stdio transport so that the task
// field of tools/call, which the SDK drops while decoding, reaches it.
//
// Replicas: several Routers (in several processes) may share one store.
// Every read goes to the store, so any replica answers tasks/get, tasks/list,
// tasks/result and tasks/cancel for any task. The store has no notification
// mechanism, so a replica learns about changes made elsewhere by polling:
// a blocked tasks/result re-reads the task every pollInterval, and the
// runner of a task re-reads it every pollInterval to notice a cancel made on
// another replica. On the replica that runs a task, tasks/result wakes as
// soon as the task ends. Goroutines exist only per running handler and per
// blocked tasks/result, never per stored task.
package taskrouter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// TaskSupport is a tool's execution.taskSupport.
type TaskSupport string

const (
	// TaskForbidden tools cannot be called as tasks (the default).
	TaskForbidden TaskSupport = "forbidden"
	// TaskOptional tools may be called as tasks or as plain calls.
	TaskOptional TaskSupport = "optional"
	// TaskRequired tools must be called as tasks.
	TaskRequired TaskSupport = "required"
)

// Keys used in _meta.
const (
	// RelatedTaskKey marks messages that belong to a task.
	RelatedTaskKey = "io.modelcontextprotocol/related-task"
	// ToolVariable is the task variable that records the tool's name.
	ToolVariable = "io.mcptasks/tool"
)

// Options configure a Router. The zero value is usable.
type Options struct {
	// Logger receives task creation, completion and retrieval (with the
	// owner). Nil discards.
	Logger *slog.Logger
	// Owner resolves the owner of a request that carries no authenticated
	// user (auth.TokenInfo.UserID). Nil, or an empty result, makes the
	// request anonymous, which the store refuses unless
	// taskstore.Config.AllowAnonymous is set. See SessionOwner.
	Owner OwnerFunc
	// MinPollInterval bounds a pollInterval that a client requests
	// (params.task.pollInterval, an extension); default 50ms.
	MinPollInterval time.Duration
}

// Router serves MCP tasks over a Store. It is safe for concurrent use.
type Router struct {
	store *taskstore.Store
	log   *slog.Logger
	opts  Options

	mu        sync.Mutex
	support   map[string]TaskSupport
	preflight map[string]Preflight
	runs      map[string]*run    // task id -> run on this replica
	waiters   map[string]*waiter // task id -> local wake-up channel
	closing   bool
	wg        sync.WaitGroup // running runs

	sdk sdkState
}

// New returns a Router over store.
func New(store *taskstore.Store, opts Options) *Router {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MinPollInterval <= 0 {
		opts.MinPollInterval = 50 * time.Millisecond
	}
	r := &Router{
		store:   store,
		log:     opts.Logger,
		opts:    opts,
		support: map[string]TaskSupport{},
		runs:    map[string]*run{},
		waiters: map[string]*waiter{},
	}
	r.sdk.init()
	return r
}

// Store returns the Router's store.
func (r *Router) Store() *taskstore.Store { return r.store }

// SetTaskSupport sets the execution.taskSupport of the named tool. Tools
// without one are TaskForbidden.
func (r *Router) SetTaskSupport(tool string, s TaskSupport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch s {
	case TaskOptional, TaskRequired:
		r.support[tool] = s
	default:
		delete(r.support, tool)
	}
}

// TaskSupport returns the tool's execution.taskSupport.
func (r *Router) TaskSupport(tool string) TaskSupport {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.support[tool]; ok {
		return s
	}
	return TaskForbidden
}

func (r *Router) supportMap() map[string]TaskSupport {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]TaskSupport, len(r.support))
	for k, v := range r.support {
		m[k] = v
	}
	return m
}

// Error is a JSON-RPC error the router answers with.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("jsonrpc error %d: %s", e.Code, e.Message) }

// rpcError turns a store error into a JSON-RPC error, with the code from
// taskstore.RPCCode. Context errors pass through unchanged.
func rpcError(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	msg := err.Error()
	if errors.Is(err, taskstore.ErrAnonymousOwner) {
		msg = "tasks need an identified caller: authenticate, or enable anonymous tasks"
	}
	return &Error{Code: taskstore.RPCCode(err), Message: msg}
}

// ---- the four tasks/* methods ----

// Get is tasks/get: the task, with its variables merged into _meta.
func (r *Router) Get(ctx context.Context, owner, taskID string) (taskstore.Task, error) {
	rec, err := r.store.Get(ctx, owner, taskID)
	if err != nil {
		return taskstore.Task{}, rpcError(err)
	}
	return rec.WireTask(), nil
}

// List is tasks/list: a page of the owner's tasks, newest first. An invalid
// cursor is -32602.
func (r *Router) List(ctx context.Context, owner, cursor string) ([]taskstore.Task, string, error) {
	page, err := r.store.List(ctx, owner, cursor, 0)
	if err != nil {
		return nil, "", rpcError(err)
	}
	tasks := make([]taskstore.Task, len(page.Tasks))
	for i, rec := range page.Tasks {
		tasks[i] = rec.WireTask()
	}
	return tasks, page.NextCursor, nil
}

// Cancel is tasks/cancel: it marks the task cancelled in the store before
// answering, then stops its handler if it runs on this replica (a runner on
// another replica notices within one pollInterval). Cancelling a terminal
// task is -32602.
func (r *Router) Cancel(ctx context.Context, owner, taskID string) (taskstore.Task, error) {
	rec, err := r.store.Cancel(ctx, owner, taskID)
	if err != nil {
		if errors.Is(err, taskstore.ErrInvalidTransition) {
			if cur, gerr := r.store.Get(ctx, owner, taskID); gerr == nil {
				return taskstore.Task{}, &Error{Code: taskstore.CodeInvalidParams,
					Message: fmt.Sprintf("Cannot cancel task: already in terminal status '%s'", cur.Task.Status)}
			}
		}
		return taskstore.Task{}, rpcError(err)
	}
	r.log.Info("task cancelled", "task", taskID, "owner", logOwner(rec.OwnerID))
	r.mu.Lock()
	rn := r.runs[taskID]
	r.mu.Unlock()
	if rn != nil {
		rn.stop()
	}
	r.wake(taskID)
	task := rec.WireTask()
	r.notifyStatus(rec.OwnerID, task)
	return task, nil
}

// Result is tasks/result. It blocks until the task is terminal (or ctx is
// done), then returns the record, whose Result or Error is the outcome to
// replay; a terminal task without either (cancelled, or failed through its
// handle) answers a JSON-RPC error carrying its status message.
func (r *Router) Result(ctx context.Context, owner, taskID string) (*taskstore.TaskRecord, error) {
	for {
		w := r.acquire(taskID)
		rec, err := r.store.Get(ctx, owner, taskID)
		if err != nil {
			r.release(taskID, w)
			return nil, rpcError(err)
		}
		if rec.Task.Status.Terminal() {
			r.release(taskID, w)
			r.log.Info("task result retrieved", "task", taskID, "owner", logOwner(rec.OwnerID), "status", rec.Task.Status)
			if rec.Result == nil && rec.Error == nil {
				msg := rec.Task.StatusMessage
				if msg == "" {
					msg = "task " + string(rec.Task.Status)
				}
				return nil, &Error{Code: taskstore.CodeInternalError, Message: msg}
			}
			return rec, nil
		}
		// Wake on a local change at once, else re-read after pollInterval
		// (a change made by another replica).
		poll := r.store.Config().PollInterval
		if rec.Task.PollInterval != nil && *rec.Task.PollInterval > 0 {
			poll = *rec.Task.PollInterval
		}
		t := time.NewTimer(poll)
		select {
		case <-w.ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			r.release(taskID, w)
			return nil, ctx.Err()
		}
		t.Stop()
		r.release(taskID, w)
	}
}

// ---- local wake-ups ----

// A waiter is closed when the task changes status on this replica.
type waiter struct {
	ch chan struct{}
	n  int
}

func (r *Router) acquire(taskID string) *waiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.waiters[taskID]
	if w == nil {
		w = &waiter{ch: make(chan struct{})}
		r.waiters[taskID] = w
	}
	w.n++
	return w
}

func (r *Router) release(taskID string, w *waiter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w.n--
	if w.n == 0 && r.waiters[taskID] == w {
		delete(r.waiters, taskID)
	}
}

// wake releases every tasks/result blocked on taskID on this replica.
func (r *Router) wake(taskID string) {
	r.mu.Lock()
	w := r.waiters[taskID]
	delete(r.waiters, taskID)
	r.mu.Unlock()
	if w != nil {
		close(w.ch)
	}
}

// ---- running tools ----

// Outcome is how a task's work ended.
type Outcome struct {
	// Result is the result of the original request (a CallToolResult for
	// tools/call), marshalled to JSON.
	Result json.RawMessage
	// IsError marks a tool result with isError: the task fails with
	// Message as its statusMessage, and Result is still replayed.
	IsError bool
	Message string
	// Err, when set, is the JSON-RPC error the original request ended with.
	Err *taskstore.RPCError
}

// Work is the body of a task. It runs in the background with a context
// that is cancelled when the task is cancelled (on any replica) or the
// Router shuts down.
type Work func(ctx context.Context) Outcome

// StartRequest describes a task to create and run.
type StartRequest struct {
	Owner string
	// Method is the request method, such as "tools/call".
	Method string
	// Tool names the tool, stored as the variable ToolVariable.
	Tool string
	// TTL and PollInterval are what the client requested (nil: defaults).
	TTL          *time.Duration
	PollInterval *time.Duration
	// Values are added to the run's context (the SDK layer carries the
	// request's identity this way).
	Values func(context.Context) context.Context
	// Modern selects the outcome rules of the tasks extension (protocol
	// 2026-07-28): a tool result with isError completes the task, and only
	// a JSON-RPC error fails it. Otherwise (2025-11-25) isError fails it.
	Modern bool
}

// run is one task executing on this replica.
type run struct {
	id, owner string
	handle    *taskstore.Handle
	cancel    context.CancelFunc
	poll      time.Duration
	modern    bool // outcome rules of protocol 2026-07-28

	mu       sync.Mutex
	finished bool        // terminal: no more progress notifications
	done     bool        // the work has returned
	watch    *time.Timer // re-reads the task every poll
}

// markFinished sets finished and reports whether it was not set before.
func (rn *run) markFinished() bool {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	was := rn.finished
	rn.finished = true
	return !was
}

func (rn *run) stop() {
	rn.mu.Lock()
	rn.finished = true
	rn.mu.Unlock()
	rn.cancel()
}

func (rn *run) isFinished() bool {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.finished
}

type runKey struct{}

func runFrom(ctx context.Context) *run {
	rn, _ := ctx.Value(runKey{}).(*run)
	return rn
}

// TaskHandle returns the handle of the task whose work ctx belongs to, or
// nil when ctx is not a task's.
func TaskHandle(ctx context.Context) *taskstore.Handle {
	if rn := runFrom(ctx); rn != nil {
		return rn.handle
	}
	return nil
}

// errShuttingDown answers task creation once Shutdown has begun.
var errShuttingDown = &Error{Code: taskstore.CodeInternalError, Message: "server is shutting down"}

// Start creates a task and runs work in the background. It returns the
// created task at once.
func (r *Router) Start(ctx context.Context, req StartRequest, work Work) (taskstore.Task, error) {
	r.mu.Lock()
	closing := r.closing
	r.mu.Unlock()
	if closing {
		return taskstore.Task{}, errShuttingDown
	}
	if req.PollInterval != nil && *req.PollInterval < r.opts.MinPollInterval {
		d := r.opts.MinPollInterval
		req.PollInterval = &d
	}
	var vars map[string]json.RawMessage
	if req.Tool != "" {
		b, _ := json.Marshal(req.Tool)
		vars = map[string]json.RawMessage{ToolVariable: b}
	}
	rec, err := r.store.Create(ctx, req.Owner, taskstore.CreateRequest{
		RequestMethod: req.Method,
		TTL:           req.TTL,
		PollInterval:  req.PollInterval,
		Variables:     vars,
	})
	if err != nil {
		return taskstore.Task{}, rpcError(err)
	}
	id, owner := rec.Task.TaskID, rec.OwnerID
	poll := r.store.Config().PollInterval
	if rec.Task.PollInterval != nil {
		poll = *rec.Task.PollInterval
	}
	runCtx, cancel := context.WithCancel(context.Background())
	rn := &run{id: id, owner: owner, handle: r.store.Handle(owner, id), cancel: cancel, poll: poll, modern: req.Modern}
	runCtx = context.WithValue(runCtx, runKey{}, rn)
	if req.Values != nil {
		runCtx = req.Values(runCtx)
	}

	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		cancel()
		r.abandon(rn, "server shut down before the task started")
		return taskstore.Task{}, errShuttingDown
	}
	r.runs[id] = rn
	r.wg.Add(1)
	r.mu.Unlock()

	r.log.Info("task created", "task", id, "owner", logOwner(owner), "method", req.Method, "tool", req.Tool)
	go r.execute(runCtx, rn, work)
	return rec.WireTask(), nil
}

// execute runs work in this goroutine, while a timer re-reads the task
// every pollInterval to notice a cancel made on another replica (or an end
// through the handle), which stops the work.
func (r *Router) execute(ctx context.Context, rn *run, work Work) {
	defer r.wg.Done()
	defer rn.cancel()
	rn.mu.Lock()
	rn.watch = time.AfterFunc(rn.poll, func() { r.watchTick(rn) })
	rn.mu.Unlock()
	out := r.runWork(ctx, rn, work)
	rn.mu.Lock()
	rn.done = true
	rn.watch.Stop()
	rn.mu.Unlock()
	r.finish(rn, out)
}

func (r *Router) runWork(ctx context.Context, rn *run, work Work) (out Outcome) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("task handler panicked", "task", rn.id, "panic", p, "stack", string(debug.Stack()))
			out = Outcome{Err: &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: fmt.Sprintf("tool handler panicked: %v", p)}}
		}
	}()
	return work(ctx)
}

// watchTick is one look at the store on behalf of a running task.
func (r *Router) watchTick(rn *run) {
	if !rn.isFinished() {
		rec, err := r.store.Get(context.Background(), rn.owner, rn.id)
		ended := errors.Is(err, taskstore.ErrNotFound) // expired or deleted
		if err == nil && rec.Task.Status.Terminal() {
			ended = true
		}
		// finish marks the run finished before it writes the outcome, so a
		// terminal status written by finish itself is not taken for a cancel.
		if ended && rn.markFinished() {
			rn.cancel()
			r.wake(rn.id)
			if rec != nil {
				r.notifyStatus(rn.owner, rec.WireTask())
			}
		}
	}
	rn.mu.Lock()
	if !rn.done {
		rn.watch.Reset(rn.poll)
	}
	rn.mu.Unlock()
}

// finish stores the outcome (unless the task already ended, e.g. was
// cancelled: a cancelled task stays cancelled) and releases waiters.
func (r *Router) finish(rn *run, out Outcome) {
	rec := r.storeOutcome(rn, out)
	// Release waiters first: a tasks/result blocked here answers at once.
	r.mu.Lock()
	delete(r.runs, rn.id)
	r.mu.Unlock()
	r.wake(rn.id)
	if rec != nil {
		r.log.Info("task finished", "task", rn.id, "owner", logOwner(rn.owner), "status", rec.Task.Status)
		r.notifyStatus(rn.owner, rec.WireTask())
	}
}

// storeOutcome writes the outcome and returns the ended task, or nil when
// nothing was written. A failing backend is retried for a while, so that a
// blip does not leave the task working until it expires.
func (r *Router) storeOutcome(rn *run, out Outcome) *taskstore.TaskRecord {
	if !rn.markFinished() {
		// Already ended: cancelled (here or on another replica), or failed
		// at shutdown. It stays so; nothing to write.
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for attempt := 0; ; attempt++ {
		var (
			rec *taskstore.TaskRecord
			err error
		)
		switch {
		case out.Err != nil:
			rec, err = r.store.FailWithError(ctx, rn.owner, rn.id, out.Err)
		case out.Result == nil:
			// The work may have ended the task itself through its handle.
			cur, gerr := r.store.Get(ctx, rn.owner, rn.id)
			if gerr == nil && cur.Task.Status.Terminal() {
				return nil
			}
			rec, err = r.store.FailWithError(ctx, rn.owner, rn.id, &taskstore.RPCError{
				Code: taskstore.CodeInternalError, Message: "task ended without a result"})
		case out.IsError && rn.modern:
			rec, err = r.store.CompleteWithResult(ctx, rn.owner, rn.id, taskstore.StatusCompleted, limitMessage(out.Message), out.Result)
		case out.IsError:
			rec, err = r.store.CompleteWithResult(ctx, rn.owner, rn.id, taskstore.StatusFailed, limitMessage(out.Message), out.Result)
		default:
			rec, err = r.store.CompleteWithResult(ctx, rn.owner, rn.id, taskstore.StatusCompleted, "", out.Result)
		}
		switch {
		case err == nil:
			return rec
		case errors.Is(err, taskstore.ErrInvalidTransition), errors.Is(err, taskstore.ErrNotFound):
			return nil // already cancelled or ended elsewhere; it stays so
		case errors.Is(err, taskstore.ErrInvalidArgument) && out.Err == nil:
			// The result does not fit the store's limits: fail the task with why.
			out = Outcome{Err: &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: "result not stored: " + err.Error()}}
			continue
		}
		if attempt >= 5 || ctx.Err() != nil {
			r.log.Error("storing task outcome failed", "task", rn.id, "owner", logOwner(rn.owner), "error", err)
			return nil
		}
		time.Sleep(time.Duration(100<<attempt) * time.Millisecond)
	}
}

// abandon fails a task that will never run to its end on this replica.
func (r *Router) abandon(rn *run, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := r.store.FailWithError(ctx, rn.owner, rn.id, &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: why})
	if err == nil {
		r.log.Info("task finished", "task", rn.id, "owner", logOwner(rn.owner), "status", rec.Task.Status, "why", why)
		r.notifyStatus(rn.owner, rec.WireTask())
	} else if !errors.Is(err, taskstore.ErrInvalidTransition) && !errors.Is(err, taskstore.ErrNotFound) {
		r.log.Error("failing abandoned task", "task", rn.id, "error", err)
	}
	r.wake(rn.id)
}

func limitMessage(s string) string {
	s = strings.TrimSpace(s)
	const max = 1024
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 { // keep UTF-8 whole
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// Running reports how many tasks run on this replica.
func (r *Router) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.runs)
}

// Shutdown stops accepting new tasks and waits for running ones to finish
// until ctx is done; then it cancels the rest and marks them failed, so no
// task is left working forever. Blocked tasks/result calls on this replica
// wake up with the outcome.
func (r *Router) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	drained := make(chan struct{})
	go func() { r.wg.Wait(); close(drained) }()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
	}
	r.mu.Lock()
	left := make([]*run, 0, len(r.runs))
	for _, rn := range r.runs {
		left = append(left, rn)
	}
	r.mu.Unlock()
	for _, rn := range left {
		rn.stop()
		r.abandon(rn, "server shut down before the task finished")
	}
	// Give the cancelled handlers a moment to return.
	select {
	case <-drained:
	case <-time.After(time.Second):
	}
	return fmt.Errorf("taskrouter: %d running tasks failed at shutdown: %w", len(left), ctx.Err())
}
