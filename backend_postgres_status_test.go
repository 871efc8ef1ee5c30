//go:build postgres

package mcptasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

var pgStatuses = []taskstore.Status{taskstore.StatusWorking, taskstore.StatusInputRequired, taskstore.StatusCompleted,
	taskstore.StatusFailed, taskstore.StatusCancelled}

// pgRowsByStatus counts the table's rows by status with a full scan: what
// the counts table must hold, expired rows not yet deleted included.
func pgRowsByStatus(t *testing.T, b *postgresBackend, liveOnly bool) map[taskstore.Status]int64 {
	t.Helper()
	where := "status IS NOT NULL"
	if liveOnly {
		where += " AND " + pgLive
	}
	out, err := b.queryCounts(t.Context(), "SELECT status, count(*) FROM "+b.qualified()+" WHERE "+where+" GROUP BY status")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func pgCounts(t *testing.T, b *postgresBackend) map[taskstore.Status]int64 {
	t.Helper()
	got, err := b.CountByStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// pgListAll pages through ListByStatus with pages of limit.
func pgListAll(t *testing.T, b *postgresBackend, status taskstore.Status, limit int) []taskstore.Key {
	t.Helper()
	var out []taskstore.Key
	after := taskstore.Key{}
	for pages := 0; ; pages++ {
		recs, more, err := b.ListByStatus(t.Context(), status, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Status != status {
				t.Fatalf("ListByStatus(%s) returned a record of status %q", status, r.Status)
			}
			out = append(out, taskstore.Key{Owner: r.Owner, TaskID: r.TaskID})
		}
		if !more {
			return out
		}
		if len(recs) == 0 || pages > 1000 {
			t.Fatalf("ListByStatus: more without progress after %d pages", pages)
		}
		last := recs[len(recs)-1]
		after = taskstore.Key{Owner: last.Owner, TaskID: last.TaskID}
	}
}

// TestPostgresStatusIndex: the listing across owners in creation order
// (task id, then owner), its cursor, what it leaves out (other statuses,
// expired rows, rows without a status), the statuses every read returns,
// and the counts after each kind of write.
func TestPostgresStatusIndex(t *testing.T) {
	ctx := t.Context()
	b := newPostgresFactory(postgresTestURL(t), "sweep=0")(t).(*postgresBackend)
	rec := func(owner, id string, s taskstore.Status, exp time.Time) taskstore.Record {
		return taskstore.Record{Owner: owner, TaskID: id, Data: []byte(`{}`), Status: s, Active: !s.Terminal(), ExpiresAt: exp}
	}
	// Two owners share each id: the owner breaks the tie. "a\x00b" sorts
	// before "ab" byte by byte.
	var want []taskstore.Key
	now := time.Now()
	for i := range 7 {
		id := taskid.New(now.Add(time.Duration(i) * time.Millisecond))
		for _, owner := range []string{"ab", "a\x00b"} {
			if err := b.Create(ctx, rec(owner, id, taskstore.StatusWorking, time.Time{}), taskstore.Limits{}); err != nil {
				t.Fatal(err)
			}
		}
		want = append(want, taskstore.Key{Owner: "a\x00b", TaskID: id}, taskstore.Key{Owner: "ab", TaskID: id})
	}
	other := taskid.New(now)
	if err := b.Create(ctx, rec("carol", other, taskstore.StatusCompleted, time.Time{}), taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	noStatus := taskid.New(now)
	if err := b.Create(ctx, taskstore.Record{Owner: "carol", TaskID: noStatus, Data: []byte(`{}`)}, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 2, 3, 14, 15, taskstore.MaxStatusPage} {
		if got := pgListAll(t, b, taskstore.StatusWorking, limit); !cmp.Equal(want, got) {
			t.Fatalf("pages of %d:\n%s", limit, cmp.Diff(want, got))
		}
	}
	recs, more, err := b.ListByStatus(ctx, taskstore.StatusWorking, want[3], 2)
	if err != nil || more != true || len(recs) != 2 || recs[0].TaskID != want[4].TaskID || recs[0].Owner != want[4].Owner {
		t.Fatalf("after %v: %v, %v, %v", want[3], recs, more, err)
	}
	// An after key that is not stored starts after where it would be.
	recs, _, err = b.ListByStatus(ctx, taskstore.StatusWorking, taskstore.Key{Owner: "b", TaskID: want[0].TaskID}, 1)
	if err != nil || len(recs) != 1 || recs[0].TaskID != want[2].TaskID {
		t.Fatalf("after a key between two: %v, %v", recs, err)
	}
	for _, limit := range []int{0, -1, taskstore.MaxStatusPage + 1} {
		if _, _, err := b.ListByStatus(ctx, taskstore.StatusWorking, taskstore.Key{}, limit); !errors.Is(err, taskstore.ErrInvalidArgument) {
			t.Fatalf("limit %d: %v, want ErrInvalidArgument", limit, err)
		}
	}
	// Every read returns the status.
	if r, err := b.Get(ctx, "carol", other); err != nil || r.Status != taskstore.StatusCompleted {
		t.Fatalf("Get: %+v, %v", r, err)
	}
	if r, err := b.Get(ctx, "carol", noStatus); err != nil || r.Status != "" {
		t.Fatalf("Get of a record without status: %+v, %v", r, err)
	}
	if rs, _, err := b.List(ctx, "carol", "", 10); err != nil || len(rs) != 2 || rs[0].Status == rs[1].Status {
		t.Fatalf("List: %+v, %v", rs, err)
	}
	if rs, err := b.GetMany(ctx, []taskstore.Key{{Owner: "carol", TaskID: other}}); err != nil || len(rs) != 1 || rs[0].Status != taskstore.StatusCompleted {
		t.Fatalf("GetMany: %+v, %v", rs, err)
	}
	wantCounts := map[taskstore.Status]int64{taskstore.StatusWorking: 14, taskstore.StatusCompleted: 1}
	if got := pgCounts(t, b); !cmp.Equal(wantCounts, got) {
		t.Fatalf("counts after creates:\n%s", cmp.Diff(wantCounts, got))
	}

	// Update: the status moves; an update that keeps it changes nothing.
	r := rec("ab", want[1].TaskID, taskstore.StatusInputRequired, time.Time{})
	if _, err := b.Update(ctx, r, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, r, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, r, 1); !errors.Is(err, taskstore.ErrVersionConflict) {
		t.Fatalf("stale update: %v", err)
	}
	wantCounts = map[taskstore.Status]int64{taskstore.StatusWorking: 13, taskstore.StatusInputRequired: 1, taskstore.StatusCompleted: 1}
	if got := pgCounts(t, b); !cmp.Equal(wantCounts, got) {
		t.Fatalf("counts after updates:\n%s", cmp.Diff(wantCounts, got))
	}
	if keys := pgListAll(t, b, taskstore.StatusInputRequired, 10); !cmp.Equal([]taskstore.Key{want[1]}, keys) {
		t.Fatalf("input_required: %v", keys)
	}
	// A batch: two statuses change, one stays, one is stale.
	res, err := b.UpdateMany(ctx, []taskstore.Update{
		{Record: rec("ab", want[1].TaskID, taskstore.StatusCompleted, time.Time{}), Expected: 3},
		{Record: rec("a\x00b", want[0].TaskID, taskstore.StatusCancelled, time.Time{}), Expected: 1},
		{Record: rec("ab", want[3].TaskID, taskstore.StatusWorking, time.Time{}), Expected: 1},
		{Record: rec("a\x00b", want[4].TaskID, taskstore.StatusFailed, time.Time{}), Expected: 7},
	})
	if err != nil || res[0].Err != nil || res[1].Err != nil || res[2].Err != nil || !errors.Is(res[3].Err, taskstore.ErrVersionConflict) {
		t.Fatalf("UpdateMany: %+v, %v", res, err)
	}
	wantCounts = map[taskstore.Status]int64{taskstore.StatusWorking: 12, taskstore.StatusCompleted: 2, taskstore.StatusCancelled: 1}
	if got := pgCounts(t, b); !cmp.Equal(wantCounts, got) {
		t.Fatalf("counts after UpdateMany:\n%s", cmp.Diff(wantCounts, got))
	}
	// Delete.
	if ok, err := b.Delete(ctx, "carol", other); err != nil || !ok {
		t.Fatalf("Delete: %v, %v", ok, err)
	}
	if ok, err := b.Delete(ctx, "carol", noStatus); err != nil || !ok {
		t.Fatalf("Delete: %v, %v", ok, err)
	}
	wantCounts = map[taskstore.Status]int64{taskstore.StatusWorking: 12, taskstore.StatusCompleted: 1, taskstore.StatusCancelled: 1}
	if got := pgCounts(t, b); !cmp.Equal(wantCounts, got) {
		t.Fatalf("counts after deletes:\n%s", cmp.Diff(wantCounts, got))
	}

	// Expiry: an expired record is not listed at once, and counted until
	// it is deleted (by DeleteExpired, or by a create that replaces it).
	short := []string{taskid.New(time.Now()), taskid.New(time.Now())}
	for _, id := range short {
		if err := b.Create(ctx, rec("dave", id, taskstore.StatusFailed, time.Now().Add(100*time.Millisecond)), taskstore.Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	if keys := pgListAll(t, b, taskstore.StatusFailed, 10); len(keys) != 2 {
		t.Fatalf("failed before expiry: %v", keys)
	}
	time.Sleep(200 * time.Millisecond)
	if keys := pgListAll(t, b, taskstore.StatusFailed, 10); len(keys) != 0 {
		t.Fatalf("expired records listed: %v", keys)
	}
	wantCounts[taskstore.StatusFailed] = 2
	if got := pgCounts(t, b); !cmp.Equal(wantCounts, got) {
		t.Fatalf("counts with two expired, not yet deleted:\n%s", cmp.Diff(wantCounts, got))
	}
	// A create over an expired record replaces it: its status leaves.
	if err := b.Create(ctx, rec("dave", short[0], taskstore.StatusWorking, time.Time{}), taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	wantCounts[taskstore.StatusFailed], wantCounts[taskstore.StatusWorking] = 1, 13
	if got := pgCounts(t, b); !cmp.Equal(wantCounts, got) {
		t.Fatalf("counts after replacing an expired record:\n%s", cmp.Diff(wantCounts, got))
	}
	if n, err := b.DeleteExpired(ctx); err != nil || n != 1 {
		t.Fatalf("DeleteExpired: %d, %v", n, err)
	}
	delete(wantCounts, taskstore.StatusFailed)
	if got := pgCounts(t, b); !cmp.Equal(wantCounts, got) {
		t.Fatalf("counts after DeleteExpired:\n%s", cmp.Diff(wantCounts, got))
	}
	if got, live := pgRowsByStatus(t, b, false), pgRowsByStatus(t, b, true); !cmp.Equal(wantCounts, got) || !cmp.Equal(wantCounts, live) {
		t.Fatalf("the table holds %v (live: %v), the counts %v", got, live, wantCounts)
	}
}

// TestPostgresStatusCountsConcurrent: writers on 8 connections race on
// 24 keys of 3 owners: creates (some expiring within milliseconds, so
// that creates replace expired records and sweeps delete them), reads
// then updates to a random status, batches of updates, deletes and
// sweeps. Afterwards the counts must equal the table's rows by status
// exactly, and, once the expired rows are deleted, the live ones.
func TestPostgresStatusCountsConcurrent(t *testing.T) {
	ctx := t.Context()
	b := newPostgresFactory(postgresTestURL(t), "sweep=0", "pool_max_conns=8")(t).(*postgresBackend)
	const writers, ops = 8, 150
	var keys []taskstore.Key
	for _, owner := range []string{"alice", "bob", "carol"} {
		for range 8 {
			keys = append(keys, taskstore.Key{Owner: owner, TaskID: taskid.New(time.Now())})
		}
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			status := func() taskstore.Status { return pgStatuses[rng.IntN(len(pgStatuses))] }
			rec := func(k taskstore.Key) taskstore.Record {
				s := status()
				return taskstore.Record{Owner: k.Owner, TaskID: k.TaskID, Data: []byte(`{}`), Status: s, Active: !s.Terminal()}
			}
			for range ops {
				k := keys[rng.IntN(len(keys))]
				var err error
				switch op := rng.IntN(10); {
				case op < 3:
					r := rec(k)
					if rng.IntN(2) == 0 {
						r.ExpiresAt = time.Now().Add(time.Duration(rng.IntN(20)) * time.Millisecond)
					}
					if err = b.Create(ctx, r, taskstore.Limits{}); errors.Is(err, taskstore.ErrAlreadyExists) {
						err = nil
					}
				case op < 6:
					var cur taskstore.Record
					if cur, err = b.Get(ctx, k.Owner, k.TaskID); err == nil {
						_, err = b.Update(ctx, rec(k), cur.Version)
					}
				case op < 8:
					batch := []taskstore.Key{k, keys[rng.IntN(len(keys))], keys[rng.IntN(len(keys))]}
					var cur []taskstore.Record
					if cur, err = b.GetMany(ctx, batch); err == nil && len(cur) > 0 {
						ups := make([]taskstore.Update, len(cur))
						for i, c := range cur {
							ups[i] = taskstore.Update{Record: rec(taskstore.Key{Owner: c.Owner, TaskID: c.TaskID}), Expected: c.Version}
						}
						_, err = b.UpdateMany(ctx, ups)
					}
				case op < 9:
					_, err = b.Delete(ctx, k.Owner, k.TaskID)
				default:
					_, err = b.DeleteExpired(ctx)
				}
				if errors.Is(err, taskstore.ErrNotFound) || errors.Is(err, taskstore.ErrVersionConflict) {
					err = nil
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got, want := pgCounts(t, b), pgRowsByStatus(t, b, false); !cmp.Equal(want, got) {
		t.Fatalf("counts differ from the table's rows:\n%s", cmp.Diff(want, got))
	}
	var shards int
	if err := b.pool.QueryRow(ctx, "SELECT count(DISTINCT shard) FROM "+b.qualified()+"_counts").Scan(&shards); err != nil || shards < 2 {
		t.Fatalf("writers on 8 connections used %d shards (%v)", shards, err)
	}
	time.Sleep(50 * time.Millisecond) // every record that expires has expired
	if _, err := b.DeleteExpired(ctx); err != nil {
		t.Fatal(err)
	}
	got, live := pgCounts(t, b), pgRowsByStatus(t, b, true)
	if !cmp.Equal(live, got) {
		t.Fatalf("counts differ from the live rows after DeleteExpired:\n%s", cmp.Diff(live, got))
	}
	t.Logf("counts at the end: %v", fmt.Sprint(got))
}

// pgSchema2DDL is the DDL of the previous release (schema 2), as it
// created the table: what the upgrade starts from.
func pgSchema2DDL(t string) []string {
	return []string{
		`CREATE TABLE ` + t + ` (owner bytea NOT NULL, task_id bytea NOT NULL, version bigint NOT NULL, expires_at timestamptz,
	data bytea NOT NULL, CONSTRAINT ` + strings.TrimPrefix(t, "public.") + `_pkey PRIMARY KEY (owner, task_id) INCLUDE (expires_at))`,
		`ALTER TABLE ` + t + ` ADD COLUMN active boolean NOT NULL DEFAULT false`,
		`ALTER TABLE ` + t + ` ADD COLUMN runner bytea`,
		`CREATE INDEX ` + strings.TrimPrefix(t, "public.") + `_expires_idx ON ` + t + ` (expires_at) WHERE expires_at IS NOT NULL`,
		`CREATE INDEX ` + strings.TrimPrefix(t, "public.") + `_active_idx ON ` + t + ` (owner, task_id) INCLUDE (expires_at) WHERE active`,
		`CREATE INDEX ` + strings.TrimPrefix(t, "public.") + `_runner_idx ON ` + t + ` (runner) WHERE runner IS NOT NULL`,
		`CREATE TABLE ` + t + `_runners (runner bytea PRIMARY KEY, beat bigint NOT NULL)`,
		`COMMENT ON TABLE ` + t + ` IS 'mcptasks schema 2'`,
	}
}

// pgOldDoc is a stored document of an earlier release and what it holds.
type pgOldDoc struct {
	owner, id string
	status    taskstore.Status
	data      []byte
}

// pgOldDocs returns the documents of taskstore/testdata/records (written
// by the encoding/json v1 codec; one holds invalid UTF-8) and three the
// Store writes today.
func pgOldDocs(t testing.TB) []pgOldDoc {
	t.Helper()
	files, err := filepath.Glob("taskstore/testdata/records/*.json")
	if err != nil || len(files) < 8 {
		t.Fatalf("testdata records: %v, %v", files, err)
	}
	var out []pgOldDoc
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Task struct {
				TaskID string
				Status taskstore.Status
			}
			OwnerID string
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, pgOldDoc{doc.OwnerID, doc.Task.TaskID, doc.Task.Status, data})
	}
	mem, err := OpenBackend(t.Context(), "memory://")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	s := taskstore.New(mem, taskstore.Config{})
	for _, st := range []taskstore.Status{taskstore.StatusWorking, taskstore.StatusInputRequired, taskstore.StatusCancelled} {
		tr, err := s.Create(t.Context(), "erin", taskstore.CreateRequest{RequestMethod: "tools/call"})
		if err != nil {
			t.Fatal(err)
		}
		if st != taskstore.StatusWorking {
			if tr, err = s.UpdateStatus(t.Context(), "erin", tr.Task.TaskID, st, "<b>"); err != nil {
				t.Fatal(err)
			}
		}
		r, err := mem.Get(t.Context(), "erin", tr.Task.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pgOldDoc{"erin", tr.Task.TaskID, st, r.Data})
	}
	return out
}

// pgBareTable returns the test server's URL, the name of a table no
// backend has made (dropped at cleanup, as the tables beside it), and a
// pool of its own to make it as an earlier release did.
func pgBareTable(t testing.TB) (raw, table string, pool *pgxpool.Pool) {
	t.Helper()
	raw = postgresTestURL(t)
	table = pgRandomTable()
	t.Cleanup(func() { pgDropTable(t, raw, table) })
	pool, err := pgxpool.New(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return raw, table, pool
}

// TestPostgresMigratesSchema2: a table of the previous release, with
// rows of every status, an expired row, a document that is not a Store's,
// is refused by Open until the DDL runs; the DDL adds the status column
// filled from each document, its index and the counts. Then replicas of
// the previous release, still running, write without keeping status or
// counts: running the DDL again gives their new rows a status, and
// RecountStatus repairs the rest.
func TestPostgresMigratesSchema2(t *testing.T) {
	raw, table, pool := pgBareTable(t)
	ctx := t.Context()
	qt := "public." + table
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for _, stmt := range pgSchema2DDL(qt) {
		exec(stmt)
	}
	docs := pgOldDocs(t)
	// What the previous release's create wrote.
	oldCreate := `INSERT INTO ` + qt + ` (owner, task_id, version, expires_at, data, active, runner) VALUES ($1, $2, 1, $3, $4, $5, NULL)`
	live := map[taskstore.Status]int64{}
	for _, d := range docs {
		exec(oldCreate, []byte(d.owner), []byte(d.id), nil, d.data, !d.status.Terminal())
		live[d.status]++
	}
	expired := docs[0]
	expired.id = taskid.New(time.Now())
	exec(oldCreate, []byte(expired.owner), []byte(expired.id), time.Now().Add(-time.Minute), expired.data, false)
	foreign := taskid.New(time.Now())
	exec(oldCreate, []byte("alice"), []byte(foreign), nil, []byte(`{"old":true}`), false)

	if _, err := OpenBackend(ctx, pgWithOptions(raw, "table="+table)); err == nil || !strings.Contains(err.Error(), "has mcptasks schema 2; this release uses mcptasks schema 3") {
		t.Fatalf("Open of a schema 2 table: %v", err)
	}
	bb, err := OpenBackend(ctx, pgWithOptions(raw, "table="+table, "create_table=true", "sweep=0"))
	if err != nil {
		t.Fatalf("migrating: %v", err)
	}
	defer bb.Close()
	b := bb.(*postgresBackend)
	for _, d := range docs {
		r, err := b.Get(ctx, d.owner, d.id)
		if err != nil || r.Status != d.status || !bytes.Equal(r.Data, d.data) || r.Version != 1 {
			t.Fatalf("%s after the migration: status %q, %v; want %q and the same data", d.id, r.Status, err, d.status)
		}
	}
	if r, err := b.Get(ctx, "alice", foreign); err != nil || r.Status != "" {
		t.Fatalf("a document that is not a Store's: %+v, %v; want no status", r, err)
	}
	// Counted: the live rows, and the expired one until it is deleted.
	withExpired := maps.Clone(live)
	withExpired[expired.status]++
	if got := pgCounts(t, b); !cmp.Equal(withExpired, got) {
		t.Fatalf("counts after the migration:\n%s", cmp.Diff(withExpired, got))
	}
	for st, n := range live {
		if keys := pgListAll(t, b, st, 2); len(keys) != int(n) {
			t.Fatalf("%s lists %d records, want %d", st, len(keys), n)
		}
	}
	if n, err := b.DeleteExpired(ctx); err != nil || n != 1 {
		t.Fatalf("DeleteExpired: %d, %v", n, err)
	}
	if got := pgCounts(t, b); !cmp.Equal(live, got) {
		t.Fatalf("counts after DeleteExpired:\n%s", cmp.Diff(live, got))
	}

	// A replica of the previous release, still running, creates a task,
	// finishes one and deletes one: it keeps neither status nor counts.
	fresh := docs[len(docs)-1]
	fresh.id = taskid.New(time.Now())
	fresh.data = bytes.Replace(fresh.data, []byte(docs[len(docs)-1].id), []byte(fresh.id), 1)
	exec(oldCreate, []byte(fresh.owner), []byte(fresh.id), nil, fresh.data, false)
	done := docs[len(docs)-3] // working, by today's Store
	exec(`UPDATE `+qt+` SET version = version + 1, data = $3, active = false WHERE owner = $1 AND task_id = $2`,
		[]byte(done.owner), []byte(done.id), bytes.Replace(done.data, []byte(`"status":"working"`), []byte(`"status":"completed"`), 1))
	gone := docs[0]
	exec(`DELETE FROM `+qt+` WHERE owner = $1 AND task_id = $2`, []byte(gone.owner), []byte(gone.id))
	if got, want := pgCounts(t, b), pgRowsByStatus(t, b, false); cmp.Equal(want, got) {
		t.Fatal("the counts did not drift: the test does not test the repair")
	}
	// The DDL again: the new row gets its status and is counted.
	if err := b.createSchema(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := b.Get(ctx, fresh.owner, fresh.id); err != nil || r.Status != fresh.status {
		t.Fatalf("a row of the previous release after the DDL ran again: %q, %v; want %q", r.Status, err, fresh.status)
	}
	// The repair: every status as its document says, every count exact.
	changed, err := b.RecountStatus(ctx)
	if err != nil || changed != 1 {
		t.Fatalf("RecountStatus: %d rows changed, %v; want 1", changed, err)
	}
	if r, err := b.Get(ctx, done.owner, done.id); err != nil || r.Status != taskstore.StatusCompleted {
		t.Fatalf("a status the previous release changed, after the repair: %q, %v", r.Status, err)
	}
	if got, want := pgCounts(t, b), pgRowsByStatus(t, b, true); !cmp.Equal(want, got) {
		t.Fatalf("counts after the repair:\n%s", cmp.Diff(want, got))
	}
	if changed, err := b.RecountStatus(ctx); err != nil || changed != 0 {
		t.Fatalf("RecountStatus again: %d, %v", changed, err)
	}
}

// BenchmarkPostgresMigrateSchema2 times the migration of a schema 2 table
// of n rows (documents of the previous releases, in the five statuses,
// 1% expired) by the DDL (create_table=true, as `mcptasks postgres
// create-table` runs it): the column, the index, the status read from
// every document and the counts, in one transaction. It reports the
// seconds and rows per second of the migration and of one RecountStatus.
//
//	go test -tags postgres -run '^$' -bench PostgresMigrateSchema2 -benchtime 1x .
func BenchmarkPostgresMigrateSchema2(b *testing.B) {
	docs := pgOldDocs(b)
	for _, n := range []int{100_000, 300_000} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			var migrate, recount time.Duration
			for range b.N {
				raw, table, pool := pgBareTable(b)
				ctx := b.Context()
				for _, stmt := range pgSchema2DDL("public." + table) {
					if _, err := pool.Exec(ctx, stmt); err != nil {
						b.Fatal(err)
					}
				}
				datas := make([][]byte, len(docs))
				for i, d := range docs {
					datas[i] = d.data
				}
				if _, err := pool.Exec(ctx, `INSERT INTO public.`+table+` (owner, task_id, version, expires_at, data)
SELECT convert_to('owner-' || (i % 1000), 'UTF8'), convert_to(lpad(to_hex(i), 16, '0') || '-' || md5(i::text), 'UTF8'), 1,
	now() + CASE WHEN i % 100 = 0 THEN interval '-1 minute' ELSE interval '1 hour' END, ($1::bytea[])[1 + i % $2]
FROM generate_series(1, $3) AS i`, datas, len(datas), n); err != nil {
					b.Fatal(err)
				}
				if _, err := pool.Exec(ctx, "VACUUM ANALYZE public."+table); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				bb, err := OpenBackend(ctx, pgWithOptions(raw, "table="+table, "create_table=true", "sweep=0"))
				if err != nil {
					b.Fatal(err)
				}
				migrate += time.Since(start)
				start = time.Now()
				if _, err := bb.(*postgresBackend).RecountStatus(ctx); err != nil {
					b.Fatal(err)
				}
				recount += time.Since(start)
				counts, err := bb.(taskstore.StatusIndex).CountByStatus(ctx)
				bb.Close()
				if err != nil {
					b.Fatal(err)
				}
				var total int64
				for _, c := range counts {
					total += c
				}
				if total != int64(n) {
					b.Fatalf("%d rows counted after the migration, want %d", total, n)
				}
			}
			b.ReportMetric(migrate.Seconds()/float64(b.N), "migrate-s")
			b.ReportMetric(float64(n*b.N)/migrate.Seconds(), "migrated-rows/s")
			b.ReportMetric(recount.Seconds()/float64(b.N), "recount-s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
