// Package storetest is the one conformance suite every taskstore.Backend
// runs, unchanged. Run checks the backend contract (exact sentinel errors,
// ordering, pagination, expiry, owner isolation, races) and then the Store's
// domain rules over that backend. RunBenchmarks measures both.
//
// A backend's test calls Run with a function that returns a fresh, empty
// backend and registers its Close with t.Cleanup:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t testing.TB) taskstore.Backend {
//			b := mcptasks.NewMemoryBackend(0)
//			t.Cleanup(func() { b.Close() })
//			return b
//		})
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

// NewBackend returns a fresh, empty backend for one test.
type NewBackend func(t testing.TB) taskstore.Backend

// Run runs the whole suite.
func Run(t *testing.T, newBackend NewBackend) {
	t.Run("Backend", func(t *testing.T) { runBackendTests(t, newBackend) })
	t.Run("StatusIndex", func(t *testing.T) { runStatusIndexTests(t, newBackend) })
	t.Run("Store", func(t *testing.T) { runStoreTests(t, newBackend) })
}

// shortTTL is the life of the records the expiry tests see expire: long
// enough for the steps meant to come before the expiry (a few creates and
// reads) to finish in time on a loaded machine (dynalite took more than
// 700 ms for three of them at load 10); expiryWait is how long the tests
// wait past a record's expiry: servers with coarse clocks still see it
// expired by then.
const (
	shortTTL   = 2 * time.Second
	expiryWait = shortTTL + 400*time.Millisecond
)

func runBackendTests(t *testing.T, newBackend NewBackend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b taskstore.Backend)
	}{
		{"CreateGet", testCreateGet},
		{"CreateNeverOverwrites", testCreateNeverOverwrites},
		{"GetMissing", testGetMissing},
		{"UpdateCompareAndSwap", testUpdateCAS},
		{"Delete", testDelete},
		{"OwnerIsolation", testOwnerIsolation},
		{"ListOrderAndPages", testListPages},
		{"ListWhileCreating", testListWhileCreating},
		{"Expiry", testExpiry},
		{"Quota", testQuota},
		{"QuotaRace", testQuotaRace},
		{"CreateRace", testCreateRace},
		{"UpdateRace", testUpdateRace},
		{"NoLostUpdate", testNoLostUpdate},
		{"LargeRecord", testLargeRecord},
		{"CanceledContext", testCanceledContext},
		{"CloseTwice", testCloseTwice},
		{"Linearizable", testLinearizable},
		{"ActiveQuota", testActiveQuota},
		{"StoredBound", testStoredBound},
		{"QuotaRaceWithEnds", testQuotaRaceWithEnds},
		{"RunnerIndex", testRunnerIndex},
		{"Heartbeats", testHeartbeats},
		{"Notify", testNotify},
		{"GetMany", testGetMany},
		{"UpdateMany", testUpdateMany},
		{"ReturnedDataIsTheCallers", testReturnedData},
		{"StatusField", testStatusField},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newBackend(t))
		})
	}
}

// rec makes a working record with a fresh id and a small JSON document.
func rec(owner string, doc string) taskstore.Record {
	return taskstore.Record{Owner: owner, TaskID: taskid.New(time.Now()), Data: []byte(doc), Active: true,
		Status: taskstore.StatusWorking}
}

// upd is the Record an Update of a working record without a runner passes.
func upd(owner, id string, data []byte) taskstore.Record {
	return taskstore.Record{Owner: owner, TaskID: id, Data: data, Active: true, Status: taskstore.StatusWorking}
}

func mustCreate(t testing.TB, b taskstore.Backend, r taskstore.Record) {
	t.Helper()
	if err := b.Create(t.Context(), r, taskstore.Limits{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

func wantErr(t testing.TB, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("%s: got error %v, want %v", what, got, want)
	}
}

func testCreateGet(t *testing.T, b taskstore.Backend) {
	r := rec("alice", `{"a":"é\u0000\n","b":[1,2,{"c":null}]}`)
	r.ExpiresAt = time.Now().Add(time.Hour).Truncate(time.Millisecond)
	mustCreate(t, b, r)
	got, err := b.Get(t.Context(), "alice", r.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	r.Version = 1
	expectStatus(b, &r, got)
	if diff := cmp.Diff(r, got); diff != "" {
		t.Fatalf("Get after Create (-want +got):\n%s", diff)
	}
	// A record without expiry has a zero ExpiresAt.
	r2 := rec("alice", `{}`)
	mustCreate(t, b, r2)
	got, err = b.Get(t.Context(), "alice", r2.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ExpiresAt.IsZero() || got.Version != 1 {
		t.Fatalf("got ExpiresAt %v version %d, want zero and 1", got.ExpiresAt, got.Version)
	}
}

// testReturnedData: the Data of a record a backend returns is the
// caller's (the Store keeps slices of it in the records it hands out):
// writing into it changes neither what is stored nor what another read
// returns, and neither does writing into the Data a caller passed in.
func testReturnedData(t *testing.T, b taskstore.Backend) {
	ctx := t.Context()
	const doc = `{"v":"original"}`
	r := rec("alice", doc)
	mustCreate(t, b, r)
	clear(r.Data) // the caller's buffer, reused after Create
	scribble := func(recs ...taskstore.Record) {
		for _, x := range recs {
			for i := range x.Data {
				x.Data[i] = 'X'
			}
		}
	}
	check := func(what string) {
		t.Helper()
		got, err := b.Get(ctx, "alice", r.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Data) != doc {
			t.Fatalf("%s: Get returns %q, want %q", what, got.Data, doc)
		}
	}
	got, err := b.Get(ctx, "alice", r.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	scribble(got)
	check("after writing into Get's Data")
	page, _, err := b.List(ctx, "alice", "", 10)
	if err != nil || len(page) != 1 {
		t.Fatalf("List: %d records, %v", len(page), err)
	}
	scribble(page...)
	check("after writing into List's Data")
	if bg, ok := b.(taskstore.BatchGetter); ok {
		many, err := bg.GetMany(ctx, []taskstore.Key{{Owner: "alice", TaskID: r.TaskID}})
		if err != nil || len(many) != 1 {
			t.Fatalf("GetMany: %d records, %v", len(many), err)
		}
		scribble(many...)
		check("after writing into GetMany's Data")
	}
	up := upd("alice", r.TaskID, []byte(doc))
	if _, err := b.Update(ctx, up, 1); err != nil {
		t.Fatal(err)
	}
	scribble(up)
	check("after writing into Update's Data")
}

func testCreateNeverOverwrites(t *testing.T, b taskstore.Backend) {
	r := rec("alice", `{"v":1}`)
	mustCreate(t, b, r)
	again := r
	again.Data = []byte(`{"v":2}`)
	wantErr(t, "second Create", b.Create(t.Context(), again, taskstore.Limits{}), taskstore.ErrAlreadyExists)
	if _, err := b.Update(t.Context(), upd("alice", r.TaskID, []byte(`{"v":3}`)), 1); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Create over an updated record", b.Create(t.Context(), again, taskstore.Limits{}), taskstore.ErrAlreadyExists)
	got, err := b.Get(t.Context(), "alice", r.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != `{"v":3}` || got.Version != 2 {
		t.Fatalf("got %s v%d, want {\"v\":3} v2", got.Data, got.Version)
	}
}

func testGetMissing(t *testing.T, b taskstore.Backend) {
	r := rec("alice", `{}`)
	_, err := b.Get(t.Context(), "alice", r.TaskID)
	wantErr(t, "Get of a never-created id", err, taskstore.ErrNotFound)
	mustCreate(t, b, r)
	_, err = b.Get(t.Context(), "bob", r.TaskID)
	wantErr(t, "Get with another owner", err, taskstore.ErrNotFound)
}

func testUpdateCAS(t *testing.T, b taskstore.Backend) {
	ctx := t.Context()
	r := rec("alice", `{"v":0}`)
	r.ExpiresAt = time.Now().Add(time.Hour).Truncate(time.Millisecond)
	mustCreate(t, b, r)
	for want := uint64(2); want <= 4; want++ {
		v, err := b.Update(ctx, upd("alice", r.TaskID, fmt.Appendf(nil, `{"v":%d}`, want)), want-1)
		if err != nil || v != want {
			t.Fatalf("Update to v%d: got v%d, %v", want, v, err)
		}
	}
	_, err := b.Update(ctx, upd("alice", r.TaskID, []byte(`{"v":"stale"}`)), 3)
	wantErr(t, "Update at a stale version", err, taskstore.ErrVersionConflict)
	_, err = b.Update(ctx, upd("alice", r.TaskID, []byte(`{"v":"future"}`)), 9)
	wantErr(t, "Update at a future version", err, taskstore.ErrVersionConflict)
	_, err = b.Update(ctx, upd("alice", taskid.New(time.Now()), []byte(`{}`)), 1)
	wantErr(t, "Update of a missing record", err, taskstore.ErrNotFound)
	_, err = b.Update(ctx, upd("bob", r.TaskID, []byte(`{}`)), 4)
	wantErr(t, "Update with another owner", err, taskstore.ErrNotFound)
	got, err := b.Get(ctx, "alice", r.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	want := r
	want.Data, want.Version = []byte(`{"v":4}`), 4
	expectStatus(b, &want, got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("after updates (-want +got):\n%s", diff)
	}
}

func testDelete(t *testing.T, b taskstore.Backend) {
	ctx := t.Context()
	r := rec("alice", `{}`)
	mustCreate(t, b, r)
	if existed, err := b.Delete(ctx, "bob", r.TaskID); err != nil || existed {
		t.Fatalf("Delete with another owner: %v, %v; want false, nil", existed, err)
	}
	if existed, err := b.Delete(ctx, "alice", r.TaskID); err != nil || !existed {
		t.Fatalf("Delete: %v, %v; want true, nil", existed, err)
	}
	if existed, err := b.Delete(ctx, "alice", r.TaskID); err != nil || existed {
		t.Fatalf("second Delete: %v, %v; want false, nil", existed, err)
	}
	_, err := b.Get(ctx, "alice", r.TaskID)
	wantErr(t, "Get after Delete", err, taskstore.ErrNotFound)
	recs, more, err := b.List(ctx, "alice", "", 10)
	if err != nil || len(recs) != 0 || more {
		t.Fatalf("List after Delete: %d records, more=%v, %v", len(recs), more, err)
	}
	// The key is free again, at version 1.
	mustCreate(t, b, r)
	got, err := b.Get(ctx, "alice", r.TaskID)
	if err != nil || got.Version != 1 {
		t.Fatalf("re-create: v%d, %v", got.Version, err)
	}
}

// trickyOwners are owner strings that collide under naive key schemes:
// prefixes of each other, separators, glob and hash-tag characters.
var trickyOwners = []string{
	"a", "a:", "a:b", ":", "a:b:c", "ab", "a*", "*", "a?", "[a]", "{a}", "{", "}",
	"a#", "OWNER#a", "a/b", "a%3Ab", "ä", "用户", "a b", " a", "a\x00b", "a\\", `a"`,
	strings.Repeat("o", 512),
}

func testOwnerIsolation(t *testing.T, b taskstore.Backend) {
	ctx := t.Context()
	ids := map[string][]string{}
	for _, o := range trickyOwners {
		for range 2 {
			r := rec(o, fmt.Sprintf(`{"owner":%q}`, o))
			mustCreate(t, b, r)
			ids[o] = append(ids[o], r.TaskID)
		}
	}
	for _, o := range trickyOwners {
		recs, more, err := b.List(ctx, o, "", 100)
		if err != nil {
			t.Fatalf("List(%q): %v", o, err)
		}
		got := []string{}
		for _, r := range recs {
			got = append(got, r.TaskID)
		}
		want := []string{ids[o][1], ids[o][0]}
		if diff := cmp.Diff(want, got); diff != "" || more {
			t.Fatalf("List(%q) (-want +got), more=%v:\n%s", o, more, diff)
		}
		for _, other := range trickyOwners {
			if other == o {
				continue
			}
			id := ids[other][0]
			if _, err := b.Get(ctx, o, id); !errors.Is(err, taskstore.ErrNotFound) {
				t.Fatalf("owner %q reads task of %q: %v", o, other, err)
			}
			if _, err := b.Update(ctx, upd(o, id, []byte(`{}`)), 1); !errors.Is(err, taskstore.ErrNotFound) {
				t.Fatalf("owner %q updates task of %q: %v", o, other, err)
			}
			if existed, err := b.Delete(ctx, o, id); existed || err != nil {
				t.Fatalf("owner %q deletes task of %q: %v, %v", o, other, existed, err)
			}
		}
	}
	// Quota counts only the owner's own records.
	for _, o := range trickyOwners[:6] {
		err := b.Create(ctx, rec(o, `{}`), taskstore.Limits{MaxActive: 2})
		wantErr(t, fmt.Sprintf("Create for %q over quota", o), err, taskstore.ErrQuotaExceeded)
	}
}

func listAll(t testing.TB, b taskstore.Backend, owner string, pageSize int) []string {
	t.Helper()
	var ids []string
	after := ""
	for {
		recs, more, err := b.List(t.Context(), owner, after, pageSize)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) > pageSize {
			t.Fatalf("List returned %d records, limit %d", len(recs), pageSize)
		}
		for _, r := range recs {
			if r.Owner != owner {
				t.Fatalf("List(%q) returned a record of another owner", owner)
			}
			ids = append(ids, r.TaskID)
		}
		if !more {
			return ids
		}
		if len(recs) == 0 {
			t.Fatal("List returned no records but more=true")
		}
		after = recs[len(recs)-1].TaskID
	}
}

func testListPages(t *testing.T, b taskstore.Backend) {
	ctx := t.Context()
	var want []string
	for i := range 25 {
		r := rec("alice", fmt.Sprintf(`{"i":%d}`, i))
		mustCreate(t, b, r)
		want = append([]string{r.TaskID}, want...) // newest first
	}
	mustCreate(t, b, rec("alice:x", `{}`))
	// Exact pages: 10, 10, 5; more is false on the last.
	after := ""
	for i, size := range []int{10, 10, 5} {
		recs, more, err := b.List(ctx, "alice", after, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range recs {
			got = append(got, r.TaskID)
			if r.Version != 1 || !strings.HasPrefix(string(r.Data), `{"i":`) {
				t.Fatalf("listed record has version %d data %s", r.Version, r.Data)
			}
		}
		if diff := cmp.Diff(want[i*10:i*10+size], got); diff != "" {
			t.Fatalf("page %d (-want +got):\n%s", i, diff)
		}
		if wantMore := i < 2; more != wantMore {
			t.Fatalf("page %d: more=%v, want %v", i, more, wantMore)
		}
		after = recs[len(recs)-1].TaskID
	}
	// Exactly a page left: more is false.
	recs, more, err := b.List(ctx, "alice", want[14], 10)
	if err != nil || len(recs) != 10 || more {
		t.Fatalf("List of the last full page: %d records, more=%v, %v", len(recs), more, err)
	}
	// After the oldest id: nothing.
	recs, more, err = b.List(ctx, "alice", want[24], 10)
	if err != nil || len(recs) != 0 || more {
		t.Fatalf("List after the oldest: %d records, more=%v, %v", len(recs), more, err)
	}
	// After an id that is not stored: the position is still well defined.
	gap := taskid.New(time.Now())
	recs, _, err = b.List(ctx, "alice", gap, 3)
	if err != nil || len(recs) != 3 || recs[0].TaskID != want[0] {
		t.Fatalf("List after a newer unknown id: %d records, %v", len(recs), err)
	}
	if diff := cmp.Diff(want, listAll(t, b, "alice", 1)); diff != "" {
		t.Fatalf("pages of 1 (-want +got):\n%s", diff)
	}
	recs, more, err = b.List(ctx, "nobody", "", 10)
	if err != nil || len(recs) != 0 || more {
		t.Fatalf("List of an owner without records: %d, %v, %v", len(recs), more, err)
	}
}

// testListWhileCreating pages through an owner's records while others are
// created: the pages hold every record that existed at the start exactly
// once, and nothing else, since newer records sort before the cursor.
func testListWhileCreating(t *testing.T, b taskstore.Backend) {
	var want []string
	for range 30 {
		r := rec("alice", `{}`)
		mustCreate(t, b, r)
		want = append([]string{r.TaskID}, want...)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := b.Create(context.Background(), rec("alice", `{}`), taskstore.Limits{}); err != nil {
				t.Errorf("concurrent Create: %v", err)
				return
			}
		}
	})
	got := listAll(t, b, "alice", 7)
	close(stop)
	wg.Wait()
	// Records created during the listing may appear only before the first
	// page was read; the pre-existing ones must all be there, in order.
	i := 0
	for i < len(got) && got[i] > want[0] {
		i++
	}
	if diff := cmp.Diff(want, got[i:]); diff != "" {
		t.Fatalf("records existing before listing (-want +got):\n%s", diff)
	}
}

func testExpiry(t *testing.T, b taskstore.Backend) {
	ctx := t.Context()
	short := rec("alice", `{"short":true}`)
	short.ExpiresAt = time.Now().Add(shortTTL).Truncate(time.Millisecond)
	mustCreate(t, b, short)
	long := rec("alice", `{"short":false}`)
	long.ExpiresAt = time.Now().Add(time.Hour).Truncate(time.Millisecond)
	mustCreate(t, b, long)
	if _, err := b.Get(ctx, "alice", short.TaskID); err != nil {
		t.Fatalf("Get before expiry: %v", err)
	}
	wantErr(t, "quota before expiry", b.Create(ctx, rec("alice", `{}`), taskstore.Limits{MaxActive: 2}), taskstore.ErrQuotaExceeded)
	time.Sleep(time.Until(short.ExpiresAt) + expiryWait - shortTTL)

	_, err := b.Get(ctx, "alice", short.TaskID)
	wantErr(t, "Get after expiry", err, taskstore.ErrNotFound)
	_, err = b.Update(ctx, upd("alice", short.TaskID, []byte(`{}`)), 1)
	wantErr(t, "Update after expiry", err, taskstore.ErrNotFound)
	if diff := cmp.Diff([]string{long.TaskID}, listAll(t, b, "alice", 10)); diff != "" {
		t.Fatalf("List after expiry (-want +got):\n%s", diff)
	}
	if existed, err := b.Delete(ctx, "alice", short.TaskID); err != nil || existed {
		t.Fatalf("Delete after expiry: %v, %v; want false, nil", existed, err)
	}
	// The expired record no longer counts toward the quota.
	if err := b.Create(ctx, rec("alice", `{}`), taskstore.Limits{MaxActive: 2}); err != nil {
		t.Fatalf("Create after expiry with quota 2: %v", err)
	}
	if _, err := b.DeleteExpired(ctx); err != nil {
		t.Fatalf("DeleteExpired: %v", err)
	}
	if got := len(listAll(t, b, "alice", 10)); got != 2 {
		t.Fatalf("after DeleteExpired: %d records, want 2", got)
	}
	// An expired key may be created again.
	mustCreate(t, b, short)
}

func testQuota(t *testing.T, b taskstore.Backend) {
	ctx := t.Context()
	var first taskstore.Record
	for i := range 3 {
		r := rec("alice", `{}`)
		if err := b.Create(ctx, r, taskstore.Limits{MaxActive: 3}); err != nil {
			t.Fatalf("Create %d under quota: %v", i, err)
		}
		if i == 0 {
			first = r
		}
	}
	over := rec("alice", `{}`)
	wantErr(t, "Create over quota", b.Create(ctx, over, taskstore.Limits{MaxActive: 3}), taskstore.ErrQuotaExceeded)
	if _, err := b.Get(ctx, "alice", over.TaskID); !errors.Is(err, taskstore.ErrNotFound) {
		t.Fatalf("a refused Create left a record: %v", err)
	}
	if err := b.Create(ctx, rec("bob", `{}`), taskstore.Limits{MaxActive: 3}); err != nil {
		t.Fatalf("another owner's quota: %v", err)
	}
	if err := b.Create(ctx, rec("alice", `{}`), taskstore.Limits{}); err != nil {
		t.Fatalf("Create without quota: %v", err)
	}
	if _, err := b.Delete(ctx, "alice", first.TaskID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Create at quota after one delete", b.Create(ctx, rec("alice", `{}`), taskstore.Limits{MaxActive: 3}), taskstore.ErrQuotaExceeded)
	if err := b.Create(ctx, rec("alice", `{}`), taskstore.Limits{MaxActive: 4}); err != nil {
		t.Fatalf("Create under a larger quota: %v", err)
	}
}

// race runs fn in n goroutines released together and returns their errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// countErrs counts nil errors and errors matching want; any other error fails.
func countErrs(t testing.TB, errs []error, want error) (ok, matched int) {
	t.Helper()
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, want):
			matched++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	return ok, matched
}

func testQuotaRace(t *testing.T, b taskstore.Backend) {
	const n, quota = 16, 5
	errs := race(n, func(int) error {
		return b.Create(context.Background(), rec("alice", `{}`), taskstore.Limits{MaxActive: quota})
	})
	ok, refused := countErrs(t, errs, taskstore.ErrQuotaExceeded)
	if ok != quota || refused != n-quota {
		t.Fatalf("%d creates raced for a quota of %d: %d succeeded, %d refused", n, quota, ok, refused)
	}
	if got := len(listAll(t, b, "alice", 100)); got != quota {
		t.Fatalf("%d records stored, want %d", got, quota)
	}
}

func testCreateRace(t *testing.T, b taskstore.Backend) {
	r := rec("alice", `{}`)
	errs := race(10, func(i int) error {
		r := r
		r.Data = fmt.Appendf(nil, `{"writer":%d}`, i)
		return b.Create(context.Background(), r, taskstore.Limits{})
	})
	if ok, _ := countErrs(t, errs, taskstore.ErrAlreadyExists); ok != 1 {
		t.Fatalf("%d creates of one key succeeded, want exactly 1", ok)
	}
	got, err := b.Get(t.Context(), "alice", r.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	winner := -1
	for i, err := range errs {
		if err == nil {
			winner = i
		}
	}
	if want := fmt.Sprintf(`{"writer":%d}`, winner); string(got.Data) != want {
		t.Fatalf("stored %s, want the winner's %s", got.Data, want)
	}
}

func testUpdateRace(t *testing.T, b taskstore.Backend) {
	r := rec("alice", `{}`)
	mustCreate(t, b, r)
	errs := race(10, func(i int) error {
		_, err := b.Update(context.Background(), upd("alice", r.TaskID, fmt.Appendf(nil, `{"writer":%d}`, i)), 1)
		return err
	})
	if ok, _ := countErrs(t, errs, taskstore.ErrVersionConflict); ok != 1 {
		t.Fatalf("%d compare-and-swaps at one version succeeded, want exactly 1", ok)
	}
	got, err := b.Get(t.Context(), "alice", r.TaskID)
	if err != nil || got.Version != 2 {
		t.Fatalf("after the race: v%d, %v; want v2", got.Version, err)
	}
}

// testNoLostUpdate has many goroutines increment one counter with
// read-modify-compare-and-swap loops; every increment must land.
func testNoLostUpdate(t *testing.T, b taskstore.Backend) {
	const workers, each = 8, 15
	r := rec("alice", `0`)
	mustCreate(t, b, r)
	errs := race(workers, func(int) error {
		ctx := context.Background()
		for range each {
			for {
				cur, err := b.Get(ctx, "alice", r.TaskID)
				if err != nil {
					return err
				}
				var n int
				fmt.Sscan(string(cur.Data), &n)
				_, err = b.Update(ctx, upd("alice", r.TaskID, fmt.Append(nil, n+1)), cur.Version)
				if err == nil {
					break
				}
				if !errors.Is(err, taskstore.ErrVersionConflict) {
					return err
				}
			}
		}
		return nil
	})
	countErrs(t, errs, nil)
	got, err := b.Get(t.Context(), "alice", r.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint(workers * each); string(got.Data) != want || got.Version != workers*each+1 {
		t.Fatalf("counter %s at v%d, want %s at v%d", got.Data, got.Version, want, workers*each+1)
	}
}

func testLargeRecord(t *testing.T, b taskstore.Backend) {
	size := 200 << 10
	if m := b.MaxRecordSize(); m > 0 {
		size = m
	}
	doc := `{"s":"` + strings.Repeat("ü", (size-8)/2) + `"}`
	if len(doc) > size {
		t.Fatalf("test bug: %d > %d", len(doc), size)
	}
	r := rec("alice", doc)
	mustCreate(t, b, r)
	got, err := b.Get(t.Context(), "alice", r.TaskID)
	if err != nil || string(got.Data) != doc {
		t.Fatalf("record of %d bytes did not round-trip: %v", len(doc), err)
	}
	if m := b.MaxRecordSize(); m > 0 {
		big := rec("alice", `"`+strings.Repeat("x", m)+`"`)
		wantErr(t, "Create above MaxRecordSize", b.Create(t.Context(), big, taskstore.Limits{}), taskstore.ErrRecordTooLarge)
		_, err := b.Update(t.Context(), upd("alice", r.TaskID, big.Data), 1)
		wantErr(t, "Update above MaxRecordSize", err, taskstore.ErrRecordTooLarge)
		if _, err := b.Get(t.Context(), "alice", big.TaskID); !errors.Is(err, taskstore.ErrNotFound) {
			t.Fatalf("a refused Create left a record: %v", err)
		}
	}
}

func testCanceledContext(t *testing.T, b taskstore.Backend) {
	r := rec("alice", `{}`)
	mustCreate(t, b, r)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := b.Get(ctx, "alice", r.TaskID)
	wantErr(t, "Get with a canceled context", err, context.Canceled)
	wantErr(t, "Create with a canceled context", b.Create(ctx, rec("alice", `{}`), taskstore.Limits{}), context.Canceled)
	_, err = b.Update(ctx, upd("alice", r.TaskID, []byte(`{"x":1}`)), 1)
	wantErr(t, "Update with a canceled context", err, context.Canceled)
	_, _, err = b.List(ctx, "alice", "", 10)
	wantErr(t, "List with a canceled context", err, context.Canceled)
	got, err := b.Get(t.Context(), "alice", r.TaskID)
	if err != nil || got.Version != 1 {
		t.Fatalf("after canceled calls: v%d, %v", got.Version, err)
	}
}

func testCloseTwice(t *testing.T, b taskstore.Backend) {
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.Get(t.Context(), "alice", taskid.New(time.Now())); err == nil {
		t.Fatal("Get after Close succeeded")
	}
}
