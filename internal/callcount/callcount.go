// Package callcount counts the calls made to a taskstore.Backend. On a
// remote backend each call is one round trip to the storage server (a
// batch call, GetMany or UpdateMany, one per server node it touches), so
// the counts are what tests pin and benchmarks report as round trips.
package callcount

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mcptasks/mcptasks/taskstore"
)

// Ops are the counted operations, in the order Counts prints them.
// Subscribe (one long-lived subscription), MaxRecordSize and Close are
// not counted.
var Ops = []string{"Create", "Get", "Update", "Delete", "List", "GetMany", "UpdateMany",
	"RunnerTasks", "Heartbeat", "Runners", "RemoveRunner", "DeleteExpired", "ListByStatus", "CountByStatus"}

// Counter holds the counts of a wrapped backend. It is safe for concurrent
// use.
type Counter struct {
	mu      sync.Mutex
	n       Counts
	resyncs atomic.Int64
}

// Resyncs is how many Resync changes the change feed delivered, to any
// subscriber, each once its subscriber returned: not calls, but after
// each one every watcher of a task on that subscriber's replica reads it
// again.
func (c *Counter) Resyncs() int { return int(c.resyncs.Load()) }

func (c *Counter) add(op string) {
	c.mu.Lock()
	c.n[op]++
	c.mu.Unlock()
}

// Snapshot returns the counts so far.
func (c *Counter) Snapshot() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n.clone()
}

// Take returns the counts so far and starts again from zero.
func (c *Counter) Take() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = Counts{}
	return n
}

// Counts are calls per operation (a name of Ops).
type Counts map[string]int

func (n Counts) clone() Counts {
	c := make(Counts, len(n))
	for op, v := range n {
		c[op] = v
	}
	return c
}

// Sub returns n less earlier (a Snapshot taken before).
func (n Counts) Sub(earlier Counts) Counts {
	d := Counts{}
	for op, v := range n {
		if v -= earlier[op]; v != 0 {
			d[op] = v
		}
	}
	return d
}

// Only returns the counts of ops alone.
func (n Counts) Only(ops ...string) Counts {
	d := Counts{}
	for _, op := range ops {
		if n[op] != 0 {
			d[op] = n[op]
		}
	}
	return d
}

// Without returns the counts of every operation but ops.
func (n Counts) Without(ops ...string) Counts {
	d := Counts{}
	for op, v := range n {
		if v != 0 && !slices.Contains(ops, op) {
			d[op] = v
		}
	}
	return d
}

// Total is the number of calls.
func (n Counts) Total() int {
	t := 0
	for _, v := range n {
		t += v
	}
	return t
}

// String is the total and each operation's count, such as
// "2 (Create×1 Update×1)".
func (n Counts) String() string {
	var parts []string
	for _, op := range Ops {
		if n[op] != 0 {
			parts = append(parts, fmt.Sprintf("%s×%d", op, n[op]))
		}
	}
	return fmt.Sprintf("%d (%s)", n.Total(), strings.Join(parts, " "))
}

// Wrap returns b counting each call in the returned Counter. It has the
// optional interfaces of b that the Store and the router look for
// (Notifier, BatchGetter, BatchUpdater, StatusIndex), and no others, so
// that the wrapped backend is used exactly as b would be.
func Wrap(b taskstore.Backend) (taskstore.Backend, *Counter) {
	c := &Counter{n: Counts{}}
	w := &backend{Backend: b, c: c}
	var feed, getMany, updateMany, statusIndex bool
	w.n, feed = b.(taskstore.Notifier)
	w.g, getMany = b.(taskstore.BatchGetter)
	w.u, updateMany = b.(taskstore.BatchUpdater)
	w.s, statusIndex = b.(taskstore.StatusIndex)
	f, gm, um, sl := notifier{w}, getter{w}, updater{w}, statusLister{w}
	// One struct type per combination: a method set cannot be assembled
	// at run time.
	switch {
	case feed && getMany && updateMany && statusIndex:
		return struct {
			*backend
			notifier
			getter
			updater
			statusLister
		}{w, f, gm, um, sl}, c
	case getMany && updateMany && statusIndex:
		return struct {
			*backend
			getter
			updater
			statusLister
		}{w, gm, um, sl}, c
	case feed && updateMany && statusIndex:
		return struct {
			*backend
			notifier
			updater
			statusLister
		}{w, f, um, sl}, c
	case updateMany && statusIndex:
		return struct {
			*backend
			updater
			statusLister
		}{w, um, sl}, c
	case feed && getMany && statusIndex:
		return struct {
			*backend
			notifier
			getter
			statusLister
		}{w, f, gm, sl}, c
	case getMany && statusIndex:
		return struct {
			*backend
			getter
			statusLister
		}{w, gm, sl}, c
	case feed && statusIndex:
		return struct {
			*backend
			notifier
			statusLister
		}{w, f, sl}, c
	case statusIndex:
		return struct {
			*backend
			statusLister
		}{w, sl}, c
	case feed && getMany && updateMany:
		return struct {
			*backend
			notifier
			getter
			updater
		}{w, f, gm, um}, c
	case getMany && updateMany:
		return struct {
			*backend
			getter
			updater
		}{w, gm, um}, c
	case feed && updateMany:
		return struct {
			*backend
			notifier
			updater
		}{w, f, um}, c
	case updateMany:
		return struct {
			*backend
			updater
		}{w, um}, c
	case feed && getMany:
		return struct {
			*backend
			notifier
			getter
		}{w, f, gm}, c
	case getMany:
		return struct {
			*backend
			getter
		}{w, gm}, c
	case feed:
		return struct {
			*backend
			notifier
		}{w, f}, c
	}
	return w, c
}

// Interface guards
var (
	_ taskstore.Backend      = (*backend)(nil)
	_ taskstore.Notifier     = notifier{}
	_ taskstore.BatchGetter  = getter{}
	_ taskstore.BatchUpdater = updater{}
	_ taskstore.StatusIndex  = statusLister{}
)

// backend counts the calls of the Backend interface; notifier, getter,
// updater and statusLister add the optional interfaces b has.
type backend struct {
	taskstore.Backend
	c *Counter
	n taskstore.Notifier
	g taskstore.BatchGetter
	u taskstore.BatchUpdater
	s taskstore.StatusIndex
}

func (b *backend) Create(ctx context.Context, rec taskstore.Record, lim taskstore.Limits) error {
	b.c.add("Create")
	return b.Backend.Create(ctx, rec, lim)
}

func (b *backend) Get(ctx context.Context, owner, id string) (taskstore.Record, error) {
	b.c.add("Get")
	return b.Backend.Get(ctx, owner, id)
}

func (b *backend) Update(ctx context.Context, rec taskstore.Record, expected uint64) (uint64, error) {
	b.c.add("Update")
	return b.Backend.Update(ctx, rec, expected)
}

func (b *backend) Delete(ctx context.Context, owner, id string) (bool, error) {
	b.c.add("Delete")
	return b.Backend.Delete(ctx, owner, id)
}

func (b *backend) List(ctx context.Context, owner, after string, limit int) ([]taskstore.Record, bool, error) {
	b.c.add("List")
	return b.Backend.List(ctx, owner, after, limit)
}

func (b *backend) DeleteExpired(ctx context.Context) (int, error) {
	b.c.add("DeleteExpired")
	return b.Backend.DeleteExpired(ctx)
}

func (b *backend) Heartbeat(ctx context.Context, runner string) error {
	b.c.add("Heartbeat")
	return b.Backend.Heartbeat(ctx, runner)
}

func (b *backend) Runners(ctx context.Context) ([]taskstore.RunnerBeat, error) {
	b.c.add("Runners")
	return b.Backend.Runners(ctx)
}

func (b *backend) RemoveRunner(ctx context.Context, runner string) error {
	b.c.add("RemoveRunner")
	return b.Backend.RemoveRunner(ctx, runner)
}

func (b *backend) RunnerTasks(ctx context.Context, runner string, limit int) ([]taskstore.Record, error) {
	b.c.add("RunnerTasks")
	return b.Backend.RunnerTasks(ctx, runner, limit)
}

type notifier struct{ *backend }

func (w notifier) Subscribe(ctx context.Context, fn func(taskstore.Change)) error {
	return w.n.Subscribe(ctx, func(c taskstore.Change) {
		fn(c)
		if c.Resync {
			w.c.resyncs.Add(1)
		}
	})
}

type getter struct{ *backend }

func (w getter) GetMany(ctx context.Context, keys []taskstore.Key) ([]taskstore.Record, error) {
	w.c.add("GetMany")
	return w.g.GetMany(ctx, keys)
}

type updater struct{ *backend }

func (w updater) UpdateMany(ctx context.Context, updates []taskstore.Update) ([]taskstore.UpdateResult, error) {
	w.c.add("UpdateMany")
	return w.u.UpdateMany(ctx, updates)
}

type statusLister struct{ *backend }

func (w statusLister) ListByStatus(ctx context.Context, status taskstore.Status, after taskstore.Key, limit int) ([]taskstore.Record, bool, error) {
	w.c.add("ListByStatus")
	return w.s.ListByStatus(ctx, status, after, limit)
}

func (w statusLister) CountByStatus(ctx context.Context) (map[taskstore.Status]int64, error) {
	w.c.add("CountByStatus")
	return w.s.CountByStatus(ctx)
}
