package mcptasks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/mcptasks/mcptasks/taskstore"
)

// What every backend shares: the error of a failed call, the closed
// guard, and the fan-out of a change feed to Subscribe calls.

// backendErr is the one error rule of every backend for a call that
// failed at its server or client (what names the backend and the
// operation, as "redis get"):
//
//   - once the caller's ctx is done, the error satisfies errors.Is with
//     ctx.Err(): a cause that already does is returned unchanged, any
//     other is kept and joined with ctx.Err() and ErrBackend (whether the
//     server failed or the caller left cannot be told apart then);
//   - otherwise it wraps taskstore.ErrBackend and keeps the cause, except
//     that a context error of the client's own (a connect timeout) keeps
//     only its text: errors.Is(err, context.Canceled) or
//     DeadlineExceeded then always means the caller's ctx ended, which is
//     what callers test first (a router passes those through as the
//     caller's, and logs ErrBackend).
func backendErr(ctx context.Context, what string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(err, cerr) {
			return err
		}
		return fmt.Errorf("%w: %s: %w (%w)", taskstore.ErrBackend, what, err, cerr)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %v", taskstore.ErrBackend, what, err)
	}
	return fmt.Errorf("%w: %s: %w", taskstore.ErrBackend, what, err)
}

// errClosed is what every call of a closed backend returns.
var errClosed = fmt.Errorf("%w: the store is closed", taskstore.ErrBackend)

// closeGuard is a backend's closed flag, checked first by every call.
type closeGuard struct{ closed atomic.Bool }

// begin fails fast: with ctx's error once ctx is done, then with
// errClosed once the backend is closed.
func (g *closeGuard) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if g.closed.Load() {
		return errClosed
	}
	return nil
}

// changeHub fans one change feed out to every Subscribe call of a
// backend. The feed (in process, or a listening connection) pushes
// changes; each subscriber queues them and runs its fn on its own
// goroutine. A subscriber whose queue is full misses the change and gets
// a Resync instead, so a slow fn never blocks the feed.
type changeHub struct {
	// listen, if set, runs a server's feed until it fails or stop ends:
	// it calls up once listening, then push. The first Subscribe starts
	// it, and the next one after it failed. Unset: the backend pushes
	// changes in process and calls up once.
	listen func(stop context.Context) error
	stop   context.Context // ends at the backend's Close
	what   string          // names the feed in its error
	wg     sync.WaitGroup  // the running listen

	mu      sync.Mutex
	subs    map[*hubSub]struct{}
	running bool // a feed runs or is starting
	live    bool // the feed is up: a new subscriber gets its Resync at once
	closed  bool
}

// hubQueue is how many changes a subscriber may have pending.
const hubQueue = 1024

type hubSub struct {
	ch     chan taskstore.Change
	end    chan error // buffered: why the feed ended
	missed bool       // a change did not fit in ch; guarded by changeHub.mu
}

// subscribe is Subscribe's body: it calls fn for every change until ctx
// ends (returning ctx's error), the feed fails (its error, an ErrBackend)
// or the hub is closed (errClosed). fn first gets a Resync once the feed
// is up.
func (h *changeHub) subscribe(ctx context.Context, fn func(taskstore.Change)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := &hubSub{ch: make(chan taskstore.Change, hubQueue), end: make(chan error, 1)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errClosed
	}
	if h.subs == nil {
		h.subs = map[*hubSub]struct{}{}
	}
	h.subs[s] = struct{}{}
	if h.live {
		s.ch <- taskstore.Change{Resync: true}
	}
	if !h.running && h.listen != nil {
		// Under h.mu, so never after close: Close can wait for it.
		h.running = true
		h.wg.Go(func() { h.down(backendErr(h.stop, h.what, h.listen(h.stop))) })
	}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-s.end:
			return err
		case c := <-s.ch:
			fn(c)
		}
		h.mu.Lock()
		missed := s.missed
		s.missed = false
		h.mu.Unlock()
		if missed {
			fn(taskstore.Change{Resync: true})
		}
	}
}

// up marks the feed established: every subscriber gets a Resync (changes
// before it may have been missed).
func (h *changeHub) up() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running, h.live = true, true
	h.pushLocked(taskstore.Change{Resync: true})
}

// push queues c for every subscriber.
func (h *changeHub) push(c taskstore.Change) {
	h.mu.Lock()
	h.pushLocked(c)
	h.mu.Unlock()
}

func (h *changeHub) pushLocked(c taskstore.Change) {
	for s := range h.subs {
		select {
		case s.ch <- c:
		default:
			s.missed = true
		}
	}
}

// down ends the feed with err: every current subscriber returns it, and
// the next Subscribe starts a feed anew.
func (h *changeHub) down(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running, h.live = false, false
	h.endLocked(err)
}

// close ends every subscriber with errClosed; later ones fail at once and
// no feed starts again. The backend then ends stop and waits for the
// feed with wg.
func (h *changeHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.endLocked(errClosed)
}

func (h *changeHub) endLocked(err error) {
	for s := range h.subs {
		select {
		case s.end <- err:
		default:
		}
		delete(h.subs, s)
	}
}
