//go:build dynamodb

package mcptasks

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
	gocmp "github.com/google/go-cmp/cmp"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

// bothServers runs fn against DynamoDB Local and dynalite.
func bothServers(t *testing.T, fn func(t *testing.T, newBackend func(testing.TB) taskstore.Backend)) {
	for name, nb := range map[string]func(testing.TB) taskstore.Backend{
		"dynamodb-local": newLocalBackend,
		"dynalite":       newDynaliteBackend,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, nb)
		})
	}
}

func statusRecord(owner, id string, st taskstore.Status) taskstore.Record {
	return taskstore.Record{Owner: owner, TaskID: id, Data: []byte(`{"s":"` + string(st) + `"}`),
		Active: !st.Terminal(), Status: st}
}

// listAll pages through ListByStatus with limit and returns the keys it
// listed, checking that every page but the last is full and that only
// the last says no more follow.
func listAll(t *testing.T, b taskstore.Backend, st taskstore.Status, limit int) []taskstore.Key {
	t.Helper()
	var got []taskstore.Key
	var after taskstore.Key
	for page := 0; ; page++ {
		recs, more, err := b.(taskstore.StatusIndex).ListByStatus(t.Context(), st, after, limit)
		if err != nil {
			t.Fatalf("ListByStatus(%s, after %v, %d): %v", st, after, limit, err)
		}
		for _, r := range recs {
			if r.Status != st {
				t.Fatalf("ListByStatus(%s) returned %s/%s with status %q", st, r.Owner, r.TaskID, r.Status)
			}
			got = append(got, taskstore.Key{Owner: r.Owner, TaskID: r.TaskID})
		}
		if !more {
			return got
		}
		if len(recs) != limit {
			t.Fatalf("page %d of limit %d: %d records and more=true", page, limit, len(recs))
		}
		after = got[len(got)-1]
		if page > 1000 {
			t.Fatal("ListByStatus does not end")
		}
	}
}

// sameShardOwners returns n owners whose item for id falls in one index
// shard, and one whose item falls in another.
func sameShardOwners(id string, n int) (same []string, other string) {
	want := statusShard("tie-0", id)
	for i := 0; len(same) < n || other == ""; i++ {
		o := fmt.Sprintf("tie-%d", i)
		switch {
		case statusShard(o, id) == want && len(same) < n:
			same = append(same, o)
		case statusShard(o, id) != want && other == "":
			other = o
		}
	}
	return same, other
}

// TestDynamoDBStatusListOrder: ListByStatus merges the index shards into
// (task id, owner) order at every page size, including one task id under
// several owners in one shard (a tie the index cannot order, cut by the
// small Queries of small pages) and in different shards; it skips other
// statuses, expired records, and index entries that no longer match the
// table (as a lagging GSI would show them).
func TestDynamoDBStatusListOrder(t *testing.T) {
	bothServers(t, func(t *testing.T, newBackend func(testing.TB) taskstore.Backend) {
		b := newBackend(t)
		db := b.(*dynamoBackend)
		var now atomic.Int64
		now.Store(time.Now().UnixNano())
		setDynamoClock(b, func() time.Time { return time.Unix(0, now.Load()) })
		ctx := t.Context()
		var want []taskstore.Key
		create := func(r taskstore.Record) {
			t.Helper()
			if err := b.Create(ctx, r, taskstore.Limits{}); err != nil {
				t.Fatal(err)
			}
			if r.Status == taskstore.StatusWorking && r.ExpiresAt.IsZero() {
				want = append(want, taskstore.Key{Owner: r.Owner, TaskID: r.TaskID})
			}
		}
		t0 := time.Now()
		for i := range 40 {
			id := taskid.New(t0.Add(time.Duration(i) * time.Millisecond))
			owner := fmt.Sprintf("owner-%d", i%7)
			switch {
			case i == 10:
				same, other := sameShardOwners(id, 5)
				for _, o := range append(same, other) {
					create(statusRecord(o, id, taskstore.StatusWorking))
				}
			case i%5 == 1:
				create(statusRecord(owner, id, taskstore.StatusInputRequired))
			case i%5 == 2:
				r := statusRecord(owner, id, taskstore.StatusWorking)
				r.ExpiresAt = time.Unix(0, now.Load()).Add(time.Minute)
				create(r)
			default:
				create(statusRecord(owner, id, taskstore.StatusWorking))
			}
		}
		// An index entry the table contradicts: status_key says working,
		// status says completed.
		stale := statusRecord("stale", taskid.New(t0.Add(15*time.Millisecond)), taskstore.StatusCompleted)
		item := db.taskItem(stale)
		item[ddbStatusKey] = ddbS(statusKey(taskstore.StatusWorking, statusShard(stale.Owner, stale.TaskID)))
		if _, err := db.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(db.table), Item: item}); err != nil {
			t.Fatal(err)
		}
		now.Add(int64(2 * time.Minute)) // the records with a TTL expire
		slices.SortFunc(want, func(x, y taskstore.Key) int {
			return statusCand{owner: x.Owner, id: x.TaskID}.cmp(statusCand{owner: y.Owner, id: y.TaskID})
		})
		for _, limit := range []int{1, 2, 3, 7, 1000} {
			if diff := gocmp.Diff(want, listAll(t, b, taskstore.StatusWorking, limit)); diff != "" {
				t.Errorf("limit %d: (-want +got)\n%s", limit, diff)
			}
		}
		// A cursor in the middle of the tie (want[6:12]) starts right after it.
		if want[8].TaskID != want[9].TaskID {
			t.Fatalf("want[8:10] is not in the tie: %v", want[8:10])
		}
		recs, _, err := db.ListByStatus(ctx, taskstore.StatusWorking, want[8], 3)
		if err != nil || len(recs) != 3 || recs[0].Owner != want[9].Owner || recs[0].TaskID != want[9].TaskID {
			t.Fatalf("after %v: %+v, %v; want %v first", want[8], recs, err, want[9])
		}
		if got := listAll(t, b, taskstore.StatusCompleted, 10); len(got) != 0 {
			t.Errorf("completed: %v, want none (the only completed item is not indexed as such)", got)
		}
		for _, limit := range []int{0, -1, taskstore.MaxStatusPage + 1} {
			if _, _, err := db.ListByStatus(ctx, taskstore.StatusWorking, taskstore.Key{}, limit); !errors.Is(err, taskstore.ErrInvalidArgument) {
				t.Errorf("limit %d: %v, want ErrInvalidArgument", limit, err)
			}
		}
	})
}

// statusCounts returns the backend's counts, failing the test on error.
func statusCounts(t *testing.T, b taskstore.Backend) map[taskstore.Status]int64 {
	t.Helper()
	got, err := b.(taskstore.StatusIndex).CountByStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestDynamoDBStatusCounts: the counters follow creates, status changes
// by Update and UpdateMany, and deletes exactly; records that expire stay
// counted (the server's TTL tells nobody) until DeleteExpired removes
// them or their 10-minute bucket ends, which also counts out what the TTL
// deleted unseen.
func TestDynamoDBStatusCounts(t *testing.T) {
	bothServers(t, func(t *testing.T, newBackend func(testing.TB) taskstore.Backend) {
		b := newBackend(t)
		db := b.(*dynamoBackend)
		var now atomic.Int64
		// Just past the start of a bucket, so that records expiring in a
		// minute share it with nothing else of the test.
		start := time.Now().Truncate(ddbCountBucket).Add(ddbCountBucket + time.Second)
		now.Store(start.UnixNano())
		setDynamoClock(b, func() time.Time { return time.Unix(0, now.Load()) })
		ctx := t.Context()
		want := map[taskstore.Status]int64{}
		check := func(what string) {
			t.Helper()
			maps.DeleteFunc(want, func(_ taskstore.Status, n int64) bool { return n == 0 })
			if diff := gocmp.Diff(want, statusCounts(t, b)); diff != "" {
				t.Fatalf("%s: counts (-want +got)\n%s", what, diff)
			}
		}
		var recs []taskstore.Record
		for i := range 12 {
			r := statusRecord(fmt.Sprintf("o%d", i%3), taskid.New(time.Now()), taskstore.StatusWorking)
			switch {
			case i < 4:
				r.ExpiresAt = start.Add(time.Minute) // expires early in this bucket
			case i < 8:
				r.ExpiresAt = start.Add(2 * time.Hour)
			}
			if err := b.Create(ctx, r, taskstore.Limits{}); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
		want[taskstore.StatusWorking] = 12
		check("after 12 creates")

		move := func(r *taskstore.Record, st taskstore.Status, v uint64) {
			t.Helper()
			want[r.Status]--
			want[st]++
			*r = statusRecord(r.Owner, r.TaskID, st)
			if _, err := b.Update(ctx, *r, v); err != nil {
				t.Fatal(err)
			}
		}
		move(&recs[0], taskstore.StatusInputRequired, 1)
		move(&recs[4], taskstore.StatusCompleted, 1)
		move(&recs[8], taskstore.StatusFailed, 1)
		move(&recs[0], taskstore.StatusWorking, 2)
		if _, err := b.Update(ctx, recs[1], 1); err != nil { // no move
			t.Fatal(err)
		}
		check("after Updates")

		var batch []taskstore.Update
		for i, st := range map[int]taskstore.Status{1: taskstore.StatusCancelled, 5: taskstore.StatusInputRequired,
			9: taskstore.StatusCompleted, 10: taskstore.StatusWorking, 11: taskstore.StatusCancelled} {
			want[recs[i].Status]--
			want[st]++
			v := uint64(1)
			if i == 1 {
				v = 2
			}
			recs[i] = statusRecord(recs[i].Owner, recs[i].TaskID, st)
			batch = append(batch, taskstore.Update{Record: recs[i], Expected: v})
		}
		res, err := b.(taskstore.BatchUpdater).UpdateMany(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("UpdateMany[%d]: %v", i, r.Err)
			}
		}
		check("after UpdateMany")

		if ok, err := b.Delete(ctx, recs[11].Owner, recs[11].TaskID); err != nil || !ok {
			t.Fatalf("Delete: %v, %v", ok, err)
		}
		want[recs[11].Status]--
		check("after Delete")

		// recs[0..3] expire. The server's TTL removes two unseen (as it
		// may at any time after expiry): they stay counted.
		now.Add(int64(2 * time.Minute))
		for _, r := range recs[2:4] {
			if _, err := db.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(db.table), Key: taskKey(r.Owner, r.TaskID)}); err != nil {
				t.Fatal(err)
			}
		}
		check("after expiry and TTL deletes (approximate: still counted)")
		// DeleteExpired removes and counts out the two the TTL left.
		if n, err := b.DeleteExpired(ctx); err != nil || n != 2 {
			t.Fatalf("DeleteExpired: %d, %v; want 2", n, err)
		}
		want[recs[0].Status]--
		want[recs[1].Status]--
		check("after DeleteExpired")
		// The bucket ends: the two the TTL deleted are counted out too.
		now.Store(start.Truncate(ddbCountBucket).Add(ddbCountBucket).UnixNano())
		want[recs[2].Status] -= 2
		check("after the bucket ended")
		// And everything else when theirs end.
		now.Add(int64(3 * time.Hour))
		want = map[taskstore.Status]int64{}
		for _, r := range recs[8:11] {
			want[r.Status]++
		}
		check("3 hours later")
	})
}

// TestDynamoDBStatusCountBuckets pins the bucket arithmetic: a record is
// counted in the bucket that ends at or after its expiry, and a bucket is
// read while its end is in the future.
func TestDynamoDBStatusCountBuckets(t *testing.T) {
	g := ddbCountBucket
	base := time.Unix(1_800_000_000, 0).Truncate(g) // a bucket boundary
	for _, c := range []struct {
		exp     time.Time
		wantEnd time.Time
	}{
		{base, base},
		{base.Add(time.Nanosecond), base.Add(g)},
		{base.Add(g - time.Nanosecond), base.Add(g)},
		{base.Add(g), base.Add(g)},
	} {
		sk, end := countBucket(c.exp.UnixNano())
		if end != c.wantEnd.Unix() || sk != fmt.Sprintf("B#%012d", c.wantEnd.Unix()) {
			t.Errorf("countBucket(%v) = %s, %d; want end %d", c.exp, sk, end, c.wantEnd.Unix())
		}
		if !bucketPassed(c.exp.UnixNano(), c.wantEnd) || bucketPassed(c.exp.UnixNano(), c.wantEnd.Add(-time.Nanosecond)) {
			t.Errorf("bucketPassed(%v) is wrong around %v", c.exp, c.wantEnd)
		}
	}
	if sk, end := countBucket(0); sk != ddbNoExpiry || end != 0 || bucketPassed(0, base.Add(100*365*24*time.Hour)) {
		t.Errorf("no expiry: %s, %d", sk, end)
	}
	if !(ddbNoExpiry > fmt.Sprintf("B#%012d", int64(1)<<38)) {
		t.Error("the counters without expiry must sort after every bucket")
	}
}

// TestDynamoDBLocalStatusIndexUpgrade: a table of the previous release
// (runner-index only) keeps working for writes, ListByStatus explains
// what is missing, and CreateDynamoDBTable adds status-index, which
// DynamoDB backfills from the items written meanwhile. Items the previous
// release wrote have no status and appear once rewritten. (dynalite's
// UpdateTable cannot add an index.)
func TestDynamoDBLocalStatusIndexUpgrade(t *testing.T) {
	t.Parallel()
	s := server(t, envDynamoDB)
	table := oldTable(t, s, runnerIndex())
	b := NewDynamoDBBackend(s.client, table, DynamoDBOptions{}).(*dynamoBackend)
	ctx := t.Context()
	fresh := statusRecord("alice", taskid.New(time.Now()), taskstore.StatusWorking)
	if err := b.Create(ctx, fresh, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	// What the previous release wrote: no status attributes.
	old := testRecord("bob")
	if err := b.Create(ctx, old, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	_, _, err := b.ListByStatus(ctx, taskstore.StatusWorking, taskstore.Key{}, 10)
	if !errors.Is(err, taskstore.ErrBackend) || !strings.Contains(err.Error(), "index status-index is missing") ||
		!strings.Contains(err.Error(), "mcptasks dynamodb create-table dynamodb://"+table) {
		t.Fatalf("ListByStatus on a table without status-index: %v", err)
	}
	if got := statusCounts(t, b); got[taskstore.StatusWorking] != 1 {
		t.Fatalf("counts need no index: %v", got)
	}

	if err := CreateDynamoDBTable(ctx, s.client, table); err != nil {
		t.Fatalf("upgrading the table: %v", err)
	}
	if got := activeIndexes(t, s, table); !slices.Equal(got, []string{DynamoDBRunnerIndex, DynamoDBStatusIndex}) {
		t.Fatalf("active indexes after the upgrade: %v", got)
	}
	key := func(r taskstore.Record) taskstore.Key { return taskstore.Key{Owner: r.Owner, TaskID: r.TaskID} }
	if got := listAll(t, b, taskstore.StatusWorking, 10); !slices.Equal(got, []taskstore.Key{key(fresh)}) {
		t.Fatalf("after the upgrade: %v, want only the record written with its status", got)
	}
	old.Status = taskstore.StatusWorking
	if _, err := b.Update(ctx, old, 1); err != nil {
		t.Fatal(err)
	}
	if got := listAll(t, b, taskstore.StatusWorking, 10); !slices.Equal(got, []taskstore.Key{key(fresh), key(old)}) {
		t.Fatalf("after rewriting the old record: %v", got)
	}
	if got := statusCounts(t, b); got[taskstore.StatusWorking] != 2 {
		t.Fatalf("counts after rewriting the old record: %v", got)
	}
}

// capacityClient is a client of its own for endpoint that asks every
// write for the capacity it consumed on status-index
// (ReturnConsumedCapacity=INDEXES), and take, which returns what was sent
// since the last take: requests by operation, items written (the actions
// of a transaction, 1 for a plain write) and status-index write units.
// (DynamoDB Local's figures for the table itself are not AWS's for
// transactions: three small puts in one transaction report 2 units.)
func capacityClient(endpoint string) (*dynamodb.Client, func() (reqs string, items int, index float64)) {
	var mu sync.Mutex
	counts := map[string]int{}
	var items int
	var index float64
	add := func(ccs ...types.ConsumedCapacity) {
		for _, cc := range ccs {
			if g, ok := cc.GlobalSecondaryIndexes[DynamoDBStatusIndex]; ok {
				index += aws.ToFloat64(g.CapacityUnits)
			}
		}
	}
	client := dynamodb.New(newTestClient(endpoint).Options(), func(o *dynamodb.Options) {
		o.APIOptions = []func(*middleware.Stack) error{func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("capacity",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					const idx = types.ReturnConsumedCapacityIndexes
					n := 1
					switch p := in.Parameters.(type) {
					case *dynamodb.PutItemInput:
						p.ReturnConsumedCapacity = idx
					case *dynamodb.UpdateItemInput:
						p.ReturnConsumedCapacity = idx
					case *dynamodb.DeleteItemInput:
						p.ReturnConsumedCapacity = idx
					case *dynamodb.TransactWriteItemsInput:
						p.ReturnConsumedCapacity = idx
						n = len(p.TransactItems)
					default:
						n = 0
					}
					out, md, err := next.HandleInitialize(ctx, in)
					mu.Lock()
					defer mu.Unlock()
					counts[awsmiddleware.GetOperationName(ctx)]++
					items += n
					switch r := out.Result.(type) {
					case *dynamodb.PutItemOutput:
						add(deref(r.ConsumedCapacity)...)
					case *dynamodb.UpdateItemOutput:
						add(deref(r.ConsumedCapacity)...)
					case *dynamodb.DeleteItemOutput:
						add(deref(r.ConsumedCapacity)...)
					case *dynamodb.TransactWriteItemsOutput:
						add(r.ConsumedCapacity...)
					}
					return out, md, err
				}), middleware.Before)
		}}
	})
	take := func() (string, int, float64) {
		mu.Lock()
		defer mu.Unlock()
		n, i := items, index
		items, index = 0, 0
		return takeCounts(counts), n, i
	}
	return client, take
}

func deref(cc *types.ConsumedCapacity) []types.ConsumedCapacity {
	if cc == nil {
		return nil
	}
	return []types.ConsumedCapacity{*cc}
}

// TestDynamoDBLocalStatusWriteCost measures what keeping the status index
// and counters adds to each write of a task's life on DynamoDB Local: the
// same writes of a record without a status (what the previous release
// wrote: no status-index entry, no counter) next to one with a status.
// Requests and items written are pinned; docs/dynamodb.md turns them into
// AWS write units.
func TestDynamoDBLocalStatusWriteCost(t *testing.T) {
	s := server(t, envDynamoDB)
	client, take := capacityClient(s.endpoint)
	b := NewDynamoDBBackend(client, newTable(t, s), DynamoDBOptions{})
	ctx := t.Context()
	v := uint64(1)
	update := func(st taskstore.Status) func(r *taskstore.Record) error {
		return func(r *taskstore.Record) error {
			if r.Status != "" {
				r.Status = st
			}
			r.Active = !st.Terminal()
			_, err := b.Update(ctx, *r, v)
			v++
			return err
		}
	}
	type cost struct {
		reqs  string
		items int
	}
	steps := []struct {
		what      string
		run       func(r *taskstore.Record) error
		with, old cost // wanted
	}{
		{"create (working)", func(r *taskstore.Record) error {
			v = 1
			return b.Create(ctx, *r, taskstore.Limits{MaxActive: 100, MaxStored: 1000})
		}, cost{"TransactWriteItems×1", 3}, cost{"TransactWriteItems×1", 2}},
		{"progress write (working → working)", update(taskstore.StatusWorking),
			cost{"UpdateItem×1", 1}, cost{"UpdateItem×1", 1}},
		{"wait for input (working → input_required)", update(taskstore.StatusInputRequired),
			cost{"TransactWriteItems×1", 2}, cost{"UpdateItem×1", 1}},
		{"resume (input_required → working)", update(taskstore.StatusWorking),
			cost{"TransactWriteItems×1 UpdateItem×1", 3}, cost{"UpdateItem×1", 1}},
		{"end (working → completed)", update(taskstore.StatusCompleted),
			cost{"TransactWriteItems×1", 3}, cost{"TransactWriteItems×1", 2}},
	}
	t.Logf("%-43s | %-36s | %s", "write", "with status: requests, items, index units", "without: requests, items")
	var got [2][]cost
	var units [2][]float64
	for k, st := range []taskstore.Status{taskstore.StatusWorking, ""} {
		r := statusRecord("alice", taskid.New(time.Now()), taskstore.StatusWorking)
		r.Status = st
		r.ExpiresAt = time.Now().Add(time.Hour)
		take()
		for _, s := range steps {
			if err := s.run(&r); err != nil {
				t.Fatalf("%s: %v", s.what, err)
			}
			reqs, items, index := take()
			got[k] = append(got[k], cost{reqs, items})
			units[k] = append(units[k], index)
		}
	}
	for i, s := range steps {
		w, o := got[0][i], got[1][i]
		t.Logf("%-43s | %-22s %d, %3.1f | %-22s %d", s.what, w.reqs, w.items, units[0][i], o.reqs, o.items)
		if w != s.with || o != s.old {
			t.Errorf("%s: %+v with status, %+v without; want %+v and %+v", s.what, w, o, s.with, s.old)
		}
		if units[1][i] != 0 {
			t.Errorf("%s: a record without status wrote %.1f units to status-index", s.what, units[1][i])
		}
	}
}

// TestDynamoDBLocalStatusCounterConflicts: a transaction canceled by a
// conflict on its status counter item (the last action: another
// transaction wrote the same counter item) is sent again, on a counter
// item picked anew, for every write that moves a count: Create, an Update
// that changes the status, Delete and DeleteExpired. DynamoDB Local never
// reports conflicts, so the client makes them up, one per transaction.
func TestDynamoDBLocalStatusCounterConflicts(t *testing.T) {
	t.Parallel()
	s := server(t, envDynamoDB)
	var conflicts atomic.Int32
	client := failingTransactions(s.endpoint, func(in *dynamodb.TransactWriteItemsInput) error {
		last := in.TransactItems[len(in.TransactItems)-1].Update
		if last == nil || !strings.HasPrefix(ddbStringOf(last.Key[ddbPK]), ddbCountPfx) {
			return nil
		}
		if conflicts.Add(1)%2 == 1 { // every other attempt: each first one
			return canceled(in, len(in.TransactItems)-1, "TransactionConflict")
		}
		return nil
	})
	b := NewDynamoDBBackend(client, newTable(t, s), DynamoDBOptions{}).(*dynamoBackend)
	// The clock starts a minute into a counter bucket: carol's record
	// (expiring a minute later) is still in a bucket that counts when the
	// clock moves 2 minutes on. From the wall clock, its bucket had passed
	// by then in one run in ten, and DeleteExpired moved no counter.
	var now atomic.Int64
	now.Store(time.Now().Truncate(ddbCountBucket).Add(time.Minute).UnixNano())
	setDynamoClock(b, func() time.Time { return time.Unix(0, now.Load()) })
	ctx := t.Context()
	a := statusRecord("alice", taskid.New(time.Now()), taskstore.StatusWorking)
	c := statusRecord("carol", taskid.New(time.Now()), taskstore.StatusWorking)
	c.ExpiresAt = time.Unix(0, now.Load()).Add(time.Minute)
	for _, r := range []taskstore.Record{a, c} {
		if err := b.Create(ctx, r, taskstore.Limits{MaxActive: 10}); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	if _, err := b.Update(ctx, statusRecord(a.Owner, a.TaskID, taskstore.StatusCompleted), 1); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if diff := gocmp.Diff(map[taskstore.Status]int64{taskstore.StatusWorking: 1, taskstore.StatusCompleted: 1}, statusCounts(t, b)); diff != "" {
		t.Fatalf("counts (-want +got):\n%s", diff)
	}
	if ok, err := b.Delete(ctx, a.Owner, a.TaskID); err != nil || !ok {
		t.Fatalf("Delete: %v, %v", ok, err)
	}
	now.Add(int64(2 * time.Minute))
	if n, err := b.DeleteExpired(ctx); err != nil || n != 1 {
		t.Fatalf("DeleteExpired: %d, %v", n, err)
	}
	if got := statusCounts(t, b); len(got) != 0 {
		t.Fatalf("counts at the end: %v, want none", got)
	}
	// Create 2, Update 1, Delete 1 (its first attempt assumed no status,
	// so moved no counter), DeleteExpired 1: each conflicted once.
	if n := conflicts.Load(); n != 10 {
		t.Fatalf("%d transactions with a status counter, want 10 (5 conflicts, 5 retries)", n)
	}
}

func ddbStringOf(v types.AttributeValue) string {
	s, _ := v.(*types.AttributeValueMemberS)
	if s == nil {
		return ""
	}
	return s.Value
}
