package lease

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcptasks/mcptasks/taskstore"
)

// A task whose lease names a runner no replica lists (a sweep forgot the
// runner before the task's create landed) is acted on by a rescue pass
// once two passes a Timeout apart saw its runner absent: the plain one
// ended failed, the resumable one claimed and resumed. Tasks of listed
// runners, of this runner, and of a runner that beat again between the
// passes are left alone.
func TestRescueUnlistedRunner(t *testing.T) {
	store := newStore(t)
	rt := taskstore.NewRuntime(store)
	// b's Timeout is long enough that its second pass, right after the
	// first, is surely within it, even on a loaded machine.
	const bTimeout = time.Second
	a, b := newReplica(t, store, "a", timeout), newReplica(t, store, "b", bTimeout)
	gone := newReplica(t, store, "gone", timeout)
	back := newReplica(t, store, "back", timeout)
	plain, resumable := gone.start(t, 0), gone.start(t, 2)
	live, own, returning := a.start(t, 0), b.start(t, 0), back.start(t, 0)
	for _, r := range []string{"gone", "back"} {
		if err := rt.RemoveRunner(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}

	b.k.Rescue(t.Context()) // notes gone's and back's tasks
	if n := len(b.endedCalls()) + len(b.resumedCalls()); n != 0 {
		t.Fatalf("the first pass acted on %d tasks", n)
	}
	if err := rt.Heartbeat(t.Context(), "back"); err != nil { // alive after all
		t.Fatal(err)
	}
	b.k.Rescue(t.Context()) // too soon: within a Timeout of the first
	if n := len(b.endedCalls()) + len(b.resumedCalls()); n != 0 {
		t.Fatalf("a pass within a Timeout of the first acted on %d tasks", n)
	}
	time.Sleep(bTimeout)
	b.k.Rescue(t.Context())

	if diff := cmp.Diff([]endedCall{{id: idOf(plain), status: taskstore.StatusFailed}}, b.endedCalls(), cmp.AllowUnexported(endedCall{})); diff != "" {
		t.Errorf("ended (-want +got):\n%s", diff)
	}
	if rec := get(t, store, idOf(plain)); rec.Task.StatusMessage != OrphanedMessage {
		t.Errorf("plain: %s %q", rec.Task.Status, rec.Task.StatusMessage)
	}
	want := []resumeCall{{id: idOf(resumable), lease: taskstore.Lease{Runner: "b", Attempt: 2}, attempt: 2, tool: "report"}}
	if diff := cmp.Diff(want, b.resumedCalls(), cmp.AllowUnexported(resumeCall{})); diff != "" {
		t.Errorf("resumed (-want +got):\n%s", diff)
	}
	for _, f := range []*fakeRun{live, own, returning} {
		if rec := get(t, store, idOf(f)); rec.Task.Status != taskstore.StatusWorking || *rec.Lease != *f.rec.Lease {
			t.Errorf("task of %s: %s, lease %+v", f.rec.Lease.Runner, rec.Task.Status, rec.Lease)
		}
	}
}

// Run rescues on its own: a task left by a forgotten runner ends within a
// few rescue intervals.
func TestRunRescues(t *testing.T) {
	store := newStore(t)
	gone, b := newReplica(t, store, "gone", timeout), newReplica(t, store, "b", timeout)
	task := gone.start(t, 0)
	if err := taskstore.NewRuntime(store).RemoveRunner(t.Context(), "gone"); err != nil {
		t.Fatal(err)
	}
	b.loop(t)
	eventually(t, "the unlisted runner's task ends", func() bool {
		return get(t, store, idOf(task)).Task.Status == taskstore.StatusFailed
	})
}

// The stray search waits for a beat with no create in flight on this
// replica (on a Redis Cluster a create writes its runner index entry a
// round trip before its record, and a read between the two loses the
// entry): while CreatesSince is set it reads nothing and ends nothing;
// once no create is in flight it ends the stray.
func TestStraySearchWaitsForCreates(t *testing.T) {
	store := newStore(t)
	a := newReplica(t, store, "a", timeout)
	var creating atomic.Int64 // Unix ns; 0: no create in flight
	cfg := a.k.cfg
	cfg.CreatesSince = func() time.Time {
		if n := creating.Load(); n != 0 {
			return time.Unix(0, n)
		}
		return time.Time{}
	}
	a.k = New(cfg, a)
	stray := a.start(t, 0)
	a.mu.Lock()
	delete(a.runs, idOf(stray)) // stored, but its create failed for its caller: no run
	a.mu.Unlock()

	// A create began after the stray's, long enough after that the stray
	// cannot be its task.
	creating.Store(stray.rec.Task.CreatedAt.Add(time.Hour).UnixNano())
	a.k.MarkStrays()
	a.k.Tick(t.Context())
	if rec := get(t, store, idOf(stray)); rec.Task.Status != taskstore.StatusWorking {
		t.Fatalf("with a create in flight: %s %q, want it left working", rec.Task.Status, rec.Task.StatusMessage)
	}
	creating.Store(0)
	a.k.Tick(t.Context())
	if rec := get(t, store, idOf(stray)); rec.Task.Status != taskstore.StatusFailed || rec.Task.StatusMessage != StrayMessage {
		t.Fatalf("with no create in flight: %s %q, want failed %q", rec.Task.Status, rec.Task.StatusMessage, StrayMessage)
	}
}

// A rescue pass finds this runner's own tasks that have no run here (the
// runner index, which the stray search reads, can miss them): a stray of
// a failed create is ended, a claimed task whose run never started is
// run; both only on the second pass a Timeout after the first.
func TestRescueOwnTasksWithoutRun(t *testing.T) {
	store := newStore(t)
	a := newReplica(t, store, "a", timeout)
	cfg := a.k.cfg
	cfg.CreatesSince = func() time.Time { return time.Time{} }
	a.k = New(cfg, a)
	stray, claimed, running := a.start(t, 0), a.start(t, 2), a.start(t, 0)
	rec, err := a.k.rt.Claim(t.Context(), "alice", idOf(claimed), *claimed.rec.Lease, "a")
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	delete(a.runs, idOf(stray))
	delete(a.runs, idOf(claimed))
	a.mu.Unlock()

	a.k.Rescue(t.Context())
	if got := get(t, store, idOf(stray)); got.Task.Status != taskstore.StatusWorking || len(a.resumedCalls()) != 0 {
		t.Fatalf("the first pass acted: stray %s, resumed %v", got.Task.Status, a.resumedCalls())
	}
	time.Sleep(timeout)
	a.k.Rescue(t.Context())
	if got := get(t, store, idOf(stray)); got.Task.Status != taskstore.StatusFailed || got.Task.StatusMessage != StrayMessage {
		t.Errorf("stray: %s %q, want failed %q", got.Task.Status, got.Task.StatusMessage, StrayMessage)
	}
	want := []resumeCall{{id: idOf(claimed), lease: *rec.Lease, attempt: 2, tool: "report"}}
	if diff := cmp.Diff(want, a.resumedCalls(), cmp.AllowUnexported(resumeCall{})); diff != "" {
		t.Errorf("resumed (-want +got):\n%s", diff)
	}
	if got := get(t, store, idOf(running)); got.Task.Status != taskstore.StatusWorking {
		t.Errorf("the task with a run: %s", got.Task.Status)
	}
}
