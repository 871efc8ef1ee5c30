//go:build postgres

package main

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BenchmarkTakeoverAtScalePostgres: see benchTakeover. The statements are
// counted by pg_stat_statements, which the server must preload. Run:
//
//	eval "$(MCPTASKS_PG_STAT_STATEMENTS=1 scripts/postgres_up.sh .tmp/postgres)"
//	go test -tags postgres -run '^$' -bench TakeoverAtScalePostgres -benchtime 1x -count 3 -timeout 60m ./cmd/mcptasks/
func BenchmarkTakeoverAtScalePostgres(b *testing.B) {
	base := testServerEnv(b, "MCPTASKS_TEST_POSTGRES_URL", "scripts/postgres_up.sh")
	conn, err := pgx.Connect(b.Context(), base)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(b.Context(), `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(b.Context(), `SELECT 1 FROM pg_stat_statements LIMIT 1`); err != nil {
		b.Fatalf("pg_stat_statements: %v (start the server with MCPTASKS_PG_STAT_STATEMENTS=1 scripts/postgres_up.sh)", err)
	}
	benchTakeover(b, func(b *testing.B) takeoverStore {
		table := "takeover_" + randomSuffix()
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS `+table+`, `+table+`_runners, `+table+`_counts`); err != nil {
				b.Logf("dropping %s: %v", table, err)
			}
		})
		u := base + sep + "table=" + table + "&create_table=true"
		return takeoverStore{tags: "postgres", replicaURL: u, probeURL: u, counter: pgCounter{conn, table}, runnersCmd: "runners",
			counted: "pg_stat_statements calls: each a round trip, top-level statements only"}
	})
}

// pgCounter counts the calls of each statement on the probe's table.
type pgCounter struct {
	conn  *pgx.Conn
	table string
}

func (p pgCounter) Counts(tb testing.TB) map[string]int64 { return p.read(tb, "calls") }

// Rows counts the rows the reading statements returned.
func (p pgCounter) Rows(tb testing.TB) map[string]int64 {
	out := p.read(tb, "rows")
	for k := range out {
		if !strings.HasPrefix(k, "get") && k != "runner-tasks" {
			delete(out, k)
		}
	}
	return out
}

// read sums a pg_stat_statements column by statement name.
func (p pgCounter) read(tb testing.TB, column string) map[string]int64 {
	rows, err := p.conn.Query(tb.Context(), `SELECT query, `+column+` FROM pg_stat_statements`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var q string
		var n int64
		if err := rows.Scan(&q, &n); err != nil {
			tb.Fatal(err)
		}
		if strings.Contains(q, p.table) {
			out[pgLabel(q, p.table)] += n
		}
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// pgShapes names the backend's statements by what their text holds (T is
// the table), first match wins.
var pgShapes = []struct {
	label string
	has   []string
}{
	{"update-many", []string{"UPDATE T SET", "unnest"}},
	{"update", []string{"UPDATE T SET"}},
	{"create", []string{"INSERT INTO T AS r"}},
	{"heartbeat", []string{"INSERT INTO T_runners"}},
	{"runners", []string{"SELECT runner, beat FROM T_runners"}},
	{"remove-runner", []string{"DELETE FROM T_runners"}},
	{"runner-tasks", []string{"WHERE runner = $1"}},
	{"get-many", []string{"SELECT owner, task_id", "unnest"}},
	{"get", []string{"SELECT version, expires_at, data"}},
}

// pgLabel names a statement of the backend by its shape; any other by its
// first words.
func pgLabel(q, table string) string {
	q = strings.ReplaceAll(q, `"`, "")
	q = regexp.MustCompile(`(\w+\.)?`+table).ReplaceAllString(q, "T")
	q = strings.Join(strings.Fields(q), " ")
	for _, sh := range pgShapes {
		if !slices.ContainsFunc(sh.has, func(part string) bool { return !strings.Contains(q, part) }) {
			return sh.label
		}
	}
	w := strings.Fields(q)
	return strings.Join(w[:min(len(w), 5)], "_")
}
