package taskrouter

import (
	"context"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// The change feed. When the store's backend can push changes
// (taskstore.Notifier: memory in process, Redis over pub/sub), one
// goroutine per Router subscribes, and every change of a task wakes the
// tasks/result calls blocked on it and re-reads it for a run on this
// replica (a cancel made elsewhere stops the run at once). While the feed
// is up nothing polls; when it drops, waiters and runs fall back to
// polling at the task's pollInterval until it is up again, and every
// (re)subscription wakes them all to re-read, so no end is missed.

func (r *Router) feedLoop(ctx context.Context, n taskstore.Notifier) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		err := n.Subscribe(ctx, func(c taskstore.Change) {
			if c.Resync {
				attempt = 0
				r.feedUp.Store(true)
				r.wakeAll()
				return
			}
			r.changed(c.TaskID)
		})
		r.feedUp.Store(false)
		r.wakeAll() // back to polling
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("task change feed lost; polling until it is back", "error", err)
		if taskstore.Backoff(ctx, attempt, 100*time.Millisecond, 5) != nil {
			return
		}
	}
}

// changed is a change of one task, seen on the feed (wake also pokes the
// listen streams).
func (r *Router) changed(taskID string) {
	r.wake(taskID)
	r.runner.mu.Lock()
	rn := r.runner.runs[taskID]
	r.runner.mu.Unlock()
	if rn != nil {
		rn.poke()
	}
}

// wakeAll makes every waiter and run re-read its task.
func (r *Router) wakeAll() {
	r.runner.mu.Lock()
	ws := r.runner.waiters
	r.runner.waiters = map[string]*waiter{}
	runs := make([]*run, 0, len(r.runner.runs))
	for _, rn := range r.runner.runs {
		runs = append(runs, rn)
	}
	r.runner.mu.Unlock()
	for _, w := range ws {
		close(w.ch)
	}
	for _, rn := range runs {
		rn.poke()
	}
	r.pokeWatchers()
}

// pushing reports whether changes arrive on the feed, so waits need no timer.
func (r *Router) pushing() bool { return r.feedUp.Load() }
