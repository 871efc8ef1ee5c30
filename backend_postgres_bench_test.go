//go:build postgres

package mcptasks

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/internal/rawfloor"
	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
	"github.com/mcptasks/mcptasks/taskstore/storetest"
)

// pgFill gives owner n tasks in one INSERT … SELECT on the server: copies
// of a document the Store made (working), under ids that sort like
// taskid.New's (the newest last), expiring in an hour, counted by status.
// It returns the first 100 ids, newest first.
func pgFill(tb testing.TB, b *postgresBackend, s *taskstore.Store, owner string, n int) []string {
	tb.Helper()
	ctx := tb.Context()
	first, err := s.Create(ctx, owner, taskstore.CreateRequest{RequestMethod: "tools/call"})
	if err != nil {
		tb.Fatal(err)
	}
	tmpl, err := b.Get(ctx, owner, first.Task.TaskID)
	if err != nil {
		tb.Fatal(err)
	}
	// Ids below the Store's own (its prefix is the current time in hex),
	// so they sort older: "0…0<i>-<md5>".
	_, err = b.pool.Exec(ctx, `WITH i AS (
	INSERT INTO `+b.qualified()+` (owner, task_id, version, expires_at, data, active, status)
	SELECT $1, convert_to(lpad(to_hex(i), 16, '0') || '-' || md5(i::text), 'UTF8'), 1, now() + interval '1 hour', $2, true, $4
	FROM generate_series(1, $3) AS i RETURNING status
)
INSERT INTO `+b.qualified()+`_counts AS c (status, shard, n) SELECT status, 0, count(*) FROM i GROUP BY status
ON CONFLICT (status, shard) DO UPDATE SET n = c.n + EXCLUDED.n`, []byte(owner), tmpl.Data, n-1, string(tmpl.Status))
	if err != nil {
		tb.Fatal(err)
	}
	recs, _, err := b.List(ctx, owner, "", 100)
	if err != nil {
		tb.Fatal(err)
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.TaskID
	}
	return ids
}

// TestPostgresExplain fills a table with 100,000 rows (one owner with
// 50,000 working, 500 owners with 100, of which 1% expired, 10% working,
// 0.2% input_required and the rest completed), runs ANALYZE with
// the planner's defaults, and EXPLAINs every statement the backend runs,
// twice: with the call's values (the custom plan) and as a generic plan
// (plan_cache_mode = force_generic_plan, what a prepared statement may
// switch to). Each plan must use the expected index and no sequential
// scan. MCPTASKS_EXPLAIN_OUT=FILE writes the plans (docs/postgres.md
// shows them).
func TestPostgresExplain(t *testing.T) {
	b := newPostgresFactory(postgresTestURL(t), "sweep=0")(t).(*postgresBackend)
	ctx := t.Context()
	s := taskstore.New(b, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	ids := pgFill(t, b, s, "big", 50_000)
	_, err := b.pool.Exec(ctx, `INSERT INTO `+b.qualified()+` (owner, task_id, version, expires_at, data, status)
SELECT convert_to('owner-' || (i % 500), 'UTF8'), convert_to(lpad(to_hex(i), 16, '0') || '-' || md5(i::text), 'UTF8'), 1,
	CASE WHEN i % 100 = 0 THEN now() - interval '1 minute' ELSE now() + interval '1 hour' END, convert_to(repeat('x', 400), 'UTF8'),
	CASE WHEN i % 500 = 3 THEN 'input_required' WHEN i % 10 = 1 THEN 'working' ELSE 'completed' END
FROM generate_series(1, 50000) AS i`)
	if err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM "+b.qualified()).Scan(&rows); err != nil || rows != 100_000 {
		t.Fatalf("%d rows, %v; want 100000", rows, err)
	}
	// A hundred rows held by one runner, as the lease sweeper looks for.
	if _, err := b.pool.Exec(ctx, `UPDATE `+b.qualified()+` SET runner = 'node-a', active = true WHERE (owner, task_id) IN (
SELECT owner, task_id FROM `+b.qualified()+` WHERE owner = convert_to('owner-7', 'UTF8') LIMIT 100)`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, "ANALYZE "+b.qualified()); err != nil {
		t.Fatal(err)
	}
	pkey, expIdx, runIdx, statusIdx := b.table+"_pkey", b.table+"_expires_idx", b.table+"_runner_idx", b.table+"_status_idx"
	owner, id, exp := []byte("big"), []byte(ids[50]), time.Now().Add(time.Hour)
	working, inputRequired := "working", "input_required"
	for _, tc := range []struct {
		name, sql, index string
		args             []any
	}{
		{"get", b.sql.get, pkey, []any{owner, id}},
		{"create (stored bound 1000, active quota 100)", b.sql.create, pkey, []any{owner, []byte(taskid.New(time.Now())), exp, []byte(`{}`), int64(1000), int64(100), true, []byte("node-a"), b.channel, pgPayload("big", ids[50], 1), working, int16(3)}},
		{"update", b.sql.update, pkey, []any{owner, id, int64(1), []byte(`{}`), true, []byte("node-a"), b.channel, pgPayload("big", ids[50], 2), inputRequired, int16(3)}},
		{"runner tasks, 100", b.sql.runnerTasks, runIdx, []any{[]byte("node-a"), int64(100)}},
		{"get many, 3 keys", b.sql.getMany, pkey, []any{[][]byte{owner, owner, []byte("owner-7")}, [][]byte{id, []byte(ids[7]), id}}},
		{"update many, 3 keys", b.sql.updateMany, pkey, []any{[][]byte{owner, owner, []byte("owner-7")}, [][]byte{[]byte(ids[60]), []byte(ids[7]), id},
			[]int64{1, 1, 1}, [][]byte{[]byte(`{}`), []byte(`{}`), []byte(`{}`)}, []bool{false, true, true}, [][]byte{nil, []byte("node-b"), []byte("node-b")},
			[]string{pgPayload("big", ids[60], 2), pgPayload("big", ids[7], 2), pgPayload("owner-7", ids[50], 2)}, b.channel,
			[]*string{&working, &inputRequired, nil}, int16(3)}},
		{"delete", b.sql.del, pkey, []any{owner, id, b.channel, pgPayload("big", ids[50], 0), int16(3)}},
		{"list, first page of 50", b.sql.listFirst, pkey, []any{owner, int64(51)}},
		{"list, page of 50 after a cursor", b.sql.list, pkey, []any{owner, int64(51), id}},
		{"sweep one batch", b.sql.sweep, expIdx, []any{int16(3)}},
		{"by status, first page of 50 (working: 55% of rows)", b.sql.byStatusFirst, statusIdx, []any{working, int64(51)}},
		{"by status, page of 50 after a key (working)", b.sql.byStatus, statusIdx, []any{working, int64(51), id, owner}},
		{"by status, first page of 50 (input_required: 0.1% of rows)", b.sql.byStatusFirst, statusIdx, []any{inputRequired, int64(51)}},
	} {
		for _, generic := range []bool{false, true} {
			plan := pgExplain(t, b, tc.sql, generic, tc.args...)
			kind := "custom plan"
			if generic {
				kind = "generic plan"
			}
			if !strings.Contains(plan, "using "+tc.index) || strings.Contains(plan, "Seq Scan") {
				t.Errorf("%s (%s) does not use %s without a sequential scan:\n%s", tc.name, kind, tc.index, plan)
			}
			pgExplainOut(t, tc.name, kind, strings.ReplaceAll(plan, b.table, pgDefaultTable))
		}
	}
	// A page costs the page: executed, the index scan of a listing reads
	// limit+1 index entries and rows, whether the status has 55,000 rows
	// or 100 (here from the middle of the range, past the big owner's).
	for _, tc := range []struct {
		status string
		after  []any
	}{{working, nil}, {working, []any{[]byte(ids[50]), []byte("owner-7")}}, {inputRequired, nil}} {
		sql, args := b.sql.byStatusFirst, []any{tc.status, int64(51)}
		if tc.after != nil {
			sql, args = b.sql.byStatus, append(args, tc.after...)
		}
		if read := pgRowsRead(t, b, sql, args...); read != 51 {
			t.Errorf("listing %s after %q: the index scan read %d rows, want 51", tc.status, tc.after, read)
		}
	}
}

// pgRowsRead executes sql under EXPLAIN ANALYZE and returns the rows its
// scans read: returned plus removed by a filter.
func pgRowsRead(t *testing.T, b *postgresBackend, sql string, args ...any) int {
	t.Helper()
	var out []byte
	if err := b.pool.QueryRow(t.Context(), "EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF, FORMAT JSON) "+sql, args...).Scan(&out); err != nil {
		t.Fatal(err)
	}
	type node struct {
		Type    string  `json:"Node Type"`
		Rows    float64 `json:"Actual Rows"`
		Removed float64 `json:"Rows Removed by Filter"`
		Plans   []node  `json:"Plans"`
	}
	var plans []struct{ Plan node }
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("EXPLAIN output %s: %v", out, err)
	}
	read := 0
	var walk func(n node)
	walk = func(n node) {
		if strings.Contains(n.Type, "Scan") {
			read += int(n.Rows + n.Removed)
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(plans[0].Plan)
	return read
}

// pgExplain returns the plan of sql on one connection: EXPLAIN with the
// values, or a generic plan of a prepared statement.
func pgExplain(t *testing.T, b *postgresBackend, sql string, generic bool, args ...any) string {
	t.Helper()
	ctx := t.Context()
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	var out []string
	collect := func(query string, args ...any) {
		rows, err := conn.Query(ctx, query, args...)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			out = append(out, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	if !generic {
		collect("EXPLAIN (COSTS OFF) "+sql, args...)
		return strings.Join(out, "\n")
	}
	// A generic plan: prepared with parameter types, planned without values.
	types := []string{"bytea", "bytea", "timestamptz", "bytea", "bigint", "bigint", "boolean", "bytea", "text", "text", "text", "smallint"}
	switch sql {
	case b.sql.update:
		types = []string{"bytea", "bytea", "bigint", "bytea", "boolean", "bytea", "text", "text", "text", "smallint"}
	case b.sql.del:
		types = []string{"bytea", "bytea", "text", "text", "smallint"}
	case b.sql.sweep:
		types = []string{"smallint"}
	case b.sql.runnerTasks:
		types = []string{"bytea", "bigint"}
	case b.sql.getMany:
		types = []string{"bytea[]", "bytea[]"}
	case b.sql.updateMany:
		types = []string{"bytea[]", "bytea[]", "bigint[]", "bytea[]", "boolean[]", "bytea[]", "text[]", "text", "text[]", "smallint"}
	case b.sql.listFirst:
		types = []string{"bytea", "bigint"}
	case b.sql.list:
		types = []string{"bytea", "bigint", "bytea"}
	case b.sql.byStatusFirst:
		types = []string{"text", "bigint"}
	case b.sql.byStatus:
		types = []string{"text", "bigint", "bytea", "bytea"}
	}
	types = types[:len(args)]
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "RESET plan_cache_mode")
	prep := "PREPARE mcptasks_explain"
	if len(types) > 0 {
		prep += " (" + strings.Join(types, ", ") + ")"
	}
	if _, err := conn.Exec(ctx, prep+" AS "+sql); err != nil {
		t.Fatalf("PREPARE: %v", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "DEALLOCATE mcptasks_explain")
	// EXPLAIN EXECUTE takes literal values; a generic plan ignores them.
	vals := make([]string, len(types))
	for i, ty := range types {
		vals[i] = map[string]string{"bytea": `'\x00'::bytea`, "timestamptz": "now()", "bigint": "1", "boolean": "true", "text": "'x'",
			"smallint": "1", "bytea[]": `ARRAY['\x00'::bytea]`, "bigint[]": "ARRAY[1::bigint]", "boolean[]": "ARRAY[true]", "text[]": "ARRAY['x']"}[ty]
	}
	exec := "EXPLAIN (COSTS OFF) EXECUTE mcptasks_explain"
	if len(vals) > 0 {
		exec += "(" + strings.Join(vals, ", ") + ")"
	}
	collect(exec)
	return strings.Join(out, "\n")
}

// pgExplainOut appends one plan to $MCPTASKS_EXPLAIN_OUT in Markdown.
func pgExplainOut(t *testing.T, name, kind, plan string) {
	path := os.Getenv("MCPTASKS_EXPLAIN_OUT")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "%s, %s:\n\n```\n%s\n```\n\n", name, kind, plan)
}

// ---- Benchmarks ----
//
//	eval "$(scripts/postgres_up.sh .tmp/postgres)"
//	go test -tags postgres -run '^$' -bench 'PostgresRatios' -benchtime 10x .

// pgBenchCallers is how many goroutines the parallel measurements run.
const pgBenchCallers = 64

func BenchmarkPostgresStore(b *testing.B) {
	b.SetParallelism((pgBenchCallers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	storetest.RunBenchmarks(b, newPostgresFactory(postgresTestURL(b), "pool_max_conns=16"))
}

// BenchmarkPostgresRatios measures the Store and the backend against raw
// pgx round trips on the same pool and table, in alternating rounds (each
// round runs every operation 300 times with one caller, 2400 times with 64
// callers), so that a busy machine slows all of them alike. The floors:
// SELECT, a primary-key SELECT of a row like a task's; UPDATE, a
// conditional UPDATE … WHERE version = $3 of such a row. It reports each
// operation's rate and its ratio to its floor (reads to SELECT, writes to
// UPDATE); list pages are reported against SELECT for an owner of 100 and
// one of 100,000 tasks, and a page of ListByStatus of the 100,000+
// working tasks of every owner.
func BenchmarkPostgresRatios(b *testing.B) {
	pb := newPostgresFactory(postgresTestURL(b), "pool_max_conns=16", "sweep=0")(b).(*postgresBackend)
	s := taskstore.New(pb, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	ids := pgFill(b, pb, s, "bench", 100)
	pgFill(b, pb, s, "bench-big", 100_000)
	casIDs := pgFill(b, pb, s, "bench-cas", pgBenchCallers)
	statusIDs := pgFill(b, pb, s, "bench-status", pgBenchCallers)
	floorIDs := pgFill(b, pb, s, "bench-floor", pgBenchCallers)
	if _, err := pb.pool.Exec(b.Context(), "ANALYZE "+pb.qualified()); err != nil {
		b.Fatal(err)
	}
	raw, err := pb.Get(b.Context(), "bench", ids[0])
	if err != nil {
		b.Fatal(err)
	}
	midID := fmt.Sprintf("%016x-%x", 50_000, md5.Sum([]byte("50000"))) // pgFill's id of bench-big's 50,000th task
	t := pb.qualified()
	v2IDs := pgFill(b, pb, s, "bench-v2", pgBenchCallers)
	v2Update, v2Create := pgSchema2Statements(t)
	var flips, casVersions, statusVersions, v2Versions, floorVersions [pgBenchCallers]uint64
	names := []string{"SELECT", "UPDATE", "BackendGet", "Get", "Schema2Update", "BackendUpdate", "BackendUpdateStatus", "UpdateStatus",
		"SetVariables", "Schema2Create", "BackendCreate", "BackendList50", "StoreList50", "StoreList50Of100000", "BackendByStatus50"}
	floorOf := map[string]string{"BackendGet": "SELECT", "Get": "SELECT", "Schema2Update": "UPDATE", "BackendUpdate": "UPDATE",
		"BackendUpdateStatus": "UPDATE", "UpdateStatus": "UPDATE", "SetVariables": "UPDATE", "BackendList50": "SELECT",
		"StoreList50": "SELECT", "StoreList50Of100000": "SELECT", "BackendByStatus50": "SELECT"}
	// What schema 3 adds to a write: against the same write as the
	// previous release's statement makes it.
	schema2Of := map[string]string{"BackendCreate": "Schema2Create", "BackendUpdate": "Schema2Update", "BackendUpdateStatus": "Schema2Update"}
	ops := map[string]func(ctx context.Context, c, i int) error{
		"SELECT": func(ctx context.Context, c, i int) error {
			var v int64
			var data []byte
			return pb.pool.QueryRow(ctx, "SELECT version, data FROM "+t+" WHERE owner = $1 AND task_id = $2",
				[]byte("bench"), []byte(ids[c%len(ids)])).Scan(&v, &data)
		},
		"UPDATE": func(ctx context.Context, c, i int) error {
			tag, err := pb.pool.Exec(ctx, "UPDATE "+t+" SET version = version + 1, data = $4 WHERE owner = $1 AND task_id = $2 AND version = $3",
				[]byte("bench-floor"), []byte(floorIDs[c]), int64(floorVersions[c]+1), raw.Data)
			if err == nil && tag.RowsAffected() != 1 {
				err = fmt.Errorf("floor UPDATE changed %d rows", tag.RowsAffected())
			}
			floorVersions[c]++
			return err
		},
		"BackendGet": func(ctx context.Context, c, i int) error {
			_, err := pb.Get(ctx, "bench", ids[c%len(ids)])
			return err
		},
		"Get": func(ctx context.Context, c, i int) error {
			_, err := s.Get(ctx, "bench", ids[c%len(ids)])
			return err
		},
		// An update that keeps the status (as most are: variables,
		// messages, a lease's claim), and one that changes it: the
		// status index gets an entry and the counts a row update.
		"BackendUpdate": func(ctx context.Context, c, i int) error {
			v, err := pb.Update(ctx, taskstore.Record{Owner: "bench-cas", TaskID: casIDs[c], Data: raw.Data, Active: true, Status: raw.Status}, casVersions[c]+1)
			casVersions[c] = v - 1
			return err
		},
		// The previous release's update (no status column, no counts):
		// what any update, a status change included, cost before.
		"Schema2Update": func(ctx context.Context, c, i int) error {
			exp := int64(v2Versions[c] + 1)
			var updated, cur *int64
			var notified int64
			err := pb.pool.QueryRow(ctx, v2Update, []byte("bench-v2"), []byte(v2IDs[c]), exp, raw.Data, true, nil,
				pb.channel, pgPayload("bench-v2", v2IDs[c], uint64(exp)+1)).Scan(&updated, &cur, &notified)
			if err == nil && updated == nil {
				err = fmt.Errorf("the schema 2 update did not apply")
			}
			v2Versions[c]++
			return err
		},
		"BackendUpdateStatus": func(ctx context.Context, c, i int) error {
			st := [2]taskstore.Status{taskstore.StatusInputRequired, taskstore.StatusWorking}[statusVersions[c]%2]
			v, err := pb.Update(ctx, taskstore.Record{Owner: "bench-status", TaskID: statusIDs[c], Data: raw.Data, Active: true, Status: st}, statusVersions[c]+1)
			statusVersions[c] = v - 1
			return err
		},
		"UpdateStatus": func(ctx context.Context, c, i int) error {
			flips[c]++
			st := [2]taskstore.Status{taskstore.StatusWorking, taskstore.StatusInputRequired}[flips[c]%2]
			_, err := s.UpdateStatus(ctx, "bench", ids[c%len(ids)], st, "")
			return err
		},
		"Schema2Create": func(ctx context.Context, c, i int) error {
			id := taskid.New(time.Now())
			var inserted, live, active, notified int64
			var exists bool
			err := pb.pool.QueryRow(ctx, v2Create, []byte("bench-create"), []byte(id), time.Now().Add(time.Hour), raw.Data, int64(0), int64(0),
				true, nil, pb.channel, pgPayload("bench-create", id, 1)).Scan(&inserted, &exists, &live, &active, &notified)
			if err == nil && inserted != 1 {
				err = fmt.Errorf("the schema 2 create did not insert")
			}
			return err
		},
		"BackendCreate": func(ctx context.Context, c, i int) error {
			return pb.Create(ctx, taskstore.Record{Owner: "bench-create", TaskID: taskid.New(time.Now()), Data: raw.Data,
				ExpiresAt: time.Now().Add(time.Hour), Active: true, Status: taskstore.StatusWorking}, taskstore.Limits{})
		},
		"SetVariables": func(ctx context.Context, c, i int) error {
			_, err := s.SetVariables(ctx, "bench", ids[c%len(ids)], map[string]json.RawMessage{"progress": json.RawMessage(strconv.Itoa(i))})
			return err
		},
		"BackendList50": func(ctx context.Context, c, i int) error {
			_, _, err := pb.List(ctx, "bench", "", 50)
			return err
		},
		"StoreList50": func(ctx context.Context, c, i int) error {
			_, err := s.List(ctx, "bench", "", 50)
			return err
		},
		"StoreList50Of100000": func(ctx context.Context, c, i int) error {
			_, err := s.List(ctx, "bench-big", "", 50)
			return err
		},
		// A page of the 100,000+ working tasks of every owner, from the
		// middle of the index.
		"BackendByStatus50": func(ctx context.Context, c, i int) error {
			_, _, err := pb.ListByStatus(ctx, taskstore.StatusWorking, taskstore.Key{Owner: "bench-big", TaskID: midID}, 50)
			return err
		},
	}
	for _, callers := range []int{1, pgBenchCallers} {
		perRound := 300 * max(1, callers/8)
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			ctx := b.Context()
			spent := map[string]time.Duration{}
			for range b.N {
				for _, name := range names {
					op := ops[name]
					start := time.Now()
					var wg sync.WaitGroup
					for c := range callers {
						wg.Go(func() {
							for i := c; i < perRound; i += callers {
								if err := op(ctx, c, i); err != nil {
									b.Error(name, err)
									return
								}
							}
						})
					}
					wg.Wait()
					spent[name] += time.Since(start)
				}
			}
			rate := func(name string) float64 { return float64(b.N*perRound) / spent[name].Seconds() }
			for _, name := range names {
				b.ReportMetric(rate(name), name+"/s")
				if f, ok := floorOf[name]; ok {
					b.ReportMetric(rate(name)/rate(f), name+"/"+f)
				}
				if f, ok := schema2Of[name]; ok {
					b.ReportMetric(rate(name)/rate(f), name+"/"+f)
				}
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// pgSchema2Statements returns the update and create statements of the
// previous release (schema 2: no status column, no counts), verbatim, on
// table t: the baseline of what schema 3 adds to a write.
func pgSchema2Statements(t string) (update, create string) {
	update = `WITH cur AS (
	SELECT version FROM ` + t + ` WHERE owner = $1 AND task_id = $2 AND ` + pgLive + `
), u AS (
	UPDATE ` + t + ` SET version = version + 1, data = $4, active = $5, runner = $6
	WHERE owner = $1 AND task_id = $2 AND version = $3 AND ` + pgLive + `
	RETURNING version
), n AS (SELECT pg_notify($7, $8) FROM u)
SELECT (SELECT version FROM u), (SELECT version FROM cur), (SELECT count(*) FROM n)`
	create = `WITH cur AS (
	SELECT 1 FROM ` + t + ` WHERE owner = $1 AND task_id = $2 AND ` + pgLive + `
), live AS (
	SELECT count(*) AS n FROM (SELECT 1 FROM ` + t + ` WHERE owner = $1 AND ` + pgLive + ` ORDER BY task_id LIMIT $5) c
), act AS (
	SELECT count(*) AS n FROM (SELECT 1 FROM ` + t + ` WHERE owner = $1 AND active AND ` + pgLive + ` ORDER BY task_id LIMIT $6) c
), ins AS (
	INSERT INTO ` + t + ` AS r (owner, task_id, version, expires_at, data, active, runner)
	SELECT $1, $2, 1, $3, $4, $7, $8 WHERE NOT EXISTS (SELECT 1 FROM cur)
		AND ($5 = 0 OR (SELECT n FROM live) < $5) AND (NOT $7 OR $6 = 0 OR (SELECT n FROM act) < $6)
	ON CONFLICT (owner, task_id) DO UPDATE SET version = 1, expires_at = EXCLUDED.expires_at, data = EXCLUDED.data,
		active = EXCLUDED.active, runner = EXCLUDED.runner
		WHERE r.expires_at <= statement_timestamp()
	RETURNING 1
), n AS (SELECT pg_notify($9, $10) FROM ins)
SELECT (SELECT count(*) FROM ins), EXISTS (SELECT 1 FROM cur), (SELECT n FROM live), (SELECT n FROM act), (SELECT count(*) FROM n)`
	return update, create
}

// BenchmarkPostgresUpdateMany measures UpdateMany against the raw batch
// floor (rawfloor.OpenBatch: one plain UPDATE … FROM unnest replacing the
// same number of rows with the same bytes, no condition, no lock order, no
// notification) and against Update one record at a time, on the same pool
// and table, in alternating rounds with one caller (each round: 5 batches
// of the floor, 5 of UpdateMany, 1 of Updates), so that a busy machine
// slows all of them alike. Each update of a batch is a claim: the runner
// moves between two values, so the runner index changes as in a takeover.
// For batches of 100 and 1000 records of 512 bytes it reports updates/s
// and round trips (client writes) per update of each, and each one's
// ratio to the floor.
//
//	go test -tags postgres -run '^$' -bench 'PostgresUpdateMany' -benchtime 5x .
func BenchmarkPostgresUpdateMany(b *testing.B) {
	const size, floorRounds, manyRounds = 512, 5, 5
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			ctx := b.Context()
			pb, writes := newPostgresCounted(b, 4)
			recs := pgCreateMany(b, pb, "bench", n, size)
			write, cleanup, err := rawfloor.OpenBatch(ctx, pb, n, size)
			if err != nil {
				b.Fatal(err)
			}
			defer cleanup(context.WithoutCancel(ctx))
			if _, err := pb.pool.Exec(ctx, "ANALYZE "+pb.qualified()); err != nil {
				b.Fatal(err)
			}
			runners := [2]string{"alive", "dead"}
			claims := 0
			batch := func() []taskstore.Update {
				claims++
				out := make([]taskstore.Update, n)
				for i, r := range recs {
					r.Runner = runners[claims%2]
					out[i] = taskstore.Update{Record: r, Expected: r.Version}
				}
				return out
			}
			many := func() error {
				updates := batch()
				res, err := pb.UpdateMany(ctx, updates)
				if err != nil {
					return err
				}
				for i, r := range res {
					if r.Err != nil {
						return fmt.Errorf("update %d: %w", i, r.Err)
					}
					recs[i].Version, recs[i].Runner = r.Version, updates[i].Record.Runner
				}
				return nil
			}
			oneByOne := func() error {
				for i, u := range batch() {
					v, err := pb.Update(ctx, u.Record, u.Expected)
					if err != nil {
						return fmt.Errorf("update %d: %w", i, err)
					}
					recs[i].Version, recs[i].Runner = v, u.Record.Runner
				}
				return nil
			}
			phases := []struct {
				name   string
				rounds int
				run    func() error
			}{
				{"floor", floorRounds, func() error { return write(ctx) }},
				{"UpdateMany", manyRounds, many},
				{"Update", 1, oneByOne},
			}
			// Once each before measuring: the statements are prepared on
			// the connections.
			for _, p := range phases {
				if err := p.run(); err != nil {
					b.Fatal(p.name, err)
				}
			}
			spent, trips, updates := map[string]time.Duration{}, map[string]int64{}, map[string]int{}
			b.ResetTimer()
			for range b.N {
				for _, p := range phases {
					w, start := writes.Load(), time.Now()
					for range p.rounds {
						if err := p.run(); err != nil {
							b.Fatal(p.name, err)
						}
					}
					spent[p.name] += time.Since(start)
					trips[p.name] += writes.Load() - w
					updates[p.name] += p.rounds * n
				}
			}
			b.StopTimer()
			var names []string
			for _, p := range phases {
				names = append(names, p.name)
			}
			reportBatchPhases(b, "update", names, spent, updates, trips)
		})
	}
}

// BenchmarkPostgresTakeover: benchTakeover, round trips counted as the
// client's writes to the server.
//
//	go test -tags postgres -run '^$' -bench PostgresTakeover -benchtime 3x .
func BenchmarkPostgresTakeover(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			pb, writes := newPostgresCounted(b, 4)
			benchTakeover(b, pb, writes.Load, n)
		})
	}
}
