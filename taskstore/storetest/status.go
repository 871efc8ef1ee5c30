package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

// The contract added for the operator surface: Record.Status, and the
// optional StatusIndex that lists records of every owner by status in
// creation order and counts them without a scan.

func runStatusIndexTests(t *testing.T, newBackend NewBackend) {
	probe := newBackend(t)
	_, ok := probe.(taskstore.StatusIndex)
	probe.Close()
	if !ok {
		t.Skip("the backend does not implement taskstore.StatusIndex (optional): " +
			"Runtime.ListAllOwners and Runtime.CountByStatus answer ErrUnsupported on it")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, b taskstore.Backend, si taskstore.StatusIndex)
	}{
		{"ListAcrossOwners", testStatusListAcrossOwners},
		{"Filter", testStatusFilter},
		{"Pages", testStatusPages},
		{"PagesWhileWriting", testStatusPagesWhileWriting},
		{"StatusChanges", testStatusChanges},
		{"DeleteAndExpiry", testStatusDeleteAndExpiry},
		{"Counts", testStatusCounts},
		{"CountsRace", testStatusCountsRace},
		{"PageLimit", testStatusPageLimit},
		{"CanceledContext", testStatusCanceledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			tc.fn(t, b, b.(taskstore.StatusIndex))
		})
	}
}

// srec makes a record in status with a fresh id; Active follows the status
// as the Store sets it.
func srec(owner string, status taskstore.Status) taskstore.Record {
	return taskstore.Record{Owner: owner, TaskID: taskid.New(time.Now()), Data: fmt.Appendf(nil, `{"s":%q}`, status),
		Active: !status.Terminal(), Status: status}
}

// supd is the Record an Update that moves a record to status passes.
func supd(r taskstore.Record, status taskstore.Status) taskstore.Record {
	r.Status, r.Active = status, !status.Terminal()
	r.Data = fmt.Appendf(nil, `{"s":%q,"v":%d}`, status, r.Version+1)
	if !r.Active {
		r.Runner = ""
	}
	return r
}

// expectStatus clears want.Status when b may leave Status empty (it has no
// StatusIndex) and did: whole-record comparisons include Status whenever
// the backend implements StatusIndex.
func expectStatus(b taskstore.Backend, want *taskstore.Record, got taskstore.Record) {
	if _, ok := b.(taskstore.StatusIndex); !ok && got.Status == "" {
		want.Status = ""
	}
}

func keyOf(r taskstore.Record) taskstore.Key { return taskstore.Key{Owner: r.Owner, TaskID: r.TaskID} }

// cmpKey orders keys as ListByStatus does: task id, then owner, bytewise.
func cmpKey(a, b taskstore.Key) int {
	if c := strings.Compare(a.TaskID, b.TaskID); c != 0 {
		return c
	}
	return strings.Compare(a.Owner, b.Owner)
}

func sortRecords(recs []taskstore.Record) {
	slices.SortFunc(recs, func(a, b taskstore.Record) int { return cmpKey(keyOf(a), keyOf(b)) })
}

func keysOf(recs []taskstore.Record) []taskstore.Key {
	out := make([]taskstore.Key, len(recs))
	for i, r := range recs {
		out[i] = keyOf(r)
	}
	return out
}

// listStatus pages through every record of status with pages of size,
// checking each page: at most size records, each of status and strictly
// after the one before (so no record twice). A page may be short or empty
// while more is true (an index that can be stale); a run of 100 empty
// pages fails.
func listStatus(t testing.TB, si taskstore.StatusIndex, status taskstore.Status, size int) []taskstore.Record {
	t.Helper()
	var out []taskstore.Record
	var after taskstore.Key
	for empty := 0; ; {
		recs, more, err := si.ListByStatus(t.Context(), status, after, size)
		if err != nil {
			t.Fatalf("ListByStatus(%s, after %q/%q, %d): %v", status, after.TaskID, after.Owner, size, err)
		}
		if len(recs) > size {
			t.Fatalf("ListByStatus returned %d records, limit %d", len(recs), size)
		}
		for _, r := range recs {
			if r.Status != status {
				t.Fatalf("ListByStatus(%s) returned %q/%q in status %q", status, r.TaskID, r.Owner, r.Status)
			}
			if cmpKey(after, keyOf(r)) >= 0 {
				t.Fatalf("ListByStatus(%s): %q/%q is not after %q/%q (creation order, no repeats)",
					status, r.TaskID, r.Owner, after.TaskID, after.Owner)
			}
			after = keyOf(r)
			out = append(out, r)
		}
		if !more {
			return out
		}
		if len(recs) > 0 {
			empty = 0
		} else if empty++; empty >= 100 {
			t.Fatalf("ListByStatus(%s): 100 empty pages in a row with more=true", status)
		}
	}
}

// counts returns CountByStatus without its zero entries.
func counts(t testing.TB, si taskstore.StatusIndex) map[taskstore.Status]int64 {
	t.Helper()
	c, err := si.CountByStatus(t.Context())
	if err != nil {
		t.Fatalf("CountByStatus: %v", err)
	}
	for s, n := range c {
		if n < 0 {
			t.Fatalf("CountByStatus: %s has %d records", s, n)
		}
		if n == 0 {
			delete(c, s)
		}
	}
	return c
}

func wantCounts(t testing.TB, si taskstore.StatusIndex, want map[taskstore.Status]int64) {
	t.Helper()
	want = maps0(want)
	if diff := cmp.Diff(want, counts(t, si)); diff != "" {
		t.Fatalf("CountByStatus (-want +got):\n%s", diff)
	}
}

// maps0 is m without its zero entries.
func maps0(m map[taskstore.Status]int64) map[taskstore.Status]int64 {
	out := map[taskstore.Status]int64{}
	for s, n := range m {
		if n != 0 {
			out[s] = n
		}
	}
	return out
}

// testStatusListAcrossOwners: records of owners of every shape, one task id
// shared by several owners, listed in (task id, owner) order whatever the
// page size, each record whole.
func testStatusListAcrossOwners(t *testing.T, b taskstore.Backend, si taskstore.StatusIndex) {
	owners := slices.Clone(trickyOwners)
	for _, o := range generatedOwners(10) {
		if utf8.ValidString(o) && len(o) <= taskstore.DefaultMaxOwnerLen {
			owners = append(owners, o)
		}
	}
	shared := taskid.New(time.Now())
	var want []taskstore.Record
	for i, o := range owners {
		r := srec(o, taskstore.StatusWorking)
		switch i % 3 {
		case 0:
			r.Runner = "node-a"
		case 1:
			r.ExpiresAt = time.Now().Add(time.Hour).Truncate(time.Millisecond)
		}
		if i%4 == 0 {
			s := srec(o, taskstore.StatusWorking)
			s.TaskID = shared
			mustCreate(t, b, s)
			s.Version = 1
			want = append(want, s)
		}
		mustCreate(t, b, r)
		r.Version = 1
		want = append(want, r)
		mustCreate(t, b, srec(o, taskstore.StatusCompleted)) // another status, interleaved
	}
	sortRecords(want)
	for _, size := range []int{1, 4, taskstore.MaxStatusPage} {
		if diff := cmp.Diff(want, listStatus(t, si, taskstore.StatusWorking, size)); diff != "" {
			t.Fatalf("pages of %d (-want +got):\n%s", size, diff)
		}
	}
	wantCounts(t, si, map[taskstore.Status]int64{
		taskstore.StatusWorking: int64(len(want)), taskstore.StatusCompleted: int64(len(owners))})
}

// testStatusFilter: each status lists exactly its own records.
func testStatusFilter(t *testing.T, b taskstore.Backend, si taskstore.StatusIndex) {
	want := map[taskstore.Status][]taskstore.Record{}
	for i := range 3 {
		for j, s := range allStatuses[:4] {
			if j > i+1 {
				continue // differing counts per status: 3, 3, 2, 1 and 0
			}
			r := srec([]string{"alice", "bob:x", "a"}[(i+j)%3], s)
			mustCreate(t, b, r)
			r.Version = 1
			want[s] = append(want[s], r)
		}
	}
	for _, s := range allStatuses {
		sortRecords(want[s])
		got := listStatus(t, si, s, 2)
		if diff := cmp.Diff(keysOf(want[s]), keysOf(got)); diff != "" {
			t.Fatalf("ListByStatus(%s) (-want +got):\n%s", s, diff)
		}
	}
	recs, more, err := si.ListByStatus(t.Context(), taskstore.StatusCancelled, taskstore.Key{}, 10)
	if err != nil || len(recs) != 0 || more {
		t.Fatalf("a status without records: %d records, more=%v, %v", len(recs), more, err)
	}
}

// testStatusPages: cursor paging is exact: pages of the asked size, more
// false on the last, positions after keys that are not stored well defined,
// and ids shared by two owners split across pages.
func testStatusPages(t *testing.T, b taskstore.Backend, si taskstore.StatusIndex) {
	ctx := t.Context()
	var want []taskstore.Record
	for i := range 15 {
		r := srec("alice", taskstore.StatusWorking)
		mustCreate(t, b, r)
		want = append(want, r)
		if i < 10 { // the same id under a second owner
			r2 := srec("bob", taskstore.StatusWorking)
			r2.TaskID = r.TaskID
			mustCreate(t, b, r2)
			want = append(want, r2)
		}
		mustCreate(t, b, srec("alice", taskstore.StatusInputRequired))
	}
	sortRecords(want)
	keys := keysOf(want) // 25
	after := taskstore.Key{}
	for i, size := range []int{7, 7, 7, 4} {
		recs, more, err := si.ListByStatus(ctx, taskstore.StatusWorking, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(keys[i*7:i*7+size], keysOf(recs)); diff != "" {
			t.Fatalf("page %d (-want +got):\n%s", i, diff)
		}
		if wantMore := i < 3; more != wantMore {
			t.Fatalf("page %d: more=%v, want %v", i, more, wantMore)
		}
		after = keyOf(recs[len(recs)-1])
	}
	page := func(what string, after taskstore.Key, limit int, want []taskstore.Key, wantMore bool) {
		t.Helper()
		recs, more, err := si.ListByStatus(ctx, taskstore.StatusWorking, after, limit)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if diff := cmp.Diff(want, keysOf(recs), cmpopts.EquateEmpty()); diff != "" || more != wantMore {
			t.Fatalf("%s (-want +got), more=%v want %v:\n%s", what, more, wantMore, diff)
		}
	}
	page("exactly a page left", keys[14], 10, keys[15:], false)
	page("after the newest", keys[24], 10, nil, false)
	page("after a future id", taskstore.Key{TaskID: taskid.New(time.Now())}, 10, nil, false)
	page("the oldest", taskstore.Key{}, 1, keys[:1], true)
	// keys[2] is alice's record of an id bob shares; her name plus a NUL
	// byte sorts right after it, before bob's.
	page("after an unstored owner of a stored id", taskstore.Key{TaskID: keys[2].TaskID, Owner: keys[2].Owner + "\x00"}, 3, keys[3:6], true)
	page("after the empty owner of a stored id", taskstore.Key{TaskID: keys[4].TaskID}, 3, keys[4:7], true)
	if diff := cmp.Diff(keys, keysOf(listStatus(t, si, taskstore.StatusWorking, 1))); diff != "" {
		t.Fatalf("pages of 1 (-want +got):\n%s", diff)
	}
}

// testStatusPagesWhileWriting pages through a status while records are
// created, change status and change back: every record that existed
// unchanged through the whole paging appears exactly once, in order.
func testStatusPagesWhileWriting(t *testing.T, b taskstore.Backend, si taskstore.StatusIndex) {
	var stable, churn []taskstore.Record
	for i := range 60 {
		r := srec([]string{"alice", "bob", "a:b"}[i%3], taskstore.StatusWorking)
		mustCreate(t, b, r)
		r.Version = 1
		if i%4 == 1 {
			churn = append(churn, r)
		} else {
			stable = append(stable, r)
		}
	}
	stop, started := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer func() {
			select {
			case <-started:
			default:
				close(started)
			}
		}()
		ctx := context.Background()
		// Bounded, so that paging, which new records follow, ends.
		for i := range 400 {
			select {
			case <-stop:
				return
			default:
			}
			if err := b.Create(ctx, srec("new", taskstore.StatusWorking), taskstore.Limits{}); err != nil {
				t.Errorf("concurrent Create: %v", err)
				return
			}
			c := &churn[i%len(churn)]
			next := taskstore.StatusInputRequired
			if c.Status == next {
				next = taskstore.StatusWorking
			}
			v, err := b.Update(ctx, supd(*c, next), c.Version)
			if err != nil {
				t.Errorf("concurrent Update: %v", err)
				return
			}
			c.Status, c.Version = next, v
			if i == 20 {
				close(started) // paging starts with writes under way
			}
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	<-started
	for range 3 {
		seen := map[taskstore.Key]int{}
		for _, r := range listStatus(t, si, taskstore.StatusWorking, 3) {
			seen[keyOf(r)]++
		}
		for _, r := range stable {
			if n := seen[keyOf(r)]; n != 1 {
				t.Fatalf("a record that did not change while paging was listed %d times", n)
			}
		}
	}
}

// testStatusChanges: Update and UpdateMany move a record from its old
// status's listing to the new one's, and the counts follow; a refused
// update moves nothing.
func testStatusChanges(t *testing.T, b taskstore.Backend, si taskstore.StatusIndex) {
	ctx := t.Context()
	a, c, d := srec("alice", taskstore.StatusWorking), srec("carol", taskstore.StatusWorking), srec("dave", taskstore.StatusWorking)
	a.Runner = "node-a"
	mustCreate(t, b, a)
	mustCreate(t, b, c)
	a.Version, c.Version = 1, 1
	listed := func(s taskstore.Status, want ...taskstore.Record) {
		t.Helper()
		for i := range want {
			want[i].Data = nil
		}
		got := listStatus(t, si, s, 10)
		for i := range got {
			got[i].Data = nil
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("ListByStatus(%s) (-want +got):\n%s", s, diff)
		}
	}
	move := func(r *taskstore.Record, s taskstore.Status) {
		t.Helper()
		up := supd(*r, s)
		v, err := b.Update(ctx, up, r.Version)
		if err != nil {
			t.Fatalf("Update to %s: %v", s, err)
		}
		up.Version = v
		*r = up
	}
	wantCounts(t, si, map[taskstore.Status]int64{taskstore.StatusWorking: 2})
	move(&a, taskstore.StatusInputRequired)
	listed(taskstore.StatusWorking, c)
	listed(taskstore.StatusInputRequired, a)
	wantCounts(t, si, map[taskstore.Status]int64{taskstore.StatusWorking: 1, taskstore.StatusInputRequired: 1})
	// A refused update (stale version) moves nothing.
	if _, err := b.Update(ctx, supd(a, taskstore.StatusCompleted), 1); !errors.Is(err, taskstore.ErrVersionConflict) {
		t.Fatalf("Update at a stale version: %v", err)
	}
	listed(taskstore.StatusInputRequired, a)
	listed(taskstore.StatusCompleted)
	move(&a, taskstore.StatusWorking)
	listed(taskstore.StatusWorking, a, c)
	listed(taskstore.StatusInputRequired)
	wantCounts(t, si, map[taskstore.Status]int64{taskstore.StatusWorking: 2})

	bu, ok := b.(taskstore.BatchUpdater)
	if !ok {
		t.Log("no batch update (it is optional): moved by Update only")
		return
	}
	endA, failC := supd(a, taskstore.StatusCompleted), supd(c, taskstore.StatusFailed)
	res, err := bu.UpdateMany(ctx, []taskstore.Update{
		{Record: endA, Expected: a.Version},
		{Record: failC, Expected: c.Version},
		{Record: supd(d, taskstore.StatusCancelled), Expected: 1}, // never created
	})
	if err != nil || len(res) != 3 {
		t.Fatalf("UpdateMany: %v, %v", res, err)
	}
	if res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("UpdateMany: %v, %v", res[0].Err, res[1].Err)
	}
	wantErr(t, "an update of a missing record in a batch", res[2].Err, taskstore.ErrNotFound)
	endA.Version, failC.Version = res[0].Version, res[1].Version
	listed(taskstore.StatusWorking)
	listed(taskstore.StatusCompleted, endA)
	listed(taskstore.StatusFailed, failC)
	listed(taskstore.StatusCancelled)
	wantCounts(t, si, map[taskstore.Status]int64{taskstore.StatusCompleted: 1, taskstore.StatusFailed: 1})
}

// testStatusDeleteAndExpiry: deleted and expired records are never
// listed. A delete leaves the counts at once; an expired record may stay
// counted only until DeleteExpired returns (the documented approximation
// of backends whose server expires records on its own).
func testStatusDeleteAndExpiry(t *testing.T, b taskstore.Backend, si taskstore.StatusIndex) {
	ctx := t.Context()
	hour := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	short := time.Now().Add(shortTTL).Truncate(time.Millisecond)
	keep, gone := srec("alice", taskstore.StatusWorking), srec("alice", taskstore.StatusWorking)
	shortW, shortC := srec("bob", taskstore.StatusWorking), srec("bob", taskstore.StatusCompleted)
	shortW.ExpiresAt, shortC.ExpiresAt = short, short
	long := srec("carol", taskstore.StatusCompleted)
	long.ExpiresAt = hour
	for _, r := range []taskstore.Record{keep, gone, shortW, shortC, long} {
		mustCreate(t, b, r)
	}
	listedKeys := func(s taskstore.Status, want ...taskstore.Record) {
		t.Helper()
		sortRecords(want)
		if diff := cmp.Diff(keysOf(want), keysOf(listStatus(t, si, s, 10)), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("ListByStatus(%s) (-want +got):\n%s", s, diff)
		}
	}
	wantCounts(t, si, map[taskstore.Status]int64{taskstore.StatusWorking: 3, taskstore.StatusCompleted: 2})
	if existed, err := b.Delete(ctx, "alice", gone.TaskID); err != nil || !existed {
		t.Fatalf("Delete: %v, %v", existed, err)
	}
	listedKeys(taskstore.StatusWorking, keep, shortW)
	wantCounts(t, si, map[taskstore.Status]int64{taskstore.StatusWorking: 2, taskstore.StatusCompleted: 2})
	time.Sleep(time.Until(short) + expiryWait - shortTTL)

	listedKeys(taskstore.StatusWorking, keep)
	listedKeys(taskstore.StatusCompleted, long)
	c := counts(t, si)
	if w, d := c[taskstore.StatusWorking], c[taskstore.StatusCompleted]; w < 1 || w > 2 || d < 1 || d > 2 || len(c) != 2 {
		t.Fatalf("counts after expiry, before DeleteExpired: %v; want working and completed each 1 (or 2 with the expired record)", c)
	}
	if _, err := b.DeleteExpired(ctx); err != nil {
		t.Fatalf("DeleteExpired: %v", err)
	}
	wantCounts(t, si, map[taskstore.Status]int64{taskstore.StatusWorking: 1, taskstore.StatusCompleted: 1})
	// An expired key may be created again, in another status.
	again := shortW
	again.ExpiresAt, again.Status = hour, taskstore.StatusInputRequired
	mustCreate(t, b, again)
	listedKeys(taskstore.StatusInputRequired, again)
	listedKeys(taskstore.StatusWorking, keep)
	wantCounts(t, si, map[taskstore.Status]int64{taskstore.StatusWorking: 1, taskstore.StatusCompleted: 1, taskstore.StatusInputRequired: 1})
}

// testStatusCounts: on a quiet store, after DeleteExpired, the counts are
// exact, and agree with the listings.
func testStatusCounts(t *testing.T, b taskstore.Backend, si taskstore.StatusIndex) {
	ctx := t.Context()
	wantCounts(t, si, nil) // a fresh store
	truth := map[taskstore.Status]int64{}
	var live []taskstore.Record
	for i := range 40 {
		s := allStatuses[i%len(allStatuses)]
		if i%7 == 0 {
			s = taskstore.StatusWorking
		}
		r := srec(trickyOwners[i%len(trickyOwners)], s)
		mustCreate(t, b, r)
		r.Version = 1
		live = append(live, r)
		truth[s]++
	}
	for i, r := range live {
		switch {
		case i%5 == 0 && !r.Status.Terminal(): // ends
			if _, err := b.Update(ctx, supd(r, taskstore.StatusCancelled), 1); err != nil {
				t.Fatal(err)
			}
			truth[r.Status]--
			truth[taskstore.StatusCancelled]++
		case i%6 == 1: // deleted
			if _, err := b.Delete(ctx, r.Owner, r.TaskID); err != nil {
				t.Fatal(err)
			}
			truth[r.Status]--
		}
	}
	wantQuietCounts(t, b, si, truth)
}

// wantQuietCounts checks that, after DeleteExpired, the counts are truth
// and each status lists as many records.
func wantQuietCounts(t *testing.T, b taskstore.Backend, si taskstore.StatusIndex, truth map[taskstore.Status]int64) {
	t.Helper()
	if _, err := b.DeleteExpired(t.Context()); err != nil {
		t.Fatalf("DeleteExpired: %v", err)
	}
	wantCounts(t, si, truth)
	for _, s := range allStatuses {
		if n := int64(len(listStatus(t, si, s, 7))); n != truth[s] {
			t.Fatalf("%d records listed in %s, counted %d", n, s, truth[s])
		}
	}
}

// testStatusCountsRace: creates, updates and deletes race, some for one
// record (one winner each); afterwards the counts equal what is stored.
func testStatusCountsRace(t *testing.T, b taskstore.Backend, si taskstore.StatusIndex) {
	const workers, each = 8, 12
	var shared []taskstore.Record
	for range 4 {
		r := srec("shared", taskstore.StatusWorking)
		mustCreate(t, b, r)
		shared = append(shared, r)
	}
	contested := srec("contested", taskstore.StatusInputRequired) // created by every worker, once
	var mu sync.Mutex
	keys := []taskstore.Key{keyOf(contested)}
	for _, r := range shared {
		keys = append(keys, keyOf(r))
	}
	errs := race(workers, func(w int) error {
		ctx := context.Background()
		owner := fmt.Sprintf("w%d:%s", w, strings.Repeat("é", w))
		if err := b.Create(ctx, contested, taskstore.Limits{}); err != nil && !errors.Is(err, taskstore.ErrAlreadyExists) {
			return err
		}
		for i := range each {
			r := srec(owner, allStatuses[(w+i)%2]) // working or input_required
			if err := b.Create(ctx, r, taskstore.Limits{}); err != nil {
				return err
			}
			mu.Lock()
			keys = append(keys, keyOf(r))
			mu.Unlock()
			switch i % 3 {
			case 0:
				if _, err := b.Update(ctx, supd(r, allStatuses[2+w%3]), 1); err != nil {
					return err
				}
			case 1:
				if _, err := b.Delete(ctx, r.Owner, r.TaskID); err != nil {
					return err
				}
			}
			// Every worker tries to end each shared record: one wins each.
			s := shared[i%len(shared)]
			if _, err := b.Update(ctx, supd(s, allStatuses[2+w%3]), 1); err != nil && !errors.Is(err, taskstore.ErrVersionConflict) {
				return err
			}
		}
		return nil
	})
	countErrs(t, errs, nil)
	truth := map[taskstore.Status]int64{}
	for _, k := range keys {
		r, err := b.Get(t.Context(), k.Owner, k.TaskID)
		if errors.Is(err, taskstore.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		truth[r.Status]++
	}
	wantQuietCounts(t, b, si, truth)
}

// testStatusPageLimit: limit is 1 to MaxStatusPage; MaxStatusPage itself
// returns a full page.
func testStatusPageLimit(t *testing.T, b taskstore.Backend, si taskstore.StatusIndex) {
	ctx := t.Context()
	for _, limit := range []int{0, -1, math.MinInt, taskstore.MaxStatusPage + 1, math.MaxInt} {
		_, _, err := si.ListByStatus(ctx, taskstore.StatusWorking, taskstore.Key{}, limit)
		wantErr(t, fmt.Sprintf("ListByStatus with limit %d", limit), err, taskstore.ErrInvalidPageSize)
	}
	const n = taskstore.MaxStatusPage + 1
	ids := make(chan int, n)
	for i := range n {
		ids <- i
	}
	close(ids)
	errs := race(8, func(int) error {
		for i := range ids {
			if err := b.Create(context.Background(), srec(fmt.Sprint("o", i%10), taskstore.StatusInputRequired), taskstore.Limits{}); err != nil {
				return err
			}
		}
		return nil
	})
	countErrs(t, errs, nil)
	recs, more, err := si.ListByStatus(ctx, taskstore.StatusInputRequired, taskstore.Key{}, taskstore.MaxStatusPage)
	if err != nil || len(recs) != taskstore.MaxStatusPage || !more {
		t.Fatalf("a page of MaxStatusPage: %d records, more=%v, %v", len(recs), more, err)
	}
	recs, more, err = si.ListByStatus(ctx, taskstore.StatusInputRequired, keyOf(recs[len(recs)-1]), taskstore.MaxStatusPage)
	if err != nil || len(recs) != 1 || more {
		t.Fatalf("the page after: %d records, more=%v, %v", len(recs), more, err)
	}
}

func testStatusCanceledContext(t *testing.T, b taskstore.Backend, si taskstore.StatusIndex) {
	mustCreate(t, b, srec("alice", taskstore.StatusWorking))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := si.ListByStatus(ctx, taskstore.StatusWorking, taskstore.Key{}, 10)
	wantErr(t, "ListByStatus with a canceled context", err, context.Canceled)
	_, err = si.CountByStatus(ctx)
	wantErr(t, "CountByStatus with a canceled context", err, context.Canceled)
}

// testStatusField: a backend that implements StatusIndex returns each
// record's Status on every read: Get, List, RunnerTasks, GetMany, after
// Update and UpdateMany.
func testStatusField(t *testing.T, b taskstore.Backend) {
	if _, ok := b.(taskstore.StatusIndex); !ok {
		t.Skip("the backend does not implement taskstore.StatusIndex (optional), so it may return Record.Status empty")
	}
	ctx := t.Context()
	r := srec("alice", taskstore.StatusInputRequired)
	r.Runner = "node-s"
	mustCreate(t, b, r)
	r.Version = 1
	check := func(want taskstore.Record) {
		t.Helper()
		got, err := b.Get(ctx, want.Owner, want.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("Get (-want +got):\n%s", diff)
		}
		page, _, err := b.List(ctx, want.Owner, "", 10)
		if err != nil || len(page) != 1 {
			t.Fatalf("List: %d records, %v", len(page), err)
		}
		if diff := cmp.Diff(want, page[0]); diff != "" {
			t.Fatalf("List (-want +got):\n%s", diff)
		}
		if want.Runner != "" {
			held, err := b.RunnerTasks(ctx, want.Runner, 10)
			if err != nil || len(held) != 1 {
				t.Fatalf("RunnerTasks: %d records, %v", len(held), err)
			}
			if diff := cmp.Diff(want, held[0]); diff != "" {
				t.Fatalf("RunnerTasks (-want +got):\n%s", diff)
			}
		}
		if bg, ok := b.(taskstore.BatchGetter); ok {
			many, err := bg.GetMany(ctx, []taskstore.Key{keyOf(want)})
			if err != nil || len(many) != 1 {
				t.Fatalf("GetMany: %d records, %v", len(many), err)
			}
			if diff := cmp.Diff(want, many[0]); diff != "" {
				t.Fatalf("GetMany (-want +got):\n%s", diff)
			}
		}
	}
	check(r)
	up := supd(r, taskstore.StatusWorking)
	v, err := b.Update(ctx, up, 1)
	if err != nil {
		t.Fatal(err)
	}
	up.Version = v
	check(up)
	bu, ok := b.(taskstore.BatchUpdater)
	if !ok {
		return
	}
	end := supd(up, taskstore.StatusFailed)
	res, err := bu.UpdateMany(ctx, []taskstore.Update{{Record: end, Expected: up.Version}})
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("UpdateMany: %v, %v", res, err)
	}
	end.Version = res[0].Version
	check(end)
}
