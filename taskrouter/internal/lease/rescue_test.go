package lease

import (
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
	a, b := newReplica(t, store, "a", timeout), newReplica(t, store, "b", timeout)
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
	time.Sleep(timeout)
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
