// Package hub is a router's wake-up hub: everything on one replica that
// waits for a task to change (a run watching for a cancel made elsewhere, a
// blocked tasks/result, a listen stream) registers here, and every way a
// change becomes known — a write on this replica, the store's change feed,
// or the poller when there is no feed — wakes exactly what waits on it.
// The hub owns its lock; no other part of the router reads its maps.
//
// The change feed: when the store's backend can push changes
// (taskstore.Notifier), one goroutine subscribes, and each change wakes the
// watches of its task. While the feed is up nothing polls; when it drops,
// watches fall back to polling at their interval until it is back, and
// every (re)subscription wakes them all to re-read, so no change is missed.
//
// The poller: without the feed, one goroutine re-reads the versions of the
// watched tasks that are due, all in one batch, and wakes only the watches
// whose version moved.
package hub

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcptasks/mcptasks/internal/backoff"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Versions reads the current version of each live task among keys (missing
// ones are left out): taskstore.Runtime.Versions.
type Versions func(ctx context.Context, keys []taskstore.Key) (map[taskstore.Key]uint64, error)

// Hub is the wake-up hub. Its zero value is not usable: use New.
type Hub struct {
	maxWaits int
	feedUp   atomic.Bool

	mu        sync.Mutex
	watches   map[string]map[*Watch]struct{} // task id -> its watches
	listeners map[chan struct{}]struct{}     // poked on every change
	waits     map[string]int                 // owner -> waits held
}

// New returns a hub that lets each owner hold at most maxWaits waits.
func New(maxWaits int) *Hub {
	return &Hub{
		maxWaits:  maxWaits,
		watches:   map[string]map[*Watch]struct{}{},
		listeners: map[chan struct{}]struct{}{},
		waits:     map[string]int{},
	}
}

// A Watch is one waiter on one task. C receives (without the sender ever
// blocking) when the task may have changed: re-read it.
type Watch struct {
	C         chan struct{}
	id        string
	storeOnly bool

	// Under Hub.mu: what the poller compares (set by Seen), how often and
	// when it looks next.
	owner string
	seen  uint64
	every time.Duration
	next  time.Time
	// Under Hub.mu: the task's terminal record, when the waker had it.
	end *taskstore.TaskRecord
	// Under Hub.mu, since Echo last looked: the highest version the feed
	// brought, and whether a wake-up came without one (poller, resync).
	fed         uint64
	unversioned bool
}

// Watch registers a watch on task id, woken by every change of the task:
// made on this replica (Changed), seen on the feed, or found by the poller
// (once Seen has told it what was read). Unwatch it when done.
func (h *Hub) Watch(id string) *Watch { return h.watch(id, false) }

// WatchStore is Watch for the run of the task on this replica: it is woken
// only by changes seen in the store (the feed, the poller), not by this
// replica's own writes, which the run made or was told of directly.
func (h *Hub) WatchStore(id string) *Watch { return h.watch(id, true) }

func (h *Hub) watch(id string, storeOnly bool) *Watch {
	w := &Watch{C: make(chan struct{}, 1), id: id, storeOnly: storeOnly}
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.watches[id]
	if set == nil {
		set = map[*Watch]struct{}{}
		h.watches[id] = set
	}
	set[w] = struct{}{}
	return w
}

// Unwatch removes w.
func (h *Hub) Unwatch(w *Watch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if set := h.watches[w.id]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(h.watches, w.id)
		}
	}
}

// Seen records the task as w's holder read it: while there is no change
// feed, the poller looks at it every interval and wakes w when the stored
// version differs.
func (h *Hub) Seen(w *Watch, rec *taskstore.TaskRecord, every time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.owner, w.seen = rec.OwnerID, rec.Version
	if w.every == 0 || every < w.every {
		w.every = every
	}
	if w.next.IsZero() {
		w.next = time.Now().Add(w.every)
	}
}

// End returns the terminal record the last waker handed over, if any.
func (h *Hub) End(w *Watch) *taskstore.TaskRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return w.end
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Changed wakes the watches of task id (but those of WatchStore) and every
// listener: this replica changed the task. end, when the caller has it, is
// the task's terminal record, which spares the woken tasks/result calls a
// read.
func (h *Hub) Changed(id string, end *taskstore.TaskRecord) { h.changed(id, end, false, 0) }

// changed wakes the watches of task id: inStore for a change seen in the
// store (version, when the feed says it, is the version written).
func (h *Hub) changed(id string, end *taskstore.TaskRecord, inStore bool, version uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watches[id] {
		if w.storeOnly && !inStore {
			continue
		}
		if end != nil {
			w.end = end
		}
		if version > 0 {
			w.fed = max(w.fed, version)
		} else {
			w.unversioned = true
		}
		poke(w.C)
	}
	h.pokeListeners()
}

// Fed returns what woke w since Fed last looked: the highest version the
// feed (or the poller) found, or 0 when any wake-up came without one (a
// resync, a delete, a task gone), which the holder must read. It forgets what it
// looked at; with nothing to report it returns 0 and woken false.
func (h *Hub) Fed(w *Watch) (version uint64, woken bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	version, woken = w.fed, w.fed > 0 || w.unversioned
	if w.unversioned {
		version = 0
	}
	w.fed, w.unversioned = 0, false
	return version, woken
}

// ChangedAll wakes every watch and listener: the feed came (back) up or
// dropped, and anything may have changed meanwhile.
func (h *Hub) ChangedAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.watches {
		for w := range set {
			w.unversioned = true
			poke(w.C)
		}
	}
	h.pokeListeners()
}

func (h *Hub) pokeListeners() {
	for c := range h.listeners {
		poke(c)
	}
}

// Listen returns a channel poked on every change on this replica (and on
// the feed), for a listen stream; stop removes it.
func (h *Hub) Listen() (c <-chan struct{}, stop func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	h.listeners[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.listeners, ch)
		h.mu.Unlock()
	}
}

// HoldWait counts one wait of owner (a blocked tasks/result, a listen
// stream) against the per-owner bound; beyond it the error says what to do
// instead.
func (h *Hub) HoldWait(owner, instead string) (release func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waits[owner] >= h.maxWaits {
		return nil, &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: fmt.Sprintf(
			"too many waits for this caller (at most %d tasks/result calls and listen streams at once): %s",
			h.maxWaits, instead)}
	}
	h.waits[owner]++
	return func() {
		h.mu.Lock()
		if h.waits[owner]--; h.waits[owner] == 0 {
			delete(h.waits, owner)
		}
		h.mu.Unlock()
	}, nil
}

// Pushing reports whether changes arrive on the feed, so waits need no
// timer.
func (h *Hub) Pushing() bool { return h.feedUp.Load() }

// Feed subscribes to n until ctx ends, waking the watches of each change,
// and subscribes again (with backoff) when the feed drops. state, when
// set, is told each time the feed comes up or goes down.
func (h *Hub) Feed(ctx context.Context, n taskstore.Notifier, log *slog.Logger, state func(up bool)) {
	set := func(up bool) {
		if h.feedUp.Swap(up) != up && state != nil {
			state(up)
		}
	}
	for attempt := 0; ctx.Err() == nil; attempt++ {
		err := n.Subscribe(ctx, func(c taskstore.Change) {
			if c.Resync {
				attempt = 0
				set(true)
				h.ChangedAll()
				return
			}
			h.changed(c.TaskID, nil, true, c.Version)
		})
		set(false)
		h.ChangedAll() // back to polling
		if ctx.Err() != nil {
			return
		}
		log.Warn("task change feed lost; polling until it is back", "error", err)
		if backoff.Sleep(ctx, attempt, 100*time.Millisecond, 5) != nil {
			return
		}
	}
}

// Poll runs a poll round every tick until ctx ends, while the feed is down.
func (h *Hub) Poll(ctx context.Context, tick, callTimeout time.Duration, versions Versions) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !h.Pushing() {
				h.PollOnce(ctx, callTimeout, versions)
			}
		}
	}
}

// PollOnce reads, in one batch, the versions of the watched tasks that are
// due, and wakes the watches whose version moved (or whose task is gone).
func (h *Hub) PollOnce(ctx context.Context, callTimeout time.Duration, versions Versions) {
	now := time.Now()
	var keys []taskstore.Key
	var due []*Watch
	seen := map[taskstore.Key]bool{}
	h.mu.Lock()
	for _, set := range h.watches {
		for w := range set {
			if w.every == 0 || now.Before(w.next) {
				continue
			}
			w.next = now.Add(w.every)
			due = append(due, w)
			if k := (taskstore.Key{Owner: w.owner, TaskID: w.id}); !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	h.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	got, err := versions(cctx, keys)
	cancel()
	if err != nil {
		return // the next round tries again
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range due {
		switch v, ok := got[taskstore.Key{Owner: w.owner, TaskID: w.id}]; {
		case !ok: // gone
			w.unversioned = true
			poke(w.C)
		case v != w.seen:
			w.fed = max(w.fed, v)
			poke(w.C)
		}
	}
}
