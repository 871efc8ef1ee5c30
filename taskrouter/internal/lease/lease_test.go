package lease

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Short leases: a dead replica is seen within a fraction of a second.
const (
	beat    = 20 * time.Millisecond
	timeout = 100 * time.Millisecond
)

func newStore(t *testing.T) *taskstore.Store {
	s, err := mcptasks.Open(t.Context(), "memory://", taskstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// replica is a Host as a router is one, without MCP: its runs are records
// with a handle bound to their lease; a run "exits" when it is stopped.
type replica struct {
	id    string
	store *taskstore.Store
	k     *Keeper

	closing  atomic.Bool
	noResume error // what CanResume answers
	noRead   bool  // resumed runs do not read their checkpoint (counting tests)

	mu      sync.Mutex
	runs    map[string]*fakeRun
	ended   []endedCall
	resumed []resumeCall
}

type fakeRun struct {
	rec      *taskstore.TaskRecord
	h        *taskstore.Handle // fenced by the run's lease
	finished atomic.Bool
	once     sync.Once
	exited   chan struct{} // closed by Stop: the handler returns at once
}

func (f *fakeRun) stop() {
	f.once.Do(func() {
		f.finished.Store(true)
		close(f.exited)
	})
}

type endedCall struct {
	id     string
	status taskstore.Status // "" for a stopped local run (no record)
}

type resumeCall struct {
	id         string
	lease      taskstore.Lease
	attempt    int // what the resumed handler's Handle.Attempt says
	tool       string
	checkpoint int // the "step" variable the earlier attempts wrote, as the resumed handler reads it
}

func newReplica(t *testing.T, store *taskstore.Store, id string, leaseTimeout time.Duration) *replica {
	r := &replica{id: id, store: store, runs: map[string]*fakeRun{}}
	r.k = New(Config{Runner: id, Heartbeat: beat, Timeout: leaseTimeout, Runtime: taskstore.NewRuntime(store),
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)).With("replica", id)}, r)
	return r
}

func (r *replica) Runs() []LocalRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []LocalRun
	for _, f := range r.runs {
		out = append(out, LocalRun{ID: f.rec.Task.TaskID, Owner: f.rec.OwnerID, Lease: *f.rec.Lease,
			Resumable: len(f.rec.Rerun) > 0, Finished: f.finished.Load, Stop: f.stop, Exited: f.exited})
	}
	return out
}

func (r *replica) Ended(id string, rec *taskstore.TaskRecord) {
	c := endedCall{id: id}
	if rec != nil {
		c.status = rec.Task.Status
	}
	r.mu.Lock()
	r.ended = append(r.ended, c)
	r.mu.Unlock()
}

func (r *replica) CanResume(context.Context) error { return r.noResume }

func (r *replica) Resume(ctx context.Context, claimed *taskstore.TaskRecord, rerun *Rerun) error {
	f := r.add(claimed)
	var step int
	if !r.noRead {
		var err error
		if step, _, err = taskstore.Variable[int](ctx, f.h, "step"); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.resumed = append(r.resumed, resumeCall{id: claimed.Task.TaskID, lease: *claimed.Lease, attempt: f.h.Attempt(), tool: rerun.Tool, checkpoint: step})
	r.mu.Unlock()
	return nil
}

func (r *replica) Closing() bool { return r.closing.Load() }

func (r *replica) add(rec *taskstore.TaskRecord) *fakeRun {
	f := &fakeRun{rec: rec, h: r.store.HandleFor(rec).WithLease(*rec.Lease), exited: make(chan struct{})}
	r.mu.Lock()
	r.runs[rec.Task.TaskID] = f
	r.mu.Unlock()
	return f
}

func (r *replica) run(id string) *fakeRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[id]
}

func (r *replica) endedCalls() []endedCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ended)
}

func (r *replica) resumedCalls() []resumeCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.resumed)
}

// start creates a task held by this replica's lease, as Router.Start does
// (register first), and runs it here. A non-zero maxAttempts makes it
// resumable.
func (r *replica) start(t *testing.T, maxAttempts int) *fakeRun {
	t.Helper()
	if err := r.k.Register(t.Context()); err != nil {
		t.Fatal(err)
	}
	var rerun json.RawMessage
	if maxAttempts > 0 {
		rerun, _ = json.Marshal(Rerun{Tool: "report", Arguments: json.RawMessage(`{"topic":"x"}`), MaxAttempts: maxAttempts})
	}
	rec, err := r.store.Create(t.Context(), "alice", taskstore.CreateRequest{RequestMethod: "tools/call", Runner: r.id, Rerun: rerun})
	if err != nil {
		t.Fatal(err)
	}
	return r.add(rec)
}

// loop runs the keeper until the returned stop is called (its heartbeat
// stops) or the test ends.
func (r *replica) loop(t *testing.T) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.k.Run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// sawStill makes the keeper believe it has watched runner's current beat
// stand still for an hour: the runner is dead at the next tick, without
// waiting for the timeout.
func (r *replica) sawStill(t *testing.T, runner string) {
	t.Helper()
	beats, err := r.k.rt.Runners(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range beats {
		if b.Runner == runner {
			r.k.seen[runner] = observed{beat: b.Beat, since: time.Now().Add(-time.Hour)}
			return
		}
	}
	t.Fatalf("runner %q is not registered", runner)
}

func get(t *testing.T, store *taskstore.Store, id string) *taskstore.TaskRecord {
	t.Helper()
	rec, err := store.Get(t.Context(), "alice", id)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func runners(t *testing.T, store *taskstore.Store) []string {
	t.Helper()
	beats, err := taskstore.NewRuntime(store).Runners(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range beats {
		out = append(out, b.Runner)
	}
	slices.Sort(out)
	return out
}

// eventually waits, up to a bound, for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(beat)
	}
}

func idOf(f *fakeRun) string { return f.rec.Task.TaskID }

// A replica's heartbeat stops: the survivor ends its plain task failed with
// the orphan message and resumes its resumable one as attempt 2, which
// sees attempt 1's checkpoint. When the survivor's heartbeat stops too, the
// task has no attempt left and a third replica ends it.
func TestHeartbeatStops(t *testing.T) {
	store := newStore(t)
	a, b := newReplica(t, store, "a", timeout), newReplica(t, store, "b", timeout)
	plain, resumable := a.start(t, 0), a.start(t, 2)
	if err := resumable.h.SetVariables(t.Context(), map[string]any{"step": 1}); err != nil {
		t.Fatal(err)
	}
	stopA := a.loop(t)
	stopB := b.loop(t)
	time.Sleep(3 * beat) // both beat, and see each other beat
	stopA()

	eventually(t, "the survivor acts on both tasks", func() bool {
		return len(b.endedCalls()) == 1 && len(b.resumedCalls()) == 1
	})
	if diff := cmp.Diff([]endedCall{{id: idOf(plain), status: taskstore.StatusFailed}}, b.endedCalls(), cmp.AllowUnexported(endedCall{})); diff != "" {
		t.Errorf("ended on the survivor (-want +got):\n%s", diff)
	}
	rec := get(t, store, idOf(plain))
	if rec.Task.Status != taskstore.StatusFailed || rec.Task.StatusMessage != OrphanedMessage ||
		rec.Error == nil || rec.Error.Code != taskstore.CodeInternalError || rec.Error.Message != OrphanedMessage {
		t.Errorf("plain orphan: %s %q, error %+v", rec.Task.Status, rec.Task.StatusMessage, rec.Error)
	}
	want := resumeCall{id: idOf(resumable), lease: taskstore.Lease{Runner: "b", Attempt: 2}, attempt: 2, tool: "report", checkpoint: 1}
	if diff := cmp.Diff([]resumeCall{want}, b.resumedCalls(), cmp.AllowUnexported(resumeCall{})); diff != "" {
		t.Errorf("resumed on the survivor (-want +got):\n%s", diff)
	}
	if rec := get(t, store, idOf(resumable)); rec.Task.Status != taskstore.StatusWorking || *rec.Lease != want.lease {
		t.Errorf("resumed task: %s, lease %+v", rec.Task.Status, rec.Lease)
	}
	eventually(t, "the dead runner is forgotten", func() bool { return !slices.Contains(runners(t, store), "a") })

	c := newReplica(t, store, "c", timeout)
	c.loop(t)
	time.Sleep(3 * beat)
	stopB()
	eventually(t, "the last attempt's orphan ends", func() bool {
		return get(t, store, idOf(resumable)).Task.Status.Terminal()
	})
	rec = get(t, store, idOf(resumable))
	if msg := OrphanedMessage + " (attempt 2 of 2; none left)"; rec.Task.Status != taskstore.StatusFailed || rec.Task.StatusMessage != msg {
		t.Errorf("after the last attempt: %s %q, want failed %q", rec.Task.Status, rec.Task.StatusMessage, msg)
	}
	if n := len(c.resumedCalls()); n != 0 {
		t.Errorf("resumed %d times past the last attempt", n)
	}
}

// A frozen replica is fenced: once another replica claimed its task, the
// frozen one's writes fail with ErrLeaseLost and change nothing; when it
// thaws, its first beat re-checks its runs and stops the one it lost.
func TestFrozenReplicaFenced(t *testing.T) {
	store := newStore(t)
	a, b := newReplica(t, store, "a", timeout), newReplica(t, store, "b", timeout)
	task := a.start(t, 3)
	id := idOf(task)
	if err := task.h.SetVariables(t.Context(), map[string]any{"by": "a", "step": 1}); err != nil {
		t.Fatal(err)
	}
	// A freezes: its keeper never ticks, its run still holds its handle.
	eventually(t, "the survivor claims the task", func() bool {
		b.k.Tick(t.Context())
		return len(b.resumedCalls()) == 1
	})
	claimer := b.run(id)
	if err := claimer.h.SetVariables(t.Context(), map[string]any{"by": "b", "step": 2}); err != nil {
		t.Fatal(err)
	}
	if err := task.h.SetVariables(t.Context(), map[string]any{"by": "a, late"}); !errors.Is(err, taskstore.ErrLeaseLost) {
		t.Errorf("the frozen replica's variable write: %v, want ErrLeaseLost", err)
	}
	if _, err := task.h.Finish(t.Context(), taskstore.StatusCompleted, "", json.RawMessage(`{"by":"a"}`)); !errors.Is(err, taskstore.ErrLeaseLost) {
		t.Errorf("the frozen replica's outcome: %v, want ErrLeaseLost", err)
	}
	if _, err := claimer.h.Finish(t.Context(), taskstore.StatusCompleted, "", json.RawMessage(`{"by":"b"}`)); err != nil {
		t.Fatal(err)
	}
	rec := get(t, store, id)
	got := map[string]any{"status": rec.Task.Status, "lease": *rec.Lease, "result": string(rec.Result),
		"by": string(rec.Variables["by"]), "step": string(rec.Variables["step"])}
	want := map[string]any{"status": taskstore.StatusCompleted, "lease": taskstore.Lease{Runner: "b", Attempt: 2},
		"result": `{"by":"b"}`, "by": `"b"`, "step": "2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the store after the claimer's writes (-want +got):\n%s", diff)
	}

	// A thaws: it last beat more than a lease timeout ago.
	a.k.Tick(t.Context())
	select {
	case <-task.exited:
	default:
		t.Fatal("the thawed replica did not stop the run it lost")
	}
	if diff := cmp.Diff([]endedCall{{id: id}}, a.endedCalls(), cmp.AllowUnexported(endedCall{})); diff != "" {
		t.Errorf("ended on the thawed replica (-want +got):\n%s", diff)
	}
}

// A replica shutting down hands its resumable tasks over; another replica,
// whose lease timeout is an hour, claims them within its next two ticks
// (the first sees the released id, the second sweeps it).
func TestShutdownHandsOver(t *testing.T) {
	store := newStore(t)
	a, b := newReplica(t, store, "a", timeout), newReplica(t, store, "b", time.Hour)
	plain, resumable := a.start(t, 0), a.start(t, 3)
	if err := resumable.h.SetVariables(t.Context(), map[string]any{"step": 1}); err != nil {
		t.Fatal(err)
	}
	b.k.Tick(t.Context())

	a.closing.Store(true)
	if kept := a.k.Release(t.Context()); kept != 0 {
		t.Fatalf("Release kept %d tasks", kept)
	}
	select {
	case <-resumable.exited:
	default:
		t.Error("the resumable run was not stopped")
	}
	if plain.finished.Load() {
		t.Error("the plain run was stopped")
	}
	if l := *get(t, store, idOf(resumable)).Lease; l != (taskstore.Lease{Runner: "a" + ReleasedSuffix, Attempt: 1}) {
		t.Errorf("released task's lease: %+v", l)
	}

	for range 2 {
		b.k.Tick(t.Context())
	}
	want := resumeCall{id: idOf(resumable), lease: taskstore.Lease{Runner: "b", Attempt: 2}, attempt: 2, tool: "report", checkpoint: 1}
	if diff := cmp.Diff([]resumeCall{want}, b.resumedCalls(), cmp.AllowUnexported(resumeCall{})); diff != "" {
		t.Errorf("resumed (-want +got):\n%s", diff)
	}
	if rec := get(t, store, idOf(plain)); rec.Task.Status != taskstore.StatusWorking || *rec.Lease != (taskstore.Lease{Runner: "a", Attempt: 1}) {
		t.Errorf("the plain task was touched: %s, lease %+v", rec.Task.Status, rec.Lease)
	}
	if diff := cmp.Diff([]string{"a", "b"}, runners(t, store)); diff != "" {
		t.Errorf("runners after the takeover (-want +got):\n%s", diff)
	}
}

// batchCounter counts the calls a sweep makes to a batch-capable backend.
type batchCounter struct {
	taskstore.Backend
	mu                                     sync.Mutex
	gets, updates, batches, batched, pages int
}

func (c *batchCounter) Get(ctx context.Context, owner, id string) (taskstore.Record, error) {
	c.mu.Lock()
	c.gets++
	c.mu.Unlock()
	return c.Backend.Get(ctx, owner, id)
}

func (c *batchCounter) Update(ctx context.Context, rec taskstore.Record, v uint64) (uint64, error) {
	c.mu.Lock()
	c.updates++
	c.mu.Unlock()
	return c.Backend.Update(ctx, rec, v)
}

func (c *batchCounter) UpdateMany(ctx context.Context, ups []taskstore.Update) ([]taskstore.UpdateResult, error) {
	c.mu.Lock()
	c.batches++
	c.batched += len(ups)
	c.mu.Unlock()
	return c.Backend.(taskstore.BatchUpdater).UpdateMany(ctx, ups)
}

func (c *batchCounter) RunnerTasks(ctx context.Context, runner string, limit int) ([]taskstore.Record, error) {
	c.mu.Lock()
	c.pages++
	c.mu.Unlock()
	return c.Backend.RunnerTasks(ctx, runner, limit)
}

// A dead runner's tasks are read once, page by page, and ended and claimed
// in one batch per page each: no read or write of a single task.
func TestSweepInBatches(t *testing.T) {
	const plain, resumable = 700, 700
	cb := &batchCounter{Backend: mcptasks.NewMemoryBackend(0)}
	store := taskstore.New(cb, taskstore.Config{MaxActiveTasks: 10000, MaxStoredTasks: 10000})
	t.Cleanup(func() { store.Close() })
	dead := newReplica(t, store, "dead", timeout)
	for i := range plain + resumable {
		attempts := 0
		if i%2 == 1 {
			attempts = 3
		}
		dead.start(t, attempts)
	}
	alive := newReplica(t, store, "alive", timeout)
	alive.noRead = true // the resumed runs' own reads are not the sweep's
	// A stray: claimed by alive (a claim whose reply was lost) but never run.
	stray := dead.start(t, 3).rec
	if _, err := taskstore.NewRuntime(store).Claim(t.Context(), stray.OwnerID, stray.Task.TaskID, *stray.Lease, "alive"); err != nil {
		t.Fatal(err)
	}
	cb.mu.Lock()
	cb.gets, cb.updates, cb.batches, cb.batched, cb.pages = 0, 0, 0, 0, 0
	cb.mu.Unlock()
	alive.k.sweep(t.Context(), "dead", time.Now())
	cb.mu.Lock()
	defer cb.mu.Unlock()
	t.Logf("%d orphans: %d RunnerTasks pages, %d batches of %d updates, %d Get, %d Update", plain+resumable, cb.pages, cb.batches, cb.batched, cb.gets, cb.updates)
	if cb.gets != 0 || cb.updates != 0 {
		t.Errorf("the sweep read or wrote single tasks: %d Get, %d Update", cb.gets, cb.updates)
	}
	if cb.batched != plain+resumable || cb.batches != 4 || cb.pages != 4 {
		t.Errorf("%d updates in %d batches from %d pages; want %d in 4 (a claim and an end batch per page of %d) from 4 pages (3 of the dead runner's, 1 of the survivor's own strays)",
			cb.batched, cb.batches, cb.pages, plain+resumable, sweepPage)
	}
	var failed int
	for _, e := range alive.endedCalls() {
		if e.status == taskstore.StatusFailed {
			failed++
		}
	}
	if failed != plain || len(alive.resumedCalls()) != resumable+1 {
		t.Errorf("%d ended failed, %d resumed; want %d and %d (the stray too)", failed, len(alive.resumedCalls()), plain, resumable+1)
	}
}
