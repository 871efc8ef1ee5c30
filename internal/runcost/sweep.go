package runcost

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/internal/callcount"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Sweep is what a survivor spent on the tasks of a replica that stopped.
type Sweep struct {
	Tasks int `json:"tasks"`
	// Seconds runs from the survivor's "replica presumed dead" log line to
	// the last task ended (orphans) or running again on the survivor
	// (takeover).
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"tasksPerSecond"`
	// Calls are the survivor's backend calls from that line until the dead
	// replica was forgotten (its sweep done), without its lease keeper's
	// per-tick Heartbeat and Runners; PerTask divides them by Tasks. They
	// include what the resumed runs wrote meanwhile (Takeover's step), and
	// a Get per run when the survivor's own heartbeat was late by a lease
	// timeout (on a loaded machine), after which it re-reads its runs.
	Calls   callcount.Counts `json:"calls"`
	PerTask float64          `json:"callsPerTask"`
	// Resyncs are the change feed's resyncs meanwhile: after each, every
	// task running on the survivor is read again.
	Resyncs int `json:"resyncs"`
	// Unlogged are orphans the store shows failed without the survivor's
	// line for them, and Stranded tasks the survivor claimed but did not
	// run: a batch written whose reply came too late (the lease keeper
	// bounds each batch by the lease timeout), which it took for a failure.
	// A stranded task stays working, held by a live replica, until its TTL.
	Unlogged int `json:"unlogged,omitempty"`
	Stranded int `json:"stranded,omitempty"`
	// Rechecks are the times the survivor's own heartbeat was late by a
	// lease timeout (a loaded machine), after each of which it read every
	// task it runs again: a Get each.
	Rechecks int `json:"rechecks,omitempty"`
}

// deadLine is the lease keeper's log line of a replica presumed dead; the
// lines of each task it ended or took over follow.
const (
	deadLine    = "replica presumed dead: its heartbeat stopped"
	orphanLine  = "orphaned task failed"
	recheckLine = "lease not renewed for a lease timeout; re-checking own tasks"
)

// sweepLog is a slog handler for a survivor: it notes when the replica
// runner was presumed dead (and the calls made so far), counts the tasks
// of that replica that were ended, and the survivor's re-reads of its own
// runs.
type sweepLog struct {
	runner string
	calls  *callcount.Counter
	ended  *countdown

	mu       sync.Mutex
	dead     time.Time
	atDead   callcount.Counts
	resyncs  int // at dead
	rechecks int // since dead
}

func newSweepLog(runner string, calls *callcount.Counter, ended *countdown) *sweepLog {
	return &sweepLog{runner: runner, calls: calls, ended: ended}
}

func (h *sweepLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *sweepLog) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *sweepLog) WithGroup(string) slog.Handler                { return h }

func (h *sweepLog) Handle(_ context.Context, r slog.Record) error {
	attr := func(key string) string {
		v := ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				v = a.Value.String()
				return false
			}
			return true
		})
		return v
	}
	switch r.Message {
	case deadLine:
		if attr("runner") != h.runner {
			return nil
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.dead.IsZero() {
			h.dead, h.atDead, h.resyncs = time.Now(), h.calls.Snapshot(), h.calls.Resyncs()
		}
	case recheckLine:
		h.mu.Lock()
		if !h.dead.IsZero() {
			h.rechecks++
		}
		h.mu.Unlock()
	case orphanLine:
		if h.ended != nil && attr("runner") == h.runner {
			h.ended.Add()
		}
	}
	return nil
}

// deadAt is when the survivor presumed the runner dead, the calls and
// resyncs counted then, and its rechecks since.
func (h *sweepLog) deadAt() (dead time.Time, calls callcount.Counts, resyncs, rechecks int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dead, h.atDead, h.resyncs, h.rechecks
}

// plant creates n tasks held by a new runner that beat once and never
// again, spread over the owners of what, each with rerun when it is set.
func (e *Env) plant(ctx context.Context, what string, n int, rerun json.RawMessage) (runner string, tasks []*taskstore.TaskRecord, err error) {
	runner = e.Prefix + "-dead-" + what
	if err := taskstore.NewRuntime(e.Store).Heartbeat(ctx, runner); err != nil {
		return "", nil, err
	}
	tasks = make([]*taskstore.TaskRecord, n)
	err = parallel(ctx, n, func(ctx context.Context, i int) error {
		rec, err := e.Store.Create(ctx, e.owner(what, i), taskstore.CreateRequest{
			RequestMethod: "tools/call", Variables: toolVars(resumeTool), Runner: runner, Rerun: rerun})
		tasks[i] = rec
		return err
	})
	return runner, tasks, err
}

// forgotten reports whether the survivor's sweep of runner is over: it
// removed the runner, having found none of its tasks left.
func (e *Env) forgotten(ctx context.Context, runner string) (bool, error) {
	beats, err := taskstore.NewRuntime(e.Store).Runners(ctx)
	return err == nil && !slices.ContainsFunc(beats, func(b taskstore.RunnerBeat) bool { return b.Runner == runner }), err
}

// untilSwept waits until all is done or the survivor's sweep of runner is
// over (then some of what it did went unnoticed: see Sweep.Unlogged).
func (e *Env) untilSwept(ctx context.Context, runner string, all *countdown, what string) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for deadline := time.Now().Add(e.Timeout); ; {
		select {
		case <-all.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if over, err := e.forgotten(ctx, runner); over || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d left after %v", what, all.left(), e.Timeout)
		}
	}
}

// swept waits for the survivor's sweep of log.runner to be over and
// returns the sweep's figures, its n tasks done at done.
func (e *Env) swept(ctx context.Context, log *sweepLog, n int, done time.Time) (Sweep, error) {
	for deadline := time.Now().Add(e.Timeout); ; time.Sleep(5 * time.Millisecond) {
		if over, err := e.forgotten(ctx, log.runner); over || err != nil {
			if err != nil {
				return Sweep{}, err
			}
			break
		}
		if time.Now().After(deadline) {
			return Sweep{}, fmt.Errorf("the survivor did not forget the dead replica within %v", e.Timeout)
		}
	}
	dead, atDead, resyncs, rechecks := log.deadAt()
	calls := e.Calls.Snapshot().Sub(atDead).Without(keeperOps...)
	s := Sweep{Tasks: n, Seconds: done.Sub(dead).Seconds(), Calls: calls, PerTask: float64(calls.Total()) / float64(n),
		Resyncs: e.Calls.Resyncs() - resyncs, Rechecks: rechecks}
	if s.Seconds > 0 {
		s.PerSecond = float64(n) / s.Seconds
	}
	return s, nil
}

// count is how many of tasks the store holds that match.
func (e *Env) count(ctx context.Context, tasks []*taskstore.TaskRecord, match func(*taskstore.TaskRecord) bool) (int, error) {
	var matched atomic.Int64
	err := parallel(ctx, len(tasks), func(ctx context.Context, i int) error {
		rec, err := e.Store.Get(ctx, tasks[i].OwnerID, tasks[i].Task.TaskID)
		if err == nil && match(rec) {
			matched.Add(1)
		}
		return err
	})
	return int(matched.Load()), err
}

// Orphans plants n tasks held by a replica that stopped, then starts a
// survivor, which ends them (failed): how long that took from its
// "replica presumed dead" line, and what it cost in backend calls.
func (e *Env) Orphans(ctx context.Context, n int) (Sweep, error) {
	dead, tasks, err := e.plant(ctx, "orphans", n, nil)
	if err != nil {
		return Sweep{}, err
	}
	defer e.deleteAll(context.WithoutCancel(ctx), tasks)
	ended := newCountdown(n)
	log := newSweepLog(dead, e.Calls, ended)
	r, err := e.router(ctx, "orphans-survivor", slog.New(log), true)
	if err != nil {
		return Sweep{}, err
	}
	defer e.shutdown(r)
	if err := e.untilSwept(ctx, dead, ended, "orphans ended"); err != nil {
		return Sweep{}, err
	}
	s, err := e.swept(ctx, log, n, ended.last())
	if err != nil {
		return s, err
	}
	failed, err := e.count(ctx, tasks, func(rec *taskstore.TaskRecord) bool { return rec.Task.Status == taskstore.StatusFailed })
	if err == nil && failed != n {
		err = fmt.Errorf("%d of %d orphans failed once the survivor was done with them", failed, n)
	}
	s.Unlogged = n - ended.count()
	return s, err
}

// resumeTool is the resumable tool of Takeover: it runs until its task is
// deleted.
const resumeTool = "runcost_resume"

// rerunOf is the Rerun a tools/call of a resumable tool stores (taskrouter
// keeps it as JSON in the record: the tool, its arguments, the attempts).
func rerunOf(tool string, attempts int) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"tool": tool, "arguments": map[string]any{}, "maxAttempts": attempts})
	return b
}

// Takeover plants n resumable tasks held by a replica that stopped, then
// starts a survivor with the tool installed on a go-sdk server, which
// claims them and runs the tool again: how long until all n handlers run
// again, from its "replica presumed dead" line, and what it cost in
// backend calls. With step > 0 each resumed handler writes a checkpoint at
// once and then every step, as a tool resuming its work does.
func (e *Env) Takeover(ctx context.Context, n int, step time.Duration) (Sweep, error) {
	dead, tasks, err := e.plant(ctx, "takeover", n, rerunOf(resumeTool, 2))
	if err != nil {
		return Sweep{}, err
	}
	defer e.deleteAll(context.WithoutCancel(ctx), tasks)
	running := newCountdown(n)
	var wrong atomic.Int64 // runs that were not a second attempt
	server := mcp.NewServer(&mcp.Implementation{Name: "runcost", Version: "1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: resumeTool}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		h := taskrouter.TaskHandle(ctx)
		if h == nil || h.Attempt() != 2 {
			wrong.Add(1)
			return nil, nil, nil
		}
		running.Add()
		var tick <-chan time.Time
		if step > 0 {
			t := time.NewTicker(step)
			defer t.Stop()
			tick = t.C
		}
		for i := 0; ; i++ {
			if step > 0 {
				if err := h.SetVariables(ctx, map[string]any{"step": i}); err != nil {
					return nil, nil, err
				}
			}
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-tick:
			}
		}
	})
	log := newSweepLog(dead, e.Calls, nil)
	r, err := e.router(ctx, "takeover-survivor", slog.New(log), true)
	if err != nil {
		return Sweep{}, err
	}
	defer e.shutdown(r)
	r.SetTaskSupport(resumeTool, taskrouter.TaskRequired)
	r.SetResumable(resumeTool, 2)
	if err := r.Install(server); err != nil {
		return Sweep{}, err
	}
	if err := e.untilSwept(ctx, dead, running, "tasks running again"); err != nil {
		if w := wrong.Load(); w > 0 {
			err = fmt.Errorf("%w (%d runs were not a task's second attempt)", err, w)
		}
		return Sweep{}, err
	}
	// The claimed tasks are all started once the sweep is over; a moment
	// for their handlers to be called.
	_ = running.wait(ctx, time.Second, "")
	s, err := e.swept(ctx, log, n, running.last())
	if err != nil {
		return s, err
	}
	claimed, err := e.count(ctx, tasks, func(rec *taskstore.TaskRecord) bool {
		return rec.Lease != nil && rec.Lease.Runner == r.Runner() && rec.Lease.Attempt == 2
	})
	if err != nil {
		return s, err
	}
	if claimed != n {
		return s, fmt.Errorf("%d of %d tasks claimed by the survivor", claimed, n)
	}
	s.Stranded = n - running.count()
	// Their runs end as their tasks go.
	if err := e.deleteAll(ctx, tasks); err != nil {
		return s, err
	}
	return s, e.waitIdle(ctx, r)
}
