// Package runcost measures what tasks cost a replica while they run and
// when it inherits them, in process, with taskrouter Routers over any
// store: backend calls per checkpoint of a running task, orphans ended per
// second and backend calls per orphan, takeover time of resumable tasks,
// and heap and stack bytes per running task. The command's
// `mcptasks bench replicas` prints them; taskrouter's
// BenchmarkRunningTaskMemory reports the memory figures.
//
// The Routers it starts are replicas like any other: they end the tasks of
// every replica of the store whose heartbeat stands still. Point it at a
// store (or key prefix) of its own.
package runcost

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcptasks/mcptasks/internal/callcount"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Env is what the measurements run over.
type Env struct {
	// Store is over the backend as opened: the measurements' own setup
	// (creating and deleting tasks, checks) goes through it, uncounted.
	Store *taskstore.Store
	// Counted is over the same backend, counting each call in Calls: the
	// Routers measured use it.
	Counted *taskstore.Store
	Calls   *callcount.Counter
	// Heartbeat and LeaseTimeout are the Routers' (taskrouter.Options).
	Heartbeat, LeaseTimeout time.Duration
	// Timeout bounds each wait (for all tasks ended, running, …).
	Timeout time.Duration
	// Prefix starts the owners and runner ids the measurements make, so
	// that runs on one store do not meet.
	Prefix string
}

// NewEnv returns an Env over b with the Routers' default heartbeat (1s)
// and lease timeout (5s), and waits of at most two minutes. The Stores
// have no quotas (cfg's are overridden).
func NewEnv(b taskstore.Backend, cfg taskstore.Config) *Env {
	cfg.MaxActiveTasks, cfg.MaxStoredTasks = -1, -1
	counted, calls := callcount.Wrap(b)
	var id [6]byte
	rand.Read(id[:])
	return &Env{
		Store:        taskstore.New(b, cfg),
		Counted:      taskstore.New(counted, cfg),
		Calls:        calls,
		Heartbeat:    time.Second,
		LeaseTimeout: 5 * time.Second,
		Timeout:      2 * time.Minute,
		Prefix:       "runcost-" + hex.EncodeToString(id[:]),
	}
}

// keeperOps are the lease keeper's calls on every tick (its heartbeat and
// its look at the others'): per replica, not per task, so left out of the
// per-task figures.
var keeperOps = []string{"Heartbeat", "Runners"}

// owners is how many owners the tasks of one measurement are spread over.
const owners = 50

func (e *Env) owner(what string, i int) string {
	return fmt.Sprintf("%s-%s-o%d", e.Prefix, what, i%owners)
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// router returns a Router over the counted store, named e.Prefix-what,
// once its change feed is up (where the backend has one): the feed's
// first Resync wakes every watch, which would be counted against what
// the Router does next. A survivor has e's leases (shorter ones shorten
// the wait for a replica to be presumed dead); another Router the
// defaults, so that a late tick on a loaded machine does not make it
// re-read its own runs (the lease keeper does after a lease timeout
// without a heartbeat).
func (e *Env) router(ctx context.Context, what string, log *slog.Logger, survivor bool) (*taskrouter.Router, error) {
	before := e.Calls.Resyncs()
	opts := taskrouter.Options{Logger: log, Runner: e.Prefix + "-" + what}
	if survivor {
		opts.Heartbeat, opts.LeaseTimeout = e.Heartbeat, e.LeaseTimeout
	}
	r := taskrouter.New(e.Counted, opts)
	if _, feed := taskstore.NewRuntime(e.Counted).Backend().(taskstore.Notifier); !feed {
		return r, nil
	}
	for deadline := time.Now().Add(e.Timeout); e.Calls.Resyncs() == before; {
		if err := ctx.Err(); err != nil || time.Now().After(deadline) {
			e.shutdown(r)
			return nil, errors.Join(errors.New("the change feed did not come up"), err)
		}
		time.Sleep(time.Millisecond)
	}
	return r, nil
}

// shutdown stops r, its tasks already ended or deleted.
func (e *Env) shutdown(r *taskrouter.Router) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.Shutdown(ctx)
}

// countdown is closed once Add was called n times.
type countdown struct {
	total int64
	n     atomic.Int64
	at    atomic.Int64 // unix nanoseconds of the last Add
	done  chan struct{}
}

func newCountdown(n int) *countdown {
	c := &countdown{total: int64(n), done: make(chan struct{})}
	c.n.Store(int64(n))
	return c
}

func (c *countdown) Add() {
	now := time.Now().UnixNano()
	if left := c.n.Add(-1); left >= 0 {
		for old := c.at.Load(); now > old && !c.at.CompareAndSwap(old, now); old = c.at.Load() {
		}
		if left == 0 {
			close(c.done)
		}
	}
}

// wait waits until c is done, what is left of n, ctx or timeout.
func (c *countdown) wait(ctx context.Context, timeout time.Duration, what string) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("%s: %d left after %v", what, c.left(), timeout)
	}
}

// left is how many Adds c still waits for, count how many it had.
func (c *countdown) left() int  { return int(max(c.n.Load(), 0)) }
func (c *countdown) count() int { return int(c.total) - c.left() }

// last is when c was done.
func (c *countdown) last() time.Time { return time.Unix(0, c.at.Load()) }

// parallel runs fn(i) for i in [0, n) on 16 goroutines and returns the
// first error.
func parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, 16) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n && ctx.Err() == nil; i = int(next.Add(1)) - 1 {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// deleteAll deletes tasks through the uncounted backend (nil entries are
// tasks never created).
func (e *Env) deleteAll(ctx context.Context, tasks []*taskstore.TaskRecord) error {
	b := taskstore.NewRuntime(e.Store).Backend()
	return parallel(ctx, len(tasks), func(ctx context.Context, i int) error {
		if tasks[i] == nil {
			return nil
		}
		_, err := b.Delete(ctx, tasks[i].OwnerID, tasks[i].Task.TaskID)
		return err
	})
}

// deleteOwned deletes every task of owners through the uncounted store
// (the memory measurements keep no task of their own to delete).
func (e *Env) deleteOwned(ctx context.Context, owners []string) error {
	b := taskstore.NewRuntime(e.Store).Backend()
	return parallel(ctx, len(owners), func(ctx context.Context, i int) error {
		for {
			recs, _, err := b.List(ctx, owners[i], "", 1000)
			if err != nil || len(recs) == 0 {
				return err
			}
			for _, rec := range recs {
				if _, err := b.Delete(ctx, rec.Owner, rec.TaskID); err != nil {
					return err
				}
			}
		}
	})
}

// waitIdle waits until r runs nothing.
func (e *Env) waitIdle(ctx context.Context, r *taskrouter.Router) error {
	deadline := time.Now().Add(e.Timeout)
	for r.Running() > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d runs still running after %v", r.Running(), e.Timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// toolVars are the variables a tools/call task of tool starts with, as
// Router.Start writes them (so that stored records have its shape).
func toolVars(tool string) map[string]json.RawMessage {
	b, _ := json.Marshal(tool)
	return map[string]json.RawMessage{"io.mcptasks.task/tool": b}
}
