// Package lease keeps a replica's runner lease and acts on the leases of
// replicas that stopped: it is the part of a task router that makes tasks
// survive the loss of the process running them.
//
// Every task a replica runs is created holding that replica's lease (its
// runner id, attempt 1), written with the task's status. One Keeper per
// replica beats the runner's counter in the store every Heartbeat and reads
// every runner's counter: two store calls per replica per interval, however
// many tasks run.
//
// A runner whose counter this replica sees standing still for Timeout,
// measured on this process's monotonic clock, is dead: its tasks (found
// through the store's runner index, O(its tasks)) are resumed here when
// resumable and attempts are left, else ended failed with OrphanedMessage.
// Each such write is a compare-and-swap that re-checks the lease, so of
// several replicas sweeping at once exactly one acts on each task. No wall
// clocks are compared, so clock skew cannot make a live replica look dead.
// After any failed store call the observations start over, so a store
// outage alone never makes a live replica look dead: every runner gets a
// full Timeout of fresh observations once the store answers again.
//
// Fencing: a run's writes go through a handle bound to its lease, so once
// another replica ended or claimed the task, a late write (after a pause, a
// long GC, a partition) fails with taskstore.ErrLeaseLost and changes
// nothing. When this replica's own heartbeat has not succeeded for a
// Timeout, it re-reads its runs once the store answers and stops those
// whose lease moved on.
//
// Detection bound: a crashed replica's tasks end at most Timeout +
// Heartbeat (plus one sweep's store calls) after its last beat.
//
// A sweep forgets the dead runner once its index holds no task, so a task
// written for that runner later (a write delayed past the sweep) would be
// swept by nobody: a rescue pass every rescueTimeouts Timeouts lists the
// active tasks of every owner and treats those held by a runner no longer
// listed as a sweep does (see Rescue); such a task ends within about
// 2×rescueTimeouts Timeouts.
//
// At shutdown a replica stops its resumable runs, waits for their handlers
// to return, and hands their tasks to a "released" runner id that every
// other replica treats as dead at once (Release), so a rolling deploy loses
// no resumable task and never runs one twice.
//
// The Keeper knows nothing of MCP: the router it serves (a Host) lists its
// local runs, hears of the tasks the Keeper ended, and runs a claimed
// task's tool again.
package lease

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// OrphanedMessage is the statusMessage (and the -32603 error message) of a
// task whose replica stopped while running it.
const OrphanedMessage = "the server running this task stopped before it finished"

// sweepPage is how many of a dead runner's tasks one store call reads;
// their ends and claims are written in batches of as many.
const sweepPage = 1000

// Resumed runs start at most resumeBurst every resumeEvery (10,000 a
// second), after their page's claims, so the runs they start do not slow
// the claims still to come.
const (
	resumeBurst = 100
	resumeEvery = 10 * time.Millisecond
)

// Config configures a Keeper.
type Config struct {
	// Runner is this replica's id in task leases: unique among the
	// processes sharing the store, without '#'.
	Runner string
	// Heartbeat is how often the Keeper beats and looks for dead runners.
	Heartbeat time.Duration
	// Timeout is how long another runner's counter must stand still before
	// its tasks are ended or taken over. It also bounds each store call the
	// Keeper makes (to half of it), so a hung backend costs a tick.
	Timeout time.Duration
	// Runtime is the store's runtime side.
	Runtime *taskstore.Runtime
	// Logger receives what the Keeper did; nil discards.
	Logger *slog.Logger
	// LogOwner is how an owner appears in log lines (the router hides
	// session ids); nil logs it as is.
	LogOwner func(owner string) slog.LogValuer
	// CreatesSince, when set, returns when the oldest task creation still
	// in flight on this replica began (zero: none). With it, a task held
	// by this runner at attempt 1 with no local run, created before that,
	// is a stray of a create that failed after all was stored (see
	// MarkStrays), and is ended failed with StrayMessage.
	CreatesSince func() time.Time
	// Ages, when set, is called after each beat with how long ago each
	// other runner's counter was last seen to move (on this process's
	// clock; released ids left out), or with nil when the beat or the
	// read of the runners failed.
	Ages func(map[string]time.Duration)
}

// LocalRun is what the Keeper knows of one run on this replica.
type LocalRun struct {
	ID, Owner string
	Lease     taskstore.Lease // zero for a task created without one
	Resumable bool            // handed over at shutdown instead of failed
	Finished  func() bool     // the run's outcome is stored or being stored
	Stop      func()          // ends the work without recording a failure
	Exited    <-chan struct{} // closed once the run's handler has returned
}

// Host is what the Keeper needs of the router it serves.
type Host interface {
	// Runs is a snapshot of the runs on this replica.
	Runs() []LocalRun
	// Ended tells that the Keeper ended the task (rec is its terminal
	// record) or stopped its local run because its lease moved on (rec is
	// nil): its waiters are woken, and a status notification goes out
	// when rec is set.
	Ended(taskID string, rec *taskstore.TaskRecord)
	// CanResume reports why this replica cannot run a tool again (nil when
	// it can); it is asked before a task is claimed, so a task that cannot
	// run here is ended instead of claimed.
	CanResume(ctx context.Context) error
	// Resume runs the tool of a claimed task again on this replica, as
	// attempt claimed.Lease.Attempt.
	Resume(ctx context.Context, claimed *taskstore.TaskRecord, rerun *Rerun) error
	// Closing reports whether the router is shutting down: then the tasks
	// of dead runners are left to a replica that stays.
	Closing() bool
}

type observed struct {
	beat  uint64
	since time.Time // monotonic: when this replica first saw beat
}

// Keeper beats this runner's counter and ends or takes over the tasks of
// dead runners. Run (or Tick) must not run concurrently with itself;
// Register and Release may be called from any goroutine.
type Keeper struct {
	cfg  Config
	rt   *taskstore.Runtime
	log  *slog.Logger
	host Host

	seen   map[string]observed
	lastOK time.Time // last successful heartbeat

	// strays is set when a claim's outcome is unknown (its reply was
	// lost): the task may be held here with no run (see adoptStrays).
	strays atomic.Bool
	// straysUntil (Unix ns) keeps strays set until then: a write whose
	// caller gave up may reach the store later still (sent before a
	// stall, applied once the server answers again), so one search right
	// after it can find nothing.
	straysUntil atomic.Int64

	mu         sync.Mutex
	registered bool // the first heartbeat landed
	// sweeps is Run's record of the runners it sent to be swept: zero
	// while queued or being swept, then when the sweep ended.
	sweeps map[string]time.Time

	// unlisted is the last rescue pass's notes (see Rescue); only the
	// goroutine that sweeps touches it.
	unlisted map[taskstore.Key]unlisted
}

// New returns a Keeper for cfg serving host. It starts nothing: see Run.
func New(cfg Config, host Host) *Keeper {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LogOwner == nil {
		cfg.LogOwner = func(o string) slog.LogValuer { return plainOwner(o) }
	}
	return &Keeper{cfg: cfg, rt: cfg.Runtime, log: cfg.Logger, host: host,
		seen: map[string]observed{}, lastOK: time.Now(), sweeps: map[string]time.Time{},
		unlisted: map[taskstore.Key]unlisted{}}
}

type plainOwner string

func (o plainOwner) LogValue() slog.Value { return slog.StringValue(string(o)) }

// Runner is this replica's runner id.
func (k *Keeper) Runner() string { return k.cfg.Runner }

// Run beats at once and then every Heartbeat until ctx is done. Sweeps of
// dead runners run on a goroutine of their own, so a long sweep never
// delays this replica's own heartbeat; it returns once both are done. A
// runner is not queued again while queued or being swept, nor by a beat
// that read the runners before its sweep ended (it would find nothing
// left); strays (see adoptStrays) are looked for after the sweeps, or on
// their own when no runner is dead. The same goroutine runs a rescue pass
// (see Rescue) every rescueTimeouts Timeouts.
func (k *Keeper) Run(ctx context.Context) {
	t := time.NewTicker(k.cfg.Heartbeat)
	defer t.Stop()
	k.lastOK = time.Now()
	dead := make(chan []deadRunner, 1)
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		rescue := time.NewTicker(rescueTimeouts * k.cfg.Timeout)
		defer rescue.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-rescue.C:
				k.Rescue(ctx)
			case runners := <-dead:
				for _, d := range runners {
					k.sweep(ctx, d.runner, d.since)
					k.mu.Lock()
					k.sweeps[d.runner] = time.Now()
					k.mu.Unlock()
				}
				k.adoptStrays(ctx)
			}
		}
	}()
	defer func() { <-swept }()
	for {
		asked := time.Now()
		found := k.beat(ctx)
		k.mu.Lock()
		var queue []deadRunner
		for _, d := range found {
			if ended, ok := k.sweeps[d.runner]; !ok || (!ended.IsZero() && ended.Before(asked)) {
				queue = append(queue, d)
			}
		}
		for r, ended := range k.sweeps {
			if !ended.IsZero() && ended.Before(asked) && !slices.ContainsFunc(queue, func(d deadRunner) bool { return d.runner == r }) {
				delete(k.sweeps, r) // gone, or alive again
			}
		}
		if len(queue) > 0 || k.strays.Load() {
			select {
			case dead <- queue:
				for _, d := range queue {
					k.sweeps[d.runner] = time.Time{}
				}
			default: // a sweep is running: the next beat finds them again
			}
		}
		k.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// deadRunner is a runner whose counter stood still since since.
type deadRunner struct {
	runner string
	since  time.Time
}

// call bounds one store call: a hung backend costs a tick, never the loop.
func (k *Keeper) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, k.cfg.Timeout/2)
}

// Tick is one pass, all on the caller's goroutine: beat, re-check this
// replica's runs after a long gap in its own beats, observe the other
// runners, sweep the dead ones, and look for strays.
func (k *Keeper) Tick(ctx context.Context) {
	for _, d := range k.beat(ctx) {
		if ctx.Err() != nil {
			return
		}
		k.sweep(ctx, d.runner, d.since)
	}
	k.adoptStrays(ctx)
}

// beat beats this runner's counter, re-checks this replica's runs after a
// long gap in its own beats, observes the other runners, and returns the
// dead ones.
func (k *Keeper) beat(ctx context.Context) []deadRunner {
	cctx, cancel := k.call(ctx)
	err := k.rt.Heartbeat(cctx, k.cfg.Runner)
	cancel()
	now := time.Now()
	if err != nil {
		if ctx.Err() == nil {
			k.log.Warn("lease heartbeat failed", "runner", k.cfg.Runner, "error", err)
		}
		clear(k.seen)
		k.ages(nil)
		return nil
	}
	if now.Sub(k.lastOK) >= k.cfg.Timeout {
		k.log.Warn("lease not renewed for a lease timeout; re-checking own tasks", "runner", k.cfg.Runner, "gap", now.Sub(k.lastOK).Round(time.Millisecond))
		k.recheckOwn(ctx)
	}
	k.lastOK = now
	cctx, cancel = k.call(ctx)
	beats, err := k.rt.Runners(cctx)
	cancel()
	if err != nil {
		clear(k.seen)
		k.ages(nil)
		return nil
	}
	listed := make(map[string]bool, len(beats))
	var dead []deadRunner
	for _, b := range beats {
		listed[b.Runner] = true
		if b.Runner == k.cfg.Runner {
			continue
		}
		o, ok := k.seen[b.Runner]
		if !ok || o.beat != b.Beat {
			k.seen[b.Runner] = observed{beat: b.Beat, since: now}
			continue
		}
		if now.Sub(o.since) >= k.cfg.Timeout || released(b.Runner) {
			dead = append(dead, deadRunner{b.Runner, o.since})
		}
	}
	for r := range k.seen {
		if !listed[r] {
			delete(k.seen, r)
		}
	}
	if k.cfg.Ages != nil {
		ages := make(map[string]time.Duration, len(k.seen))
		for r, o := range k.seen {
			if !released(r) {
				ages[r] = now.Sub(o.since)
			}
		}
		k.cfg.Ages(ages)
	}
	return dead
}

// ages reports ages to Config.Ages, if set.
func (k *Keeper) ages(ages map[string]time.Duration) {
	if k.cfg.Ages != nil {
		k.cfg.Ages(ages)
	}
}

// sweep ends or takes over the tasks of a dead runner, then forgets the
// runner. Each page of its tasks is read once (RunnerTasks) and acted on
// from that read: the resumable ones claimed in one batch, then the rest
// ended in one batch, then the claimed ones' runs started at a bounded
// rate. A task it could not act on (a store error) is left to the next
// sweep; the runner is forgotten once none of its tasks is left.
func (k *Keeper) sweep(ctx context.Context, runner string, lastBeat time.Time) {
	if k.host.Closing() {
		return // a replica that stays takes them
	}
	if released(runner) {
		k.log.Info("taking over tasks a replica released at shutdown", "runner", runner)
	} else {
		k.log.Warn("replica presumed dead: its heartbeat stopped", "runner", runner, "silent", time.Since(lastBeat).Round(time.Millisecond))
	}
	tried := map[string]bool{}
	for ctx.Err() == nil {
		cctx, cancel := k.call(ctx)
		recs, err := k.rt.RunnerTasks(cctx, runner, sweepPage)
		cancel()
		if err != nil {
			return // next tick
		}
		if len(recs) == 0 {
			cctx, cancel := k.call(ctx)
			_ = k.rt.RemoveRunner(cctx, runner) // else the next sweep does
			cancel()
			return
		}
		var page []*taskstore.TaskRecord
		for _, rec := range recs {
			if !tried[rec.Task.TaskID] {
				tried[rec.Task.TaskID] = true
				page = append(page, rec)
			}
		}
		if len(page) == 0 {
			return // only tasks it could not act on: the next sweep tries again
		}
		k.actOn(ctx, page)
	}
}

// adoptStrays runs the tasks this replica claimed whose run never started:
// a claim whose reply was lost (a timeout, a dropped connection) may still
// have been applied, and nothing else would ever run or end such a task
// while this replica beats. It reads this replica's tasks only after such
// a claim or a create that failed the same way (strays set, see
// MarkStrays), until a read succeeds. A claimed task is attempt 2 or
// later. A task this replica created itself (attempt 1) may exist a moment
// before its run does: it is a stray only when no create in flight may
// still start its run (Config.CreatesSince), and then it is ended failed
// (its client was told the create failed, so it is not run).
func (k *Keeper) adoptStrays(ctx context.Context) {
	if ctx.Err() != nil || k.host.Closing() || !k.strays.Load() {
		return
	}
	if k.cfg.CreatesSince != nil && !k.cfg.CreatesSince().IsZero() {
		// Not while a create is in flight: a Redis Cluster writes a
		// create's runner index entry a round trip before its record, and
		// a read of the index between the two drops the entry for good
		// (its record missing), so the task would never be swept. The
		// search waits for a beat with no create in flight.
		return
	}
	// Cleared before the read (a claim failing during it sets it again),
	// unless within strayWindow of a failed create.
	k.strays.Store(time.Now().UnixNano() < k.straysUntil.Load())
	cctx, cancel := k.call(ctx)
	held, err := k.rt.RunnerTasks(cctx, k.cfg.Runner, sweepPage)
	cancel()
	if err != nil {
		k.strays.Store(true)
		return
	}
	k.adoptHeld(ctx, held)
}

// adoptHeld acts on tasks read as held by this runner that have no local
// run: a stray of a failed create (attempt 1) is ended, a claimed task
// whose run never started is run.
func (k *Keeper) adoptHeld(ctx context.Context, held []*taskstore.TaskRecord) {
	// In this order: a create in flight now began before any run the
	// snapshot below lacks could start, so its task is left alone.
	var creating time.Time
	if k.cfg.CreatesSince != nil {
		creating = k.cfg.CreatesSince()
	}
	running := k.running()
	for _, rec := range held {
		if running[rec.Task.TaskID] {
			continue
		}
		if rec.Lease.Attempt < 2 {
			k.endStray(ctx, rec, creating)
			continue
		}
		info := ParseRerun(rec)
		if info == nil {
			continue
		}
		k.log.Warn("running a claimed task whose run never started", "task", rec.Task.TaskID, "attempt", rec.Lease.Attempt)
		if err := k.host.Resume(ctx, rec, info); err != nil {
			k.log.Warn("resuming task failed", "task", rec.Task.TaskID, "error", err)
		}
	}
}

// running is the ids of the runs on this replica.
func (k *Keeper) running() map[string]bool {
	running := map[string]bool{}
	for _, rn := range k.host.Runs() {
		running[rn.ID] = true
	}
	return running
}

// StrayMessage is the statusMessage (and the -32603 error message) of a
// task stored by a create whose caller was told it failed.
const StrayMessage = "the server lost this task after a store error (its creation was not confirmed), so it did not finish"

// endStray ends rec, held here at attempt 1 with no run, unless a create
// still in flight (since creating) may be about to start its run. Created
// times are the creating replica's clock, this one, and kept to the
// millisecond: a second of margin.
func (k *Keeper) endStray(ctx context.Context, rec *taskstore.TaskRecord, creating time.Time) {
	if k.cfg.CreatesSince == nil {
		return
	}
	if !creating.IsZero() && !rec.Task.CreatedAt.Before(creating.Add(-time.Second)) {
		k.strays.Store(true) // look again at the next beat
		return
	}
	cctx, cancel := k.call(ctx)
	ended, err := k.rt.EndOrphan(cctx, rec.OwnerID, rec.Task.TaskID, *rec.Lease, StrayMessage)
	cancel()
	switch {
	case err == nil:
		k.log.Warn("ended a task whose create failed but was stored", "task", rec.Task.TaskID, "owner", k.cfg.LogOwner(rec.OwnerID))
		k.host.Ended(rec.Task.TaskID, ended)
	case errors.Is(err, taskstore.ErrLeaseLost), errors.Is(err, taskstore.ErrNotFound):
	default:
		k.strays.Store(true)
		k.log.Warn("ending a task whose create failed failed", "task", rec.Task.TaskID, "error", err)
	}
}

// strayWindow is how long after a failed create the keeper keeps looking
// for strays, at every beat: a write applied later than that after its
// caller gave up is not found.
const strayWindow = 30 * time.Second

// MarkStrays makes the keeper look, at each beat for strayWindow, for
// tasks this replica holds without a run: a create whose store call failed
// (a timeout, a write not confirmed durable) may have been stored anyway,
// even some time after the call returned.
func (k *Keeper) MarkStrays() {
	k.straysUntil.Store(time.Now().Add(strayWindow).UnixNano())
	k.strays.Store(true)
}

// batchTimeout bounds one batch of n writes: a lease timeout, and more for
// a backend that writes them one at a time.
func (k *Keeper) batchTimeout(n int) time.Duration {
	return k.cfg.Timeout + time.Duration(n)*k.cfg.Timeout/100
}

// actOn claims the resumable tasks of page (read from a dead runner) and
// ends the others, each batch one round trip where the store allows, then
// starts the claimed tasks' runs.
func (k *Keeper) actOn(ctx context.Context, page []*taskstore.TaskRecord) {
	var claims, ends []*taskstore.TaskRecord
	var infos []*Rerun
	canResume := true
	for _, rec := range page {
		info := ParseRerun(rec)
		if info == nil || rec.Lease.Attempt >= info.MaxAttempts {
			ends = append(ends, rec)
			continue
		}
		if canResume && len(claims) == 0 {
			if err := k.host.CanResume(ctx); err != nil {
				k.log.Warn("cannot resume tasks here", "error", err)
				canResume = false
			}
		}
		if !canResume {
			ends = append(ends, rec)
			continue
		}
		claims, infos = append(claims, rec), append(infos, info)
	}
	var resume []*taskstore.TaskRecord
	var resumeInfo []*Rerun
	if len(claims) > 0 && !k.host.Closing() {
		cctx, cancel := context.WithTimeout(ctx, k.batchTimeout(len(claims)))
		claimed := k.rt.ClaimAll(cctx, claims, k.cfg.Runner)
		cancel()
		for i, w := range claimed {
			rec := claims[i]
			switch {
			case w.Err == nil:
				k.log.Warn("task taken over", "task", rec.Task.TaskID, "owner", k.cfg.LogOwner(rec.OwnerID), "from", rec.Lease.Runner, "attempt", w.Record.Lease.Attempt, "of", infos[i].MaxAttempts)
				resume, resumeInfo = append(resume, w.Record), append(resumeInfo, infos[i])
			case errors.Is(w.Err, taskstore.ErrLeaseLost), errors.Is(w.Err, taskstore.ErrNotFound):
				// Another replica acted first, or the task moved on.
			default:
				// It may have been applied: look for it among this replica's tasks.
				k.strays.Store(true)
				k.log.Warn("claiming orphaned task failed", "task", rec.Task.TaskID, "error", w.Err)
			}
		}
	}
	if len(ends) > 0 {
		cctx, cancel := context.WithTimeout(ctx, k.batchTimeout(len(ends)))
		ended := k.rt.EndOrphans(cctx, ends, orphanMessage)
		cancel()
		for i, w := range ended {
			rec := ends[i]
			switch {
			case w.Err == nil:
				k.log.Warn("orphaned task failed", "task", rec.Task.TaskID, "owner", k.cfg.LogOwner(rec.OwnerID), "runner", rec.Lease.Runner, "attempt", rec.Lease.Attempt)
				k.host.Ended(rec.Task.TaskID, w.Record)
			case errors.Is(w.Err, taskstore.ErrLeaseLost), errors.Is(w.Err, taskstore.ErrNotFound):
			default:
				k.log.Warn("ending orphaned task failed", "task", rec.Task.TaskID, "error", w.Err)
			}
		}
	}
	for i, rec := range resume {
		if i > 0 && i%resumeBurst == 0 {
			t := time.NewTimer(resumeEvery)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if err := k.host.Resume(ctx, rec, resumeInfo[i]); err != nil {
			k.log.Warn("resuming task failed", "task", rec.Task.TaskID, "error", err)
		}
	}
}

// recheckOwn stops the local runs whose task no longer carries their lease
// (another replica ended or claimed it while this one could not renew).
func (k *Keeper) recheckOwn(ctx context.Context) {
	store := k.rt.Store()
	for _, rn := range k.host.Runs() {
		cctx, cancel := k.call(ctx)
		rec, err := store.Get(cctx, rn.Owner, rn.ID)
		cancel()
		lost := errors.Is(err, taskstore.ErrNotFound) ||
			(err == nil && (rec.Lease == nil || *rec.Lease != rn.Lease || rec.Task.Status.Terminal()))
		if lost && !rn.Finished() {
			k.log.Warn("lease lost: stopping the local run", "task", rn.ID, "runner", k.cfg.Runner)
			rn.Stop()
			k.host.Ended(rn.ID, nil)
		}
	}
}

// Register makes sure this runner's heartbeat exists before the router
// creates a task that names it, so a crash right after the create is
// still seen. Only the first successful call writes.
func (k *Keeper) Register(ctx context.Context) error {
	k.mu.Lock()
	done := k.registered
	k.mu.Unlock()
	if done {
		return nil
	}
	if err := k.rt.Heartbeat(ctx, k.cfg.Runner); err != nil {
		return err
	}
	k.mu.Lock()
	k.registered = true
	k.mu.Unlock()
	return nil
}

// Unregister removes this runner's heartbeat: for a replica that stopped
// with no task left holding its lease.
func (k *Keeper) Unregister(ctx context.Context) error {
	return k.rt.RemoveRunner(ctx, k.cfg.Runner)
}
