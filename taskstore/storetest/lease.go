package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

// The contract added for the active-task quota, the stored-task bound and
// runner leases: Record.Active, Record.Runner, Limits, Heartbeat, Runners,
// RemoveRunner, RunnerTasks and the optional Notifier.

// testActiveQuota: only Active records count toward MaxActive, and an
// Update that ends a record frees its slot at once.
func testActiveQuota(t *testing.T, b taskstore.Backend) {
	ctx := t.Context()
	lim := taskstore.Limits{MaxActive: 2}
	done := rec("alice", `{"done":true}`)
	done.Active = false
	for i := range 5 {
		d := done
		d.TaskID = taskid.New(time.Now())
		if err := b.Create(ctx, d, lim); err != nil {
			t.Fatalf("inactive create %d under an active quota: %v", i, err)
		}
	}
	a1, a2 := rec("alice", `{}`), rec("alice", `{}`)
	mustCreateLim(t, b, a1, lim)
	mustCreateLim(t, b, a2, lim)
	over := rec("alice", `{}`)
	wantErr(t, "third active create", b.Create(ctx, over, lim), taskstore.ErrQuotaExceeded)
	if _, err := b.Get(ctx, "alice", over.TaskID); !errors.Is(err, taskstore.ErrNotFound) {
		t.Fatalf("a refused create left a record: %v", err)
	}
	// An inactive record is still admitted at the active quota.
	d := done
	d.TaskID = taskid.New(time.Now())
	mustCreateLim(t, b, d, lim)
	// Ending a1 frees a slot.
	fin := upd("alice", a1.TaskID, []byte(`{"ended":true}`))
	fin.Active = false
	if _, err := b.Update(ctx, fin, 1); err != nil {
		t.Fatalf("Update to inactive: %v", err)
	}
	mustCreateLim(t, b, over, lim)
	wantErr(t, "active create after the freed slot is taken", b.Create(ctx, rec("alice", `{}`), lim), taskstore.ErrQuotaExceeded)
	// Deleting an active record frees its slot; deleting an inactive one does not.
	if _, err := b.Delete(ctx, "alice", d.TaskID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "active create after deleting an inactive record", b.Create(ctx, rec("alice", `{}`), lim), taskstore.ErrQuotaExceeded)
	if _, err := b.Delete(ctx, "alice", a2.TaskID); err != nil {
		t.Fatal(err)
	}
	mustCreateLim(t, b, rec("alice", `{}`), lim)
	// Another owner has its own count.
	mustCreateLim(t, b, rec("bob", `{}`), lim)
}

// testStoredBound: MaxStored counts every live record, active or not, and
// expired records stop counting.
func testStoredBound(t *testing.T, b taskstore.Backend) {
	ctx := t.Context()
	lim := taskstore.Limits{MaxActive: 10, MaxStored: 3}
	short := rec("alice", `{}`)
	short.Active = false
	short.ExpiresAt = time.Now().Add(shortTTL).Truncate(time.Millisecond)
	mustCreateLim(t, b, short, lim)
	inactive := rec("alice", `{}`)
	inactive.Active = false
	mustCreateLim(t, b, inactive, lim)
	mustCreateLim(t, b, rec("alice", `{}`), lim)
	wantErr(t, "active create over the stored bound", b.Create(ctx, rec("alice", `{}`), lim), taskstore.ErrStorageFull)
	over := rec("alice", `{}`)
	over.Active = false
	wantErr(t, "inactive create over the stored bound", b.Create(ctx, over, lim), taskstore.ErrStorageFull)
	mustCreateLim(t, b, rec("bob", `{}`), lim)
	// The active quota is checked too: both bounds at once.
	wantErr(t, "active quota of 1", b.Create(ctx, rec("bob", `{}`), taskstore.Limits{MaxActive: 1, MaxStored: 3}), taskstore.ErrQuotaExceeded)
	time.Sleep(time.Until(short.ExpiresAt) + expiryWait - shortTTL)
	mustCreateLim(t, b, over, lim)
	wantErr(t, "stored bound after expiry refilled", b.Create(ctx, rec("alice", `{}`), lim), taskstore.ErrStorageFull)
}

func mustCreateLim(t testing.TB, b taskstore.Backend, r taskstore.Record, lim taskstore.Limits) {
	t.Helper()
	if err := b.Create(t.Context(), r, lim); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

// testQuotaRaceWithEnds: creates race with updates that end records; the
// active count never overshoots and ends always free their slot.
func testQuotaRaceWithEnds(t *testing.T, b taskstore.Backend) {
	ctx := context.Background()
	const quota = 4
	lim := taskstore.Limits{MaxActive: quota, MaxStored: 100}
	var running []taskstore.Record
	for range quota {
		r := rec("alice", `{}`)
		mustCreateLim(t, b, r, lim)
		running = append(running, r)
	}
	// Two of the running records end while 12 creates race for the slots.
	errs := race(14, func(i int) error {
		if i < 2 {
			fin := upd("alice", running[i].TaskID, []byte(`{"ended":true}`))
			fin.Active = false
			_, err := b.Update(ctx, fin, 1)
			return err
		}
		return b.Create(ctx, rec("alice", `{}`), lim)
	})
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("ending update %d: %v", i, errs[i])
		}
	}
	ok, _ := countErrs(t, errs[2:], taskstore.ErrQuotaExceeded)
	if ok > 2 {
		t.Fatalf("%d creates admitted into 2 freed slots", ok)
	}
	// Whatever the interleaving, the count is exact afterwards: the free
	// slots are exactly 2 - ok.
	for i := range 2 - ok {
		mustCreateLim(t, b, rec("alice", `{}`), lim)
		_ = i
	}
	wantErr(t, "create at the quota after the race", b.Create(ctx, rec("alice", `{}`), lim), taskstore.ErrQuotaExceeded)
}

// testRunnerIndex: RunnerTasks finds a runner's live records across owners,
// follows updates that move or drop the runner, honours limit and skips
// expired records.
func testRunnerIndex(t *testing.T, b taskstore.Backend) {
	ctx := t.Context()
	held := func(runner string) []string {
		t.Helper()
		recs, err := b.RunnerTasks(ctx, runner, 100)
		if err != nil {
			t.Fatalf("RunnerTasks(%q): %v", runner, err)
		}
		var ids []string
		for _, r := range recs {
			// Entries are hints, but the record returned is the live one.
			if r.Runner == runner {
				ids = append(ids, r.Owner+"/"+r.TaskID)
			}
		}
		slices.Sort(ids)
		return ids
	}
	var want []string
	mk := func(owner, runner string) taskstore.Record {
		r := rec(owner, `{"r":1}`)
		r.Runner = runner
		mustCreateLim(t, b, r, taskstore.Limits{})
		return r
	}
	a := mk("alice", "node-a")
	want = append(want, "alice/"+a.TaskID)
	bb := mk("bob:x", "node-a")
	want = append(want, "bob:x/"+bb.TaskID)
	other := mk("alice", "node-a:b")
	none := mk("carol", "")
	slices.Sort(want)
	if diff := cmp.Diff(want, held("node-a")); diff != "" {
		t.Fatalf("RunnerTasks(node-a) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"alice/" + other.TaskID}, held("node-a:b")); diff != "" {
		t.Fatalf("RunnerTasks(node-a:b) (-want +got):\n%s", diff)
	}
	if got := held("node"); len(got) != 0 {
		t.Fatalf("a runner id's prefix sees %v", got)
	}
	// Moving a record to another runner.
	moved := upd("alice", a.TaskID, []byte(`{"r":2}`))
	moved.Runner = "node-b"
	if _, err := b.Update(ctx, moved, 1); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"bob:x/" + bb.TaskID}, held("node-a")); diff != "" {
		t.Fatalf("after moving: RunnerTasks(node-a) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"alice/" + a.TaskID}, held("node-b")); diff != "" {
		t.Fatalf("after moving: RunnerTasks(node-b) (-want +got):\n%s", diff)
	}
	// Ending a record drops its runner.
	fin := upd("bob:x", bb.TaskID, []byte(`{}`))
	fin.Active = false
	if _, err := b.Update(ctx, fin, 1); err != nil {
		t.Fatal(err)
	}
	if got := held("node-a"); len(got) != 0 {
		t.Fatalf("after the end: RunnerTasks(node-a) = %v", got)
	}
	// Deleted and expired records are not returned.
	if _, err := b.Delete(ctx, "alice", other.TaskID); err != nil {
		t.Fatal(err)
	}
	if got := held("node-a:b"); len(got) != 0 {
		t.Fatalf("after delete: RunnerTasks(node-a:b) = %v", got)
	}
	short := rec("carol", `{}`)
	short.Runner = "node-c"
	short.ExpiresAt = time.Now().Add(shortTTL).Truncate(time.Millisecond)
	mustCreateLim(t, b, short, taskstore.Limits{})
	if got := held("node-c"); len(got) != 1 {
		t.Fatalf("before expiry: RunnerTasks(node-c) = %v", got)
	}
	// limit bounds the answer.
	for range 5 {
		mk("dave", "node-d")
	}
	recs, err := b.RunnerTasks(ctx, "node-d", 3)
	if err != nil || len(recs) != 3 {
		t.Fatalf("RunnerTasks limit 3: %d records, %v", len(recs), err)
	}
	time.Sleep(time.Until(short.ExpiresAt) + expiryWait - shortTTL)
	if got := held("node-c"); len(got) != 0 {
		t.Fatalf("after expiry: RunnerTasks(node-c) = %v", got)
	}
	_ = none
}

// testHeartbeats: each beat adds one; Runners lists every runner with its
// count; RemoveRunner forgets it (idempotently) and a beat registers again.
func testHeartbeats(t *testing.T, b taskstore.Backend) {
	ctx := t.Context()
	beats := func() map[string]uint64 {
		t.Helper()
		rs, err := b.Runners(ctx)
		if err != nil {
			t.Fatalf("Runners: %v", err)
		}
		m := map[string]uint64{}
		for _, r := range rs {
			m[r.Runner] = r.Beat
		}
		return m
	}
	if got := beats(); len(got) != 0 {
		t.Fatalf("a fresh backend has runners %v", got)
	}
	for range 3 {
		if err := b.Heartbeat(ctx, "node-a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Heartbeat(ctx, "node:b é"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]uint64{"node-a": 3, "node:b é": 1}, beats()); diff != "" {
		t.Fatalf("Runners (-want +got):\n%s", diff)
	}
	// Concurrent beats are all counted.
	errs := race(20, func(int) error { return b.Heartbeat(context.Background(), "node-a") })
	if ok, _ := countErrs(t, errs, nil); ok != 20 {
		t.Fatalf("%d of 20 beats succeeded", ok)
	}
	if got := beats()["node-a"]; got != 23 {
		t.Fatalf("node-a beat %d times, counter says %d", 23, got)
	}
	for range 2 {
		if err := b.RemoveRunner(ctx, "node-a"); err != nil {
			t.Fatalf("RemoveRunner: %v", err)
		}
	}
	if diff := cmp.Diff(map[string]uint64{"node:b é": 1}, beats()); diff != "" {
		t.Fatalf("after RemoveRunner (-want +got):\n%s", diff)
	}
	if err := b.Heartbeat(ctx, "node-a"); err != nil {
		t.Fatal(err)
	}
	if got := beats()["node-a"]; got != 1 {
		t.Fatalf("a removed runner beat again: counter %d, want 1", got)
	}
}

// testNotify: a backend that implements Notifier delivers a Resync first,
// then every Create, Update and Delete.
func testNotify(t *testing.T, b taskstore.Backend) {
	n, ok := b.(taskstore.Notifier)
	if !ok {
		t.Log("no change feed (it is optional): the router polls this backend")
		return
	}
	ctx, cancel := context.WithCancel(t.Context())
	var mu sync.Mutex
	var got []taskstore.Change
	ready := make(chan struct{})
	var once sync.Once
	errc := make(chan error, 1)
	go func() {
		errc <- n.Subscribe(ctx, func(c taskstore.Change) {
			if c.Resync {
				once.Do(func() { close(ready) })
				return
			}
			mu.Lock()
			got = append(got, c)
			mu.Unlock()
		})
	}()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("Subscribe ended before its first Resync: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no Resync within 10 s of Subscribe")
	}
	r := rec("al:ice", `{}`)
	mustCreate(t, b, r)
	if _, err := b.Update(t.Context(), upd("al:ice", r.TaskID, []byte(`{"x":1}`)), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Delete(t.Context(), "al:ice", r.TaskID); err != nil {
		t.Fatal(err)
	}
	want := []taskstore.Change{{Owner: "al:ice", TaskID: r.TaskID}, {Owner: "al:ice", TaskID: r.TaskID}, {Owner: "al:ice", TaskID: r.TaskID}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	diff := cmp.Diff(want, got)
	mu.Unlock()
	if diff != "" {
		t.Fatalf("changes (-want +got):\n%s", diff)
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Subscribe did not return within 10 s of its context's end")
	}
}

// Store level: leases end or move exactly once, and a fenced handle cannot
// write after its lease moved.

func leased(t testing.TB, s *taskstore.Store, owner, runner string) *taskstore.TaskRecord {
	t.Helper()
	req := toolCall
	req.Runner = runner
	r, err := s.Create(t.Context(), owner, req)
	if err != nil {
		t.Fatalf("Create with a runner: %v", err)
	}
	if r.Lease == nil || *r.Lease != (taskstore.Lease{Runner: runner, Attempt: 1}) {
		t.Fatalf("lease %+v, want %s attempt 1", r.Lease, runner)
	}
	return r
}

func testStoreActiveQuota(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{MaxActiveTasks: 2, MaxStoredTasks: 4})
	ctx := t.Context()
	a := create(t, s, "alice")
	b := create(t, s, "alice")
	_, err := s.Create(ctx, "alice", toolCall)
	wantErr(t, "third active task", err, taskstore.ErrQuotaExceeded)
	if taskstore.RPCCode(err) != taskstore.CodeInternalError {
		t.Fatalf("quota error maps to %d", taskstore.RPCCode(err))
	}
	// Finished tasks do not hold the quota: a completed one frees a slot.
	if _, err := s.CompleteWithResult(ctx, "alice", a.Task.TaskID, taskstore.StatusCompleted, "", raw(`{}`)); err != nil {
		t.Fatal(err)
	}
	c := create(t, s, "alice")
	if _, err := s.Cancel(ctx, "alice", c.Task.TaskID); err != nil {
		t.Fatal(err)
	}
	create(t, s, "alice")
	if _, err := s.UpdateStatus(ctx, "alice", b.Task.TaskID, taskstore.StatusFailed, "x"); err != nil {
		t.Fatal(err)
	}
	// Four stored (three finished, one active): the stored bound refuses a fifth.
	_, err = s.Create(ctx, "alice", toolCall)
	wantErr(t, "fifth stored task", err, taskstore.ErrStorageFull)
}

func testStoreEndOrphanOnce(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{})
	ctx := t.Context()
	r := leased(t, s, "alice", "dead")
	lease := *r.Lease
	const msg = "the server running this task stopped"
	errs := race(8, func(int) error {
		_, err := taskstore.NewRuntime(s).EndOrphan(context.Background(), "alice", r.Task.TaskID, lease, msg)
		return err
	})
	if ok, lost := countErrs(t, errs, taskstore.ErrLeaseLost); ok != 1 || lost != 7 {
		t.Fatalf("8 sweepers: %d ended the task, %d saw it moved on; want 1 and 7", ok, lost)
	}
	got := get(t, s, "alice", r.Task.TaskID)
	if got.Task.Status != taskstore.StatusFailed || got.Task.StatusMessage != msg || got.Error == nil ||
		got.Error.Code != taskstore.CodeInternalError || got.Error.Message != msg {
		t.Fatalf("orphan ended as %s %q %+v", got.Task.Status, got.Task.StatusMessage, got.Error)
	}
	// Ended tasks leave the runner's index.
	if held, err := taskstore.NewRuntime(s).RunnerTasks(ctx, "dead", 10); err != nil || len(held) != 0 {
		t.Fatalf("RunnerTasks after the end: %d, %v", len(held), err)
	}
	// A task that another lease holds, or that finished, is left alone.
	done := leased(t, s, "alice", "dead")
	if _, err := s.CompleteWithResult(ctx, "alice", done.Task.TaskID, taskstore.StatusCompleted, "", raw(`1`)); err != nil {
		t.Fatal(err)
	}
	_, err := taskstore.NewRuntime(s).EndOrphan(ctx, "alice", done.Task.TaskID, lease, msg)
	wantErr(t, "EndOrphan of a finished task", err, taskstore.ErrLeaseLost)
	if got := get(t, s, "alice", done.Task.TaskID); got.Task.Status != taskstore.StatusCompleted {
		t.Fatalf("a finished task became %s", got.Task.Status)
	}
	_, err = taskstore.NewRuntime(s).EndOrphan(ctx, "bob", r.Task.TaskID, lease, msg)
	wantErr(t, "EndOrphan of another owner's task", err, taskstore.ErrNotFound)
}

func testStoreClaimAndFence(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{})
	ctx := t.Context()
	r := leased(t, s, "alice", "a")
	id := r.Task.TaskID
	old := s.Handle("alice", id).WithLease(*r.Lease)
	if old.Attempt() != 1 {
		t.Fatalf("attempt %d", old.Attempt())
	}
	if err := old.SetVariables(ctx, map[string]any{"step": 1}); err != nil {
		t.Fatalf("a write under the held lease: %v", err)
	}
	errs := race(6, func(i int) error {
		_, err := taskstore.NewRuntime(s).Claim(context.Background(), "alice", id, *r.Lease, fmt.Sprintf("b%d", i))
		return err
	})
	if ok, lost := countErrs(t, errs, taskstore.ErrLeaseLost); ok != 1 || lost != 5 {
		t.Fatalf("6 claimers: %d claimed, %d lost; want 1 and 5", ok, lost)
	}
	cur := get(t, s, "alice", id)
	if cur.Lease == nil || cur.Lease.Attempt != 2 || cur.Lease.Runner[0] != 'b' {
		t.Fatalf("lease after the claim: %+v", cur.Lease)
	}
	held, err := taskstore.NewRuntime(s).RunnerTasks(ctx, cur.Lease.Runner, 10)
	if err != nil || len(held) != 1 || held[0].Task.TaskID != id {
		t.Fatalf("RunnerTasks of the new runner: %d, %v", len(held), err)
	}
	if held, err := taskstore.NewRuntime(s).RunnerTasks(ctx, "a", 10); err != nil || len(held) != 0 {
		t.Fatalf("RunnerTasks of the old runner: %d, %v", len(held), err)
	}
	// Every write of the old attempt is now refused, and nothing changes.
	v := cur.Version
	for name, err := range map[string]error{
		"SetVariables": old.SetVariables(ctx, map[string]any{"step": 2}),
		"Complete":     old.Complete(ctx, "late"),
		"Fail":         old.Fail(ctx, "late"),
		"RequireInput": old.RequireInput(ctx, "late"),
		"Cancel":       old.Cancel(ctx),
	} {
		wantErr(t, name+" by the old attempt", err, taskstore.ErrLeaseLost)
	}
	if got := get(t, s, "alice", id); got.Version != v || got.Task.Status != taskstore.StatusWorking {
		t.Fatalf("fenced writes changed the task: v%d %s", got.Version, got.Task.Status)
	}
	// The new attempt writes; a client's cancel needs no lease.
	now := s.Handle("alice", id).WithLease(*cur.Lease)
	if err := now.SetVariables(ctx, map[string]any{"step": 2}); err != nil {
		t.Fatalf("a write of the new attempt: %v", err)
	}
	if _, err := s.Cancel(ctx, "alice", id); err != nil {
		t.Fatalf("client cancel: %v", err)
	}
	_, err = taskstore.NewRuntime(s).Claim(ctx, "alice", id, *cur.Lease, "c")
	wantErr(t, "Claim of a cancelled task", err, taskstore.ErrLeaseLost)
}

// testStoreClaimClearsInput: the input requests of a dead attempt are its
// own (the new attempt asks again if it needs to), so a claim drops the
// pending requests and the answers not yet taken, and an input_required
// task is working again.
func testStoreClaimClearsInput(t *testing.T, open func(*testing.T, taskstore.Config) *taskstore.Store) {
	s := open(t, taskstore.Config{})
	ctx := t.Context()
	rt := taskstore.NewRuntime(s)
	r := leased(t, s, "alice", "a")
	id := r.Task.TaskID
	req := map[string]json.RawMessage{
		"q1": json.RawMessage(`{"method":"elicitation/create","params":{"message":"one?"}}`),
		"q2": json.RawMessage(`{"method":"elicitation/create","params":{"message":"two?"}}`),
	}
	if _, err := rt.RequestInput(ctx, "alice", id, req, "waiting"); err != nil {
		t.Fatal(err)
	}
	if acc, err := rt.SubmitInput(ctx, "alice", id, map[string]json.RawMessage{"q1": json.RawMessage(`{"action":"accept"}`)}); err != nil || len(acc) != 1 {
		t.Fatalf("SubmitInput: %v %v", acc, err)
	}
	if got := get(t, s, "alice", id); got.Task.Status != taskstore.StatusInputRequired {
		t.Fatalf("status %s with q2 pending, want input_required", got.Task.Status)
	}
	claimed, err := rt.Claim(ctx, "alice", id, *r.Lease, "b")
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []*taskstore.TaskRecord{claimed, get(t, s, "alice", id)} {
		if got.Task.Status != taskstore.StatusWorking || got.Task.StatusMessage != "" {
			t.Fatalf("after the claim: %s %q, want working with no message", got.Task.Status, got.Task.StatusMessage)
		}
		if len(got.InputRequests) != 0 || len(got.InputResponses) != 0 {
			t.Fatalf("after the claim: requests %s, responses %s; want none", got.InputRequests, got.InputResponses)
		}
	}
	// A late answer to the dead attempt's request is ignored.
	if acc, err := rt.SubmitInput(ctx, "alice", id, map[string]json.RawMessage{"q2": json.RawMessage(`{"action":"accept"}`)}); err != nil || len(acc) != 0 {
		t.Fatalf("late answer: accepted %v, %v; want none", acc, err)
	}
}

// testGetMany: a backend that implements BatchGetter returns exactly the
// live records among the keys, other owners' keys included only under
// their own owner.
func testGetMany(t *testing.T, b taskstore.Backend) {
	bg, ok := b.(taskstore.BatchGetter)
	if !ok {
		t.Log("no batch read (it is optional): pollers read one task at a time")
		return
	}
	ctx := t.Context()
	a1, a2, o := rec("alice", `{"n":1}`), rec("alice", `{"n":2}`), rec("bob", `{"n":3}`)
	for _, r := range []taskstore.Record{a1, a2, o} {
		mustCreate(t, b, r)
	}
	if _, err := b.Update(ctx, upd("alice", a2.TaskID, []byte(`{"n":22}`)), 1); err != nil {
		t.Fatal(err)
	}
	short := rec("alice", `{}`)
	short.ExpiresAt = time.Now().Add(shortTTL).Truncate(time.Millisecond)
	mustCreate(t, b, short)
	time.Sleep(time.Until(short.ExpiresAt) + expiryWait - shortTTL)
	keys := []taskstore.Key{
		{Owner: "alice", TaskID: a1.TaskID}, {Owner: "alice", TaskID: a2.TaskID},
		{Owner: "alice", TaskID: o.TaskID}, // bob's task under alice: missing
		{Owner: "bob", TaskID: o.TaskID},
		{Owner: "alice", TaskID: short.TaskID},           // expired
		{Owner: "alice", TaskID: taskid.New(time.Now())}, // never existed
	}
	recs, err := bg.GetMany(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		got[fmt.Sprintf("%s/%s v%d", r.Owner, r.TaskID, r.Version)] = string(r.Data)
	}
	want := map[string]string{
		"alice/" + a1.TaskID + " v1": `{"n":1}`,
		"alice/" + a2.TaskID + " v2": `{"n":22}`,
		"bob/" + o.TaskID + " v1":    `{"n":3}`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("GetMany (-want +got):\n%s", diff)
	}
	if recs, err := bg.GetMany(ctx, nil); err != nil || len(recs) != 0 {
		t.Fatalf("GetMany of no keys: %v, %v", recs, err)
	}
}
