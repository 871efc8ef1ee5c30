//go:build dynamodb

package mcptasks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
	gocmp "github.com/google/go-cmp/cmp"

	"github.com/mcptasks/mcptasks/internal/rawfloor"
	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

// errClass names the error of an update's result for comparison.
func errClass(err error) string {
	for _, e := range []error{taskstore.ErrNotFound, taskstore.ErrVersionConflict, taskstore.ErrRecordTooLarge} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return ""
}

// batchScenario stores the same records in every backend given, through
// the Backend interface, and returns a batch over them: claims, ends,
// updates of finished tasks, resumes, stale versions, missing and expired
// keys, another owner's key, the same key twice, in random order. One
// owner holds enough tasks that its ends span several transactions.
func batchScenario(t *testing.T, rng *rand.Rand, backends ...taskstore.Backend) []taskstore.Update {
	ctx := t.Context()
	each := func(what string, fn func(b taskstore.Backend) error) {
		t.Helper()
		for _, b := range backends {
			if err := fn(b); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	var updates []taskstore.Update
	add := func(r taskstore.Record, expected uint64) {
		updates = append(updates, taskstore.Update{Record: r, Expected: expected})
	}
	owners := []string{"big"}
	for i := range 20 {
		owners = append(owners, fmt.Sprintf("o%02d", i))
	}
	for _, owner := range owners {
		n := 5
		if owner == "big" {
			n = 180
		}
		for range n {
			r := taskstore.Record{Owner: owner, TaskID: taskid.New(time.Now()), Data: []byte(`{"v":1}`),
				Active: rng.IntN(4) > 0, Runner: "dead"}
			if !r.Active {
				r.Runner = ""
			}
			each("create", func(b taskstore.Backend) error { return b.Create(ctx, r, taskstore.Limits{}) })
			version := uint64(1)
			if rng.IntN(5) == 0 { // moved on since the caller read it
				each("update", func(b taskstore.Backend) error { _, err := b.Update(ctx, r, 1); return err })
				version = 2
			}
			next := r
			next.Data = fmt.Appendf(nil, `{"v":%d}`, version+1)
			switch k := rng.IntN(10); {
			case k < 4: // claim
				next.Active, next.Runner = true, "alive"
			case k < 8: // end
				next.Active, next.Runner = false, ""
			default: // same flag, another runner
				next.Runner = "other"
				if !next.Active {
					next.Runner = ""
				}
			}
			expected := version
			if rng.IntN(8) == 0 {
				expected = 1 + version%2 // stale, or ahead
			}
			add(next, expected)
			if rng.IntN(10) == 0 { // the same key again, after the first
				again := next
				again.Active = !next.Active
				again.Runner = map[bool]string{true: "alive"}[again.Active]
				add(again, expected+1)
			}
		}
	}
	// Deleted, missing, under another owner, expired.
	gone := taskstore.Record{Owner: "o00", TaskID: taskid.New(time.Now()), Data: []byte(`{}`), Active: true}
	each("create", func(b taskstore.Backend) error { return b.Create(ctx, gone, taskstore.Limits{}) })
	each("delete", func(b taskstore.Backend) error { _, err := b.Delete(ctx, gone.Owner, gone.TaskID); return err })
	add(gone, 1)
	add(taskstore.Record{Owner: "o01", TaskID: taskid.New(time.Now()), Data: []byte(`{}`)}, 1)
	add(taskstore.Record{Owner: "o02", TaskID: updates[0].Record.TaskID, Data: []byte(`{}`)}, 1)
	expired := taskstore.Record{Owner: "expired", TaskID: taskid.New(time.Now()), Data: []byte(`{}`), Active: true,
		ExpiresAt: time.Now().Add(300 * time.Millisecond)}
	each("create", func(b taskstore.Backend) error { return b.Create(ctx, expired, taskstore.Limits{}) })
	add(expired, 1)
	// Shuffle, keeping the updates of one key in their order.
	shuffled := make([]taskstore.Update, len(updates))
	slots := map[string][]int{}
	for i, j := range rng.Perm(len(updates)) {
		shuffled[i] = updates[j]
		slots[updates[j].Record.TaskID] = append(slots[updates[j].Record.TaskID], i)
	}
	for _, u := range updates {
		id := u.Record.TaskID
		slices.Sort(slots[id])
		shuffled[slots[id][0]], slots[id] = u, slots[id][1:]
	}
	time.Sleep(400 * time.Millisecond) // the expired record expires
	return shuffled
}

// TestDynamoDBUpdateMany runs a mixed batch against the memory backend and
// this one, from the same records: every result (version, error) is the
// memory backend's, so is every record afterwards, and the owners'
// counters equal their live (active) records.
func TestDynamoDBUpdateMany(t *testing.T) {
	eachDynamoServer(t, func(t *testing.T, b taskstore.Backend) {
		oracle := sharedTestBackends["memory"](t)
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		updates := batchScenario(t, rand.New(rand.NewPCG(seed, 0)), b, oracle)
		ctx := t.Context()
		want, err := oracle.(taskstore.BatchUpdater).UpdateMany(ctx, updates)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.(taskstore.BatchUpdater).UpdateMany(ctx, updates)
		if err != nil {
			t.Fatalf("UpdateMany: %v", err)
		}
		type result struct {
			Version uint64
			Err     string
		}
		results := func(rs []taskstore.UpdateResult) []result {
			var out []result
			for _, r := range rs {
				out = append(out, result{r.Version, errClass(r.Err)})
			}
			return out
		}
		if diff := gocmp.Diff(results(want), results(got)); diff != "" {
			t.Fatalf("results (-memory +dynamodb):\n%s", diff)
		}
		for _, u := range updates {
			r := u.Record
			w, werr := oracle.Get(ctx, r.Owner, r.TaskID)
			g, gerr := b.Get(ctx, r.Owner, r.TaskID)
			w.ExpiresAt, g.ExpiresAt = time.Time{}, time.Time{}
			if errClass(werr) != errClass(gerr) || !gocmp.Equal(w, g) {
				t.Errorf("%s/%s afterwards: %+v, %v; memory has %+v, %v", r.Owner, r.TaskID, g, gerr, w, werr)
			}
		}
		for _, owner := range []string{"big", "o00", "o07", "o19"} {
			if diff := gocmp.Diff(liveCounts(t, oracle, owner), readCounters(t, b, owner)); diff != "" {
				t.Errorf("counters of %s (-live +stored):\n%s", owner, diff)
			}
		}
		for _, runner := range []string{"dead", "alive", "other"} {
			if diff := gocmp.Diff(heldBy(t, oracle, runner), heldBy(t, b, runner)); diff != "" {
				t.Errorf("RunnerTasks(%s) (-memory +dynamodb):\n%s", runner, diff)
			}
		}
	})
}

// heldRecords creates n active records held by runner "dead", spread
// over owners owner0, owner1, … in turn, each created under lim.
func heldRecords(t *testing.T, b taskstore.Backend, n, owners int, lim taskstore.Limits) []taskstore.Record {
	recs := make([]taskstore.Record, 0, n)
	for i := range n {
		r := testRecord(fmt.Sprintf("owner%d", i%owners))
		r.Runner = "dead"
		if err := b.Create(t.Context(), r, lim); err != nil {
			t.Fatalf("Create: %v", err)
		}
		recs = append(recs, r)
	}
	return recs
}

// updatesOf is a batch setting recs to active and runner, each expected
// at version expected.
func updatesOf(recs []taskstore.Record, expected uint64, active bool, runner string) []taskstore.Update {
	out := make([]taskstore.Update, 0, len(recs))
	for _, r := range recs {
		r.Active, r.Runner = active, runner
		out = append(out, taskstore.Update{Record: r, Expected: expected})
	}
	return out
}

// liveCounts counts owner's live records and live active records.
func liveCounts(t *testing.T, b taskstore.Backend, owner string) ddbCounters {
	recs, _, err := b.List(t.Context(), owner, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var c ddbCounters
	for _, r := range recs {
		c.Stored++
		c.Active += int64(oneIf(r.Active))
	}
	return c
}

// heldBy returns the sorted ids of the live records held by runner.
func heldBy(t *testing.T, b taskstore.Backend, runner string) []string {
	recs, err := b.RunnerTasks(t.Context(), runner, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		if r.Runner == runner {
			ids = append(ids, r.TaskID)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestDynamoDBTxChunks pins how a batch is cut into transactions: 100
// actions (updates and counter updates), the byte bound, and owner
// boundaries where a cut would put one counter in two transactions.
func TestDynamoDBTxChunks(t *testing.T) {
	mk := func(perOwner, n, size int, ends bool) ([]taskstore.Update, []batchUpdate) {
		var updates []taskstore.Update
		var pending []batchUpdate
		for i := range n {
			r := taskstore.Record{Owner: fmt.Sprintf("o%04d", i/perOwner), TaskID: fmt.Sprint(i), Data: make([]byte, size), Active: !ends}
			updates = append(updates, taskstore.Update{Record: r, Expected: 1})
			pending = append(pending, batchUpdate{i: i, was: itemState{active: true}})
		}
		return updates, pending
	}
	for _, c := range []struct {
		name              string
		perOwner, n, size int
		ends              bool
		want              []int
	}{
		{"100 claims", 10, 100, 10, false, []int{100}},
		{"101 claims", 10, 101, 10, false, []int{100, 1}},
		{"90 ends of 10 owners: 100 actions", 10, 90, 10, true, []int{90}},
		{"100 ends of 10 owners: cut between owners", 10, 100, 10, true, []int{90, 10}},
		{"95 ends of owners of 7: cut between owners", 7, 95, 10, true, []int{84, 11}},
		{"ends of one owner each: 50 and 50 counters", 1, 120, 10, true, []int{50, 50, 20}},
		{"250 ends of one owner: it spans", 1000, 250, 10, true, []int{99, 99, 52}},
		{"large documents: the byte bound", 10, 25, 300_000, false, []int{11, 11, 3}},
	} {
		updates, pending := mk(c.perOwner, c.n, c.size, c.ends)
		var got []int
		for _, ch := range txChunks(updates, pending) {
			got = append(got, len(ch))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: chunks of %v, want %v", c.name, got, c.want)
		}
	}
}

// TestDynamoDBLocalUpdateManyRequests pins the requests of batches: one
// transaction for up to 100 actions (the updates and a counter update per
// owner whose active count moves), one more when conditions failed, and
// Update's own request for a batch of one.
func TestDynamoDBLocalUpdateManyRequests(t *testing.T) {
	t.Parallel()
	s := server(t, envDynamoDB)
	client, take := countingClient(s.endpoint)
	b := NewDynamoDBBackend(client, newTable(t, s), DynamoDBOptions{}).(*dynamoBackend)
	ctx := t.Context()
	recs := heldRecords(t, b, 100, 10, taskstore.Limits{})
	ended := recs[:90] // 9 of each owner's 10
	stale := updatesOf(recs[90:], 2, true, "alive")
	stale = append(stale, updatesOf(ended[:3], 2, true, "alive")...) // ended at version 3
	take()
	for _, step := range []struct {
		what    string
		updates []taskstore.Update
		want    string
		errs    int
	}{
		{"100 claims of 10 owners", updatesOf(recs, 1, true, "alive"), "TransactWriteItems×1", 0},
		{"90 ends of 10 owners (100 actions)", updatesOf(ended, 2, false, ""), "TransactWriteItems×1", 0},
		{"10 claims and 3 stale updates", stale, "TransactWriteItems×2", 3},
		{"5 resumes (the first guess fails)", updatesOf(ended[3:8], 3, true, "alive"), "TransactWriteItems×2", 0},
		{"a batch of one", updatesOf(recs[99:], 3, true, "again"), "UpdateItem×1", 0},
		{"an empty batch", nil, "", 0},
	} {
		res, err := b.UpdateMany(ctx, step.updates)
		got := take()
		if err != nil {
			t.Fatalf("%s: %v", step.what, err)
		}
		errs := 0
		for i, r := range res {
			switch {
			case r.Err == nil && r.Version == step.updates[i].Expected+1:
			case errors.Is(r.Err, taskstore.ErrVersionConflict):
				errs++
			default:
				t.Errorf("%s: update %d: %+v", step.what, i, r)
			}
		}
		t.Logf("%-40s %s", step.what, got)
		if got != step.want || errs != step.errs {
			t.Errorf("%s: %s and %d conflicts, want %s and %d", step.what, got, errs, step.want, step.errs)
		}
	}
	for i := range 10 {
		if c := readCounters(t, b, fmt.Sprintf("owner%d", i)); c.Active != 1+int64(oneIf(i >= 3 && i < 8)) || c.Stored != 10 {
			t.Errorf("counters of owner%d: %+v", i, c)
		}
	}
}

// TestDynamoDBLocalUpdateManyContext: a batch whose context ends returns
// the context's error and leaves no goroutine behind; each of its updates
// was applied or not, nothing else.
//
// Not parallel: it looks for goroutines of any batch in the process.
func TestDynamoDBLocalUpdateManyContext(t *testing.T) {
	b := newLocalBackend(t).(*dynamoBackend)
	recs := heldRecords(t, b, 300, 30, taskstore.Limits{})
	version := uint64(1)
	for _, wait := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		var updates []taskstore.Update
		for i, r := range recs {
			r.Active = i%2 == 0 // half of them end: counters move too
			updates = append(updates, taskstore.Update{Record: r, Expected: version})
		}
		res, err := b.UpdateMany(ctx, updates)
		cancel()
		if err == nil {
			t.Logf("deadline %v: the batch finished first", wait)
			for _, r := range res {
				if r.Err != nil {
					t.Fatalf("deadline %v: %v", wait, r.Err)
				}
			}
		} else if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("deadline %v: %v, want the context's error", wait, err)
		}
		if stacks := batchGoroutines(); stacks != "" {
			t.Fatalf("after the batch returned, goroutines of it remain:\n%s", stacks)
		}
		// Bring every record to the same version for the next round.
		for _, r := range recs {
			got, err := b.Get(t.Context(), r.Owner, r.TaskID)
			if err != nil || got.Version < version || got.Version > version+1 {
				t.Fatalf("deadline %v: %s at v%d (%v), want v%d or v%d", wait, r.TaskID, got.Version, err, version, version+1)
			}
			if got.Version == version {
				// A request the client gave up on may still land now.
				if _, err := b.Update(t.Context(), got, version); errors.Is(err, taskstore.ErrVersionConflict) {
					got, err = b.Get(t.Context(), r.Owner, r.TaskID)
					if err != nil || got.Version != version+1 {
						t.Fatalf("%s at v%d (%v) after a conflict at v%d", r.TaskID, got.Version, err, version)
					}
				} else if err != nil {
					t.Fatal(err)
				}
			}
		}
		version++
		for i := range 30 {
			if c := readCounters(t, b, fmt.Sprintf("owner%d", i)); c.Stored != 10 {
				t.Fatalf("counters of owner%d: %+v", i, c)
			}
		}
	}
}

// batchGoroutines returns the stacks of goroutines running UpdateMany's
// parts.
func batchGoroutines() string {
	buf := make([]byte, 1<<20)
	var found []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "(*dynamoBackend).updateChunk") || strings.Contains(g, "mcptasks.inParallel") {
			found = append(found, g)
		}
	}
	return strings.Join(found, "\n\n")
}

// TestDynamoDBLocalUpdateManyWithCreates ends tasks in batches while
// creates of the same owners run under an active quota: the creates and
// the batches' counter updates conflict (TransactionConflict, retried),
// and afterwards each owner's counters equal its live records and the
// quota held.
func TestDynamoDBLocalUpdateManyWithCreates(t *testing.T) {
	t.Parallel()
	b := newLocalBackend(t).(*dynamoBackend)
	ctx := t.Context()
	const owners, quota = 4, 40
	lim := taskstore.Limits{MaxActive: quota}
	recs := heldRecords(t, b, owners*30, owners, lim)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for c := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				err := b.Create(ctx, testRecord(fmt.Sprintf("owner%d", (c+i)%owners)), lim)
				if err != nil && !errors.Is(err, taskstore.ErrQuotaExceeded) {
					t.Errorf("Create: %v", err)
					return
				}
			}
		})
	}
	for i := 0; i < len(recs); i += 40 {
		updates := updatesOf(recs[i:min(len(recs), i+40)], 1, false, "")
		res, err := b.UpdateMany(ctx, updates)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil || r.Version != 2 {
				t.Fatalf("an end: %+v", r)
			}
		}
	}
	close(stop)
	wg.Wait()
	for o := range owners {
		owner := fmt.Sprintf("owner%d", o)
		c := liveCounts(t, b, owner)
		if c.Active > quota {
			t.Errorf("%s: %d active, quota %d", owner, c.Active, quota)
		}
		if diff := gocmp.Diff(c, readCounters(t, b, owner)); diff != "" {
			t.Errorf("counters of %s (-live +stored):\n%s", owner, diff)
		}
	}
}

// failingTransactions is a client for endpoint whose TransactWriteItems
// calls fail with fault's error, before they are sent, when it returns one.
func failingTransactions(endpoint string, fault func(in *dynamodb.TransactWriteItemsInput) error) *dynamodb.Client {
	return dynamodb.New(newTestClient(endpoint).Options(), func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("fault",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					if tw, ok := in.Parameters.(*dynamodb.TransactWriteItemsInput); ok {
						if err := fault(tw); err != nil {
							return middleware.InitializeOutput{}, middleware.Metadata{}, err
						}
					}
					return next.HandleInitialize(ctx, in)
				}), middleware.Before)
		})
	})
}

// canceled is the cancellation of in with code on its action at index at
// ("None" on the others).
func canceled(in *dynamodb.TransactWriteItemsInput, at int, code string) error {
	reasons := make([]types.CancellationReason, len(in.TransactItems))
	for i := range reasons {
		reasons[i].Code = aws.String("None")
	}
	reasons[at].Code = aws.String(code)
	return &types.TransactionCanceledException{Message: aws.String("Transaction cancelled"), CancellationReasons: reasons}
}

// TestDynamoDBLocalUpdateManyCancellations: transactions canceled by a
// conflict with another write are sent again after a backoff, and the
// batch lands whole; one canceled for another reason (throttling) or that
// fails outright gives its updates ErrBackend and applies none of them.
// DynamoDB Local runs transactions one at a time and never reports
// conflicts, so the client makes them up.
func TestDynamoDBLocalUpdateManyCancellations(t *testing.T) {
	t.Parallel()
	s := server(t, envDynamoDB)
	var mu sync.Mutex
	var faults []func(in *dynamodb.TransactWriteItemsInput) error // one per call, then none
	client := failingTransactions(s.endpoint, func(in *dynamodb.TransactWriteItemsInput) error {
		mu.Lock()
		defer mu.Unlock()
		if len(faults) == 0 {
			return nil
		}
		f := faults[0]
		faults = faults[1:]
		return f(in)
	})
	b := NewDynamoDBBackend(client, newTable(t, s), DynamoDBOptions{}).(*dynamoBackend)
	ctx := t.Context()
	recs := heldRecords(t, b, 30, 3, taskstore.Limits{})
	conflictOnLast := func(in *dynamodb.TransactWriteItemsInput) error {
		return canceled(in, len(in.TransactItems)-1, "TransactionConflict") // an owner's counter
	}
	for _, c := range []struct {
		name   string
		faults []func(*dynamodb.TransactWriteItemsInput) error
		want   error
	}{
		{"throttled", []func(*dynamodb.TransactWriteItemsInput) error{
			func(in *dynamodb.TransactWriteItemsInput) error { return canceled(in, 0, "ThrottlingError") },
		}, taskstore.ErrBackend},
		{"failed", []func(*dynamodb.TransactWriteItemsInput) error{
			func(*dynamodb.TransactWriteItemsInput) error { return errors.New("connection reset") },
		}, taskstore.ErrBackend},
		{"three conflicts", []func(*dynamodb.TransactWriteItemsInput) error{conflictOnLast, conflictOnLast, conflictOnLast}, nil},
	} {
		mu.Lock()
		faults = c.faults
		mu.Unlock()
		res, err := b.UpdateMany(ctx, updatesOf(recs, 1, false, ""))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for i, r := range res {
			if c.want == nil && (r.Err != nil || r.Version != 2) || c.want != nil && !errors.Is(r.Err, c.want) {
				t.Fatalf("%s: update %d: %+v, want %v", c.name, i, r, c.want)
			}
		}
		mu.Lock()
		left := len(faults)
		mu.Unlock()
		if left != 0 {
			t.Fatalf("%s: %d faults not reached", c.name, left)
		}
		want := ddbCounters{Stored: 10, Active: 10}
		if c.want == nil {
			want.Active = 0
		}
		for o := range 3 {
			if diff := gocmp.Diff(want, readCounters(t, b, fmt.Sprintf("owner%d", o))); diff != "" {
				t.Fatalf("%s: counters of owner%d (-want +got):\n%s", c.name, o, diff)
			}
		}
	}
}

// --- benchmark ---
//
//	eval "$(scripts/dynamodb_up.sh /tmp/ddb)"
//	go test -tags dynamodb -run '^$' -bench DynamoDBUpdateMany -benchtime 10x -count 3 .

// BenchmarkDynamoDBUpdateMany measures UpdateMany against the raw batch
// floor (rawfloor.OpenBatch: BatchWriteItem replacing as many items of the
// same size, 25 a request, without condition, counter, transaction or
// index) and against Update, on batches of 100 and 1000 tasks of 512
// bytes held by a dead runner, 10 per owner: claims (another runner takes
// them: they stay active, no counter moves) and ends (they stop being
// active: each owner's counter moves in the same transaction). Update
// runs one at a time and 32 in flight, on 100 other tasks. Every round
// (one of b.N, after one unmeasured) runs each phase in turn, on one
// table with one caller, so that a busy machine slows all of them alike:
// Update once, the floor and UpdateMany 500 updates' worth (5 batches of
// 100, 1 of 1000), untimed resets between them where needed. It reports each phase's
// updates/s and requests (round trips) per update, and each one's rate
// and requests as ratios to the floor's (reportBatchPhases).
func BenchmarkDynamoDBUpdateMany(b *testing.B) {
	const size = 512
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			db := newLocalBackend(b).(*dynamoBackend)
			ctx := b.Context()
			write, cleanup, err := rawfloor.OpenBatch(ctx, db, n, size)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { cleanup(context.Background()) })
			tasks := func(prefix string, count int) []taskstore.Record {
				recs := make([]taskstore.Record, count)
				for i := range recs {
					recs[i] = taskstore.Record{Owner: fmt.Sprintf("%s%d", prefix, i/10), TaskID: taskid.New(time.Now()),
						Data: make([]byte, size), Active: true, Runner: "dead"}
				}
				return recs
			}
			batch, others := tasks("owner", n), tasks("other", 100)
			// reset stores recs at version 1, active, held by "dead", and
			// their owners' counters to match.
			reset := func(recs []taskstore.Record) error {
				var items []map[string]types.AttributeValue
				for i, r := range recs {
					items = append(items, db.taskItem(r))
					if i%10 == 0 {
						items = append(items, map[string]types.AttributeValue{ddbPK: ownerPK(r.Owner), ddbSK: ddbS(ddbMetaSK),
							ddbStoredN: ddbN(10), ddbActiveN: ddbN(10), ddbSeq: ddbN(1)})
					}
				}
				return batchPut(ctx, db, items)
			}
			many := func(updates []taskstore.Update) error {
				res, err := db.UpdateMany(ctx, updates)
				for _, r := range res {
					err = cmp.Or(err, r.Err)
				}
				return err
			}
			each := func(inFlight int, updates []taskstore.Update) error {
				errs := make([]error, len(updates))
				inParallel(ctx, len(updates), inFlight, func(j int) {
					_, errs[j] = db.Update(ctx, updates[j].Record, updates[j].Expected)
				})
				return errors.Join(errs...)
			}
			// A phase runs reps times; reset (untimed) runs before the
			// reps that find it set: claims take turns between two runners
			// from version 1 on, each end needs active records.
			reps := max(1, 500/n)
			runners := [2]string{"alive", "dead"}
			phases := []struct {
				name        string
				count, reps int
				reset       func(rep int) []taskstore.Record
				run         func(rep int) error
			}{
				{"floor", n, reps, nil, func(int) error { return write(ctx) }},
				{"UpdateMany-claims", n, reps, first(batch), func(rep int) error {
					return many(updatesOf(batch, uint64(1+rep), true, runners[rep%2]))
				}},
				{"UpdateMany-ends", n, reps, always(batch), func(int) error { return many(updatesOf(batch, 1, false, "")) }},
				{"Update-claims", 100, 1, first(others), func(int) error { return each(1, updatesOf(others, 1, true, "alive")) }},
				{"Update-ends", 100, 1, nil, func(int) error { return each(1, updatesOf(others, 2, false, "")) }},
				{"Update32-claims", 100, 1, first(others), func(int) error { return each(32, updatesOf(others, 1, true, "alive")) }},
				{"Update32-ends", 100, 1, nil, func(int) error { return each(32, updatesOf(others, 2, false, "")) }},
			}
			spent, done, trips := map[string]time.Duration{}, map[string]int{}, map[string]int64{}
			round := func() {
				for _, p := range phases {
					for rep := range p.reps {
						if recs := resetting(p.reset, rep); recs != nil {
							b.StopTimer()
							if err := reset(recs); err != nil {
								b.Fatal(err)
							}
							b.StartTimer()
						}
						before, start := totalRequests(), time.Now()
						if err := p.run(rep); err != nil {
							b.Fatalf("%s: %v", p.name, err)
						}
						spent[p.name] += time.Since(start)
						done[p.name] += p.count
						trips[p.name] += totalRequests() - before
					}
				}
			}
			// One round before measuring: a fresh DynamoDB Local compiles
			// its code paths (JIT) during its first requests.
			round()
			clear(spent)
			clear(done)
			clear(trips)
			b.ResetTimer()
			for range b.N {
				round()
			}
			b.StopTimer()
			var names []string
			for _, p := range phases {
				names = append(names, p.name)
			}
			reportBatchPhases(b, "update", names, spent, done, trips)
		})
	}
}

// resetting is what a phase resets before rep: nothing when it has no
// reset.
func resetting(reset func(rep int) []taskstore.Record, rep int) []taskstore.Record {
	if reset == nil {
		return nil
	}
	return reset(rep)
}

// first resets recs before a phase's first rep only; always before each.
func first(recs []taskstore.Record) func(rep int) []taskstore.Record {
	return func(rep int) []taskstore.Record {
		if rep == 0 {
			return recs
		}
		return nil
	}
}

func always(recs []taskstore.Record) func(int) []taskstore.Record {
	return func(int) []taskstore.Record { return recs }
}

// BenchmarkDynamoDBTakeover: benchTakeover, round trips counted as the
// client's requests.
//
//	go test -tags dynamodb -run '^$' -bench DynamoDBTakeover -benchtime 3x .
func BenchmarkDynamoDBTakeover(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			benchTakeover(b, newLocalBackend(b), totalRequests, n)
		})
	}
}
