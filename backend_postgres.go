//go:build postgres

package mcptasks

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mcptasks/mcptasks/taskstore"
)

func init() {
	Register("postgres", openPostgres)
	Register("postgresql", openPostgres)
}

// Defaults of the postgres URL options (the schema's and the table's are
// with PostgresOptions), and limits.
const (
	pgDefaultPort           = 5432
	pgDefaultConnectTimeout = 5 * time.Second
	pgDefaultSweep          = time.Minute
	// pgSweepBatch bounds the rows one sweeping statement deletes, so that
	// no statement holds many row locks or runs long.
	pgSweepBatch = 1000
	// pgSweepBatchesPerTick bounds one run of the background sweeper; the
	// next tick continues.
	pgSweepBatchesPerTick = 100
	// pgCountShards is how many rows of the counts table each status has:
	// consecutive writes of a process add to different rows (see
	// shard), so that concurrent writers rarely wait on one another's
	// row lock.
	pgCountShards = 64
	// pgMaxRecord is the largest bytea value PostgreSQL stores (1 GiB - 1).
	// It is a guard, not an advertised limit (see MaxRecordSize).
	pgMaxRecord = 1<<30 - 1
)

// openPostgres opens
//
//	postgres://USER[:PASSWORD]@HOST[:PORT][/DATABASE][?OPTIONS]
//	postgresql://…                                     (the same)
//
// Options (any other is an error; pgx would pass unknown ones to the
// server as runtime parameters):
//
//	sslmode         disable, allow, prefer (default, as libpq), require, verify-ca, verify-full
//	sslrootcert     PEM file of the CAs to trust ("system": the system's; implies verify-full)
//	sslcert, sslkey client certificate and key files
//	host            host or Unix socket directory, when the URL has no host
//	pool_max_conns  connections in the pool (default: pgx's, the greater of 4 and the CPUs)
//	pool_min_conns  connections kept open (default 0)
//	connect_timeout seconds, as libpq (default 5); also bounds Open (but
//	                not the DDL of create_table, which can migrate a table)
//	schema          schema of the table (default "public")
//	table           table name (default "mcptasks_tasks")
//	create_table    create the table and index when missing (default false)
//	sweep           how often this backend deletes expired rows (default 1m; 0: never)
//
// The database defaults to the user name, as in libpq. No PG* environment
// variable and no password or service file is read: every setting pgx's
// parser would take from them is given explicitly (PGSERVICE is the one
// exception: pgx reads the service file it names before we override the
// settings, so a PGSERVICE naming a missing service makes Open fail).
//
// Open pings the server within connect_timeout (unless ctx ends sooner)
// and checks the table's schema version, so a wrong password, an
// unreachable server or a missing table fails here, with a message that
// names the server and the user but never the password.
func openPostgres(ctx context.Context, u *url.URL) (taskstore.Backend, error) {
	q := newQuery(u)
	sslmode := q.String("sslmode", "prefer")
	sslrootcert := q.String("sslrootcert", "")
	sslcert := q.String("sslcert", "")
	sslkey := q.String("sslkey", "")
	hostOpt := q.String("host", "")
	maxConns := q.Int("pool_max_conns", 0)
	minConns := q.Int("pool_min_conns", 0)
	connectTimeout := q.Int("connect_timeout", int(pgDefaultConnectTimeout/time.Second))
	opts := PostgresOptions{
		Schema:      q.String("schema", pgDefaultSchema),
		Table:       q.String("table", pgDefaultTable),
		CreateTable: q.Bool("create_table", false),
		Sweep:       q.Duration("sweep", pgDefaultSweep),
	}
	if err := q.done(); err != nil {
		return nil, err
	}
	if opts.Sweep == 0 {
		opts.Sweep = -1 // sweep=0: never (a zero PostgresOptions.Sweep is the default)
	}
	switch sslmode {
	case "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
	default:
		return nil, fmt.Errorf(`option "sslmode": %q is not one of disable, allow, prefer, require, verify-ca, verify-full`, sslmode)
	}
	if sslmode == "disable" && (sslrootcert != "" || sslcert != "" || sslkey != "") {
		return nil, errors.New("sslrootcert, sslcert and sslkey need TLS; drop sslmode=disable")
	}
	if (sslcert == "") != (sslkey == "") {
		return nil, errors.New("give sslcert and sslkey together")
	}
	if maxConns < 0 || minConns < 0 || maxConns > math.MaxInt32 || minConns > math.MaxInt32 {
		return nil, errors.New(`options "pool_max_conns" and "pool_min_conns" must not be negative`)
	}
	if maxConns > 0 && minConns > maxConns {
		return nil, errors.New(`option "pool_min_conns" must not exceed "pool_max_conns"`)
	}
	if connectTimeout <= 0 {
		return nil, errors.New(`option "connect_timeout" must be a positive number of seconds`)
	}
	if err := opts.check(); err != nil {
		return nil, err
	}

	host, port := u.Hostname(), pgDefaultPort
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return nil, errors.New("the URL's port must be a number from 1 to 65535")
		}
		port = n
	}
	switch {
	case host != "" && hostOpt != "":
		return nil, errors.New(`give the host either in the URL or as option "host", not both`)
	case hostOpt != "":
		host = hostOpt
	case host == "":
		return nil, fmt.Errorf("%s:// needs a host, such as %s://user@localhost:5432/db", u.Scheme, u.Scheme)
	}
	if strings.Contains(host, ",") {
		return nil, errors.New("one host only")
	}
	user, pass := "", ""
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}
	if user == "" {
		return nil, fmt.Errorf("%s:// needs a user, such as %s://user@localhost:5432/db", u.Scheme, u.Scheme)
	}
	db := strings.TrimPrefix(u.Path, "/")
	if strings.Contains(db, "/") {
		return nil, errors.New("the URL path must be one database name")
	}
	if db == "" {
		db = user
	}

	// Every key pgx's parser would otherwise fill from the environment or
	// from files in the home directory, given explicitly.
	settings := [][2]string{
		{"host", host}, {"port", strconv.Itoa(port)}, {"dbname", db}, {"user", user}, {"password", pass},
		{"passfile", ""}, {"sslmode", sslmode}, {"sslrootcert", sslrootcert}, {"sslcert", sslcert},
		{"sslkey", sslkey}, {"sslpassword", ""}, {"sslcertmode", "allow"}, {"sslsni", "1"},
		{"sslnegotiation", "postgres"}, {"connect_timeout", strconv.Itoa(connectTimeout)},
		{"target_session_attrs", "any"}, {"min_protocol_version", "3.0"}, {"max_protocol_version", "3.0"},
		{"channel_binding", "prefer"}, {"require_auth", ""},
	}
	var kv strings.Builder
	for _, s := range settings {
		if strings.ContainsRune(s[1], 0) {
			return nil, fmt.Errorf("the URL's %s contains a NUL byte", s[0])
		}
		v := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s[1])
		fmt.Fprintf(&kv, "%s='%s' ", s[0], v)
	}
	redact := func(err error) string {
		msg := err.Error()
		if pass != "" {
			msg = strings.ReplaceAll(msg, pass, "xxxxx")
		}
		return msg
	}
	cfg, err := pgxpool.ParseConfig(kv.String())
	if err != nil {
		return nil, fmt.Errorf("connection settings: %s", redact(err))
	}
	// Runtime parameters could have come from PGOPTIONS, PGTZ or PGAPPNAME.
	cfg.ConnConfig.RuntimeParams = map[string]string{"application_name": "mcptasks"}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	cfg.MinConns = int32(minConns)
	pool, err := pgxpool.NewWithConfig(context.WithoutCancel(ctx), cfg)
	if err != nil {
		return nil, fmt.Errorf("connection settings: %s", redact(err))
	}

	octx, cancel := context.WithTimeout(ctx, time.Duration(connectTimeout)*time.Second)
	defer cancel()
	if err := pool.Ping(octx); err != nil {
		pool.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("%w: cannot connect to PostgreSQL at %s as user %q: %w", taskstore.ErrBackend, net.JoinHostPort(host, strconv.Itoa(port)), user, cerr)
		}
		return nil, fmt.Errorf("%w: cannot connect to PostgreSQL at %s as user %q: %s", taskstore.ErrBackend, net.JoinHostPort(host, strconv.Itoa(port)), user, redact(err))
	}
	b, err := newPostgresBackend(ctx, pool, opts, true, time.Duration(connectTimeout)*time.Second)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return b, nil
}

// NewPostgresBackend returns a backend over a pool the caller owns: Close
// stops the backend's sweeper but leaves the pool open. It checks (or,
// with CreateTable, creates) the table first.
func NewPostgresBackend(ctx context.Context, pool *pgxpool.Pool, opts PostgresOptions) (taskstore.Backend, error) {
	if pool == nil {
		return nil, errors.New("mcptasks: NewPostgresBackend: nil pool")
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	return newPostgresBackend(ctx, pool, opts, false, 0)
}

// newPostgresBackend runs the DDL when asked (within ctx alone: migrating
// a large table takes as long as it takes), then checks the schema within
// checkTimeout (0: ctx alone).
func newPostgresBackend(ctx context.Context, pool *pgxpool.Pool, opts PostgresOptions, ownsPool bool, checkTimeout time.Duration) (*postgresBackend, error) {
	b := &postgresBackend{pool: pool, ownsPool: ownsPool, schema: opts.Schema, table: opts.Table}
	b.shards.Store(rand.Uint32())
	b.sql = pgStatements(b.qualified())
	b.channel = pgChannel(b.qualified())
	if opts.CreateTable {
		if err := b.createSchema(ctx); err != nil {
			return nil, err
		}
	}
	cctx := ctx
	if checkTimeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, checkTimeout)
		defer cancel()
	}
	if err := b.checkSchema(cctx); err != nil {
		return nil, err
	}
	sweep := opts.Sweep
	if sweep == 0 {
		sweep = pgDefaultSweep
	}
	sctx, cancel := context.WithCancel(context.Background())
	b.stop = cancel
	b.feed.listen, b.feed.stop, b.feed.what = b.listen, sctx, "postgres change feed"
	if sweep > 0 {
		b.wg.Go(func() { b.sweepLoop(sctx, sweep) })
	}
	return b, nil
}

// postgresBackend stores tasks in one PostgreSQL table (see PostgresDDL):
//
//	owner bytea, task_id bytea   primary key; bytea, not text, so any owner
//	                             string (a NUL, invalid UTF-8) is stored as
//	                             is, compared byte by byte (no collation),
//	                             and no owner is a prefix pattern of another
//	version bigint               1 on create, +1 per update
//	expires_at timestamptz       NULL: never; ms precision (rounded up)
//	data bytea                   the record, byte for byte
//	active boolean, runner bytea the quota's flag and the lease's runner
//	status text                  the task's status (NULL: not known)
//
// plus a partial index on expires_at for the sweeper. The primary key
// serves get, update, delete and a list page (an index range scan in
// descending key order, stopped by LIMIT); it includes expires_at, so the
// quota count is an index-only scan. An index on (status, task_id, owner)
// serves ListByStatus the same way, and the table _counts holds the
// number of rows of each status, in a few rows per status (shards), which
// every statement that changes a row's status changes too.
//
// Consistency: every method is one statement (Create with a quota: two in
// one pipeline, an implicit transaction), so one round trip, atomic, at
// READ COMMITTED; UpdateMany is one statement per batch, each of its
// updates its own compare-and-swap. Expiry is judged by the server's clock
// (statement_timestamp()): an expired row is invisible to every call and
// uncounted from the instant it expires, whether or not it has been
// deleted yet. Quotas are exact: a create with a quota first takes a
// transaction-scoped advisory lock on a hash of (table, owner), so creates
// of one owner count and insert one at a time, each counting with a fresh
// snapshot that sees every earlier one's row.
type postgresBackend struct {
	pool     *pgxpool.Pool
	ownsPool bool
	schema   string
	table    string
	sql      pgSQL
	channel  string
	feed     changeHub
	shards   atomic.Uint32 // the last counts shard given out

	closeGuard
	closeOnce sync.Once
	stop      context.CancelFunc // ends the sweeper and the change feed
	wg        sync.WaitGroup
}

// Interface guards
var (
	_ taskstore.Backend      = (*postgresBackend)(nil)
	_ taskstore.BatchGetter  = (*postgresBackend)(nil)
	_ taskstore.BatchUpdater = (*postgresBackend)(nil)
	_ taskstore.Notifier     = (*postgresBackend)(nil)
	_ taskstore.StatusIndex  = (*postgresBackend)(nil)
)

func (b *postgresBackend) qualified() string { return b.schema + "." + b.table }

// shard is the counts shard of a write: round robin, so the writes a
// process has in flight at once (at most its pool's connections) lock
// different rows of _counts; each process starts at a random shard.
// Two processes' writes meet on a row by chance.
func (b *postgresBackend) shard() int16 {
	return int16(b.shards.Add(1) % pgCountShards)
}

// createSchema runs the DDL in one transaction, under an advisory lock so
// that replicas starting together do not race on CREATE … IF NOT EXISTS
// (which is not safe against itself).
func (b *postgresBackend) createSchema(ctx context.Context) error {
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return b.fail(ctx, "create table", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, pgLockKey(b.qualified(), "ddl")); err != nil {
		return b.fail(ctx, "create table", err)
	}
	for _, stmt := range pgDDL(b.schema, b.table) {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return b.fail(ctx, "create table", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return b.fail(ctx, "create table", err)
	}
	return nil
}

// checkSchema wants the table with this release's schema version.
func (b *postgresBackend) checkSchema(ctx context.Context) error {
	var comment *string
	var exists bool
	err := b.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, obj_description(to_regclass($1), 'pg_class')`, b.qualified()).Scan(&exists, &comment)
	if err != nil {
		return b.fail(ctx, "check table", err)
	}
	want := "mcptasks schema " + strconv.Itoa(pgSchemaVersion)
	switch {
	case !exists:
		return fmt.Errorf("%w: table %s does not exist: create it with `mcptasks postgres create-table URL` or open with create_table=true", taskstore.ErrBackend, b.qualified())
	case comment == nil || !strings.HasPrefix(*comment, "mcptasks schema "):
		return fmt.Errorf("%w: table %s is not an mcptasks table (its comment does not name a schema version)", taskstore.ErrBackend, b.qualified())
	case *comment != want:
		return fmt.Errorf("%w: table %s has %s; this release uses %s", taskstore.ErrBackend, b.qualified(), *comment, want)
	}
	return nil
}

// pgLockKey is the advisory lock key of (table, owner): a 64-bit hash.
// Two owners sharing a key only wait for each other.
func pgLockKey(table, owner string) int64 {
	h := fnv.New64a()
	h.Write([]byte(table))
	h.Write([]byte{0})
	h.Write([]byte(owner))
	return int64(h.Sum64())
}

// pgSQL holds the statements of one table.
type pgSQL struct {
	create, get, update, updateMany, del, list, listFirst, sweep string
	heartbeat, runners, removeRunner, runnerTasks, getMany       string
	byStatus, byStatusFirst, countStatus                         string
}

// pgLive is the condition of a live row.
const pgLive = `(expires_at IS NULL OR expires_at > statement_timestamp())`

// pgColumns are the columns of a whole row, as queryRecords scans them.
const pgColumns = `owner, task_id, version, expires_at, data, active, runner, coalesce(status, '')`

// pgCounted is the CTE cnt: it adds to the counts table the deltas that
// the query deltas returns (rows of status, +1 or -1), in the rows of the
// shard given as parameter shard (see postgresBackend.shard). A status
// whose deltas sum to 0 (an update that keeps the status) writes nothing;
// the rows are locked in status order, so statements changing several
// never deadlock. A NULL status is not counted.
func pgCounted(t, shard, deltas string) string {
	return `cnt AS (
	INSERT INTO ` + t + `_counts AS c (status, shard, n)
	SELECT s, ` + shard + `::smallint, sum(d) FROM (` + deltas + `) AS x(s, d)
	WHERE s IS NOT NULL GROUP BY s HAVING sum(d) <> 0 ORDER BY s
	ON CONFLICT (status, shard) DO UPDATE SET n = c.n + EXCLUDED.n
)`
}

func pgStatements(t string) pgSQL {
	return pgSQL{
		// $1 owner, $2 id, $3 expires_at, $4 data, $5 stored bound (0:
		// none), $6 active quota (0: none), $7 active, $8 runner, $9
		// channel, $10 payload, $11 status, $12 counts shard. Returns (inserted, a live row
		// exists at the key, live rows of the owner up to the bound, live
		// active rows up to the quota). An expired row at the key is
		// replaced; a live one is never touched. old locks the expired
		// row before the insert (the insert's condition reads it, so it
		// runs first): its status is then the one replaced, which leaves
		// the counts. Only that row is replaced: a row another create
		// inserted after old looked (even one that has expired since) is
		// that create's, and this one fails. The count's ORDER BY
		// holds the planner to the primary key (an index-only scan that
		// stops at the quota): without it, for an owner of half the
		// table, it picks a sequential scan that hopes to meet quota rows
		// early, which costs the whole table when they are not.
		create: `WITH cur AS (
	SELECT 1 FROM ` + t + ` WHERE owner = $1 AND task_id = $2 AND ` + pgLive + `
), live AS (
	SELECT count(*) AS n FROM (SELECT 1 FROM ` + t + ` WHERE owner = $1 AND ` + pgLive + ` ORDER BY task_id LIMIT $5) c
), act AS (
	SELECT count(*) AS n FROM (SELECT 1 FROM ` + t + ` WHERE owner = $1 AND active AND ` + pgLive + ` ORDER BY task_id LIMIT $6) c
), old AS MATERIALIZED (
	SELECT status FROM ` + t + ` WHERE owner = $1 AND task_id = $2 AND expires_at <= statement_timestamp() FOR UPDATE
), ins AS (
	INSERT INTO ` + t + ` AS r (owner, task_id, version, expires_at, data, active, runner, status)
	SELECT $1, $2, 1, $3, $4, $7, $8, $11 WHERE (SELECT count(*) FROM old) >= 0 AND NOT EXISTS (SELECT 1 FROM cur)
		AND ($5 = 0 OR (SELECT n FROM live) < $5) AND (NOT $7 OR $6 = 0 OR (SELECT n FROM act) < $6)
	ON CONFLICT (owner, task_id) DO UPDATE SET version = 1, expires_at = EXCLUDED.expires_at, data = EXCLUDED.data,
		active = EXCLUDED.active, runner = EXCLUDED.runner, status = EXCLUDED.status
		WHERE r.expires_at <= statement_timestamp() AND EXISTS (SELECT 1 FROM old)
	RETURNING 1
), n AS (SELECT pg_notify($9, $10) FROM ins), ` + pgCounted(t, "$12", `SELECT status, -1 FROM old WHERE EXISTS (SELECT 1 FROM ins)
	UNION ALL SELECT $11::text, 1 FROM ins`) + `
SELECT (SELECT count(*) FROM ins), EXISTS (SELECT 1 FROM cur), (SELECT n FROM live), (SELECT n FROM act), (SELECT count(*) FROM n)`,

		get: `SELECT version, expires_at, data, active, runner, coalesce(status, '') FROM ` + t + ` WHERE owner = $1 AND task_id = $2 AND ` + pgLive,

		// $1 owner, $2 id, $3 expected, $4 data, $5 active, $6 runner,
		// $7 channel, $8 payload, $9 status, $10 counts shard. Returns (new version or
		// NULL, version in the statement's snapshot or NULL). When u
		// updated the row, it was at the expected version both in the
		// snapshot and when locked (a write in between would have
		// changed the version), so cur's status is the one it replaced.
		update: `WITH cur AS (
	SELECT version, status FROM ` + t + ` WHERE owner = $1 AND task_id = $2 AND ` + pgLive + `
), u AS (
	UPDATE ` + t + ` SET version = version + 1, data = $4, active = $5, runner = $6, status = $9
	WHERE owner = $1 AND task_id = $2 AND version = $3 AND ` + pgLive + `
	RETURNING version
), n AS (SELECT pg_notify($7, $8) FROM u), ` + pgCounted(t, "$10", `SELECT cur.status, -1 FROM cur, u UNION ALL SELECT $9::text, 1 FROM u`) + `
SELECT (SELECT version FROM u), (SELECT version FROM cur), (SELECT count(*) FROM n)`,

		// Update for many keys: $1 owners, $2 ids, $3 expected
		// versions, $4 data, $5 active, $6 runners, $7 payloads, $9
		// statuses (arrays of one length, no key twice), $8 channel, $10
		// counts shard. Returns per key its
		// 1-based position, the new version or NULL, the version of the
		// live row or NULL: what update returns, so that each key's
		// answer is decided as Update decides it. cur locks the live rows
		// in key order before any is updated: two batches over the same
		// keys in different orders (replicas taking over the same dead
		// one) would otherwise deadlock. Having waited for a lock, it
		// sees the row as the writer left it (READ COMMITTED's recheck),
		// so a conflict is told from a delete without a second look, and
		// the status it locked is the one the update replaces.
		updateMany: `WITH b AS (
	SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::bytea[], $5::boolean[], $6::bytea[], $7::text[], $9::text[])
		WITH ORDINALITY AS b(owner, task_id, expected, data, active, runner, payload, status, i)
), cur AS MATERIALIZED (
	SELECT b.i, r.version, r.status FROM b JOIN ` + t + ` AS r ON r.owner = b.owner AND r.task_id = b.task_id
	WHERE ` + pgLive + ` ORDER BY r.owner, r.task_id FOR UPDATE OF r
), u AS (
	UPDATE ` + t + ` AS r SET version = r.version + 1, data = b.data, active = b.active, runner = b.runner, status = b.status
	FROM cur JOIN b ON b.i = cur.i
	WHERE r.owner = b.owner AND r.task_id = b.task_id AND cur.version = b.expected AND r.version = b.expected AND ` + pgLive + `
	RETURNING b.i, r.version, b.payload, b.status
), n AS (SELECT pg_notify($8, payload) FROM u), ` + pgCounted(t, "$10", `SELECT cur.status, -1 FROM u JOIN cur ON cur.i = u.i UNION ALL SELECT status, 1 FROM u`) + `
SELECT b.i, u.version, cur.version, (SELECT count(*) FROM n) FROM b LEFT JOIN u ON u.i = b.i LEFT JOIN cur ON cur.i = b.i`,

		del: `WITH d AS (
	DELETE FROM ` + t + ` WHERE owner = $1 AND task_id = $2 RETURNING ` + pgLive + ` AS live, status
), n AS (SELECT pg_notify($3, $4) FROM d), ` + pgCounted(t, "$5", `SELECT status, -1 FROM d`) + `
SELECT (SELECT live FROM d), (SELECT count(*) FROM n)`,

		listFirst: `SELECT task_id, version, expires_at, data, active, runner, coalesce(status, '') FROM ` + t + `
WHERE owner = $1 AND ` + pgLive + ` ORDER BY task_id DESC LIMIT $2`,
		list: `SELECT task_id, version, expires_at, data, active, runner, coalesce(status, '') FROM ` + t + `
WHERE owner = $1 AND task_id < $3 AND ` + pgLive + ` ORDER BY task_id DESC LIMIT $2`,

		// SKIP LOCKED: replicas sweeping at once take disjoint rows, and a
		// row a writer holds is left for the next round.
		// $1 counts shard. Returns the rows deleted; their statuses leave
		// the counts.
		sweep: `WITH d AS (
	DELETE FROM ` + t + ` WHERE (owner, task_id) IN (
		SELECT owner, task_id FROM ` + t + ` WHERE expires_at <= statement_timestamp()
		ORDER BY expires_at LIMIT ` + strconv.Itoa(pgSweepBatch) + ` FOR UPDATE SKIP LOCKED
	) RETURNING status
), ` + pgCounted(t, "$1", `SELECT status, -1 FROM d`) + `
SELECT count(*) FROM d`,

		heartbeat: `INSERT INTO ` + t + `_runners AS r (runner, beat) VALUES ($1, 1)
	ON CONFLICT (runner) DO UPDATE SET beat = r.beat + 1`,
		runners:      `SELECT runner, beat FROM ` + t + `_runners`,
		removeRunner: `DELETE FROM ` + t + `_runners WHERE runner = $1`,
		// The partial runner index: exact, not a hint, since the runner
		// is a column of the row.
		runnerTasks: `SELECT ` + pgColumns + ` FROM ` + t + `
WHERE runner = $1 AND ` + pgLive + ` LIMIT $2`,
		getMany: `SELECT ` + pgColumns + ` FROM ` + t + `
WHERE (owner, task_id) IN (SELECT * FROM unnest($1::bytea[], $2::bytea[])) AND ` + pgLive,

		// The status index, from the start or strictly after ($3 task
		// id, $4 owner): a range scan in index order stopped by LIMIT.
		// $1 status, $2 limit.
		byStatusFirst: `SELECT ` + pgColumns + ` FROM ` + t + `
WHERE status = $1 AND ` + pgLive + ` ORDER BY task_id, owner LIMIT $2`,
		byStatus: `SELECT ` + pgColumns + ` FROM ` + t + `
WHERE status = $1 AND (task_id, owner) > ($3, $4) AND ` + pgLive + ` ORDER BY task_id, owner LIMIT $2`,
		countStatus: `SELECT status, sum(n)::bigint FROM ` + t + `_counts GROUP BY status HAVING sum(n) > 0`,
	}
}

// fail maps a failed call by the rule of backendErr.
func (b *postgresBackend) fail(ctx context.Context, op string, err error) error {
	return backendErr(ctx, "postgres "+op, err)
}

// pgExpiry is the expires_at parameter: NULL for never, else rounded up
// to the millisecond, as the contract judges expiry.
func pgExpiry(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Add(time.Millisecond - 1).Truncate(time.Millisecond)
}

// pgRunner is the runner column of a record: NULL for none.
func pgRunner(r string) any {
	if r == "" {
		return nil
	}
	return []byte(r)
}

// pgStatus is the status column of a record: NULL for none (neither
// listed nor counted).
func pgStatus(s taskstore.Status) *string {
	if s == "" {
		return nil
	}
	str := string(s)
	return &str
}

func (b *postgresBackend) Create(ctx context.Context, rec taskstore.Record, lim taskstore.Limits) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	if err := pgCheckSize(rec.Data); err != nil {
		return err
	}
	stored, quota := int64(max(lim.MaxStored, 0)), int64(max(lim.MaxActive, 0))
	args := []any{[]byte(rec.Owner), []byte(rec.TaskID), pgExpiry(rec.ExpiresAt), rec.Data, stored, quota, rec.Active, pgRunner(rec.Runner),
		b.channel, pgPayload(rec.Owner, rec.TaskID, 1), pgStatus(rec.Status), b.shard()}
	var inserted, notified int64
	var exists bool
	var live, active int64
	var err error
	if stored == 0 && (quota == 0 || !rec.Active) {
		err = b.pool.QueryRow(ctx, b.sql.create, args...).Scan(&inserted, &exists, &live, &active, &notified)
	} else {
		// The lock and the insert in one pipeline, so one round trip and
		// one implicit transaction; the insert's snapshot is taken after
		// the lock is granted.
		batch := &pgx.Batch{}
		batch.Queue(`SELECT pg_advisory_xact_lock($1)`, pgLockKey(b.qualified(), rec.Owner))
		batch.Queue(b.sql.create, args...)
		br := b.pool.SendBatch(ctx, batch)
		if _, err = br.Exec(); err == nil {
			err = br.QueryRow().Scan(&inserted, &exists, &live, &active, &notified)
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return b.fail(ctx, "create", err)
	}
	switch {
	case inserted == 1:
		return nil
	case exists:
		return taskstore.ErrAlreadyExists
	case rec.Active && quota > 0 && active >= quota:
		return taskstore.ErrQuotaExceeded
	case stored > 0 && live >= stored:
		return taskstore.ErrStorageFull
	}
	// A create of the same key committed after this statement's snapshot.
	return taskstore.ErrAlreadyExists
}

func (b *postgresBackend) Get(ctx context.Context, owner, id string) (taskstore.Record, error) {
	if err := b.begin(ctx); err != nil {
		return taskstore.Record{}, err
	}
	rec := taskstore.Record{Owner: owner, TaskID: id}
	var version int64
	var exp *time.Time
	var runner []byte
	err := b.pool.QueryRow(ctx, b.sql.get, []byte(owner), []byte(id)).Scan(&version, &exp, &rec.Data, &rec.Active, &runner, &rec.Status)
	rec.Runner = string(runner)
	if errors.Is(err, pgx.ErrNoRows) {
		return taskstore.Record{}, taskstore.ErrNotFound
	}
	if err != nil {
		return taskstore.Record{}, b.fail(ctx, "get", err)
	}
	rec.Version = uint64(version)
	if exp != nil {
		rec.ExpiresAt = *exp
	}
	return rec, nil
}

func (b *postgresBackend) Update(ctx context.Context, rec taskstore.Record, expected uint64) (uint64, error) {
	if err := b.begin(ctx); err != nil {
		return 0, err
	}
	owner, id, data := rec.Owner, rec.TaskID, rec.Data
	if err := pgCheckSize(data); err != nil {
		return 0, err
	}
	exp := pgExpected(expected)
	// The change is published only when the row is at exp, so it
	// carries exp+1.
	payload := pgPayload(owner, id, uint64(exp)+1)
	for {
		var updated, cur *int64
		var notified int64
		err := b.pool.QueryRow(ctx, b.sql.update, []byte(owner), []byte(id), exp, data, rec.Active, pgRunner(rec.Runner),
			b.channel, payload, pgStatus(rec.Status), b.shard()).Scan(&updated, &cur, &notified)
		if err != nil {
			return 0, b.fail(ctx, "update", err)
		}
		if v, again, err := pgUpdateOutcome(updated, cur, exp); !again {
			return v, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
}

// pgCheckSize refuses data above what a bytea holds.
func pgCheckSize(data []byte) error {
	if len(data) > pgMaxRecord {
		return fmt.Errorf("%w: %d bytes, PostgreSQL stores at most %d", taskstore.ErrRecordTooLarge, len(data), pgMaxRecord)
	}
	return nil
}

// pgExpected is the expected version as a bigint: one above bigint's
// range becomes -1, which no row has, so it is a conflict (or not found).
func pgExpected(expected uint64) int64 {
	if expected <= math.MaxInt64 {
		return int64(expected)
	}
	return -1
}

// pgUpdateOutcome is Update's answer from what its statement returned: the
// new version (NULL: not updated) and the version in the statement's
// snapshot (NULL: no live row). again: the snapshot had the expected
// version but the row changed (updated or deleted) before the UPDATE
// reached it; which one decides the answer, so the caller asks again with
// a fresh snapshot.
func pgUpdateOutcome(updated, cur *int64, exp int64) (version uint64, again bool, err error) {
	switch {
	case updated != nil:
		return uint64(*updated), false, nil
	case cur == nil:
		return 0, false, taskstore.ErrNotFound
	case *cur != exp:
		return 0, false, taskstore.ErrVersionConflict
	}
	return 0, true, nil
}

// pgUpdateManyBytes bounds the record data one UpdateMany statement
// sends; a batch above it takes more statements. (A parameter holds at
// most 1 GiB, and one huge message would hold a connection long.)
const pgUpdateManyBytes = 32 << 20

// UpdateMany applies a batch in one statement (see updateMany): each key
// its own compare-and-swap and notification, as Update. A key given
// twice is applied in order: its later updates go in a statement after
// the one with its earlier update. Keys whose row changed between the
// statement's snapshot and its UPDATE are asked again, as Update does, in
// one more statement for all of them. The runner and active columns are
// the runner index and the quota's count, so they follow as after Update.
func (b *postgresBackend) UpdateMany(ctx context.Context, updates []taskstore.Update) ([]taskstore.UpdateResult, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	out := make([]taskstore.UpdateResult, len(updates))
	pending := make([]int, 0, len(updates))
	for i, u := range updates {
		if err := pgCheckSize(u.Record.Data); err != nil {
			out[i].Err = err
			continue
		}
		pending = append(pending, i)
	}
	var (
		owners, ids, data, runners [][]byte
		exps                       []int64
		active                     []bool
		payloads                   []string
		statuses                   []*string
		round                      []int
	)
	for len(pending) > 0 {
		// A round: the first pending update of each key, in order,
		// within the byte bound (at least one).
		owners, ids, data, runners = owners[:0], ids[:0], data[:0], runners[:0]
		exps, active, payloads, statuses, round = exps[:0], active[:0], payloads[:0], statuses[:0], round[:0]
		seen := make(map[taskstore.Key]bool, len(pending))
		size := 0
		for _, i := range pending {
			r := updates[i].Record
			k := taskstore.Key{Owner: r.Owner, TaskID: r.TaskID}
			if seen[k] || (len(round) > 0 && size+len(r.Data) > pgUpdateManyBytes) {
				continue
			}
			seen[k] = true
			size += len(r.Data)
			exp := pgExpected(updates[i].Expected)
			round = append(round, i)
			owners, ids, data = append(owners, []byte(r.Owner)), append(ids, []byte(r.TaskID)), append(data, r.Data)
			var runner []byte // nil: NULL, no runner
			if r.Runner != "" {
				runner = []byte(r.Runner)
			}
			exps, active, runners = append(exps, exp), append(active, r.Active), append(runners, runner)
			statuses = append(statuses, pgStatus(r.Status))
			payloads = append(payloads, pgPayload(r.Owner, r.TaskID, uint64(exp)+1)) // sent only for a row at exp
		}
		rows, err := b.pool.Query(ctx, b.sql.updateMany, owners, ids, exps, data, active, runners, payloads, b.channel, statuses, b.shard())
		if err != nil {
			return nil, b.fail(ctx, "update many", err)
		}
		done := make(map[int]bool, len(round))
		for rows.Next() {
			var pos, notified int64
			var updated, cur *int64
			if err := rows.Scan(&pos, &updated, &cur, &notified); err != nil {
				rows.Close()
				return nil, b.fail(ctx, "update many", err)
			}
			if pos < 1 || pos > int64(len(round)) {
				rows.Close()
				return nil, b.fail(ctx, "update many", fmt.Errorf("position %d of a batch of %d", pos, len(round)))
			}
			i := round[pos-1]
			v, again, err := pgUpdateOutcome(updated, cur, exps[pos-1])
			if !again {
				out[i] = taskstore.UpdateResult{Version: v, Err: err}
				done[i] = true
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, b.fail(ctx, "update many", err)
		}
		// What is left: later updates of a key, and keys that raced a
		// writer (asked again with a fresh snapshot, as Update's loop).
		pending = slices.DeleteFunc(pending, func(i int) bool { return done[i] })
		if len(pending) > 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func (b *postgresBackend) Delete(ctx context.Context, owner, id string) (bool, error) {
	if err := b.begin(ctx); err != nil {
		return false, err
	}
	var live *bool
	var notified int64
	err := b.pool.QueryRow(ctx, b.sql.del, []byte(owner), []byte(id), b.channel, pgPayload(owner, id, 0), b.shard()).Scan(&live, &notified)
	if err != nil {
		return false, b.fail(ctx, "delete", err)
	}
	if live == nil {
		return false, nil
	}
	return *live, nil
}

func (b *postgresBackend) List(ctx context.Context, owner, after string, limit int) ([]taskstore.Record, bool, error) {
	if err := b.begin(ctx); err != nil {
		return nil, false, err
	}
	if limit <= 0 {
		return nil, false, nil
	}
	// One more than asked, to learn whether more follow.
	var rows pgx.Rows
	var err error
	if after == "" {
		rows, err = b.pool.Query(ctx, b.sql.listFirst, []byte(owner), int64(limit)+1)
	} else {
		rows, err = b.pool.Query(ctx, b.sql.list, []byte(owner), int64(limit)+1, []byte(after))
	}
	if err != nil {
		return nil, false, b.fail(ctx, "list", err)
	}
	recs := make([]taskstore.Record, 0, min(limit, 1000))
	more := false
	for rows.Next() {
		if len(recs) == limit {
			more = true
			break
		}
		var id, runner []byte
		var version int64
		var exp *time.Time
		rec := taskstore.Record{Owner: owner}
		if err := rows.Scan(&id, &version, &exp, &rec.Data, &rec.Active, &runner, &rec.Status); err != nil {
			rows.Close()
			return nil, false, b.fail(ctx, "list", err)
		}
		rec.TaskID, rec.Version, rec.Runner = string(id), uint64(version), string(runner)
		if exp != nil {
			rec.ExpiresAt = *exp
		}
		recs = append(recs, rec)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, b.fail(ctx, "list", err)
	}
	return recs, more, nil
}

func (b *postgresBackend) Heartbeat(ctx context.Context, runner string) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, b.sql.heartbeat, []byte(runner)); err != nil {
		return b.fail(ctx, "heartbeat", err)
	}
	return nil
}

func (b *postgresBackend) Runners(ctx context.Context) ([]taskstore.RunnerBeat, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	rows, err := b.pool.Query(ctx, b.sql.runners)
	if err != nil {
		return nil, b.fail(ctx, "runners", err)
	}
	defer rows.Close()
	var out []taskstore.RunnerBeat
	for rows.Next() {
		var r []byte
		var beat int64
		if err := rows.Scan(&r, &beat); err != nil {
			return nil, b.fail(ctx, "runners", err)
		}
		out = append(out, taskstore.RunnerBeat{Runner: string(r), Beat: uint64(beat)})
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail(ctx, "runners", err)
	}
	return out, nil
}

func (b *postgresBackend) RemoveRunner(ctx context.Context, runner string) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, b.sql.removeRunner, []byte(runner)); err != nil {
		return b.fail(ctx, "remove runner", err)
	}
	return nil
}

func (b *postgresBackend) RunnerTasks(ctx context.Context, runner string, limit int) ([]taskstore.Record, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	return b.queryRecords(ctx, "runner tasks", b.sql.runnerTasks, []byte(runner), int64(limit))
}

// GetMany is one statement for every key.
func (b *postgresBackend) GetMany(ctx context.Context, keys []taskstore.Key) ([]taskstore.Record, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, nil
	}
	owners, ids := make([][]byte, len(keys)), make([][]byte, len(keys))
	for i, k := range keys {
		owners[i], ids[i] = []byte(k.Owner), []byte(k.TaskID)
	}
	return b.queryRecords(ctx, "get many", b.sql.getMany, owners, ids)
}

// ListByStatus reads the status index: one statement, a range scan of
// (status, task_id, owner) from after, stopped by LIMIT, so its cost is
// the page's (and any expired rows not yet swept in its range, which it
// reads and skips), not the table's. Rows whose status is not known
// (NULL: written by an earlier release and not yet migrated) are not in
// any listing.
func (b *postgresBackend) ListByStatus(ctx context.Context, status taskstore.Status, after taskstore.Key, limit int) ([]taskstore.Record, bool, error) {
	if err := b.begin(ctx); err != nil {
		return nil, false, err
	}
	if limit < 1 || limit > taskstore.MaxStatusPage {
		return nil, false, fmt.Errorf("%w: limit %d is not 1 to %d", taskstore.ErrInvalidPageSize, limit, taskstore.MaxStatusPage)
	}
	var recs []taskstore.Record
	var err error
	if after == (taskstore.Key{}) {
		recs, err = b.queryRecords(ctx, "list by status", b.sql.byStatusFirst, string(status), int64(limit)+1)
	} else {
		recs, err = b.queryRecords(ctx, "list by status", b.sql.byStatus, string(status), int64(limit)+1, []byte(after.TaskID), []byte(after.Owner))
	}
	if err != nil {
		return nil, false, err
	}
	if len(recs) > limit {
		return recs[:limit], true, nil
	}
	return recs, false, nil
}

// CountByStatus sums the counts table: its rows are the statuses times
// the shards, whatever the number of tasks. Every write changes it in
// the statement that changes the row, so the counts are exact for the
// rows the table holds; that includes expired rows not yet deleted (by
// the sweeper, every sweep interval, or DeleteExpired), which no call
// returns.
func (b *postgresBackend) CountByStatus(ctx context.Context) (map[taskstore.Status]int64, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	return b.queryCounts(ctx, b.sql.countStatus)
}

// queryCounts runs a statement that returns (status, count) rows.
func (b *postgresBackend) queryCounts(ctx context.Context, sql string) (map[taskstore.Status]int64, error) {
	rows, err := b.pool.Query(ctx, sql)
	if err != nil {
		return nil, b.fail(ctx, "count by status", err)
	}
	defer rows.Close()
	out := map[taskstore.Status]int64{}
	for rows.Next() {
		var s taskstore.Status
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, b.fail(ctx, "count by status", err)
		}
		out[s] = n
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail(ctx, "count by status", err)
	}
	return out, nil
}

// RecountStatus repairs the status column and the counts after writes
// that did not keep them (replicas of an earlier release writing during
// a rolling upgrade): it sets each row's status to the one its document
// holds (where the document tells) and counts the table again, in one
// transaction that holds off writers (readers go on) while it scans the
// whole table. It returns how many rows' status it changed. `mcptasks
// postgres recount URL` runs it.
func (b *postgresBackend) RecountStatus(ctx context.Context) (int64, error) {
	if err := b.begin(ctx); err != nil {
		return 0, err
	}
	t := b.qualified()
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return 0, b.fail(ctx, "recount", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `LOCK TABLE `+t+`, `+t+`_counts IN EXCLUSIVE MODE`); err != nil {
		return 0, b.fail(ctx, "recount", err)
	}
	tag, err := tx.Exec(ctx, `UPDATE `+t+` SET status = `+pgDocStatus+`
WHERE `+pgDocHasStatus+` AND status IS DISTINCT FROM `+pgDocStatus)
	if err != nil {
		return 0, b.fail(ctx, "recount", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM `+t+`_counts`); err != nil {
		return 0, b.fail(ctx, "recount", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+t+`_counts (status, shard, n)
SELECT status, 0, count(*) FROM `+t+` WHERE status IS NOT NULL GROUP BY status`); err != nil {
		return 0, b.fail(ctx, "recount", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, b.fail(ctx, "recount", err)
	}
	return tag.RowsAffected(), nil
}

// queryRecords runs a statement that returns whole rows.
func (b *postgresBackend) queryRecords(ctx context.Context, op, sql string, args ...any) ([]taskstore.Record, error) {
	rows, err := b.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, b.fail(ctx, op, err)
	}
	defer rows.Close()
	var out []taskstore.Record
	for rows.Next() {
		var owner, id, runner []byte
		var version int64
		var exp *time.Time
		var rec taskstore.Record
		if err := rows.Scan(&owner, &id, &version, &exp, &rec.Data, &rec.Active, &runner, &rec.Status); err != nil {
			return nil, b.fail(ctx, op, err)
		}
		rec.Owner, rec.TaskID, rec.Version, rec.Runner = string(owner), string(id), uint64(version), string(runner)
		if exp != nil {
			rec.ExpiresAt = *exp
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail(ctx, op, err)
	}
	return out, nil
}

// DeleteExpired deletes expired rows in batches of pgSweepBatch until none
// is left (or ctx ends) and returns how many it deleted. Replicas may run
// it at once: each batch skips the rows another holds.
func (b *postgresBackend) DeleteExpired(ctx context.Context) (int, error) {
	return b.sweepBatches(ctx, math.MaxInt)
}

func (b *postgresBackend) sweepBatches(ctx context.Context, maxBatches int) (int, error) {
	if err := b.begin(ctx); err != nil {
		return 0, err
	}
	total := 0
	for range maxBatches {
		var n int64
		if err := b.pool.QueryRow(ctx, b.sql.sweep, b.shard()).Scan(&n); err != nil {
			return total, b.fail(ctx, "delete expired", err)
		}
		total += int(n)
		if n < pgSweepBatch {
			break
		}
	}
	return total, nil
}

// sweepLoop deletes expired rows every interval (at most
// pgSweepBatchesPerTick batches each time) until ctx ends. Failures are
// not reported: the next tick tries again, and expired rows are invisible
// meanwhile.
func (b *postgresBackend) sweepLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sctx, cancel := context.WithTimeout(ctx, max(every, 10*time.Second))
			b.sweepBatches(sctx, pgSweepBatchesPerTick)
			cancel()
		}
	}
}

// MaxRecordSize is 0: a bytea holds up to 1 GiB, far above any task, so
// the Store's own limits apply. (Writes above it still give
// ErrRecordTooLarge.)
func (b *postgresBackend) MaxRecordSize() int { return 0 }

// Close stops the sweeper and, when the backend opened the pool itself,
// closes the pool; later calls fail with ErrBackend.
func (b *postgresBackend) Close() error {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		// Before the wait below: no listener starts after it began.
		b.feed.close()
		b.stop()
		b.wg.Wait()
		b.feed.wg.Wait()
		if b.ownsPool {
			b.pool.Close()
		}
	})
	return nil
}

// pgChannel is the NOTIFY channel of a table: a hash, so that it fits the
// 63-byte identifier limit whatever the schema and table names.
func pgChannel(table string) string {
	h := fnv.New64a()
	h.Write([]byte(table))
	return fmt.Sprintf("mcptasks_%016x", h.Sum64())
}

// pgMaxPayload is below PostgreSQL's 8000-byte NOTIFY payload limit. A
// change whose key does not fit is published as an empty payload, which
// subscribers take as a Resync.
const pgMaxPayload = 7900

// pgPayload is a change's NOTIFY payload: hex(owner) "/" hex(task id)
// "/" the version written, in decimal; a delete (version 0) leaves the
// version out, as releases before the version did for every change.
func pgPayload(owner, id string, version uint64) string {
	// 21: "/" and the 20 digits of the largest uint64.
	if 2*(len(owner)+len(id))+1+21 > pgMaxPayload {
		return ""
	}
	p := hex.EncodeToString([]byte(owner)) + "/" + hex.EncodeToString([]byte(id))
	if version == 0 {
		return p
	}
	return p + "/" + strconv.FormatUint(version, 10)
}

// pgParsePayload decodes a payload of pgPayload. One without a version
// (a delete, or any change from a release before the version) decodes
// with version 0, which makes a writer read the record again rather than
// take the change for its own.
func pgParsePayload(p string) (taskstore.Change, bool) {
	o, rest, ok := strings.Cut(p, "/")
	if !ok {
		return taskstore.Change{}, false
	}
	id, ver, hasVer := strings.Cut(rest, "/")
	ob, err1 := hex.DecodeString(o)
	ib, err2 := hex.DecodeString(id)
	if err1 != nil || err2 != nil {
		return taskstore.Change{}, false
	}
	return withVersion(taskstore.Change{Owner: string(ob), TaskID: string(ib)}, ver, hasVer)
}

// Subscribe delivers every change of the table made by any process, on
// the caller's goroutine, until ctx ends (it returns ctx's error), the
// backend is closed, or the listening connection fails (it returns that
// error, wrapping ErrBackend). One listening connection per backend,
// opened by the first Subscribe, serves every subscriber; when it fails,
// the next Subscribe connects anew.
func (b *postgresBackend) Subscribe(ctx context.Context, fn func(taskstore.Change)) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	return b.feed.subscribe(ctx, fn)
}

// listen runs the listening connection until it fails or ctx ends.
func (b *postgresBackend) listen(ctx context.Context) error {
	cfg := b.pool.Config().ConnConfig.Copy()
	cctx, cancel := context.WithTimeout(ctx, max(cfg.ConnectTimeout, pgDefaultConnectTimeout))
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN "`+b.channel+`"`); err != nil {
		return err
	}
	b.feed.up()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		c, ok := pgParsePayload(n.Payload)
		if !ok {
			c = taskstore.Change{Resync: true} // a key too long for a payload
		}
		b.feed.push(c)
	}
}
