//go:build postgres

package mcptasks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
	"github.com/mcptasks/mcptasks/taskstore/storetest"
)

// The test server comes from the environment (scripts/postgres_up.sh
// prints this line). Unset skips the test, unless MCPTASKS_TEST_REQUIRE=1.
const envPostgresURL = "MCPTASKS_TEST_POSTGRES_URL"

func postgresTestURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(envPostgresURL)
	if u == "" {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") == "1" {
			tb.Fatalf("%s is not set and MCPTASKS_TEST_REQUIRE=1; start a server with: eval \"$(scripts/postgres_up.sh .tmp/postgres)\"", envPostgresURL)
		}
		tb.Skipf("%s is not set; start a server with: eval \"$(scripts/postgres_up.sh .tmp/postgres)\"", envPostgresURL)
	}
	return u
}

func pgRandomTable() string {
	var b [6]byte
	rand.Read(b[:])
	return "mcptasks_test_" + hex.EncodeToString(b[:])
}

// pgWithOptions adds query options to a URL.
func pgWithOptions(raw string, opts ...string) string {
	if len(opts) == 0 {
		return raw
	}
	sep := "?"
	if strings.Contains(raw, "?") {
		sep = "&"
	}
	return raw + sep + strings.Join(opts, "&")
}

// pgDropTable removes a test table with a pool of its own (the test may
// have closed the backend's).
func pgDropTable(tb testing.TB, rawURL, table string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, rawURL)
	if err != nil {
		tb.Errorf("dropping test table: %v", err)
		return
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "DROP TABLE IF EXISTS public."+table+", public."+table+"_runners, public."+table+"_counts"); err != nil {
		tb.Errorf("dropping test table: %v", err)
	}
}

// newPostgresFactory returns a storetest.NewBackend over the server at
// rawURL: a table of its own per backend, dropped at cleanup.
func newPostgresFactory(rawURL string, opts ...string) storetest.NewBackend {
	return func(tb testing.TB) taskstore.Backend {
		tb.Helper()
		table := pgRandomTable()
		b, err := OpenBackend(context.Background(), pgWithOptions(rawURL, append([]string{"table=" + table, "create_table=true"}, opts...)...))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			b.Close()
			pgDropTable(tb, rawURL, table)
		})
		return b
	}
}

func init() {
	sharedTestBackends["postgres"] = func(tb testing.TB) taskstore.Backend { return newPostgresFactory(postgresTestURL(tb))(tb) }
}

func TestPostgresConformance(t *testing.T) {
	storetest.Run(t, newPostgresFactory(postgresTestURL(t)))
}

func TestPostgresOpenErrors(t *testing.T) {
	t.Run("URL", func(t *testing.T) {
		for _, raw := range []string{
			"postgres://u@127.0.0.1:1?nosuch=1",
			"postgres://u@127.0.0.1:1?application_name=x", // a runtime parameter pgx would pass on
			"postgres://u@127.0.0.1:1?search_path=evil",
			"postgres://u@127.0.0.1:1?servicefile=/etc/passwd&service=x",
			"postgres://u@127.0.0.1:1?sslmode=sometimes",
			"postgres://u@127.0.0.1:1?sslmode=disable&sslrootcert=/x",
			"postgres://u@127.0.0.1:1?sslcert=/x",
			"postgres://u@127.0.0.1:1?pool_max_conns=-1",
			"postgres://u@127.0.0.1:1?pool_max_conns=2&pool_min_conns=3",
			"postgres://u@127.0.0.1:1?connect_timeout=0",
			"postgres://u@127.0.0.1:1?connect_timeout=5s",
			"postgres://u@127.0.0.1:1?table=Tasks",
			"postgres://u@127.0.0.1:1?table=a;drop",
			"postgres://u@127.0.0.1:1?sweep=1us",
			"postgres://u@127.0.0.1:1?create_table=maybe",
			"postgres://u@127.0.0.1:1?sslmode=disable&sslmode=require",
			"postgres://u@127.0.0.1:99999",
			"postgres://u@a,b/db",
			"postgres://u@127.0.0.1:1/a/b",
			"postgres://u@127.0.0.1:1?host=/tmp",
			"postgres://127.0.0.1:1/db",
			"postgres:///db",
		} {
			if b, err := OpenBackend(t.Context(), raw); err == nil {
				b.Close()
				t.Errorf("OpenBackend(%q) succeeded", raw)
			} else {
				t.Logf("%s: %v", raw, err)
			}
		}
	})

	t.Run("Unreachable", func(t *testing.T) {
		port := pgFreePort(t)
		start := time.Now()
		_, err := OpenBackend(t.Context(), fmt.Sprintf("postgres://u:s3cret@127.0.0.1:%d/db?sslmode=disable&connect_timeout=1", port))
		pgCheckOpenErr(t, err, "refused")
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Open took %v with connect_timeout=1", d)
		}
	})

	t.Run("MissingTable", func(t *testing.T) {
		_, err := OpenBackend(t.Context(), pgWithOptions(postgresTestURL(t), "table="+pgRandomTable()))
		if err == nil || !errors.Is(err, taskstore.ErrBackend) || !strings.Contains(err.Error(), "create-table") {
			t.Fatalf("Open without the table: %v; want ErrBackend naming create-table", err)
		}
	})

	t.Run("WrongSchemaVersion", func(t *testing.T) {
		raw := postgresTestURL(t)
		table := pgRandomTable()
		b := newPostgresFactory(raw)(t).(*postgresBackend)
		t.Cleanup(func() { pgDropTable(t, raw, table) })
		if _, err := b.pool.Exec(t.Context(), "CREATE TABLE public."+table+" (x int)"); err != nil {
			t.Fatal(err)
		}
		_, err := OpenBackend(t.Context(), pgWithOptions(raw, "table="+table))
		if err == nil || !strings.Contains(err.Error(), "not an mcptasks table") {
			t.Fatalf("Open of a foreign table: %v", err)
		}
		if _, err := b.pool.Exec(t.Context(), "COMMENT ON TABLE public."+table+" IS 'mcptasks schema 99'"); err != nil {
			t.Fatal(err)
		}
		_, err = OpenBackend(t.Context(), pgWithOptions(raw, "table="+table))
		if err == nil || !strings.Contains(err.Error(), "mcptasks schema 99") {
			t.Fatalf("Open of a table of schema 99: %v", err)
		}
	})

	t.Run("WrongUser", func(t *testing.T) {
		u, err := url.Parse(postgresTestURL(t))
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword("nobody", "s3cret")
		_, err = OpenBackend(t.Context(), u.String())
		pgCheckOpenErr(t, err, "nobody")
	})
}

// pgFreePort returns a loopback port nothing listens on right now.
func pgFreePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pgCheckOpenErr wants an ErrBackend that says why and never shows the password.
func pgCheckOpenErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one saying %q", want)
	}
	msg := err.Error()
	if !errors.Is(err, taskstore.ErrBackend) || !strings.Contains(msg, want) || !strings.Contains(msg, "cannot connect to PostgreSQL") {
		t.Fatalf("error %q: want ErrBackend saying %q", msg, want)
	}
	if strings.Contains(msg, "s3cret") {
		t.Fatalf("error shows the password: %q", msg)
	}
	t.Logf("Open error: %s", msg)
}

// TestPostgresIgnoresEnvironment sets every PG* variable pgx's parser
// reads to something that would break or redirect the connection; Open
// still connects where its URL says, with only our runtime parameters.
func TestPostgresIgnoresEnvironment(t *testing.T) {
	raw := postgresTestURL(t)
	dir := t.TempDir()
	table := pgRandomTable()
	// Registered before t.Setenv, so it runs after the variables are restored.
	t.Cleanup(func() { pgDropTable(t, raw, table) })
	for k, v := range map[string]string{
		"PGHOST": "192.0.2.1", "PGPORT": "1", "PGDATABASE": "nosuchdb", "PGUSER": "nobody",
		"PGPASSWORD": "wrong", "PGPASSFILE": dir + "/nosuch", "PGSSLMODE": "verify-full",
		"PGSSLCERT": dir + "/nosuch.crt", "PGSSLKEY": dir + "/nosuch.key", "PGSSLROOTCERT": dir + "/nosuch.pem",
		"PGSSLPASSWORD": "x", "PGSSLCERTMODE": "require", "PGSSLNEGOTIATION": "direct", "PGSSLSNI": "0",
		"PGAPPNAME": "evil", "PGCONNECT_TIMEOUT": "notanumber", "PGTARGETSESSIONATTRS": "standby",
		"PGTZ": "Antarctica/Troll", "PGOPTIONS": "-c search_path=evil", "PGMINPROTOCOLVERSION": "9.9",
		"PGMAXPROTOCOLVERSION": "9.9", "PGCHANNELBINDING": "require", "PGREQUIREAUTH": "gss",
	} {
		t.Setenv(k, v)
	}
	pb, err := OpenBackend(t.Context(), pgWithOptions(raw, "table="+table, "create_table=true"))
	if err != nil {
		t.Fatalf("Open with hostile PG* variables: %v", err)
	}
	defer pb.Close()
	b := pb.(*postgresBackend)
	var app, tz, path string
	if err := b.pool.QueryRow(t.Context(), "SELECT current_setting('application_name'), current_setting('TimeZone'), current_setting('search_path')").Scan(&app, &tz, &path); err != nil {
		t.Fatal(err)
	}
	if app != "mcptasks" || tz == "Antarctica/Troll" || strings.Contains(path, "evil") {
		t.Fatalf("session took settings from the environment: application_name=%q TimeZone=%q search_path=%q", app, tz, path)
	}
	storetest.Report(t, "bad_inputs", 23)
}

// TestPostgresExistingPool: NewPostgresBackend works on the caller's pool
// and leaves it open on Close.
func TestPostgresExistingPool(t *testing.T) {
	raw := postgresTestURL(t)
	pool, err := pgxpool.New(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	table := pgRandomTable()
	t.Cleanup(func() { pgDropTable(t, raw, table) })
	if _, err := NewPostgresBackend(t.Context(), pool, PostgresOptions{Table: table}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("NewPostgresBackend without the table: %v", err)
	}
	b, err := NewPostgresBackend(t.Context(), pool, PostgresOptions{Table: table, CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	r := taskstore.Record{Owner: "alice", TaskID: taskid.New(time.Now()), Data: []byte(`{}`)}
	if err := b.Create(t.Context(), r, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(t.Context(), "alice", r.TaskID); !errors.Is(err, taskstore.ErrBackend) {
		t.Fatalf("Get after Close: %v, want ErrBackend", err)
	}
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM public."+table).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the caller's pool after Close: %d rows, %v", n, err)
	}
	if _, err := NewPostgresBackend(t.Context(), nil, PostgresOptions{}); err == nil {
		t.Fatal("NewPostgresBackend(nil pool) succeeded")
	}
	if _, err := NewPostgresBackend(t.Context(), pool, PostgresOptions{Table: "Bad-Name"}); err == nil {
		t.Fatal("NewPostgresBackend with a bad table name succeeded")
	}
}

// TestPostgresSchema checks what the server holds: the DDL is idempotent,
// rows are stored byte for byte, expired rows stay invisible until the
// sweeper deletes them, in batches.
func TestPostgresSchema(t *testing.T) {
	raw := postgresTestURL(t)
	b := newPostgresFactory(raw, "sweep=0")(t).(*postgresBackend)
	ctx := t.Context()
	// The DDL a second time changes nothing and fails nothing.
	if err := b.createSchema(ctx); err != nil {
		t.Fatalf("DDL again: %v", err)
	}
	owner := "a\x00b\xff" // neither valid text nor UTF-8
	now := time.Now()
	var expired []string
	for i := range pgSweepBatch + 5 {
		r := taskstore.Record{Owner: owner, TaskID: taskid.New(now), Data: []byte(fmt.Sprintf(`{"i":%d}`, i)),
			ExpiresAt: now.Add(300 * time.Millisecond)}
		expired = append(expired, r.TaskID)
		if i == 0 {
			if err := b.Create(ctx, r, taskstore.Limits{}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := b.pool.Exec(ctx, "INSERT INTO "+b.qualified()+" (owner, task_id, version, expires_at, data) VALUES ($1, $2, 1, $3, $4)",
			[]byte(owner), []byte(r.TaskID), pgExpiry(r.ExpiresAt), r.Data); err != nil {
			t.Fatal(err)
		}
	}
	keep := taskstore.Record{Owner: owner, TaskID: taskid.New(now), Data: []byte(`{}`)}
	if err := b.Create(ctx, keep, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	var rawOwner []byte
	if err := b.pool.QueryRow(ctx, "SELECT owner FROM "+b.qualified()+" WHERE task_id = $1", []byte(keep.TaskID)).Scan(&rawOwner); err != nil || string(rawOwner) != owner {
		t.Fatalf("stored owner %q, %v; want %q", rawOwner, err, owner)
	}
	time.Sleep(400 * time.Millisecond)
	if _, err := b.Get(ctx, owner, expired[0]); !errors.Is(err, taskstore.ErrNotFound) {
		t.Fatalf("Get of an expired row: %v", err)
	}
	if err := b.Create(ctx, taskstore.Record{Owner: owner, TaskID: taskid.New(time.Now()), Data: []byte(`{}`)}, taskstore.Limits{MaxStored: 2}); err != nil {
		t.Fatalf("expired rows counted toward the quota: %v", err)
	}
	var rows int
	b.pool.QueryRow(ctx, "SELECT count(*) FROM "+b.qualified()).Scan(&rows)
	if rows != pgSweepBatch+7 {
		t.Fatalf("%d rows before the sweep, want %d (expired ones still there)", rows, pgSweepBatch+7)
	}
	n, err := b.DeleteExpired(ctx)
	if err != nil || n != pgSweepBatch+5 {
		t.Fatalf("DeleteExpired = %d, %v; want %d (two batches)", n, err, pgSweepBatch+5)
	}
	b.pool.QueryRow(ctx, "SELECT count(*) FROM "+b.qualified()).Scan(&rows)
	if rows != 2 {
		t.Fatalf("%d rows after the sweep, want 2", rows)
	}
	if n, err := b.DeleteExpired(ctx); err != nil || n != 0 {
		t.Fatalf("second DeleteExpired = %d, %v", n, err)
	}
}

// TestPostgresSweeper: the background sweeper deletes expired rows on its own.
func TestPostgresSweeper(t *testing.T) {
	b := newPostgresFactory(postgresTestURL(t), "sweep=50ms")(t).(*postgresBackend)
	r := taskstore.Record{Owner: "alice", TaskID: taskid.New(time.Now()), Data: []byte(`{}`), ExpiresAt: time.Now().Add(100 * time.Millisecond)}
	if err := b.Create(t.Context(), r, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var n int
		if err := b.pool.QueryRow(t.Context(), "SELECT count(*) FROM "+b.qualified()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the sweeper did not delete the expired row within 10s")
		}
	}
}

// TestPostgresLeastPrivilege runs the backend as a role with only the
// grants docs/postgres.md lists for a service: USAGE on the schema and
// SELECT, INSERT, UPDATE, DELETE on the tables, which a deploy role
// created. It can also repair the counts (RecountStatus).
func TestPostgresLeastPrivilege(t *testing.T) {
	raw := postgresTestURL(t)
	owner := newPostgresFactory(raw)(t).(*postgresBackend) // the deploy role made the table
	ctx := t.Context()
	role := "mcptasks_svc_" + strings.TrimPrefix(pgRandomTable(), "mcptasks_test_")
	for _, stmt := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"GRANT USAGE ON SCHEMA public TO " + role,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON " + owner.qualified() + ", " + owner.qualified() + "_runners, " + owner.qualified() + "_counts TO " + role,
	} {
		if _, err := owner.pool.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		owner.pool.Exec(c, "DROP OWNED BY "+role)
		owner.pool.Exec(c, "DROP ROLE "+role)
	})
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	svcURL := pgWithOptions(u.String(), "table="+owner.table)
	b, err := OpenBackend(ctx, svcURL)
	if err != nil {
		t.Fatalf("Open as %s: %v", role, err)
	}
	defer b.Close()
	r := taskstore.Record{Owner: "alice", TaskID: taskid.New(time.Now()), Data: []byte(`{}`), ExpiresAt: time.Now().Add(200 * time.Millisecond)}
	if err := b.Create(ctx, r, taskstore.Limits{MaxActive: 5, MaxStored: 5}); err != nil {
		t.Fatalf("Create with a quota: %v", err)
	}
	if _, err := b.Update(ctx, taskstore.Record{Owner: "alice", TaskID: r.TaskID, Data: []byte(`{"v":2}`)}, 1); err != nil {
		t.Fatalf("Update: %v", err)
	}
	res, err := b.(taskstore.BatchUpdater).UpdateMany(ctx, []taskstore.Update{{Record: taskstore.Record{Owner: "alice", TaskID: r.TaskID, Data: []byte(`{"v":3}`)}, Expected: 2}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("UpdateMany: %v, %+v", err, res)
	}
	if _, _, err := b.List(ctx, "alice", "", 10); err != nil {
		t.Fatalf("List: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if n, err := b.DeleteExpired(ctx); err != nil || n != 1 {
		t.Fatalf("DeleteExpired: %d, %v", n, err)
	}
	r.TaskID, r.ExpiresAt = taskid.New(time.Now()), time.Time{}
	if err := b.Create(ctx, r, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	if existed, err := b.Delete(ctx, "alice", r.TaskID); err != nil || !existed {
		t.Fatalf("Delete: %v, %v", existed, err)
	}
	if _, err := b.(*postgresBackend).RecountStatus(ctx); err != nil {
		t.Fatalf("RecountStatus: %v", err)
	}
	// And nothing more: it cannot change the schema.
	if _, err := OpenBackend(ctx, pgWithOptions(u.String(), "table="+pgRandomTable(), "create_table=true")); err == nil {
		t.Fatal("the service role could create a table")
	}
}

// TestPostgresRawFloor: the floors read and write their rows, which no
// owner lists or counts, and remove them.
func TestPostgresRawFloor(t *testing.T) {
	b := newPostgresFactory(postgresTestURL(t))(t).(*postgresBackend)
	testRawFloor(t, b)
	var n int
	if err := b.pool.QueryRow(t.Context(), "SELECT count(*) FROM "+b.qualified()).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows after the floor's cleanup, %v", n, err)
	}
}

// TestPostgresMigratesSchema1: a table made by schema 1 (no active, no
// runner, no heartbeats) is refused by Open until the DDL runs, which
// migrates it in place and keeps its rows readable.
func TestPostgresMigratesSchema1(t *testing.T) {
	raw, table, pool := pgBareTable(t)
	ctx := t.Context()
	id := taskid.New(time.Now())
	for _, stmt := range []string{
		`CREATE TABLE public.` + table + ` (owner bytea NOT NULL, task_id bytea NOT NULL, version bigint NOT NULL,
	expires_at timestamptz, data bytea NOT NULL, CONSTRAINT ` + table + `_pkey PRIMARY KEY (owner, task_id) INCLUDE (expires_at))`,
		`COMMENT ON TABLE public.` + table + ` IS 'mcptasks schema 1'`,
		`INSERT INTO public.` + table + ` VALUES ('alice', '` + id + `', 3, NULL, '{"old":true}')`,
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	_, err := OpenBackend(ctx, pgWithOptions(raw, "table="+table))
	if err == nil || !strings.Contains(err.Error(), "mcptasks schema 1") {
		t.Fatalf("Open of a schema 1 table: %v", err)
	}
	b, err := OpenBackend(ctx, pgWithOptions(raw, "table="+table, "create_table=true"))
	if err != nil {
		t.Fatalf("migrating: %v", err)
	}
	defer b.Close()
	got, err := b.Get(ctx, "alice", id)
	if err != nil || got.Version != 3 || string(got.Data) != `{"old":true}` || got.Active || got.Runner != "" || got.Status != "" {
		t.Fatalf("the old row after the migration: %+v, %v", got, err)
	}
	if err := b.Heartbeat(ctx, "node-a"); err != nil {
		t.Fatalf("heartbeat after the migration: %v", err)
	}
}

// TestPostgresPayload: a change's NOTIFY payload carries the key and the
// version written, fits NOTIFY's limit, and a payload without a version
// (a delete, or any change from a release before the version) decodes
// with version 0.
func TestPostgresPayload(t *testing.T) {
	long := strings.Repeat("o", 2000)
	for _, tc := range []struct {
		name, owner, id string
		version         uint64
		payload         string
	}{
		{"create", "al/ice", "t1", 1, "616c2f696365/7431/1"},
		{"update", "\xff\x00", "t1", 18446744073709551615, "ff00/7431/18446744073709551615"},
		{"delete", "alice", "t1", 0, "616c696365/7431"},
		{"the longest key that fits", long, strings.Repeat("i", (pgMaxPayload-22)/2-2000), 7, ""},
		{"a key too long", long, strings.Repeat("i", (pgMaxPayload-22)/2-2000+1), 7, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pgPayload(tc.owner, tc.id, tc.version)
			if len(p) > pgMaxPayload {
				t.Fatalf("payload of %d bytes, over %d", len(p), pgMaxPayload)
			}
			if tc.payload != "" && p != tc.payload {
				t.Fatalf("payload %q, want %q", p, tc.payload)
			}
			if tc.name == "a key too long" {
				if p != "" {
					t.Fatalf("payload of %d bytes for a key too long, want none (a Resync)", len(p))
				}
				return
			}
			if p == "" {
				t.Fatal("no payload for a key that fits")
			}
			got, ok := pgParsePayload(p)
			want := taskstore.Change{Owner: tc.owner, TaskID: tc.id, Version: tc.version}
			if !ok || got != want {
				t.Fatalf("pgParsePayload(%q) = %+v, %v; want %+v", p, got, ok, want)
			}
		})
	}
	for _, bad := range []string{"", "616c696365", "zz/7431", "616c696365/7431/", "616c696365/7431/-1", "616c696365/7431/1/2", "616c696365/7431/18446744073709551616"} {
		if c, ok := pgParsePayload(bad); ok {
			t.Errorf("pgParsePayload(%q) = %+v, want a failure (a Resync)", bad, c)
		}
	}
}

// TestPostgresFeedOldPayload: a change published by a replica of a
// release before the version (hex(owner) "/" hex(task id)) reaches
// subscribers with version 0, so no writer takes it for its own echo.
func TestPostgresFeedOldPayload(t *testing.T) {
	b := newPostgresFactory(postgresTestURL(t))(t).(*postgresBackend)
	next := subscribed(t, b)
	old := hex.EncodeToString([]byte("alice")) + "/" + hex.EncodeToString([]byte("t1"))
	if _, err := b.pool.Exec(t.Context(), "SELECT pg_notify($1, $2)", b.channel, old); err != nil {
		t.Fatal(err)
	}
	if c, want := next(), (taskstore.Change{Owner: "alice", TaskID: "t1"}); c != want {
		t.Fatalf("an old payload delivered as %+v, want %+v", c, want)
	}
}
