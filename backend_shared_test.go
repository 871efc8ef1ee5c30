package mcptasks

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

// sharedTestBackends are the backends this build has, by name, each a
// fresh backend per call; every backend's test file adds its own from
// init. The tests below hold every one of them to the rules of
// backend_shared.go.
var sharedTestBackends = map[string]func(testing.TB) taskstore.Backend{
	"memory": func(tb testing.TB) taskstore.Backend {
		b, err := OpenBackend(context.Background(), "memory://?sweep=0")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { b.Close() })
		return b
	},
}

// sharedTestGaps are subtests ("TestName/backend") a server cannot take,
// and why.
var sharedTestGaps = map[string]string{}

func forEachBackend(t *testing.T, test func(t *testing.T, b taskstore.Backend)) {
	names := make([]string, 0, len(sharedTestBackends))
	for name := range sharedTestBackends {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if why, ok := sharedTestGaps[t.Name()]; ok {
				t.Skip(why)
			}
			test(t, sharedTestBackends[name](t))
		})
	}
}

func sharedRecord(owner string) taskstore.Record {
	return taskstore.Record{Owner: owner, TaskID: taskid.New(time.Now()), Data: []byte(`{"n":1}`), Active: true}
}

// isContextErr reports whether err claims that a context ended.
func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// sharedCalls stores a task of owner and returns it and the calls the
// tests check, by name, which work on it.
func sharedCalls(t *testing.T, b taskstore.Backend, owner string) (taskstore.Record, map[string]func(ctx context.Context) error) {
	r := sharedRecord(owner)
	if err := b.Create(t.Context(), r, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func(ctx context.Context) error{
		"Get": func(ctx context.Context) error {
			_, err := b.Get(ctx, r.Owner, r.TaskID)
			return err
		},
		"Create": func(ctx context.Context) error {
			return b.Create(ctx, sharedRecord(r.Owner), taskstore.Limits{MaxActive: 1000, MaxStored: 1000})
		},
		"Update": func(ctx context.Context) error {
			_, err := b.Update(ctx, r, 1)
			return err
		},
		"List": func(ctx context.Context) error {
			_, _, err := b.List(ctx, r.Owner, "", 10)
			return err
		},
		"Delete": func(ctx context.Context) error {
			_, err := b.Delete(ctx, r.Owner, taskid.New(time.Now()))
			return err
		},
		"DeleteExpired": func(ctx context.Context) error {
			_, err := b.DeleteExpired(ctx)
			return err
		},
		"Heartbeat": func(ctx context.Context) error { return b.Heartbeat(ctx, "runner") },
		"Runners": func(ctx context.Context) error {
			_, err := b.Runners(ctx)
			return err
		},
		"RunnerTasks": func(ctx context.Context) error {
			_, err := b.RunnerTasks(ctx, "runner", 10)
			return err
		},
	}
	if g, ok := b.(taskstore.BatchGetter); ok {
		calls["GetMany"] = func(ctx context.Context) error {
			_, err := g.GetMany(ctx, []taskstore.Key{{Owner: r.Owner, TaskID: r.TaskID}})
			return err
		}
	}
	if u, ok := b.(taskstore.BatchUpdater); ok {
		calls["UpdateMany"] = func(ctx context.Context) error {
			missing := sharedRecord(r.Owner)
			res, err := u.UpdateMany(ctx, []taskstore.Update{{Record: r, Expected: 1}, {Record: missing, Expected: 1}})
			if err != nil {
				return err
			}
			for _, x := range res {
				if x.Err != nil && !errors.Is(x.Err, taskstore.ErrNotFound) {
					return x.Err
				}
			}
			return nil
		}
	}
	if n, ok := b.(taskstore.Notifier); ok {
		calls["Subscribe"] = func(ctx context.Context) error {
			return n.Subscribe(ctx, func(taskstore.Change) {})
		}
	}
	return r, calls
}

// TestBackendContextDone: a call whose context has ended fails with the
// context's error (errors.Is) and changes nothing.
func TestBackendContextDone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b taskstore.Backend) {
		r, calls := sharedCalls(t, b, "ctx")
		canceled, cancel := context.WithCancel(t.Context())
		cancel()
		expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		defer cancel2()
		for name, call := range calls {
			for _, ctx := range []context.Context{canceled, expired} {
				if err := call(ctx); !errors.Is(err, ctx.Err()) {
					t.Errorf("%s with a done context (%v): %v, want that error", name, ctx.Err(), err)
				}
			}
		}
		if got, err := b.Get(t.Context(), r.Owner, r.TaskID); err != nil || got.Version != 1 {
			t.Fatalf("after calls with done contexts: v%d, %v; want v1 untouched", got.Version, err)
		}
	})
}

// TestBackendContextEnds: contexts that end while the call runs
// (deadlines and cancellations spread over a round trip or two) give the
// context's error, and no call fails with a context error while its
// context lasts.
func TestBackendContextEnds(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b taskstore.Backend) {
		_, calls := sharedCalls(t, b, "ctx")
		ended := 0
		for i := range 200 {
			for name, call := range calls {
				if name == "Subscribe" || name == "DeleteExpired" {
					continue // one ends only with its context; one scans the whole server
				}
				wait := time.Duration(i%40) * 25 * time.Microsecond
				ctx, cancel := context.WithTimeout(t.Context(), wait)
				if i%2 == 1 {
					ctx, cancel = context.WithCancel(t.Context())
					time.AfterFunc(wait, cancel)
				}
				err := call(ctx)
				cerr := ctx.Err()
				cancel()
				switch {
				case err == nil || errors.Is(err, taskstore.ErrVersionConflict) || errors.Is(err, taskstore.ErrNotFound):
				case cerr != nil && errors.Is(err, cerr):
					ended++
				case cerr != nil:
					t.Fatalf("%s whose context ended (%v): %v, want that error", name, cerr, err)
				case isContextErr(err):
					t.Fatalf("%s: %v, a context error while the context lasts", name, err)
				default:
					t.Fatalf("%s: %v", name, err)
				}
			}
		}
		t.Logf("%d calls ended by their context", ended)
	})
}

// TestBackendSubscribeEnds: Subscribe returns its context's error when the
// context ends, and errClosed when the backend closes under it.
func TestBackendSubscribeEnds(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b taskstore.Backend) {
		n, ok := b.(taskstore.Notifier)
		if !ok {
			t.Skip("no change feed")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if err := n.Subscribe(ctx, func(taskstore.Change) {}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Subscribe until its deadline: %v", err)
		}
		up := make(chan struct{})
		var once sync.Once
		ended := make(chan error, 1)
		go func() {
			ended <- n.Subscribe(t.Context(), func(c taskstore.Change) {
				if c.Resync {
					once.Do(func() { close(up) })
				}
			})
		}()
		select {
		case <-up:
		case <-time.After(10 * time.Second):
			t.Fatal("no Resync within 10s")
		}
		b.Close()
		select {
		case err := <-ended:
			if !errors.Is(err, errClosed) {
				t.Fatalf("Subscribe when the backend closed: %v, want errClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Subscribe still running 10s after Close")
		}
	})
}

// TestBackendClosed: every call of a closed backend fails with errClosed,
// an ErrBackend.
func TestBackendClosed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b taskstore.Backend) {
		_, calls := sharedCalls(t, b, "closed")
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		for name, call := range calls {
			if err := call(t.Context()); !errors.Is(err, errClosed) || !errors.Is(err, taskstore.ErrBackend) {
				t.Errorf("%s after Close: %v, want errClosed", name, err)
			}
		}
	})
}

// TestBackendErr pins the rule itself, on causes no server gives on
// demand: a client's own timeout, a network error as the caller leaves.
func TestBackendErr(t *testing.T) {
	live := t.Context()
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	netErr := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	own := context.DeadlineExceeded // a connect timeout of the client's own
	tests := []struct {
		name      string
		ctx       context.Context
		cause     error
		same      bool    // returned unchanged
		is, isNot []error // errors.Is must hold, must not hold
		keepsNet  bool
	}{
		{"caller's context error", canceled, context.Canceled, true, []error{context.Canceled}, []error{taskstore.ErrBackend}, false},
		{"network error as the caller left", canceled, netErr, false, []error{context.Canceled, taskstore.ErrBackend}, nil, true},
		{"network error", live, netErr, false, []error{taskstore.ErrBackend}, []error{context.Canceled, context.DeadlineExceeded}, true},
		{"the client's own timeout", live, own, false, []error{taskstore.ErrBackend}, []error{context.DeadlineExceeded}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := backendErr(tc.ctx, "test get", tc.cause)
			if tc.same && err != tc.cause {
				t.Errorf("got %v, want the cause unchanged", err)
			}
			for _, want := range tc.is {
				if !errors.Is(err, want) {
					t.Errorf("%v: not %v", err, want)
				}
			}
			for _, not := range tc.isNot {
				if errors.Is(err, not) {
					t.Errorf("%v: is %v", err, not)
				}
			}
			var ne *net.OpError
			if tc.keepsNet && !errors.As(err, &ne) {
				t.Errorf("%v: cause lost", err)
			}
		})
	}
}
