package taskrouter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
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
		Ages: r.opts.Observer.Heartbeats}, leaseHost{r})
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
