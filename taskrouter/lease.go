package taskrouter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/mcptasks/mcptasks/taskrouter/internal/lease"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Runner leases and takeover are the lease.Keeper's (internal/lease); this
// file is the router's side: the Host the keeper calls back, and starting
// and stopping it with the other background goroutines.

// OrphanedMessage is the statusMessage (and the -32603 error message) of a
// task whose replica stopped while running it.
const OrphanedMessage = lease.OrphanedMessage

// StrayMessage is the statusMessage (and the -32603 error message) of a
// task whose create failed for its caller (a store error, a write not
// confirmed durable) yet was stored: the replica ends it, unrun.
const StrayMessage = lease.StrayMessage

// The defaults of Options.Heartbeat and Options.LeaseTimeout.
const (
	DefaultHeartbeat    = time.Second
	DefaultLeaseTimeout = 5 * time.Second
)

// ReleasedSuffix ends the runner id to which a replica shutting down hands
// its resumable tasks (so a runner id never holds '#'): every other
// replica takes them over at once, without waiting for a lease timeout.
const ReleasedSuffix = lease.ReleasedSuffix

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

// leaseHost is what the lease keeper needs of the Router (unexported, so
// the Router's API does not grow by the keeper's callbacks).
type leaseHost struct{ r *Router }

var _ lease.Host = leaseHost{}

// Runs is a snapshot of the runs on this replica.
func (h leaseHost) Runs() []lease.LocalRun {
	rr := &h.r.runner
	rr.mu.Lock()
	defer rr.mu.Unlock()
	out := make([]lease.LocalRun, 0, len(rr.runs))
	for _, rn := range rr.runs {
		out = append(out, lease.LocalRun{ID: rn.id, Owner: rn.owner, Lease: rn.lease, Resumable: rn.resumable,
			Finished: rn.finished.Load, Stop: func() { rn.end("") }, Exited: rn.exited})
	}
	return out
}

func (h leaseHost) Ended(taskID string, rec *taskstore.TaskRecord) {
	h.r.hub.Changed(taskID, nil)
	if rec != nil {
		h.r.opts.Observer.orphanEnded()
		h.r.opts.Observer.ended(rec)
		h.r.notifyStatus(rec)
	}
}

func (h leaseHost) Closing() bool { return h.r.runner.isClosing() }

// startBackground starts the lease keeper, the change feed (where the
// backend has one) and the poller; stopBackground ends them.
func (r *Router) startBackground() {
	r.leases = lease.New(lease.Config{Runner: r.opts.Runner, Heartbeat: r.opts.Heartbeat, Timeout: r.opts.LeaseTimeout,
		Runtime: r.rt, Logger: r.log, LogOwner: func(o string) slog.LogValuer { return logOwner(o) },
		Ages: r.opts.Observer.Heartbeats, CreatesSince: r.creates.oldest}, leaseHost{r})
	bg, cancel := context.WithCancel(context.Background())
	r.bgCancel = cancel
	r.bg.Go(func() { r.leases.Run(bg) })
	if n, ok := r.rt.Backend().(taskstore.Notifier); ok {
		r.bg.Go(func() { r.hub.Feed(bg, n, r.log, r.opts.Observer.Feed) })
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
		_ = r.leases.Unregister(ctx)
	}
}

// Runner is this replica's id in task leases.
func (r *Router) Runner() string { return r.opts.Runner }

// creates tracks the task creations in flight on this replica: a create
// that failed may have been stored, and the lease keeper must tell such a
// stray from a task whose run is about to start (lease.Config.CreatesSince).
type creates struct {
	mu     sync.Mutex
	next   uint64
	starts map[uint64]time.Time
}

func (c *creates) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.starts == nil {
		c.starts = map[uint64]time.Time{}
	}
	c.next++
	c.starts[c.next] = time.Now()
	return c.next
}

func (c *creates) done(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.starts, id)
}

// oldest is when the oldest create in flight began; zero when none is.
func (c *creates) oldest() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first time.Time
	for _, t := range c.starts {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return first
}

// mayHaveApplied reports whether a failed store write may have been
// stored all the same: a backend error or a context ended mid-call, not
// a refusal.
func mayHaveApplied(err error) bool {
	return errors.Is(err, taskstore.ErrBackend) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
