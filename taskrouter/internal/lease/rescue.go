package lease

import (
	"context"
	"errors"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// The rescue: a sweep finds a dead runner's tasks through the runner index
// and then forgets the runner, so a task whose lease names a runner no
// longer listed is never swept. That happens when a write lands after the
// sweep that forgot its runner (a create or claim sent before a partition,
// applied once it healed, by a replica killed since), or when an index
// entry was lost (a Redis Cluster writes a record and its runner index
// entry in two slots). The rescue finds such tasks from the other side:
// every rescueTimeouts lease timeouts it lists the active tasks of every
// owner (the store's status index) and acts on those held by a runner
// absent from the runners on two passes at least a Timeout apart, as a
// sweep would (claimed when resumable, else ended failed). It also finds
// this runner's own tasks that have no run here on two such passes, which
// its stray search (through the runner index) can miss for the same
// reasons, and adopts them as that search does. Its cost is O(active
// tasks) store reads per pass and replica, at most rescuePages pages.

// rescueTimeouts is how many lease timeouts apart rescue passes are.
const rescueTimeouts = 6

// rescuePages bounds the pages (of sweepPage tasks) one pass reads per
// active status; the next pass starts again from the oldest.
const rescuePages = 100

// unlisted is a task seen held by a runner absent from the runners.
type unlisted struct {
	lease taskstore.Lease
	since time.Time // monotonic: the pass that first saw it so
}

// Rescue is one rescue pass: it lists every active task, notes those held
// by a runner that is not listed and those held by this one with no run
// here, and acts on those it noted on an earlier pass at least a Timeout
// ago, still held by the same lease (and their runner still not listed,
// or still no run). It does nothing when the store
// cannot list across owners (taskstore.ErrUnsupported) or the router is
// closing. Run calls it every rescueTimeouts Timeouts; it must not run
// concurrently with Run or Tick.
func (k *Keeper) Rescue(ctx context.Context) {
	if k.host.Closing() || ctx.Err() != nil {
		return
	}
	listed, ok := k.listed(ctx)
	if !ok {
		return
	}
	now := time.Now()
	running := k.running()
	seen := map[taskstore.Key]unlisted{}
	var act []*taskstore.TaskRecord
	for _, status := range [...]taskstore.Status{taskstore.StatusWorking, taskstore.StatusInputRequired} {
		cursor := ""
		for range rescuePages {
			cctx, cancel := k.call(ctx)
			page, err := k.rt.ListAllOwners(cctx, taskstore.ListFilter{Status: status}, cursor, sweepPage)
			cancel()
			if err != nil {
				if !errors.Is(err, taskstore.ErrUnsupported) && ctx.Err() == nil {
					k.log.Warn("rescue: listing active tasks failed", "error", err)
				}
				return // the notes stand until a pass reads them all
			}
			for _, rec := range page.Tasks {
				if rec.Lease == nil || !rec.Active() || listed[rec.Lease.Runner] && rec.Lease.Runner != k.cfg.Runner ||
					rec.Lease.Runner == k.cfg.Runner && running[rec.Task.TaskID] {
					continue
				}
				key := taskstore.Key{Owner: rec.OwnerID, TaskID: rec.Task.TaskID}
				note, ok := k.unlisted[key]
				if !ok || note.lease != *rec.Lease {
					note = unlisted{lease: *rec.Lease, since: now}
				}
				seen[key] = note
				if now.Sub(note.since) >= k.cfg.Timeout {
					act = append(act, rec)
				}
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
	}
	k.unlisted = seen
	if len(act) == 0 {
		return
	}
	// The runners again: one that beat since the first read is alive.
	if listed, ok = k.listed(ctx); !ok {
		return
	}
	var page, own []*taskstore.TaskRecord
	for _, rec := range act {
		if rec.Lease.Runner == k.cfg.Runner {
			own = append(own, rec)
			continue
		}
		if listed[rec.Lease.Runner] {
			continue
		}
		k.log.Warn("rescue: task held by a runner no replica lists", "task", rec.Task.TaskID, "owner", k.cfg.LogOwner(rec.OwnerID), "runner", rec.Lease.Runner, "attempt", rec.Lease.Attempt)
		if page = append(page, rec); len(page) == sweepPage {
			k.actOn(ctx, page)
			page = nil
		}
	}
	if len(page) > 0 {
		k.actOn(ctx, page)
	}
	if len(own) > 0 && !k.host.Closing() {
		k.log.Warn("rescue: tasks held here with no run", "tasks", len(own))
		k.adoptHeld(ctx, own)
	}
}

// listed reads the registered runners.
func (k *Keeper) listed(ctx context.Context) (map[string]bool, bool) {
	cctx, cancel := k.call(ctx)
	beats, err := k.rt.Runners(cctx)
	cancel()
	if err != nil {
		return nil, false
	}
	out := make(map[string]bool, len(beats))
	for _, b := range beats {
		out[b.Runner] = true
	}
	return out, true
}
