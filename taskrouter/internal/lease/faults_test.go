package lease

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

// faultyBackend fails the named calls while they are in fail.
type faultyBackend struct {
	taskstore.Backend
	mu   sync.Mutex
	fail map[string]bool
}

var errDown = errors.Join(taskstore.ErrBackend, errors.New("store unreachable (test fault)"))

func (f *faultyBackend) set(calls ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = map[string]bool{}
	for _, c := range calls {
		f.fail[c] = true
	}
}

func (f *faultyBackend) err(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail[call] {
		return errDown
	}
	return nil
}

func (f *faultyBackend) Heartbeat(ctx context.Context, runner string) error {
	if err := f.err("Heartbeat"); err != nil {
		return err
	}
	return f.Backend.Heartbeat(ctx, runner)
}

func (f *faultyBackend) Runners(ctx context.Context) ([]taskstore.RunnerBeat, error) {
	if err := f.err("Runners"); err != nil {
		return nil, err
	}
	return f.Backend.Runners(ctx)
}

func (f *faultyBackend) RunnerTasks(ctx context.Context, runner string, limit int) ([]taskstore.Record, error) {
	if err := f.err("RunnerTasks"); err != nil {
		return nil, err
	}
	return f.Backend.RunnerTasks(ctx, runner, limit)
}

func (f *faultyBackend) Update(ctx context.Context, rec taskstore.Record, v uint64) (uint64, error) {
	if err := f.err("Update"); err != nil {
		return 0, err
	}
	return f.Backend.Update(ctx, rec, v)
}

func newFaultyStore(t *testing.T) (*taskstore.Store, *faultyBackend) {
	fb := &faultyBackend{Backend: mcptasks.NewMemoryBackend(0)}
	s := taskstore.New(fb, taskstore.Config{})
	t.Cleanup(func() { s.Close() })
	return s, fb
}

// What a sweep of a dead runner does, and leaves alone, when this replica
// or the store cannot act.
func TestSweepCannotAct(t *testing.T) {
	for _, tc := range []struct {
		name        string
		maxAttempts int
		setup       func(b *replica, fb *faultyBackend)
		want        taskstore.Status // of the dead runner's task
		msg         string
	}{
		{name: "closing: left to a replica that stays", maxAttempts: 3,
			setup: func(b *replica, _ *faultyBackend) { b.closing.Store(true) }, want: taskstore.StatusWorking},
		{name: "cannot resume here: ended as an orphan", maxAttempts: 3,
			setup: func(b *replica, _ *faultyBackend) { b.noResume = errors.New("no MCP server installed") },
			want:  taskstore.StatusFailed, msg: OrphanedMessage},
		{name: "runner's tasks unreadable", setup: func(_ *replica, fb *faultyBackend) { fb.set("RunnerTasks") }, want: taskstore.StatusWorking},
		{name: "orphan not writable", setup: func(_ *replica, fb *faultyBackend) { fb.set("Update") }, want: taskstore.StatusWorking},
		{name: "claim not writable", maxAttempts: 3, setup: func(_ *replica, fb *faultyBackend) { fb.set("Update") }, want: taskstore.StatusWorking},
		{name: "no rerun that parses: ended as an orphan", maxAttempts: -1, want: taskstore.StatusFailed, msg: OrphanedMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, fb := newFaultyStore(t)
			a, b := newReplica(t, store, "a", timeout), newReplica(t, store, "b", timeout)
			var task *fakeRun
			if tc.maxAttempts < 0 {
				if err := a.k.Register(t.Context()); err != nil {
					t.Fatal(err)
				}
				task = a.add(mustCreate(t, store, "a", json.RawMessage(`{"tool":""}`)))
			} else {
				task = a.start(t, tc.maxAttempts)
			}
			b.sawStill(t, "a")
			if tc.setup != nil {
				tc.setup(b, fb)
			}
			b.k.Tick(t.Context())
			fb.set()
			rec := get(t, store, idOf(task))
			if rec.Task.Status != tc.want || rec.Task.StatusMessage != tc.msg {
				t.Errorf("the dead runner's task: %s %q, want %s %q", rec.Task.Status, rec.Task.StatusMessage, tc.want, tc.msg)
			}
			if n := len(b.resumedCalls()); n != 0 {
				t.Errorf("resumed %d times", n)
			}
			if rec.Task.Status == taskstore.StatusWorking && !slices.Contains(runners(t, store), "a") {
				t.Error("the dead runner was forgotten with a task left")
			}
		})
	}
}

func mustCreate(t *testing.T, store *taskstore.Store, runner string, rerun json.RawMessage) *taskstore.TaskRecord {
	t.Helper()
	rec, err := store.Create(t.Context(), "alice", taskstore.CreateRequest{RequestMethod: "tools/call", Runner: runner, Rerun: rerun})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// A store outage makes no live replica look dead: every failed call starts
// the observations over.
func TestOutageForgetsObservations(t *testing.T) {
	for _, call := range []string{"Heartbeat", "Runners"} {
		t.Run(call, func(t *testing.T) {
			store, fb := newFaultyStore(t)
			a, b := newReplica(t, store, "a", timeout), newReplica(t, store, "b", timeout)
			task := a.start(t, 0)
			b.sawStill(t, "a")
			fb.set(call)
			b.k.Tick(t.Context())
			fb.set()
			if len(b.k.seen) != 0 {
				t.Errorf("observations kept after a failed %s: %v", call, b.k.seen)
			}
			b.k.Tick(t.Context()) // a first sight again: nothing is swept
			if rec := get(t, store, idOf(task)); rec.Task.Status != taskstore.StatusWorking {
				t.Errorf("a live replica's task after the outage: %s", rec.Task.Status)
			}
		})
	}
}

// Register writes the first heartbeat once; Unregister removes it.
func TestRegister(t *testing.T) {
	store, fb := newFaultyStore(t)
	a := newReplica(t, store, "a", timeout)
	fb.set("Heartbeat")
	if err := a.k.Register(t.Context()); !errors.Is(err, taskstore.ErrBackend) {
		t.Fatalf("Register in an outage: %v", err)
	}
	fb.set()
	for range 2 {
		if err := a.k.Register(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	beats, err := a.k.rt.Runners(t.Context())
	if err != nil || len(beats) != 1 || beats[0].Runner != "a" || beats[0].Beat != 1 {
		t.Fatalf("after registering twice: %+v, %v (want one beat of a)", beats, err)
	}
	if a.k.Runner() != "a" {
		t.Errorf("Runner() = %q", a.k.Runner())
	}
	if err := a.k.Unregister(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rs := runners(t, store); len(rs) != 0 {
		t.Errorf("after Unregister: %v", rs)
	}
}

// Release keeps what it could not hand off, and skips what moved on.
func TestReleaseCannotHandOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail string
		kept int
	}{
		{name: "released id not registered", fail: "Heartbeat", kept: 2},
		{name: "handoff not writable", fail: "Update", kept: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, fb := newFaultyStore(t)
			a := newReplica(t, store, "a", timeout)
			held, ended := a.start(t, 3), a.start(t, 3)
			if _, err := ended.h.Finish(t.Context(), taskstore.StatusCompleted, "", json.RawMessage(`{}`)); err != nil {
				t.Fatal(err)
			}
			fb.set(tc.fail)
			if kept := a.k.Release(t.Context()); kept != tc.kept {
				t.Errorf("kept %d, want %d", kept, tc.kept)
			}
			fb.set()
			if l := *get(t, store, idOf(held)).Lease; l != (taskstore.Lease{Runner: "a", Attempt: 1}) {
				t.Errorf("a task not handed off: lease %+v", l)
			}
		})
	}
}

func TestParseRerun(t *testing.T) {
	for _, tc := range []struct {
		rerun string
		want  *Rerun
	}{
		{"", nil},
		{"not json", nil},
		{`{"maxAttempts":3}`, nil},
		{`{"tool":"report","user":"u","scopes":["s"],"maxAttempts":3}`, &Rerun{Tool: "report", User: "u", Scopes: []string{"s"}, MaxAttempts: 3}},
	} {
		got := ParseRerun(&taskstore.TaskRecord{Rerun: json.RawMessage(tc.rerun)})
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseRerun(%q) (-want +got):\n%s", tc.rerun, diff)
		}
	}
}
