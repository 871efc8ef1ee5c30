package taskrouter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// Runner leases. Every task this Router runs is created holding this
// replica's lease (its runner id, attempt 1), written with the task's
// status. One goroutine per Router beats the runner's counter in the store
// every Options.Heartbeat and reads every runner's counter: the cost is two
// store calls per replica per interval, however many tasks run.
//
// A runner whose counter this replica sees standing still for
// Options.LeaseTimeout, measured on this process's monotonic clock, is
// dead: its tasks (found through the store's runner index, O(its tasks))
// are ended failed with OrphanedMessage, each by a compare-and-swap that
// re-checks the lease, so of several replicas sweeping at once exactly one
// ends each task. No wall clocks are compared, so clock skew between
// replicas cannot make a live one look dead. After any failed store call
// the observations start over, so a store outage alone never makes a live
// replica look dead: every runner gets a full LeaseTimeout of fresh
// observations once the store answers again.
//
// Fencing: a run's writes go through a handle bound to its lease, so once
// another replica ended or claimed the task, a late write (after a pause, a
// long GC, a partition) fails with taskstore.ErrLeaseLost and changes
// nothing. When this replica's own heartbeat has not succeeded for a
// LeaseTimeout, it re-reads its runs once the store answers and stops those
// whose lease moved on.
//
// Detection bound: a crashed replica's tasks end at most LeaseTimeout +
// Heartbeat (plus one sweep's store calls) after its last beat: 6 s with
// the defaults.

// OrphanedMessage is the statusMessage (and the -32603 error message) of a
// task whose replica stopped while running it.
const OrphanedMessage = "the server running this task stopped before it finished"

const (
	defaultHeartbeat    = time.Second
	defaultLeaseTimeout = 5 * time.Second
	// sweepPage is how many of a dead runner's tasks one store call reads.
	sweepPage = 100
)

// newRunnerID names this process: host, pid and 48 random bits, so a
// restarted process never reuses its predecessor's id.
func newRunnerID() string {
	host, _ := os.Hostname()
	if len(host) > 64 {
		host = host[:64]
	}
	var b [6]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

type observed struct {
	beat  uint64
	since time.Time // monotonic: when this replica first saw beat
}

// leaseKeeper beats this runner's counter and ends dead runners' tasks.
type leaseKeeper struct {
	r       *Router
	id      string
	every   time.Duration
	timeout time.Duration
	seen    map[string]observed
	lastOK  time.Time // last successful heartbeat
}

func (k *leaseKeeper) loop(ctx context.Context) {
	t := time.NewTicker(k.every)
	defer t.Stop()
	k.lastOK = time.Now()
	k.tick(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			k.tick(ctx)
		}
	}
}

// call bounds one store call: a hung backend costs a tick, never the loop.
func (k *leaseKeeper) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, k.timeout/2)
}

func (k *leaseKeeper) tick(ctx context.Context) {
	rt := k.r.rt
	cctx, cancel := k.call(ctx)
	err := rt.Heartbeat(cctx, k.id)
	cancel()
	now := time.Now()
	if err != nil {
		if ctx.Err() == nil {
			k.r.log.Warn("lease heartbeat failed", "runner", k.id, "error", err)
		}
		clear(k.seen)
		return
	}
	if now.Sub(k.lastOK) >= k.timeout {
		k.r.log.Warn("lease not renewed for a lease timeout; re-checking own tasks", "runner", k.id, "gap", now.Sub(k.lastOK).Round(time.Millisecond))
		k.recheckOwn(ctx)
	}
	k.lastOK = now
	cctx, cancel = k.call(ctx)
	beats, err := rt.Runners(cctx)
	cancel()
	if err != nil {
		clear(k.seen)
		return
	}
	listed := make(map[string]bool, len(beats))
	var dead []string
	for _, b := range beats {
		listed[b.Runner] = true
		if b.Runner == k.id {
			continue
		}
		o, ok := k.seen[b.Runner]
		if !ok || o.beat != b.Beat {
			k.seen[b.Runner] = observed{beat: b.Beat, since: now}
			continue
		}
		if now.Sub(o.since) >= k.timeout || released(b.Runner) {
			dead = append(dead, b.Runner)
		}
	}
	for r := range k.seen {
		if !listed[r] {
			delete(k.seen, r)
		}
	}
	for _, runner := range dead {
		if ctx.Err() != nil {
			return
		}
		k.sweep(ctx, runner, k.seen[runner].since)
	}
}

// sweep ends the tasks of a dead runner, then forgets the runner.
func (k *leaseKeeper) sweep(ctx context.Context, runner string, lastBeat time.Time) {
	rt := k.r.rt
	if k.r.runner.isClosing() {
		return // a replica that stays takes them
	}
	if released(runner) {
		k.r.log.Info("taking over tasks a replica released at shutdown", "runner", runner)
	} else {
		k.r.log.Warn("replica presumed dead: its heartbeat stopped", "runner", runner, "silent", time.Since(lastBeat).Round(time.Millisecond))
	}
	for page := 0; page < 100; page++ {
		cctx, cancel := k.call(ctx)
		recs, err := rt.RunnerTasks(cctx, runner, sweepPage)
		cancel()
		if err != nil {
			return // next tick
		}
		if len(recs) == 0 {
			cctx, cancel := k.call(ctx)
			if err := rt.RemoveRunner(cctx, runner); err == nil {
				delete(k.seen, runner)
			}
			cancel()
			return
		}
		for _, rec := range recs {
			k.endOrphan(ctx, rec)
		}
	}
}

func (k *leaseKeeper) endOrphan(ctx context.Context, rec *taskstore.TaskRecord) {
	if k.takeOver(ctx, rec) {
		return
	}
	cctx, cancel := k.call(ctx)
	defer cancel()
	id, owner := rec.Task.TaskID, rec.OwnerID
	ended, err := k.r.rt.EndOrphan(cctx, owner, id, *rec.Lease, orphanMessage(rec))
	switch {
	case err == nil:
		k.r.log.Warn("orphaned task failed", "task", id, "owner", logOwner(owner), "runner", rec.Lease.Runner, "attempt", rec.Lease.Attempt)
		k.r.wake(id)
		k.r.notifyStatus(ended)
	case errors.Is(err, taskstore.ErrLeaseLost), errors.Is(err, taskstore.ErrNotFound):
		// Another replica acted first, or the task moved on: nothing to do.
	default:
		k.r.log.Warn("ending orphaned task failed", "task", id, "error", err)
	}
}

// recheckOwn stops the local runs whose task no longer carries their lease
// (another replica ended or claimed it while this one could not renew).
func (k *leaseKeeper) recheckOwn(ctx context.Context) {
	for _, rn := range k.r.localRuns() {
		cctx, cancel := k.call(ctx)
		rec, err := k.r.store.Get(cctx, rn.owner, rn.id)
		cancel()
		lost := errors.Is(err, taskstore.ErrNotFound) ||
			(err == nil && (rec.Lease == nil || *rec.Lease != rn.lease || rec.Task.Status.Terminal()))
		if lost && !rn.finished.Load() {
			k.r.log.Warn("lease lost: stopping the local run", "task", rn.id, "runner", k.id)
			rn.end("")
			k.r.wake(rn.id)
		}
	}
}

// startBackground starts the lease keeper, the change feed (where the
// backend has one) and the poller; stopBackground ends them.
func (r *Router) startBackground() {
	r.leases = &leaseKeeper{r: r, id: r.opts.Runner, every: r.opts.Heartbeat, timeout: r.opts.LeaseTimeout, seen: map[string]observed{}}
	bg, cancel := context.WithCancel(context.Background())
	r.bgCancel = cancel
	r.bg.Go(func() { r.leases.loop(bg) })
	if n, ok := r.rt.Backend().(taskstore.Notifier); ok {
		r.bg.Go(func() { r.hub.Feed(bg, n, r.log) })
	}
	r.bg.Go(func() { r.hub.Poll(bg, r.opts.MinPollInterval, storeCallTimeout, r.rt.Versions) })
}

// stopBackground ends the background goroutines. With no task left holding
// this runner's lease it also removes the runner's heartbeat; otherwise
// the heartbeat stands still and another replica ends those tasks.
func (r *Router) stopBackground(noneLeft bool) {
	r.bgCancel()
	r.bg.Wait()
	r.takeover.close()
	if noneLeft {
		ctx, cancel := context.WithTimeout(r.runner.base, time.Second)
		defer cancel()
		_ = r.rt.RemoveRunner(ctx, r.opts.Runner)
	}
}

// Runner is this replica's id in task leases.
func (r *Router) Runner() string { return r.opts.Runner }

// register makes sure this runner's heartbeat exists before it creates a
// task that names it, so a crash right after the create is still seen.
func (r *Router) register(ctx context.Context) error {
	r.mu.Lock()
	done := r.registered
	r.mu.Unlock()
	if done {
		return nil
	}
	if err := r.rt.Heartbeat(ctx, r.opts.Runner); err != nil {
		return err
	}
	r.mu.Lock()
	r.registered = true
	r.mu.Unlock()
	return nil
}

// localRuns is a snapshot of the runs on this replica.
func (r *Router) localRuns() []*run {
	r.runner.mu.Lock()
	defer r.runner.mu.Unlock()
	out := make([]*run, 0, len(r.runner.runs))
	for _, rn := range r.runner.runs {
		out = append(out, rn)
	}
	return out
}
