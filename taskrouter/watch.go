package taskrouter

import (
	"context"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// The poller: without a change feed (or while it is down), one goroutine
// per Router re-reads the versions of what this replica watches — its
// running tasks and the tasks that blocked tasks/result calls wait on —
// each at its task's pollInterval, all due ones in one batch
// (taskstore.Runtime.Versions: one request per 100 tasks on DynamoDB), and
// wakes only those whose version moved. With the feed up it reads nothing.

func (r *Router) pollLoop(ctx context.Context) {
	t := time.NewTicker(r.opts.MinPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !r.pushing() {
				r.pollOnce(ctx)
			}
		}
	}
}

func (r *Router) pollOnce(ctx context.Context) {
	now := time.Now()
	var keys []taskstore.Key
	seen := map[taskstore.Key]bool{}
	add := func(owner, id string) {
		k := taskstore.Key{Owner: owner, TaskID: id}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	r.runner.mu.Lock()
	var runs []*run
	for _, rn := range r.runner.runs {
		if !now.Before(rn.nextPoll) {
			rn.nextPoll = now.Add(rn.poll)
			runs = append(runs, rn)
			add(rn.owner, rn.id)
		}
	}
	waits := map[string]*waiter{}
	for id, w := range r.runner.waiters {
		if w.owner != "" && !now.Before(w.nextPoll) {
			w.nextPoll = now.Add(w.every)
			waits[id] = w
			add(w.owner, id)
		}
	}
	r.runner.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
	versions, err := r.rt.Versions(cctx, keys)
	cancel()
	if err != nil {
		return // the next round tries again
	}
	for _, rn := range runs {
		v, ok := versions[taskstore.Key{Owner: rn.owner, TaskID: rn.id}]
		if !ok || v != rn.seen.Load() {
			rn.poke()
		}
	}
	for id, w := range waits {
		r.runner.mu.Lock()
		v, ok := versions[taskstore.Key{Owner: w.owner, TaskID: id}]
		moved := !ok || v != w.seen
		r.runner.mu.Unlock()
		if moved {
			r.wake(id)
		}
	}
}
