//go:build dynamodb

package mcptasks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"

	"github.com/mcptasks/mcptasks/taskstore"
)

// ddbCounters is what an owner's META item holds.
type ddbCounters struct{ Stored, Active int64 }

func readCounters(t *testing.T, b taskstore.Backend, owner string) ddbCounters {
	t.Helper()
	db := b.(*dynamoBackend)
	out, err := db.client.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName: aws.String(db.table), Key: metaKey(owner), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("read META: %v", err)
	}
	n, _ := attrNum(out.Item, ddbStoredN)
	a, _ := attrNum(out.Item, ddbActiveN)
	return ddbCounters{Stored: n, Active: a}
}

// TestDynamoDBCounters: with no expired item in the way the counters are
// exact after every kind of write, including the paths where Update and
// Delete assumed the wrong active flag (an inactive record updated, a
// record resumed, an active record deleted), with and without transactions.
func TestDynamoDBCounters(t *testing.T) {
	eachDynamoServer(t, func(t *testing.T, b taskstore.Backend) {
		ctx := t.Context()
		want := ddbCounters{}
		check := func(step string) {
			t.Helper()
			if diff := cmp.Diff(want, readCounters(t, b, "alice")); diff != "" {
				t.Fatalf("after %s: counters (-want +got):\n%s", step, diff)
			}
		}
		update := func(r taskstore.Record, active bool, version uint64) {
			t.Helper()
			r.Active = active
			if !active {
				r.Runner = "" // as the Store writes an ended task
			}
			r.Data = fmt.Appendf(nil, `{"v":%d}`, version+1)
			if v, err := b.Update(ctx, r, version); err != nil || v != version+1 {
				t.Fatalf("Update to active=%v at v%d: v%d, %v", active, version, v, err)
			}
		}
		run := testRecord("alice")
		run.Runner = "node-a"
		mustCreateDDB(t, b, run)
		done := testRecord("alice")
		done.Active = false
		mustCreateDDB(t, b, done)
		want = ddbCounters{Stored: 2, Active: 1}
		check("two creates")

		update(run, true, 1) // the assumed case: still active
		check("an update that keeps it active")
		update(done, false, 1) // assumed active, was not
		check("an update of an inactive record")
		update(run, false, 2) // ends it
		want.Active--
		check("an update that ends it")
		if got, err := b.Get(ctx, "alice", run.TaskID); err != nil || got.Active || got.Runner != "" {
			t.Fatalf("the ended record: %+v, %v", got, err)
		}
		update(run, true, 3) // resumes it (allowed over the quota)
		want.Active++
		check("an update that resumes it")
		if got, err := b.Get(ctx, "alice", run.TaskID); err != nil || !got.Active || got.Version != 4 {
			t.Fatalf("the resumed record: %+v, %v", got, err)
		}
		// Failed writes change nothing.
		_, err := b.Update(ctx, taskstore.Record{Owner: "alice", TaskID: run.TaskID, Data: []byte(`{}`)}, 1)
		if !errors.Is(err, taskstore.ErrVersionConflict) {
			t.Fatalf("stale ending update: %v", err)
		}
		_, err = b.Update(ctx, taskstore.Record{Owner: "alice", TaskID: testRecord("alice").TaskID, Data: []byte(`{}`)}, 1)
		if !errors.Is(err, taskstore.ErrNotFound) {
			t.Fatalf("update of a missing record: %v", err)
		}
		check("failed updates")

		for _, r := range []taskstore.Record{run, done} { // one active, one not
			if existed, err := b.Delete(ctx, "alice", r.TaskID); !existed || err != nil {
				t.Fatalf("Delete: %v, %v", existed, err)
			}
			want.Stored--
			want.Active -= int64(oneIf(r.Active))
			check("a delete")
		}
		if existed, err := b.Delete(ctx, "alice", run.TaskID); existed || err != nil {
			t.Fatalf("second Delete: %v, %v", existed, err)
		}
		check("a delete of a missing record")
	})
}

// eachDynamoServer runs test in parallel subtests against a fresh backend
// on DynamoDB Local ("Local", transactions) and on dynalite (without).
func eachDynamoServer(t *testing.T, test func(t *testing.T, b taskstore.Backend)) {
	for name, open := range map[string]func(testing.TB) taskstore.Backend{
		"Local": newLocalBackend, "dynalite": newDynaliteBackend,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, open(t))
		})
	}
}

func mustCreateDDB(t *testing.T, b taskstore.Backend, r taskstore.Record) {
	t.Helper()
	if err := b.Create(t.Context(), r, taskstore.Limits{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

// TestDynamoDBLocalRepairInterleaving forces the interleaving of issue #11
// through the repair hook and a test clock. Bound 2; two counted records
// E1 and E2 expire one after the other. Create B is refused and stops
// before its recount. Create A is refused too, recounts (E2 still live)
// and writes the counter down to 1, and stops before retrying. E2
// expires. B recounts (0) and stops before its compare-and-swap. A
// retries and lands. B's swap must now fail: A's create changed seq. When
// creates did not change seq, B wrote 0 over A's count and a third create
// overshot the bound.
func TestDynamoDBLocalRepairInterleaving(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lim     taskstore.Limits
		refusal error
	}{
		{"active", taskstore.Limits{MaxActive: 2}, taskstore.ErrQuotaExceeded},
		{"stored", taskstore.Limits{MaxStored: 2}, taskstore.ErrStorageFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newLocalBackend(t)
			var skew atomic.Int64 // how far the backend's clock is ahead
			setDynamoClock(b, func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })
			// Expiry an hour or two ahead of the real clock: the server's
			// native TTL leaves them alone, only the test clock expires them.
			e1, e2 := testRecord("alice"), testRecord("alice")
			e1.ExpiresAt = time.Now().Add(time.Hour)
			e2.ExpiresAt = time.Now().Add(2 * time.Hour)
			for _, r := range []taskstore.Record{e1, e2} {
				if err := b.Create(t.Context(), r, tc.lim); err != nil {
					t.Fatal(err)
				}
			}
			skew.Store(int64(90 * time.Minute)) // E1 expired, E2 live

			type who struct{}
			type gate struct{ reached, release chan struct{} }
			newGate := func() gate { return gate{make(chan struct{}), make(chan struct{})} }
			gates := map[[2]string]gate{
				{"B", "scan"}: newGate(), {"A", "done"}: newGate(), {"B", "write"}: newGate(),
			}
			var mu sync.Mutex
			seen := map[[2]string]bool{}
			setDynamoRepairHook(b, func(ctx context.Context, step string) {
				name, _ := ctx.Value(who{}).(string)
				k := [2]string{name, step}
				mu.Lock()
				first := !seen[k]
				seen[k] = true
				mu.Unlock()
				if g, ok := gates[k]; ok && first {
					close(g.reached)
					<-g.release
				}
			})
			wait := func(k [2]string, errs ...chan error) {
				t.Helper()
				select {
				case <-gates[k].reached:
				case err := <-errs[0]:
					t.Fatalf("the create ended (%v) before reaching %v", err, k)
				case <-time.After(30 * time.Second):
					t.Fatalf("%v not reached", k)
				}
			}
			start := func(name string) (taskstore.Record, chan error) {
				r := testRecord("alice")
				errc := make(chan error, 1)
				ctx := context.WithValue(context.Background(), who{}, name)
				go func() { errc <- b.Create(ctx, r, tc.lim) }()
				return r, errc
			}
			_, errB := start("B")
			wait([2]string{"B", "scan"}, errB)
			_, errA := start("A")
			wait([2]string{"A", "done"}, errA)
			skew.Store(int64(150 * time.Minute)) // E2 expired too
			close(gates[[2]string{"B", "scan"}].release)
			wait([2]string{"B", "write"}, errB)
			close(gates[[2]string{"A", "done"}].release)
			if err := <-errA; err != nil {
				t.Fatalf("create A: %v", err)
			}
			close(gates[[2]string{"B", "write"}].release)
			if err := <-errB; err != nil {
				t.Fatalf("create B: %v", err)
			}

			// A and B are live: the bound is reached, and the counters say so.
			over := testRecord("alice")
			if err := b.Create(t.Context(), over, tc.lim); !errors.Is(err, tc.refusal) {
				t.Fatalf("a third create at a bound of 2: %v, want %v", err, tc.refusal)
			}
			recs, _, err := b.List(t.Context(), "alice", "", 10)
			if err != nil || len(recs) != 2 {
				t.Fatalf("List: %d live records, %v; want 2", len(recs), err)
			}
			if diff := cmp.Diff(ddbCounters{Stored: 2, Active: 2}, readCounters(t, b, "alice")); diff != "" {
				t.Fatalf("counters (-want +got):\n%s", diff)
			}
		})
	}
}
