package taskrouter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcptasks/mcptasks/internal/backoff"
	"github.com/mcptasks/mcptasks/taskrouter/internal/hub"
	"github.com/mcptasks/mcptasks/taskstore"
)

// This file is the runner: the tasks running on this replica, each watched
// by one goroutine of its own (supervise), and the tasks/result calls
// blocked until a task ends.

const (
	// storeCallTimeout bounds each store call the runner makes for a run.
	storeCallTimeout = 10 * time.Second
	// outcomeWarnAfter is how long the retries of writing a run's outcome
	// go on before the runner logs that they still fail.
	outcomeWarnAfter = 30 * time.Second
	// shutdownGrace is what Shutdown adds to its context's deadline to mark
	// the tasks left failed, however many there are.
	shutdownGrace = 2 * time.Second
)

// runner is the tasks running on this replica. It needs the store, the
// hub that wakes waiters, and a way to tell a task's owner its status.
type runner struct {
	store            *taskstore.Store
	hub              *hub.Hub
	log              *slog.Logger
	obs              *Observer
	notify           func(*taskstore.TaskRecord) // the status notification of a task that ended here
	minPoll, maxPoll time.Duration

	mu      sync.Mutex
	runs    map[string]*run // task id -> run on this replica
	closing bool
	grace   context.Context // set by Shutdown: bounds the failure writes of abandoned runs
	wg      sync.WaitGroup  // supervisors

	// base is the parent of every store call a run makes; Shutdown cancels
	// it last, so no call outlives it (on a backend that honours contexts).
	base context.Context
	stop context.CancelFunc
}

func (rr *runner) init(store *taskstore.Store, h *hub.Hub, log *slog.Logger, obs *Observer, notify func(*taskstore.TaskRecord), minPoll, maxPoll time.Duration) {
	rr.store, rr.hub, rr.log, rr.obs, rr.notify, rr.minPoll, rr.maxPoll = store, h, log, obs, notify, minPoll, maxPoll
	rr.runs = map[string]*run{}
	rr.base, rr.stop = context.WithCancel(context.Background())
}

func (rr *runner) isClosing() bool {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.closing
}

// run is one task executing on this replica.
type run struct {
	id, owner string
	lease     taskstore.Lease   // zero for a task created without one
	handle    *taskstore.Handle // bound to lease: its writes are fenced
	poll      time.Duration
	expires   *time.Time
	cancel    context.CancelFunc // ends the work's context
	resumable bool               // handed to another replica at shutdown, not failed
	watch     *hub.Watch         // woken when the task may have changed: re-read it
	exited    chan struct{}      // closed when the supervisor returns

	asks     atomic.Int64  // the handler's requests to the client so far (input keys)
	waiting  atomic.Int64  // the handler's input waits under way (Observer.InputWaiting counts runs with one)
	finished atomic.Bool   // terminal: no more progress notifications, no outcome to write
	told     atomic.Bool   // the terminal status notification went out (once per run)
	stopped  chan struct{} // closed by end
	stopOnce sync.Once
	why      string // set before stopped closes: the failure to record, or "" for none

	spanEnd func(RunEnd)           // Observer.Run's end, or nil
	settled atomic.Pointer[RunEnd] // how the run stopped, first known (only with spanEnd)
}

// settle records how the run stopped, for Observer.Run's end; the first
// cause known wins (a cancel seen before the work's own failure).
func (rn *run) settle(status taskstore.Status, errorType string) {
	if rn.spanEnd != nil {
		e := RunEnd{Status: status, ErrorType: errorType}
		rn.settled.CompareAndSwap(nil, &e)
	}
}

// endSpan calls Observer.Run's end with how the run stopped.
func (rn *run) endSpan() {
	if rn.spanEnd == nil {
		return
	}
	e := RunEnd{ErrorType: "_OTHER"}
	if s := rn.settled.Load(); s != nil {
		e = *s
	}
	rn.spanEnd(e)
}

// end stops the run's work: the task was cancelled or ended elsewhere
// (why == ""), or is abandoned at shutdown (why is the failure to record,
// unless the work ended first).
func (rn *run) end(why string) {
	rn.stopOnce.Do(func() {
		if rn.finished.Swap(true) {
			why = "" // the work ended first: its outcome is being stored
		}
		rn.why = why
		close(rn.stopped)
	})
}

type runKey struct{}

func runFrom(ctx context.Context) *run {
	rn, _ := ctx.Value(runKey{}).(*run)
	return rn
}

// run registers rec's run and starts its supervisor.
func (rr *runner) start(rec *taskstore.TaskRecord, values func(context.Context) context.Context, work Work) error {
	rn := &run{id: rec.Task.TaskID, owner: rec.OwnerID, handle: rr.store.HandleFor(rec),
		poll: rr.pollOf(rec), expires: rec.ExpiresAt, stopped: make(chan struct{}),
		resumable: len(rec.Rerun) > 0, exited: make(chan struct{})}
	if rec.Lease != nil {
		rn.lease = *rec.Lease
		rn.handle = rn.handle.WithLease(rn.lease)
	}
	rn.handle = rn.handle.WithInputWait(rr.inputWait(rn))
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), runKey{}, rn))
	rn.cancel = cancel
	if values != nil {
		ctx = values(ctx)
	}
	if rr.obs.Run != nil { // before rn is shared: spanEnd is then only read
		ctx, rn.spanEnd = rr.obs.Run(ctx, RunStart{TaskID: rn.id, Method: rec.RequestMethod, Tool: rec.Tool(), Attempt: max(rn.lease.Attempt, 1),
			Runner: rn.lease.Runner, Trace: rec.Trace})
	}
	rr.mu.Lock()
	if rr.closing {
		rr.mu.Unlock()
		cancel()
		sctx, stop := context.WithTimeout(rr.base, storeCallTimeout)
		defer stop()
		rr.end(sctx, rn, Outcome{Err: &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: "server shut down before the task started"}})
		rn.endSpan()
		return errShuttingDown
	}
	rr.runs[rn.id] = rn
	rr.wg.Add(2)
	rr.mu.Unlock()
	rr.obs.running(1)
	rn.watch = rr.hub.WatchStore(rn.id)
	rr.hub.Seen(rn.watch, rec, rn.poll)
	// The work starts at once, on its own goroutine, and stores its own
	// outcome (finish), so its end waits for no other goroutine.
	ended := make(chan struct{})
	go func() {
		defer rr.wg.Done()
		defer close(ended)
		rr.finish(rn, rr.work(ctx, rn, work))
	}()
	go rr.supervise(rn, ended)
	return nil
}

// supervise is the one goroutine that watches a run: it selects on the
// work's end, the watch, the expiry and a local stop. The watch re-reads
// the task when the hub wakes it (a change on the feed, or a version the
// poller found moved), so a cancel made on
// another replica, an end through the handle, or a takeover after this
// replica lost its lease stops the work. At expiry the task is gone from
// the store, so its work stops.
func (rr *runner) supervise(rn *run, ended <-chan struct{}) {
	defer rr.wg.Done()
	defer close(rn.exited)
	defer rr.forget(rn)
	var expiry <-chan time.Time
	if rn.expires != nil {
		t := time.NewTimer(time.Until(*rn.expires))
		defer t.Stop()
		expiry = t.C
	}
	stopped := rn.stopped
	for {
		select {
		case <-ended:
			return
		case <-stopped:
			stopped = nil
			rn.cancel()
			if rn.why != "" {
				rr.mu.Lock()
				grace := rr.grace
				rr.mu.Unlock()
				if done, err := rr.end(grace, rn, Outcome{Err: &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: rn.why}}); !done {
					rr.log.Error("failing abandoned task", "task", rn.id, "owner", logOwner(rn.owner), "error", err)
				}
			}
		case <-rn.watch.C:
			rec, err, woken := rr.current(rn)
			if !woken {
				continue
			}
			if err == nil {
				rr.hub.Seen(rn.watch, rec, rn.poll)
			}
			moved := err == nil && rn.lease != (taskstore.Lease{}) && (rec.Lease == nil || *rec.Lease != rn.lease)
			switch {
			case errors.Is(err, taskstore.ErrNotFound):
				rn.settle("", "gone")
			case moved:
				rn.settle(rec.Task.Status, "lease_lost")
			case err == nil && rec.Task.Status.Terminal():
				rn.settle(rec.Task.Status, runErrorType(rec))
			}
			if errors.Is(err, taskstore.ErrNotFound) || err == nil && rec.Task.Status.Terminal() || moved {
				// Deleted, expired, ended or taken over elsewhere: it stays so.
				rn.end("")
				rr.hub.Changed(rn.id, nil)
				if rec != nil {
					rr.notifyEnd(rn, rec)
				}
			}
		case <-expiry:
			expiry = nil
			rn.settle("", "expired")
			rn.end("")
			rr.hub.Changed(rn.id, nil)
		}
	}
}

// current is the task as it is once rn's watch woke: when what woke it
// is the run's own writes coming back on the change feed (a checkpoint),
// the record the run's handle wrote, without a read, so a checkpoint costs
// one round trip; else a read. woken is false when what woke the watch
// was already looked at.
func (rr *runner) current(rn *run) (rec *taskstore.TaskRecord, err error, woken bool) {
	v, woken := rr.hub.Fed(rn.watch)
	if !woken {
		return nil, nil, false
	}
	ctx, cancel := context.WithTimeout(rr.base, storeCallTimeout)
	defer cancel()
	if v > 0 {
		if rec := rn.handle.Known(ctx, v); rec != nil {
			return rec, nil, true
		}
	}
	rec, err = rn.handle.Get(ctx) // also refreshes the handle's version
	return rec, err, true
}

func (rr *runner) work(ctx context.Context, rn *run, work Work) (out Outcome) {
	defer func() {
		if p := recover(); p != nil {
			rr.log.Error("task handler panicked", "task", rn.id, "panic", p, "stack", string(debug.Stack()))
			out = Outcome{Err: &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: fmt.Sprintf("tool handler panicked: %v", p)}}
		}
	}()
	return work(ctx)
}

// finish stores the work's outcome, unless the run already ended (a
// cancelled task stays cancelled), retrying a failing backend so that a
// blip does not leave the task working until it expires. A store that is
// unreachable (ErrBackend: a restart takes seconds, a partition longer) is
// retried for as long as the task lives (until its expiry, or Shutdown):
// the run holds the task's lease and this runner keeps beating, so nobody
// else would ever end it. The robustness test found tasks left working for
// good, first after a Redis restart outlasted five quick retries, then on
// DynamoDB Local after store restarts outlasted a 30 s bound.
func (rr *runner) finish(rn *run, out Outcome) {
	if rn.finished.Swap(true) {
		return
	}
	ctx, cancel := context.WithCancel(rr.base)
	if rn.expires != nil {
		ctx, cancel = context.WithDeadline(rr.base, *rn.expires)
	}
	defer cancel()
	began, warned := time.Now(), false
	for attempt := 0; ; attempt++ {
		done, err := rr.end(ctx, rn, out)
		switch {
		case done:
			return
		case errors.Is(err, taskstore.ErrInvalidArgument) && out.Err == nil:
			// The result does not fit the store's limits: fail the task with why.
			out = Outcome{Err: &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: "result not stored: " + err.Error()}}
			continue
		}
		if attempt >= 5 && !errors.Is(err, taskstore.ErrBackend) || backoff.Sleep(ctx, attempt, 100*time.Millisecond, 4) != nil {
			rr.log.Error("storing task outcome failed", "task", rn.id, "owner", logOwner(rn.owner), "error", err)
			return
		}
		if !warned && time.Since(began) > outcomeWarnAfter {
			warned = true
			rr.log.Warn("storing task outcome still failing, retrying while the task lives", "task", rn.id, "owner", logOwner(rn.owner), "error", err)
		}
	}
}

// endRun is every write of a run's end to the store: done is true when
// nothing is left to write (written, or the task already ended, is gone or
// was taken over: it stays so). The writes go through the run's handle, so
// they are fenced: the store's compare-and-swap checks that the run still
// holds the task's lease.
func (rr *runner) end(ctx context.Context, rn *run, out Outcome) (done bool, err error) {
	var rec *taskstore.TaskRecord
	h := rn.handle
	switch {
	case out.Err != nil:
		rec, err = h.FailWithError(ctx, out.Err)
	case out.Result == nil:
		// The work may have ended the task itself through its handle.
		if cur, gerr := h.Get(ctx); gerr == nil && cur.Task.Status.Terminal() {
			rn.settle(cur.Task.Status, runErrorType(cur))
			return true, nil
		}
		rec, err = h.FailWithError(ctx, &taskstore.RPCError{
			Code: taskstore.CodeInternalError, Message: "task ended without a result"})
	case out.IsError:
		rec, err = h.Finish(ctx, taskstore.StatusFailed, limitMessage(out.Message), out.Result)
	default:
		rec, err = h.Finish(ctx, taskstore.StatusCompleted, "", out.Result)
	}
	switch {
	case err == nil:
		rn.settle(rec.Task.Status, outcomeErrorType(out))
		rr.obs.ended(rec)
		if rr.log.Enabled(context.Background(), slog.LevelInfo) {
			rr.log.Info("task finished", "task", rn.id, "owner", logOwner(rn.owner), "status", rec.Task.Status, "message", rec.Task.StatusMessage)
		}
		rr.hub.Changed(rn.id, rec)
		rr.notifyEnd(rn, rec)
		return true, nil
	case errors.Is(err, taskstore.ErrLeaseLost):
		// Fenced: a late outcome (after a pause or a partition) of a task
		// another replica took over or ended. Logged, as the work is lost.
		rr.log.Warn("task outcome not stored: lease lost", "task", rn.id, "owner", logOwner(rn.owner))
		rn.settle("", "lease_lost")
		return true, nil
	case errors.Is(err, taskstore.ErrNotFound):
		rn.settle("", "gone")
		return true, nil
	case errors.Is(err, taskstore.ErrInvalidTransition):
		// Ended elsewhere (a cancel, or another replica ended it as an
		// orphan while this one could not reach the store): it stays so.
		// Read how, only for the run's span.
		rr.log.Info("task outcome not stored: the task had already ended", "task", rn.id, "owner", logOwner(rn.owner))
		if rn.spanEnd != nil {
			if cur, gerr := h.Get(ctx); gerr == nil {
				rn.settle(cur.Task.Status, runErrorType(cur))
			}
		}
		return true, nil
	}
	return false, err
}

// notifyEnd sends the status notification of rn's task, which ended, once
// per run: the run's own end and the supervisor seeing it on the feed are
// one event.
func (rr *runner) notifyEnd(rn *run, rec *taskstore.TaskRecord) {
	if rn.told.CompareAndSwap(false, true) {
		rr.notify(rec)
	}
}

// forget removes a run whose supervisor is done and releases its waiters.
func (rr *runner) forget(rn *run) {
	rr.mu.Lock()
	delete(rr.runs, rn.id)
	rr.mu.Unlock()
	rr.obs.running(-1)
	rn.endSpan()
	rr.hub.Unwatch(rn.watch)
	rr.hub.Changed(rn.id, nil)
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
	r.runner.mu.Lock()
	defer r.runner.mu.Unlock()
	return len(r.runner.runs)
}

// cancelLocal stops the task's work if it runs on this replica (a runner on
// another replica notices on the change feed, or at its next poll).
func (rr *runner) cancel(taskID string) {
	rr.mu.Lock()
	rn := rr.runs[taskID]
	rr.mu.Unlock()
	if rn != nil {
		rn.told.Store(true) // tasks/cancel tells the owner
		rn.settle(taskstore.StatusCancelled, "cancelled")
		rn.end("")
	}
	rr.hub.Changed(taskID, nil)
}

// Shutdown stops accepting new tasks and waits for running ones to finish
// until ctx is done; then it cancels the rest and marks them failed, so no
// task is left working. It returns by ctx's deadline plus two seconds,
// whatever the backend does: a task whose failure cannot be written in that
// time (a hung backend) stays working in the store until it expires. Blocked
// tasks/result calls on this replica wake up with the outcome.
func (r *Router) Shutdown(ctx context.Context) error {
	rr := &r.runner
	rr.mu.Lock()
	rr.closing = true
	rr.mu.Unlock()
	kept := r.leases.Release(ctx)
	drained := make(chan struct{})
	go func() { rr.wg.Wait(); close(drained) }()
	select {
	case <-drained:
		r.stopBackground(kept == 0)
		rr.stop()
		return nil
	case <-ctx.Done():
	}
	grace, cancel := context.WithTimeout(rr.base, shutdownGrace)
	defer cancel()
	rr.mu.Lock()
	rr.grace = grace
	left := make([]*run, 0, len(rr.runs))
	for _, rn := range rr.runs {
		left = append(left, rn)
	}
	rr.mu.Unlock()
	for _, rn := range left {
		rn.end("server shut down before the task finished")
	}
	select {
	case <-drained:
	case <-grace.Done():
		rr.stop() // ends the store calls still waiting, so supervisors can return
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-drained:
		case <-t.C:
		}
		t.Stop()
	}
	// Runs whose failure could not be written still hold this runner's
	// lease: then its heartbeat stays, stands still, and another replica
	// ends them.
	r.stopBackground(kept == 0 && r.Running() == 0)
	rr.stop()
	return fmt.Errorf("taskrouter: %d running tasks failed at shutdown: %w", len(left), ctx.Err())
}

// ---- tasks/result: waiting for a task to end ----

// await blocks until the task is terminal (or ctx is done) and returns it.
// It wakes on a change made on this replica, pushed by the change feed, or
// found by the poller, which compares the version read here. read, when
// not nil, sees each record read before the wait goes on.
func (rr *runner) await(ctx context.Context, owner, taskID string, read func(*taskstore.TaskRecord)) (*taskstore.TaskRecord, error) {
	release, err := rr.hub.HoldWait(normOwner(owner), "wait for one to end, or poll with tasks/get")
	if err != nil {
		rr.obs.refused(RefusedWaits)
		return nil, err
	}
	defer release()
	rr.obs.resultWaiters(1)
	defer rr.obs.resultWaiters(-1)
	w := rr.hub.Watch(taskID)
	defer rr.hub.Unwatch(w)
	for {
		rec, err := rr.store.Get(ctx, owner, taskID)
		if err != nil || rec.Task.Status.Terminal() {
			return rec, err
		}
		if read != nil {
			read(rec)
		}
		rr.hub.Seen(w, rec, rr.pollOf(rec))
		select {
		case <-w.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if end := rr.hub.End(w); end != nil && end.OwnerID == rec.OwnerID {
			return end, nil
		}
	}
}

// pollOf is how often a task is re-read: its own pollInterval, else the
// store's, within the Router's bounds.
func (rr *runner) pollOf(rec *taskstore.TaskRecord) time.Duration {
	poll := rr.store.Config().PollInterval
	if rec.Task.PollInterval != nil && *rec.Task.PollInterval > 0 {
		poll = *rec.Task.PollInterval
	}
	return min(max(poll, rr.minPoll), rr.maxPoll)
}
