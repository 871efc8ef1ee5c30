package mcptasks

// What the tagged backends declare that needs no client library: options,
// constants and the PostgreSQL DDL. They live here, untagged, so that go doc
// shows them in a build without tags; the constructors, which take a
// client, stay in the tagged files (the package doc lists them).

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Redis (build tag redis).

// RedisOptions configures NewRedisBackend (build tag redis; see the package
// doc): what the store adds to a client it is given. Zero fields take the defaults of the URL options of the
// same names (prefix, stall_timeout, wait_replicas, wait_timeout,
// cluster_reload_on_failure); connection settings (addresses, TLS, pools,
// timeouts, retries) are the client's own.
type RedisOptions struct {
	Prefix       string        // key prefix, default "mcptasks:"; no braces
	StallTimeout time.Duration // default 1s; negative: no stall guard
	WaitReplicas int           // follow each write with WAIT N; default 0: none
	WaitTimeout  time.Duration // WAIT's timeout, default 1s; below the client's ReadTimeout
	// ClusterReloadOnFailure: a cluster's slot map is reloaded after a
	// call that got no answer, at most once per this; default 500ms,
	// negative: never.
	ClusterReloadOnFailure time.Duration
}

// DynamoDB (build tag dynamodb).

// DynamoDBMaxRecordSize is the largest record data the DynamoDB backend
// (build tag dynamodb) stores. DynamoDB items are limited to 400 KB (names and values of every
// attribute); the rest is room for the keys (an owner of up to 2 KB, a
// runner id of up to 128 bytes) and the few other attributes.
const DynamoDBMaxRecordSize = 350_000

// DynamoDBRunnerIndex is the name of the table's global secondary index on
// the runner attribute, which RunnerTasks queries (see docs/dynamodb.md).
const DynamoDBRunnerIndex = "runner-index"

// DynamoDBStatusIndex is the name of the table's global secondary index on
// status (sharded) and task id, which ListByStatus queries (see
// docs/dynamodb.md).
const DynamoDBStatusIndex = "status-index"

// DynamoDBOptions tunes a backend from NewDynamoDBBackend (build tag
// dynamodb; see the package doc).
type DynamoDBOptions struct {
	// NoTransactions makes Create, Delete and the Updates that start or end
	// a task keep the per-owner counters with separate conditional writes
	// instead of TransactWriteItems, for servers without transactions
	// (dynalite). The bounds are still never overshot, but a crash between
	// the two writes leaves a counter one too high, and items removed by
	// the table's native TTL are never uncounted: do not use it on AWS.
	NoTransactions bool
	// NoOldItemOnFailure is for servers that ignore
	// ReturnValuesOnConditionCheckFailure (dynalite): a failed
	// compare-and-swap then reads the item to tell missing from stale.
	NoOldItemOnFailure bool
}

// PostgreSQL (build tag postgres).

// Defaults of the postgres URL options that PostgresDDL needs too.
const (
	pgDefaultSchema = "public"
	pgDefaultTable  = "mcptasks_tasks"
	// pgSchemaVersion is written as the table's comment by the DDL; Open
	// refuses a table that carries another one, so that a later release
	// can migrate deliberately.
	pgSchemaVersion = 3
)

// pgIdent is what we accept as a schema or table name: no quoting needed,
// and room left for the suffixes of the objects we derive from it.
var pgIdent = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

// PostgresOptions configures NewPostgresBackend (build tag postgres; see
// the package doc). Zero fields take the defaults of the URL options of the
// same names.
type PostgresOptions struct {
	Schema      string        // default "public"
	Table       string        // default "mcptasks_tasks"
	CreateTable bool          // create the table and index when missing
	Sweep       time.Duration // how often to delete expired rows; default 1m, negative: never
}

func (o *PostgresOptions) check() error {
	if o.Schema == "" {
		o.Schema = pgDefaultSchema
	}
	if o.Table == "" {
		o.Table = pgDefaultTable
	}
	if !pgIdent.MatchString(o.Schema) {
		return fmt.Errorf(`option "schema": %q must be 1 to 40 of a-z, 0-9 and _, not starting with a digit`, o.Schema)
	}
	if !pgIdent.MatchString(o.Table) {
		return fmt.Errorf(`option "table": %q must be 1 to 40 of a-z, 0-9 and _, not starting with a digit`, o.Table)
	}
	if o.Sweep > 0 && o.Sweep < time.Millisecond {
		return errors.New(`option "sweep" must be 0 or at least 1ms`)
	}
	return nil
}

// PostgresDDL returns the idempotent statements that create the schema of
// a backend with these options (as create_table=true runs them). It needs
// no build tag: a deploy step can print the DDL without linking pgx.
func PostgresDDL(opts PostgresOptions) ([]string, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	return pgDDL(opts.Schema, opts.Table), nil
}

func pgDDL(schema, table string) []string {
	t := schema + "." + table
	var stmts []string
	if schema != "public" {
		// Not for public, which exists: CREATE SCHEMA checks the
		// database's CREATE privilege even when the schema is there.
		stmts = append(stmts, `CREATE SCHEMA IF NOT EXISTS `+schema)
	}
	return append(stmts,
		`CREATE TABLE IF NOT EXISTS `+t+` (
	owner      bytea       NOT NULL,
	task_id    bytea       NOT NULL,
	version    bigint      NOT NULL,
	expires_at timestamptz,
	data       bytea       NOT NULL,
	CONSTRAINT `+table+`_pkey PRIMARY KEY (owner, task_id) INCLUDE (expires_at)
)`,
		// Schema 2: the active flag and the runner of the lease. Added
		// with IF NOT EXISTS, so the same statements migrate a schema 1
		// table in place.
		`ALTER TABLE `+t+` ADD COLUMN IF NOT EXISTS active boolean NOT NULL DEFAULT false`,
		`ALTER TABLE `+t+` ADD COLUMN IF NOT EXISTS runner bytea`,
		`CREATE INDEX IF NOT EXISTS `+table+`_expires_idx ON `+t+` (expires_at) WHERE expires_at IS NOT NULL`,
		// The active quota counts these; the runner index finds a runner's tasks.
		`CREATE INDEX IF NOT EXISTS `+table+`_active_idx ON `+t+` (owner, task_id) INCLUDE (expires_at) WHERE active`,
		`CREATE INDEX IF NOT EXISTS `+table+`_runner_idx ON `+t+` (runner) WHERE runner IS NOT NULL`,
		`CREATE TABLE IF NOT EXISTS `+t+`_runners (
	runner bytea  PRIMARY KEY,
	beat   bigint NOT NULL
)`,
		// Schema 3: the status, its index (the listing across owners in
		// creation order) and the counts by status, which every write
		// keeps in the same statement. NULL: not known (a row written by
		// an earlier release), neither listed nor counted.
		`ALTER TABLE `+t+` ADD COLUMN IF NOT EXISTS status text COLLATE "C"`,
		`CREATE TABLE IF NOT EXISTS `+t+`_counts (
	status text     COLLATE "C" NOT NULL,
	shard  smallint NOT NULL,
	n      bigint   NOT NULL,
	PRIMARY KEY (status, shard)
)`,
		// The status of the rows without one, read from the document, and
		// counted: see pgDocStatus. Before the index is built, so that a
		// migration builds it once rather than adding to it row by row;
		// on a migrated table the index finds the NULL rows, so this
		// costs little.
		`WITH f AS (
	UPDATE `+t+` SET status = `+pgDocStatus+`
	WHERE status IS NULL AND `+pgDocHasStatus+`
	RETURNING status
)
INSERT INTO `+t+`_counts AS c (status, shard, n)
SELECT status, 0, count(*) FROM f GROUP BY status ORDER BY status
ON CONFLICT (status, shard) DO UPDATE SET n = c.n + EXCLUDED.n`,
		`CREATE INDEX IF NOT EXISTS `+table+`_status_idx ON `+t+` (status, task_id, owner)`,
		`COMMENT ON TABLE `+t+` IS 'mcptasks schema `+strconv.Itoa(pgSchemaVersion)+`'`,
	)
}

// Reading a row's status from its document (data), in SQL: every
// release's Store wrote the document starting {"task":{"taskId":"…",
// "status":"…" (a task id has no quote or backslash). pgDocHasStatus
// tells whether a document starts so; pgDocStatus is then the status. A
// row whose document does not start so (not written by a Store) keeps a
// NULL status. The prefix is escaped (encode … 'escape'), not decoded,
// so no byte sequence makes it fail; a match and split_part cost a third
// of a regular expression's capture.
const (
	pgDocPrefix    = `encode(substring(data FROM 1 FOR 200), 'escape')`
	pgDocHasStatus = `(` + pgDocPrefix + ` ~ '^\{"task":\{"taskId":"[^"\\]*","status":"[a-z_]+"')`
	pgDocStatus    = `split_part(split_part(` + pgDocPrefix + `, '","status":"', 2), '"', 1)`
)
