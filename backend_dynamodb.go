//go:build dynamodb

package mcptasks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mcptasks/mcptasks/internal/backoff"
	"github.com/mcptasks/mcptasks/taskstore"
)

func init() {
	Register("dynamodb", openDynamoDB)
}

// Attribute names and key prefixes of the table (see docs/dynamodb.md).
const (
	ddbPK        = "PK"         // S: OWNER#{owner}, or RUNNERS for the heartbeats
	ddbSK        = "SK"         // S: TASK#{taskId}, META for the owner's counters, RUNNER#{runner}
	ddbVersion   = "version"    // N: 1 on create, +1 per update
	ddbData      = "data"       // B: the record's document, byte for byte
	ddbExpiresAt = "expires_at" // N: epoch seconds, rounded up; the table's native TTL attribute
	ddbExpiresNS = "expires_ns" // N: epoch nanoseconds; what reads compare against
	ddbActive    = "active"     // BOOL: Record.Active
	ddbRunner    = "runner"     // S: Record.Runner, only when set; the key of the sparse runner index
	ddbStoredN   = "n"          // N, on META: the owner's counted tasks, any status
	ddbActiveN   = "a"          // N, on META: the owner's counted Active tasks
	ddbSeq       = "seq"        // N, on META: +1 on every change of n or a
	ddbBeat      = "beat"       // N, on a runner item: its heartbeat counter
	ddbOwnerPfx  = "OWNER#"
	ddbTaskPfx   = "TASK#"
	ddbMetaSK    = "META"
	// ddbRunnersPK is the partition of the heartbeat items. Every owner's
	// partition key starts with OWNER#, so none can equal it.
	ddbRunnersPK  = "RUNNERS"
	ddbRunnerPfx  = "RUNNER#"
	ddbLiveCond   = "attribute_exists(SK) AND (attribute_not_exists(expires_ns) OR expires_ns > :now)"
	ddbFreeCond   = "attribute_not_exists(SK) OR expires_ns <= :now"
	ddbLiveFilter = "attribute_not_exists(expires_ns) OR expires_ns > :now"
	ddbCondFailed = "ConditionalCheckFailed"
)

// dynamoBackend keeps records in one DynamoDB table:
//
//	PK = OWNER#{owner}   SK = TASK#{taskId}      version, data, expires_at, expires_ns, active, runner
//	PK = OWNER#{owner}   SK = META               n, a, seq (the owner's counters)
//	PK = RUNNERS         SK = RUNNER#{runner}    beat
//	PK = COUNTS#{shard}  SK = B#{bucket end}     s_{status} (the status counters; backend_dynamodb_status.go)
//	GSI runner-index: hash key runner (sparse: only items with a runner), projects the keys and expires_ns
//	GSI status-index: hash key status_key, range key SK (task items with a status), projects the keys and expires_ns
//
// Consistency: every read of the table is strongly consistent and every
// write is a single conditional request or one TransactWriteItems, so each
// method is atomic on the server. Task ids are fixed-width hex that sort by
// time, so a descending Query on SK lists newest first, one request per
// page. The runner index is eventually consistent (a GSI), so RunnerTasks
// re-reads what it finds from the table.
//
// Expiry: expires_at feeds the table's native TTL, which deletes items up
// to days late; until then reads hide an item whose expires_ns has passed
// (client clock), and writes treat it as missing.
//
// Bounds: the META item's n and a are upper bounds of the owner's live
// tasks and live Active tasks. Create adds to them in the same transaction
// as its conditional Put (conditions n < MaxStored, a < MaxActive), Delete
// of a live task and an Update that ends or resumes one change them in the
// same transaction as the item. Expired items still counted make them too
// high, never too low; when Create's condition fails it recounts the live
// items with a consistent Query and repairs the counters with a
// compare-and-swap on seq, which every write of n or a increments, so the
// repair fails (and is retried) if any of them committed in between. (A
// swap on the counters themselves would not do: they can leave and come
// back to the same values.)
type dynamoBackend struct {
	client *dynamodb.Client
	table  string
	opts   DynamoDBOptions
	closeGuard
	onClose func()

	// Test seams, nil outside tests (set in export_dynamodb_test.go).
	// clock replaces time.Now for expiry decisions; repairHook runs at
	// each step of a counter repair ("scan", "write", "done").
	clock      func() time.Time
	repairHook func(ctx context.Context, step string)
}

// Interface guards
var (
	_ taskstore.Backend      = (*dynamoBackend)(nil)
	_ taskstore.BatchGetter  = (*dynamoBackend)(nil)
	_ taskstore.BatchUpdater = (*dynamoBackend)(nil)
)

// openDynamoDB opens dynamodb://TABLE with options
//
//	region=R          AWS region (default: the standard AWS configuration)
//	endpoint=URL      another endpoint, such as DynamoDB Local's http://127.0.0.1:8000
//	profile=P         a shared-config profile
//	create_table=true create the table and enable its TTL if it does not exist
//	transactions=false  see DynamoDBOptions.NoTransactions (dynalite only)
//	return_old_item=false  see DynamoDBOptions.NoOldItemOnFailure (dynalite only)
//	max_attempts=N    attempts per request, retries included (default 5)
//
// Credentials come from the standard AWS chain (environment, shared files,
// web identity, container or instance roles).
func openDynamoDB(ctx context.Context, u *url.URL) (taskstore.Backend, error) {
	q := newQuery(u)
	region := q.String("region", "")
	endpoint := q.String("endpoint", "")
	profile := q.String("profile", "")
	create := q.Bool("create_table", false)
	tx := q.Bool("transactions", true)
	oldItem := q.Bool("return_old_item", true)
	attempts := q.Int("max_attempts", 5)
	if err := q.done(); err != nil {
		return nil, err
	}
	table := u.Host
	if u.User != nil || u.Port() != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" {
		return nil, errors.New("dynamodb URL is dynamodb://TABLE?options")
	}
	if !validTableName(table) {
		return nil, errors.New("dynamodb URL needs a table name of 3 to 255 letters, digits, '_', '-' or '.'")
	}
	if attempts < 1 {
		return nil, errors.New(`option "max_attempts" must be at least 1`)
	}
	if endpoint != "" {
		if e, err := url.Parse(endpoint); err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
			return nil, errors.New(`option "endpoint" must be an http or https URL`)
		}
	}

	// Own transport: enough idle connections for concurrent callers. The
	// SDK may add to it while loading the configuration (a CA bundle), and
	// a BuildableClient clones its transport when it first sends, so the
	// transport to close is only known after loading: see below.
	buildable := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 64
	}).WithDialerOptions(func(d *net.Dialer) { d.Timeout = 5 * time.Second })
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(buildable),
		config.WithRetryer(func() aws.Retryer { return newDynamoRetryer(attempts) }),
	}
	if region != "" {
		loadOpts = append(loadOpts, config.WithRegion(region))
	}
	if profile != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	// Send with a plain client over the final transport, so that Close can
	// drop its idle connections (and their goroutines). DynamoDB never
	// redirects; a redirect is returned to the SDK as the error it is.
	closeIdle := func() {}
	if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		tr := bc.GetTransport()
		cfg.HTTPClient = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
		closeIdle = tr.CloseIdleConnections
	}
	if cfg.Region == "" {
		if endpoint == "" {
			return nil, errors.New(`no AWS region: set option "region" or AWS_REGION`)
		}
		cfg.Region = "us-east-1" // local servers ignore it, the signer needs one
	}
	client := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			// DynamoDB Local does not send the CRC32 header the SDK checks.
			o.DisableValidateResponseChecksum = true
		}
	})
	if create {
		if err := CreateDynamoDBTable(ctx, client, table); err != nil {
			closeIdle()
			return nil, err
		}
	}
	b := NewDynamoDBBackend(client, table, DynamoDBOptions{NoTransactions: !tx, NoOldItemOnFailure: !oldItem}).(*dynamoBackend)
	b.onClose = closeIdle
	return b, nil
}

// newDynamoRetryer is the SDK's standard retryer (throttling, 5xx and
// network errors, exponential backoff with jitter, a client-wide retry
// token bucket) with a bound on attempts and backoff. Each attempt also
// stops at the caller's context deadline.
func newDynamoRetryer(attempts int) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = attempts
		o.MaxBackoff = 2 * time.Second
	})
}

func validTableName(s string) bool {
	if len(s) < 3 || len(s) > 255 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// NewDynamoDBBackend returns a backend over an existing table (see
// CreateDynamoDBTable) through client. Close does not close the client.
func NewDynamoDBBackend(client *dynamodb.Client, table string, opts DynamoDBOptions) taskstore.Backend {
	return &dynamoBackend{client: client, table: table, opts: opts}
}

// CreateDynamoDBTable creates the table the backend needs, if missing:
// string keys PK (hash) and SK (range), on-demand billing
// (PAY_PER_REQUEST), the global secondary indexes runner-index on the
// string attribute runner and status-index on status_key and SK (keys and
// expires_ns projected), and native TTL on expires_at. It waits until the
// table and its indexes are active, and is safe to run again: on an
// existing table without an index (made by an older version) it adds the
// index and waits for its backfill.
func CreateDynamoDBTable(ctx context.Context, client *dynamodb.Client, table string) error {
	return createDynamoTable(ctx, client, table, true)
}

// runnerIndex is the definition of DynamoDBRunnerIndex.
func runnerIndex() types.GlobalSecondaryIndex {
	return types.GlobalSecondaryIndex{
		IndexName: aws.String(DynamoDBRunnerIndex),
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String(ddbRunner), KeyType: types.KeyTypeHash}},
		Projection: &types.Projection{
			ProjectionType:   types.ProjectionTypeInclude,
			NonKeyAttributes: []string{ddbExpiresNS},
		},
	}
}

func createDynamoTable(ctx context.Context, client *dynamodb.Client, table string, ttl bool) error {
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(ddbPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(ddbSK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(ddbRunner), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(ddbStatusKey), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(ddbPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(ddbSK), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: tableIndexes(),
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return ddbErr(ctx, "create table", err)
	}
	if err := waitTableReady(ctx, client, table); err != nil {
		return err
	}
	if !ttl {
		return nil
	}
	d, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		return ddbErr(ctx, "describe TTL", err)
	}
	if s := d.TimeToLiveDescription; s != nil && (s.TimeToLiveStatus == types.TimeToLiveStatusEnabled ||
		s.TimeToLiveStatus == types.TimeToLiveStatusEnabling) {
		if aws.ToString(s.AttributeName) != ddbExpiresAt {
			return fmt.Errorf("%w: table %s has TTL on attribute %q, want %q", taskstore.ErrBackend,
				table, aws.ToString(s.AttributeName), ddbExpiresAt)
		}
		return nil
	}
	_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(ddbExpiresAt),
			Enabled:       aws.Bool(true),
		},
	})
	if err != nil {
		return ddbErr(ctx, "enable TTL", err)
	}
	return nil
}

// tableIndexes are the table's global secondary indexes.
func tableIndexes() []types.GlobalSecondaryIndex {
	return []types.GlobalSecondaryIndex{runnerIndex(), statusIndex()}
}

// waitTableReady waits until the table and each of its indexes are
// active, adding the indexes a table of an older version lacks, one at a
// time (one UpdateTable may create only one).
func waitTableReady(ctx context.Context, client *dynamodb.Client, table string) error {
	w := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = 2 * time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, 5*time.Minute); err != nil {
		return ddbErr(ctx, "wait for table", err)
	}
	added := map[string]bool{}
	for attempt := 0; ; attempt++ {
		d, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			return ddbErr(ctx, "describe table", err)
		}
		have := map[string]types.GlobalSecondaryIndexDescription{}
		for _, g := range d.Table.GlobalSecondaryIndexes {
			have[aws.ToString(g.IndexName)] = g
		}
		ready, busy := true, d.Table.TableStatus != types.TableStatusActive
		var missing *types.GlobalSecondaryIndex
		for _, gsi := range tableIndexes() {
			name := aws.ToString(gsi.IndexName)
			g, ok := have[name]
			switch {
			case !ok:
				ready = false
				if missing == nil && !added[name] {
					missing = &gsi
				}
			case g.IndexStatus != types.IndexStatusActive || aws.ToBool(g.Backfilling):
				ready, busy = false, true
			}
		}
		switch {
		case ready:
			return nil
		case missing != nil && !busy:
			// A table of an older version: add the index (DynamoDB backfills it).
			asked, err := addIndex(ctx, client, table, *missing)
			if err != nil {
				return err
			}
			added[aws.ToString(missing.IndexName)] = asked
		case attempt >= 3000:
			return fmt.Errorf("%w: dynamodb: the indexes of table %s did not become active", taskstore.ErrBackend, table)
		}
		if err := backoff.Sleep(ctx, min(attempt, 4), 100*time.Millisecond, 0); err != nil {
			return err
		}
	}
}

// addIndex asks DynamoDB to add gsi to table (UpdateTable). asked is
// false when the table was busy with another change: ask again later.
func addIndex(ctx context.Context, client *dynamodb.Client, table string, gsi types.GlobalSecondaryIndex) (asked bool, err error) {
	var defs []types.AttributeDefinition
	for _, k := range gsi.KeySchema {
		defs = append(defs, types.AttributeDefinition{AttributeName: k.AttributeName, AttributeType: types.ScalarAttributeTypeS})
	}
	_, err = client.UpdateTable(ctx, &dynamodb.UpdateTableInput{
		TableName:            aws.String(table),
		AttributeDefinitions: defs,
		GlobalSecondaryIndexUpdates: []types.GlobalSecondaryIndexUpdate{{Create: &types.CreateGlobalSecondaryIndexAction{
			IndexName: gsi.IndexName, KeySchema: gsi.KeySchema, Projection: gsi.Projection,
		}}},
	})
	var inUse *types.ResourceInUseException
	if errors.As(err, &inUse) {
		return false, nil
	}
	if err != nil {
		return false, ddbErr(ctx, "add index "+aws.ToString(gsi.IndexName), err)
	}
	return true, nil
}

// ddbErr maps a failed SDK call by the rule of backendErr.
func ddbErr(ctx context.Context, op string, err error) error {
	return backendErr(ctx, "dynamodb "+op, err)
}

func ddbS(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func ddbN[T int | int64 | uint64](n T) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: fmt.Sprint(n)}
}

func ownerPK(owner string) types.AttributeValue { return ddbS(ddbOwnerPfx + owner) }

func taskKey(owner, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{ddbPK: ownerPK(owner), ddbSK: ddbS(ddbTaskPfx + id)}
}

func metaKey(owner string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{ddbPK: ownerPK(owner), ddbSK: ddbS(ddbMetaSK)}
}

func attrNum(item map[string]types.AttributeValue, name string) (int64, bool) {
	n, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	return v, err == nil
}

func runnerKey(runner string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{ddbPK: ddbS(ddbRunnersPK), ddbSK: ddbS(ddbRunnerPfx + runner)}
}

func ddbBool(v bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: v} }

func (b *dynamoBackend) now() time.Time {
	if b.clock != nil {
		return b.clock()
	}
	return time.Now()
}

func (b *dynamoBackend) nowNS() types.AttributeValue { return ddbN(b.now().UnixNano()) }

func (b *dynamoBackend) hook(ctx context.Context, step string) {
	if b.repairHook != nil {
		b.repairHook(ctx, step)
	}
}

// itemLive reports whether an item exists and has not expired at now.
func itemLive(item map[string]types.AttributeValue, now time.Time) bool {
	if len(item) == 0 {
		return false
	}
	exp, ok := attrNum(item, ddbExpiresNS)
	return !ok || now.UnixNano() < exp
}

// itemActive reports the item's active flag; items written before the
// flag existed have none and count as inactive (they were never counted
// as active either).
func itemActive(item map[string]types.AttributeValue) bool {
	a, ok := item[ddbActive].(*types.AttributeValueMemberBOOL)
	return ok && a.Value
}

func decodeItem(owner string, item map[string]types.AttributeValue) (taskstore.Record, error) {
	sk, _ := item[ddbSK].(*types.AttributeValueMemberS)
	data, _ := item[ddbData].(*types.AttributeValueMemberB)
	ver, ok := attrNum(item, ddbVersion)
	if sk == nil || data == nil || !ok || len(sk.Value) <= len(ddbTaskPfx) {
		return taskstore.Record{}, fmt.Errorf("%w: dynamodb: malformed task item", taskstore.ErrBackend)
	}
	r := taskstore.Record{
		Owner: owner, TaskID: sk.Value[len(ddbTaskPfx):], Data: data.Value, Version: uint64(ver),
		Active: itemActive(item),
	}
	if ns, ok := attrNum(item, ddbExpiresNS); ok {
		r.ExpiresAt = time.Unix(0, ns).UTC()
	}
	if run, ok := item[ddbRunner].(*types.AttributeValueMemberS); ok {
		r.Runner = run.Value
	}
	if st, ok := item[ddbStatus].(*types.AttributeValueMemberS); ok {
		r.Status = taskstore.Status(st.Value)
	}
	return r, nil
}

func (b *dynamoBackend) checkSize(data []byte) error {
	if len(data) > DynamoDBMaxRecordSize {
		return fmt.Errorf("%w: %d bytes, limit %d", taskstore.ErrRecordTooLarge, len(data), DynamoDBMaxRecordSize)
	}
	return nil
}

func (b *dynamoBackend) taskItem(rec taskstore.Record) map[string]types.AttributeValue {
	item := taskKey(rec.Owner, rec.TaskID)
	item[ddbVersion] = ddbN(1)
	item[ddbData] = &types.AttributeValueMemberB{Value: rec.Data}
	item[ddbActive] = ddbBool(rec.Active)
	if rec.Runner != "" {
		item[ddbRunner] = ddbS(rec.Runner)
	}
	if rec.Status != "" {
		item[ddbStatus] = ddbS(string(rec.Status))
		item[ddbStatusKey] = ddbS(statusKey(rec.Status, statusShard(rec.Owner, rec.TaskID)))
	}
	if !rec.ExpiresAt.IsZero() {
		ns := rec.ExpiresAt.UnixNano()
		// Round up, so native TTL never deletes before the precise expiry.
		item[ddbExpiresAt] = ddbN((ns + int64(time.Second) - 1) / int64(time.Second))
		item[ddbExpiresNS] = ddbN(ns)
	}
	return item
}

// countNew is the META update that counts a new record: n+1, a+1 if it is
// Active, seq+1, under the condition that each bound in lim is not reached.
func countNew(table string, rec taskstore.Record, lim taskstore.Limits) *types.Update {
	u := &types.Update{
		TableName:                 aws.String(table),
		Key:                       metaKey(rec.Owner),
		UpdateExpression:          aws.String("ADD #n :one, #s :one"),
		ExpressionAttributeNames:  map[string]string{"#n": ddbStoredN, "#s": ddbSeq},
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": ddbN(1)},
	}
	if rec.Active {
		u.UpdateExpression = aws.String("ADD #n :one, #a :one, #s :one")
		u.ExpressionAttributeNames["#a"] = ddbActiveN
	}
	var conds []string
	if lim.MaxStored > 0 {
		conds = append(conds, "(attribute_not_exists(#n) OR #n < :maxs)")
		u.ExpressionAttributeValues[":maxs"] = ddbN(lim.MaxStored)
	}
	if rec.Active && lim.MaxActive > 0 {
		conds = append(conds, "(attribute_not_exists(#a) OR #a < :maxa)")
		u.ExpressionAttributeValues[":maxa"] = ddbN(lim.MaxActive)
	}
	if len(conds) > 0 {
		u.ConditionExpression = aws.String(strings.Join(conds, " AND "))
	}
	return u
}

// countDelta is the META update that adds dn to n and da to a, and 1 to
// seq (every change of the counters changes seq: the repair relies on it).
func countDelta(table string, pk types.AttributeValue, dn, da int) *types.Update {
	expr := "ADD #s :one"
	names := map[string]string{"#s": ddbSeq}
	vals := map[string]types.AttributeValue{":one": ddbN(1)}
	if dn != 0 {
		expr += ", #n :dn"
		names["#n"] = ddbStoredN
		vals[":dn"] = ddbN(dn)
	}
	if da != 0 {
		expr += ", #a :da"
		names["#a"] = ddbActiveN
		vals[":da"] = ddbN(da)
	}
	return &types.Update{
		TableName:                 aws.String(table),
		Key:                       map[string]types.AttributeValue{ddbPK: pk, ddbSK: ddbS(ddbMetaSK)},
		UpdateExpression:          aws.String(expr),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	}
}

func oneIf(v bool) int {
	if v {
		return 1
	}
	return 0
}

// Create is one TransactWriteItems on the happy path: count the record on
// the owner's META item if below the bounds, and put the item if no live
// one is there.
func (b *dynamoBackend) Create(ctx context.Context, rec taskstore.Record, lim taskstore.Limits) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	if err := b.checkSize(rec.Data); err != nil {
		return err
	}
	if b.opts.NoTransactions {
		return b.createNoTx(ctx, rec, lim)
	}
	var last ownerScan
	for repairs := 0; ; repairs++ {
		full, err := b.createTx(ctx, rec, lim)
		if err != nil || !full {
			return err
		}
		// The counters say full; they may count expired items. Recount.
		if repairs >= 8 {
			return refusal(rec, lim, last.activeN, last.storedN)
		}
		if last, err = b.repairCount(ctx, rec, lim); err != nil {
			return err
		}
	}
}

// refusal names the bound a create hit, given the owner's counts. When
// the counts, read after the refusal, show neither bound reached (other
// writers moved them since), it names the bound nearer to full: under a
// race of creates and ends at the active quota that is the quota, not the
// stored bound, which was far.
func refusal(rec taskstore.Record, lim taskstore.Limits, active, stored int64) error {
	quota := rec.Active && lim.MaxActive > 0
	switch {
	case quota && active >= int64(lim.MaxActive):
		return taskstore.ErrQuotaExceeded
	case lim.MaxStored > 0 && stored >= int64(lim.MaxStored):
		return taskstore.ErrStorageFull
	case quota && (lim.MaxStored <= 0 || int64(lim.MaxActive)-active <= int64(lim.MaxStored)-stored):
		return taskstore.ErrQuotaExceeded
	}
	return taskstore.ErrStorageFull
}

// createTx runs the create transaction, retrying transaction conflicts.
// It reports full when only the counters' condition failed.
func (b *dynamoBackend) createTx(ctx context.Context, rec taskstore.Record, lim taskstore.Limits) (full bool, err error) {
	counter := countNew(b.table, rec, lim)
	item := b.taskItem(rec)
	for attempt := 0; ; attempt++ {
		actions := []types.TransactWriteItem{
			{Update: counter},
			{Put: &types.Put{
				TableName:                 aws.String(b.table),
				Item:                      item,
				ConditionExpression:       aws.String(ddbFreeCond),
				ExpressionAttributeValues: map[string]types.AttributeValue{":now": b.nowNS()},
			}},
		}
		// On a shard of its own each attempt (see countStatus).
		if u := countRecord(b.table, rec, 1); u != nil {
			actions = append(actions, types.TransactWriteItem{Update: u})
		}
		_, err := b.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: actions})
		if err == nil {
			return false, nil
		}
		codes, _, ok := cancelReasons(err)
		switch {
		case !ok:
			return false, ddbErr(ctx, "create", err)
		case codes[1] == ddbCondFailed:
			return false, taskstore.ErrAlreadyExists
		case codes[0] == ddbCondFailed:
			return true, nil
		case hasConflict(codes):
			if err := ddbBackoff(ctx, attempt); err != nil {
				return false, err
			}
		default:
			return false, ddbErr(ctx, "create", err)
		}
	}
}

// cancelReasons returns the per-item cancellation codes of a canceled
// transaction ("None" where an item was not the cause), padded to two,
// and the first item's old value when the server returned it.
func cancelReasons(err error) ([]string, map[string]types.AttributeValue, bool) {
	var tc *types.TransactionCanceledException
	if !errors.As(err, &tc) {
		return nil, nil, false
	}
	codes := make([]string, max(2, len(tc.CancellationReasons)))
	var first map[string]types.AttributeValue
	for i, r := range tc.CancellationReasons {
		codes[i] = aws.ToString(r.Code)
		if i == 0 {
			first = r.Item
		}
	}
	return codes, first, true
}

func hasConflict(codes []string) bool {
	for _, c := range codes {
		if c == "TransactionConflict" {
			return true
		}
	}
	return false
}

// ddbBackoff sleeps before another attempt of a transaction that conflicted
// with a concurrent one on the same counter: random, growing to ~100ms.
// Retries are bounded by ctx (and by 64 attempts) rather than a fixed
// small count, because conflicts are expected when one owner creates
// concurrently, and every round lets at least one writer through.
func ddbBackoff(ctx context.Context, attempt int) error {
	if attempt >= 64 {
		return fmt.Errorf("%w: dynamodb: transaction conflicts did not clear after %d attempts", taskstore.ErrBackend, attempt+1)
	}
	return backoff.Sleep(ctx, attempt, 2*time.Millisecond, 5)
}

// ownerScan is a strongly consistent read of all of an owner's items.
type ownerScan struct {
	storedN    int64 // the META item's n
	hasStored  bool
	activeN    int64 // the META item's a
	seq        int64 // the META item's seq
	hasSeq     bool
	live       int  // live task items
	liveActive int  // live task items that are active
	idIsLive   bool // the key being created is taken by a live item
	expiredSK  []string
}

func (b *dynamoBackend) scanOwner(ctx context.Context, owner, id string) (ownerScan, error) {
	var s ownerScan
	now := b.now()
	err := b.eachItem(ctx, "count", ownerPK(owner), "SK, #n, #a, #s, #act, expires_ns",
		map[string]string{"#n": ddbStoredN, "#a": ddbActiveN, "#s": ddbSeq, "#act": ddbActive},
		func(item map[string]types.AttributeValue) error {
			sk, _ := item[ddbSK].(*types.AttributeValueMemberS)
			switch {
			case sk == nil:
			case sk.Value == ddbMetaSK:
				s.storedN, s.hasStored = attrNum(item, ddbStoredN)
				s.activeN, _ = attrNum(item, ddbActiveN)
				s.seq, s.hasSeq = attrNum(item, ddbSeq)
			case itemLive(item, now):
				s.live++
				if itemActive(item) {
					s.liveActive++
				}
				if sk.Value == ddbTaskPfx+id {
					s.idIsLive = true
				}
			default:
				s.expiredSK = append(s.expiredSK, sk.Value)
			}
			return nil
		})
	return s, err
}

// eachItem calls fn with every item of partition pk, in SK order: one
// strongly consistent Query per 1 MB page.
func (b *dynamoBackend) eachItem(ctx context.Context, op string, pk types.AttributeValue, projection string,
	names map[string]string, fn func(map[string]types.AttributeValue) error) error {
	p := dynamodb.NewQueryPaginator(b.client, &dynamodb.QueryInput{
		TableName:                 aws.String(b.table),
		ConsistentRead:            aws.Bool(true),
		KeyConditionExpression:    aws.String("PK = :pk"),
		ProjectionExpression:      aws.String(projection),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": pk},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return ddbErr(ctx, op, err)
		}
		for _, item := range page.Items {
			if err := fn(item); err != nil {
				return err
			}
		}
	}
	return nil
}

// repairCount recounts the owner's live tasks and sets both counters to
// the recount, if no write changed the counters since they were read:
// the counters are read first (readMeta), and every write that changes
// them (Create, Delete, an Update that ends or resumes a task, another
// repair) also adds 1 to seq, so one that commits after the read fails
// the compare-and-swap. It returns
// ErrAlreadyExists, ErrQuotaExceeded or ErrStorageFull when the recount
// confirms the refusal, and nil when the create should be tried again.
func (b *dynamoBackend) repairCount(ctx context.Context, rec taskstore.Record, lim taskstore.Limits) (ownerScan, error) {
	b.hook(ctx, "scan")
	meta, err := b.readMeta(ctx, rec.Owner)
	if err != nil {
		return ownerScan{}, err
	}
	s, err := b.scanOwner(ctx, rec.Owner, rec.TaskID)
	// The counters as of the serializable read, not the Query's own.
	s.storedN, s.hasStored = attrNum(meta, ddbStoredN)
	s.activeN, _ = attrNum(meta, ddbActiveN)
	s.seq, s.hasSeq = attrNum(meta, ddbSeq)
	switch {
	case err != nil:
		return s, err
	case s.idIsLive:
		return s, taskstore.ErrAlreadyExists
	case rec.Active && lim.MaxActive > 0 && s.liveActive >= lim.MaxActive:
		return s, taskstore.ErrQuotaExceeded
	case lim.MaxStored > 0 && s.live >= lim.MaxStored:
		return s, taskstore.ErrStorageFull
	case !s.hasStored || (s.storedN == int64(s.live) && s.activeN == int64(s.liveActive)):
		return s, nil // changed under us: try the transaction again
	}
	b.hook(ctx, "write")
	in := &dynamodb.UpdateItemInput{
		TableName:                aws.String(b.table),
		Key:                      metaKey(rec.Owner),
		UpdateExpression:         aws.String("SET #n = :live, #a = :act ADD #s :one"),
		ConditionExpression:      aws.String("attribute_not_exists(#s)"),
		ExpressionAttributeNames: map[string]string{"#n": ddbStoredN, "#a": ddbActiveN, "#s": ddbSeq},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":live": ddbN(s.live),
			":act":  ddbN(s.liveActive),
			":one":  ddbN(1),
		},
	}
	if s.hasSeq {
		in.ConditionExpression = aws.String("#s = :seen")
		in.ExpressionAttributeValues[":seen"] = ddbN(s.seq)
	}
	_, err = b.client.UpdateItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return s, ddbErr(ctx, "repair count", err)
	}
	b.hook(ctx, "done")
	return s, nil
}

// readMeta reads the owner's META item with TransactGetItems, which is
// serializable with the write transactions: it never sees the counters of
// a transaction whose task item is not yet applied, as a Query (read
// committed, item by item) could. A Query after it therefore sees every
// task item the counters it returned account for.
func (b *dynamoBackend) readMeta(ctx context.Context, owner string) (map[string]types.AttributeValue, error) {
	for attempt := 0; ; attempt++ {
		out, err := b.client.TransactGetItems(ctx, &dynamodb.TransactGetItemsInput{
			TransactItems: []types.TransactGetItem{{Get: &types.Get{TableName: aws.String(b.table), Key: metaKey(owner)}}},
		})
		if err == nil {
			if len(out.Responses) == 0 {
				return nil, nil
			}
			return out.Responses[0].Item, nil
		}
		codes, _, ok := cancelReasons(err)
		if !ok || !hasConflict(codes) {
			return nil, ddbErr(ctx, "read counters", err)
		}
		if err := ddbBackoff(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

// Get is one strongly consistent GetItem.
func (b *dynamoBackend) Get(ctx context.Context, owner, id string) (taskstore.Record, error) {
	if err := b.begin(ctx); err != nil {
		return taskstore.Record{}, err
	}
	out, err := b.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(b.table),
		Key:            taskKey(owner, id),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return taskstore.Record{}, ddbErr(ctx, "get", err)
	}
	if !itemLive(out.Item, b.now()) {
		return taskstore.Record{}, taskstore.ErrNotFound
	}
	return decodeItem(owner, out.Item)
}

// errStateGuess is update's signal that the stored item's state (active
// flag, status, expiry) is not the one the attempt assumed.
var errStateGuess = errors.New("stored state differs")

// Update writes the item with a condition on its version, liveness and
// state (active flag and status; its expiry too when a status counter
// moves). The state decides which counters move with the write, and the
// backend does not read before writing: it assumes a running task
// (guessState), so an Update that keeps a task running is one UpdateItem,
// and one that ends it or makes it wait for input one TransactWriteItems
// (counters move). A wrong assumption fails the condition, the failure
// returns the stored item, and the next attempt assumes what it showed.
func (b *dynamoBackend) Update(ctx context.Context, rec taskstore.Record, expected uint64) (uint64, error) {
	if err := b.begin(ctx); err != nil {
		return 0, err
	}
	if err := b.checkSize(rec.Data); err != nil {
		return 0, err
	}
	was := guessState(rec)
	for attempt := 0; attempt < 8; attempt++ {
		v, stored, err := b.update(ctx, rec, expected, was)
		if !errors.Is(err, errStateGuess) {
			return v, err
		}
		was = stored
	}
	// The item kept changing under the attempts: let the caller re-read.
	return 0, taskstore.ErrVersionConflict
}

// update is one attempt of Update assuming the stored item's state is
// was. errStateGuess asks for another attempt assuming stored.
func (b *dynamoBackend) update(ctx context.Context, rec taskstore.Record, expected uint64, was itemState) (v uint64, stored itemState, err error) {
	now := b.now()
	item := updateAction(b.table, rec, expected, was, now)
	delta := oneIf(rec.Active) - oneIf(was.active)
	moves := rec.Status != was.status
	var old map[string]types.AttributeValue
	failed := false
	switch {
	case delta == 0 && !moves:
		old, failed, err = b.updateItem(ctx, "update", item)
	case !b.opts.NoTransactions:
		old, failed, err = b.updateCounted(ctx, item, rec, was)
	case delta > 0:
		// Resuming without transactions: count first, so that a crash
		// leaves the counter too high (safe), never too low.
		if err := b.addCounts(ctx, ownerPK(rec.Owner), 0, 1); err != nil {
			return 0, itemState{}, err
		}
		old, failed, err = b.updateItem(ctx, "update", item)
		if failed {
			err = b.addCounts(ctx, ownerPK(rec.Owner), 0, -1)
		}
	default:
		// Ending without transactions: uncount after the write.
		old, failed, err = b.updateItem(ctx, "update", item)
		if err == nil && !failed && delta < 0 {
			err = b.addCounts(ctx, ownerPK(rec.Owner), 0, -1)
		}
	}
	if err == nil && !failed && moves && b.opts.NoTransactions {
		err = b.addStatusCounts(ctx, moveStatus(b.table, rec, was))
	}
	if err != nil {
		return 0, itemState{}, err
	}
	if !failed {
		return expected + 1, itemState{}, nil
	}
	stored, err = b.judgeFailed(ctx, item.Key, old, now, expected, was)
	return 0, stored, err
}

// stateCond is the condition that the stored item is in state was (its
// expiry only with exp), adding the names and values it uses.
func stateCond(was itemState, exp bool, names map[string]string, vals map[string]types.AttributeValue) string {
	names["#act"], names["#st"] = ddbActive, ddbStatus
	vals[":was"] = ddbBool(was.active)
	cond := "#act = :was"
	if !was.active {
		cond = "(attribute_not_exists(#act) OR #act = :was)"
	}
	if was.status == "" {
		cond += " AND attribute_not_exists(#st)"
	} else {
		cond += " AND #st = :wst"
		vals[":wst"] = ddbS(string(was.status))
	}
	switch {
	case !exp:
	case was.expNS == 0:
		cond += " AND attribute_not_exists(expires_ns)"
	default:
		cond += " AND expires_ns = :wexp"
		vals[":wexp"] = ddbN(was.expNS)
	}
	return cond
}

// updateAction is the conditional update of one task item that Update
// makes: data, version, active flag, runner and (when it changes) status
// replaced if the item is live at :now, at version expected and in state
// was, the stored item returned when the condition fails.
func updateAction(table string, rec taskstore.Record, expected uint64, was itemState, now time.Time) *types.Update {
	set := []string{"#d = :d", "#v = :next", "#act = :act"}
	var remove []string
	names := map[string]string{"#d": ddbData, "#v": ddbVersion, "#r": ddbRunner}
	vals := map[string]types.AttributeValue{
		":d":    &types.AttributeValueMemberB{Value: rec.Data},
		":next": ddbN(expected + 1),
		":exp":  ddbN(expected),
		":now":  ddbN(now.UnixNano()),
		":act":  ddbBool(rec.Active),
	}
	if rec.Runner != "" {
		set = append(set, "#r = :r")
		vals[":r"] = ddbS(rec.Runner)
	} else {
		remove = append(remove, "#r")
	}
	moves := rec.Status != was.status
	if moves {
		names["#sk"] = ddbStatusKey
		if rec.Status != "" {
			set = append(set, "#st = :st", "#sk = :sk")
			vals[":st"] = ddbS(string(rec.Status))
			vals[":sk"] = ddbS(statusKey(rec.Status, statusShard(rec.Owner, rec.TaskID)))
		} else {
			remove = append(remove, "#st", "#sk")
		}
	}
	expr := "SET " + strings.Join(set, ", ")
	if len(remove) > 0 {
		expr += " REMOVE " + strings.Join(remove, ", ")
	}
	// A status counter moves in the bucket of the stored expiry: check it.
	cond := "#v = :exp AND (" + ddbLiveCond + ") AND " + stateCond(was, moves, names, vals)
	return &types.Update{
		TableName:                           aws.String(table),
		Key:                                 taskKey(rec.Owner, rec.TaskID),
		UpdateExpression:                    aws.String(expr),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           vals,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
}

// judgeFailed says what the failed condition of an updateAction built at
// now meant, from the stored item the failure returned (old): ErrNotFound,
// ErrVersionConflict, or errStateGuess with the stored state to assume
// next. A server that does not return the item (NoOldItemOnFailure) is
// asked for it.
func (b *dynamoBackend) judgeFailed(ctx context.Context, key, old map[string]types.AttributeValue, now time.Time, expected uint64, was itemState) (stored itemState, err error) {
	if len(old) == 0 && b.opts.NoOldItemOnFailure {
		// The server does not say (dynalite): look, consistently. If the
		// item is as the condition wanted, the condition failed on an
		// older state, and what it was is unknown: try again.
		if old, err = b.getForCheck(ctx, key); err != nil {
			return itemState{}, err
		}
		now = b.now()
		if ver, _ := attrNum(old, ddbVersion); itemLive(old, now) && uint64(ver) == expected {
			return stateOf(old), errStateGuess
		}
	}
	ver, _ := attrNum(old, ddbVersion)
	switch {
	case !itemLive(old, now):
		return itemState{}, taskstore.ErrNotFound
	case uint64(ver) != expected:
		return itemState{}, taskstore.ErrVersionConflict
	case stateOf(old) != was:
		return stateOf(old), errStateGuess
	default:
		// Live at the expected version in the assumed state: it can fail
		// the condition only by having expired at the condition's :now.
		return itemState{}, taskstore.ErrNotFound
	}
}

// updateItem runs one conditional UpdateItem. failed reports a failed
// condition, with the old item when the server returned it.
func (b *dynamoBackend) updateItem(ctx context.Context, op string, u *types.Update) (old map[string]types.AttributeValue, failed bool, err error) {
	_, err = b.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           u.TableName,
		Key:                                 u.Key,
		UpdateExpression:                    u.UpdateExpression,
		ConditionExpression:                 u.ConditionExpression,
		ExpressionAttributeNames:            u.ExpressionAttributeNames,
		ExpressionAttributeValues:           u.ExpressionAttributeValues,
		ReturnValuesOnConditionCheckFailure: u.ReturnValuesOnConditionCheckFailure,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return ccf.Item, true, nil
	}
	if err != nil {
		return nil, false, ddbErr(ctx, op, err)
	}
	return nil, false, nil
}

// updateCounted runs the item update u of rec and the counter changes of
// leaving state was (the owner's active counter, the status counters) in
// one transaction, retrying transaction conflicts.
func (b *dynamoBackend) updateCounted(ctx context.Context, u *types.Update, rec taskstore.Record, was itemState) (old map[string]types.AttributeValue, failed bool, err error) {
	for attempt := 0; ; attempt++ {
		actions := []types.TransactWriteItem{{Update: u}}
		if delta := oneIf(rec.Active) - oneIf(was.active); delta != 0 {
			actions = append(actions, types.TransactWriteItem{Update: countDelta(b.table, ownerPK(rec.Owner), 0, delta)})
		}
		if m := moveStatus(b.table, rec, was); m != nil {
			actions = append(actions, types.TransactWriteItem{Update: m})
		}
		_, err := b.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: actions})
		if err == nil {
			return nil, false, nil
		}
		codes, first, ok := cancelReasons(err)
		switch {
		case !ok:
			return nil, false, ddbErr(ctx, "update", err)
		case codes[0] == ddbCondFailed:
			return first, true, nil
		case hasConflict(codes):
			if err := ddbBackoff(ctx, attempt); err != nil {
				return nil, false, err
			}
		default:
			return nil, false, ddbErr(ctx, "update", err)
		}
	}
}

// getForCheck reads the fields a failed condition is judged by.
func (b *dynamoBackend) getForCheck(ctx context.Context, key map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
	out, err := b.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                aws.String(b.table),
		Key:                      key,
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String("SK, #v, #act, #st, expires_ns"),
		ExpressionAttributeNames: map[string]string{"#v": ddbVersion, "#act": ddbActive, "#st": ddbStatus},
	})
	if err != nil {
		return nil, ddbErr(ctx, "read after failed condition", err)
	}
	return out.Item, nil
}

// Delete of a live item is one transaction that also uncounts it. Like
// Update it assumes the item's state, here inactive and without status
// (the Store never deletes: it leaves tasks to expire), and tries again
// with the stored state when the failed condition shows it. An expired
// item is left to DeleteExpired and the native TTL.
func (b *dynamoBackend) Delete(ctx context.Context, owner, id string) (bool, error) {
	if err := b.begin(ctx); err != nil {
		return false, err
	}
	if b.opts.NoTransactions {
		return b.deleteNoTx(ctx, owner, id)
	}
	var was itemState
	for attempt, guesses := 0, 0; guesses < 8; attempt++ {
		names := map[string]string{}
		vals := map[string]types.AttributeValue{":now": b.nowNS()}
		cond := ddbLiveCond + " AND " + stateCond(was, was.status != "", names, vals)
		actions := []types.TransactWriteItem{
			{Delete: &types.Delete{
				TableName:                           aws.String(b.table),
				Key:                                 taskKey(owner, id),
				ConditionExpression:                 aws.String(cond),
				ExpressionAttributeNames:            names,
				ExpressionAttributeValues:           vals,
				ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			}},
			{Update: countDelta(b.table, ownerPK(owner), -1, -oneIf(was.active))},
		}
		if u := uncountState(b.table, was); u != nil {
			actions = append(actions, types.TransactWriteItem{Update: u})
		}
		_, err := b.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: actions})
		if err == nil {
			return true, nil
		}
		codes, old, ok := cancelReasons(err)
		switch {
		case !ok:
			return false, ddbErr(ctx, "delete", err)
		case codes[0] == ddbCondFailed:
			if len(old) == 0 && b.opts.NoOldItemOnFailure {
				if old, err = b.getForCheck(ctx, taskKey(owner, id)); err != nil {
					return false, err
				}
			}
			if !itemLive(old, b.now()) {
				return false, nil
			}
			was = stateOf(old)
			guesses++
		case hasConflict(codes):
			if err := ddbBackoff(ctx, attempt); err != nil {
				return false, err
			}
		default:
			return false, ddbErr(ctx, "delete", err)
		}
	}
	return false, fmt.Errorf("%w: dynamodb: delete: the item kept changing", taskstore.ErrBackend)
}

// List is one Query per page: the owner's partition, descending from just
// below TASK#{after}, hiding expired items with a filter. It asks for one
// item more than limit to know whether more follow. When expired items
// filtered out leave the page short it queries on, at most a few times.
func (b *dynamoBackend) List(ctx context.Context, owner, after string, limit int) ([]taskstore.Record, bool, error) {
	if err := b.begin(ctx); err != nil {
		return nil, false, err
	}
	if limit <= 0 {
		return nil, false, nil
	}
	var start map[string]types.AttributeValue
	if after != "" {
		start = taskKey(owner, after)
	}
	out := make([]taskstore.Record, 0, min(limit, 1000))
	for round := 0; ; round++ {
		page, err := b.client.Query(ctx, &dynamodb.QueryInput{
			TableName:              aws.String(b.table),
			ConsistentRead:         aws.Bool(true),
			KeyConditionExpression: aws.String("PK = :pk AND begins_with(SK, :task)"),
			FilterExpression:       aws.String(ddbLiveFilter),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk":   ownerPK(owner),
				":task": ddbS(ddbTaskPfx),
				":now":  b.nowNS(),
			},
			ScanIndexForward:  aws.Bool(false),
			Limit:             aws.Int32(int32(min(limit+1, 1<<20))),
			ExclusiveStartKey: start,
		})
		if err != nil {
			return nil, false, ddbErr(ctx, "list", err)
		}
		for _, item := range page.Items {
			if len(out) == limit {
				return out, true, nil
			}
			r, err := decodeItem(owner, item)
			if err != nil {
				return nil, false, err
			}
			out = append(out, r)
		}
		if page.LastEvaluatedKey == nil {
			return out, false, nil
		}
		if round >= 3 && len(out) > 0 {
			// Many expired items in the way: return a short page; the
			// caller's next page continues after its last record. An
			// empty page cannot carry a cursor, so that case reads on.
			return out, true, nil
		}
		start = page.LastEvaluatedKey
	}
}

// DeleteExpired scans the table for expired task items and deletes each
// with a condition that it is still expired. Its cost is a scan of the
// whole table; the native TTL does the same work for free, later.
func (b *dynamoBackend) DeleteExpired(ctx context.Context) (int, error) {
	if err := b.begin(ctx); err != nil {
		return 0, err
	}
	p := dynamodb.NewScanPaginator(b.client, &dynamodb.ScanInput{
		TableName:                aws.String(b.table),
		ConsistentRead:           aws.Bool(true),
		FilterExpression:         aws.String("begins_with(SK, :task) AND expires_ns <= :now"),
		ProjectionExpression:     aws.String("PK, SK, #st, expires_ns"),
		ExpressionAttributeNames: map[string]string{"#st": ddbStatus},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":task": ddbS(ddbTaskPfx),
			":now":  b.nowNS(),
		},
	})
	n := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return n, ddbErr(ctx, "scan expired", err)
		}
		for _, item := range page.Items {
			deleted, err := b.deleteExpiredItem(ctx, item)
			if err != nil {
				return n, err
			}
			if deleted {
				n++
			}
		}
	}
	return n, nil
}

// deleteExpiredItem deletes one item if it is still expired, and
// uncounts it from its status counter while that is read (its bucket has
// not passed): then one transaction, else one DeleteItem. In
// NoTransactions mode it also uncounts it from its owner's counters:
// there every item present is counted exactly once. With transactions an
// expired item may or may not be counted there (a repair drops it), so
// those are left for the next repair.
func (b *dynamoBackend) deleteExpiredItem(ctx context.Context, item map[string]types.AttributeValue) (bool, error) {
	key := map[string]types.AttributeValue{ddbPK: item[ddbPK], ddbSK: item[ddbSK]}
	now := b.now()
	if st := stateOf(item); !b.opts.NoTransactions && st.status != "" && !bucketPassed(st.expNS, now) {
		return b.deleteExpiredCounted(ctx, key, st, now)
	}
	in := &dynamodb.DeleteItemInput{
		TableName:                 aws.String(b.table),
		Key:                       key,
		ConditionExpression:       aws.String("expires_ns <= :now"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": ddbN(now.UnixNano())},
	}
	if b.opts.NoTransactions {
		in.ReturnValues = types.ReturnValueAllOld // to uncount what it held
	}
	out, err := b.client.DeleteItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, ddbErr(ctx, "delete expired", err)
	}
	if b.opts.NoTransactions {
		if err := b.addCounts(ctx, key[ddbPK], -1, -oneIf(itemActive(out.Attributes))); err != nil {
			return true, err
		}
		if st := stateOf(out.Attributes); !bucketPassed(st.expNS, now) {
			return true, b.addStatusCounts(ctx, uncountState(b.table, st))
		}
	}
	return true, nil
}

// deleteExpiredCounted deletes the expired item at key, if it is still
// expired at now and in state st, and uncounts it from its status
// counter in the same transaction.
func (b *dynamoBackend) deleteExpiredCounted(ctx context.Context, key map[string]types.AttributeValue, st itemState, now time.Time) (bool, error) {
	for attempt := 0; ; attempt++ {
		_, err := b.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Delete: &types.Delete{
				TableName:                 aws.String(b.table),
				Key:                       key,
				ConditionExpression:       aws.String("expires_ns <= :now AND #st = :st"),
				ExpressionAttributeNames:  map[string]string{"#st": ddbStatus},
				ExpressionAttributeValues: map[string]types.AttributeValue{":now": ddbN(now.UnixNano()), ":st": ddbS(string(st.status))},
			}},
			{Update: uncountState(b.table, st)},
		}})
		if err == nil {
			return true, nil
		}
		codes, _, ok := cancelReasons(err)
		switch {
		case !ok:
			return false, ddbErr(ctx, "delete expired", err)
		case codes[0] == ddbCondFailed:
			return false, nil // gone (TTL, another sweep), or replaced by a live one
		case hasConflict(codes):
			if err := ddbBackoff(ctx, attempt); err != nil {
				return false, err
			}
		default:
			return false, ddbErr(ctx, "delete expired", err)
		}
	}
}

// Heartbeat is one UpdateItem: ADD beat 1 on the runner's item, which the
// ADD creates at 1.
func (b *dynamoBackend) Heartbeat(ctx context.Context, runner string) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	_, err := b.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(b.table),
		Key:                       runnerKey(runner),
		UpdateExpression:          aws.String("ADD #b :one"),
		ExpressionAttributeNames:  map[string]string{"#b": ddbBeat},
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": ddbN(1)},
	})
	if err != nil {
		return ddbErr(ctx, "heartbeat", err)
	}
	return nil
}

// Runners is one consistent Query of the RUNNERS partition per 1 MB page.
func (b *dynamoBackend) Runners(ctx context.Context) ([]taskstore.RunnerBeat, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	var out []taskstore.RunnerBeat
	err := b.eachItem(ctx, "runners", ddbS(ddbRunnersPK), "SK, #b", map[string]string{"#b": ddbBeat},
		func(item map[string]types.AttributeValue) error {
			sk, _ := item[ddbSK].(*types.AttributeValueMemberS)
			beat, ok := attrNum(item, ddbBeat)
			if sk == nil || !strings.HasPrefix(sk.Value, ddbRunnerPfx) || !ok || beat < 0 {
				return fmt.Errorf("%w: dynamodb: malformed runner item", taskstore.ErrBackend)
			}
			out = append(out, taskstore.RunnerBeat{Runner: sk.Value[len(ddbRunnerPfx):], Beat: uint64(beat)})
			return nil
		})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RemoveRunner is one DeleteItem of the runner's item.
func (b *dynamoBackend) RemoveRunner(ctx context.Context, runner string) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	if _, err := b.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(b.table), Key: runnerKey(runner)}); err != nil {
		return ddbErr(ctx, "remove runner", err)
	}
	return nil
}

// RunnerTasks queries the runner index for up to limit keys (a filter on
// the projected expires_ns skips expired items; a few more Queries read
// on when it leaves the answer short), then reads those items from the
// table with one consistent BatchGetItem per 100 keys and keeps the ones
// still live and still holding runner: the index is eventually consistent,
// so what it says is only where to look. Cost: 2 requests for up to 100
// records, never a scan.
func (b *dynamoBackend) RunnerTasks(ctx context.Context, runner string, limit int) ([]taskstore.Record, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	var keys []map[string]types.AttributeValue
	var start map[string]types.AttributeValue
	for round := 0; len(keys) < limit && round < 4; round++ {
		page, err := b.client.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(b.table),
			IndexName:                 aws.String(DynamoDBRunnerIndex),
			KeyConditionExpression:    aws.String("#r = :r"),
			FilterExpression:          aws.String(ddbLiveFilter),
			ExpressionAttributeNames:  map[string]string{"#r": ddbRunner},
			ExpressionAttributeValues: map[string]types.AttributeValue{":r": ddbS(runner), ":now": b.nowNS()},
			Limit:                     aws.Int32(int32(min(limit-len(keys), 1<<20))),
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return nil, ddbErr(ctx, "runner tasks", err)
		}
		for _, item := range page.Items {
			keys = append(keys, map[string]types.AttributeValue{ddbPK: item[ddbPK], ddbSK: item[ddbSK]})
		}
		if page.LastEvaluatedKey == nil {
			break
		}
		start = page.LastEvaluatedKey
	}
	items, err := b.batchGet(ctx, keys)
	if err != nil {
		return nil, err
	}
	// Keep what still holds runner: not moved, ended, gone or expired
	// since it was indexed.
	return b.liveRecords(items, func(item map[string]types.AttributeValue) bool {
		run, _ := item[ddbRunner].(*types.AttributeValueMemberS)
		return run != nil && run.Value == runner
	})
}

// liveRecords decodes the live task items that keep accepts.
func (b *dynamoBackend) liveRecords(items []map[string]types.AttributeValue, keep func(map[string]types.AttributeValue) bool) ([]taskstore.Record, error) {
	now := b.now()
	out := make([]taskstore.Record, 0, len(items))
	for _, item := range items {
		pk, _ := item[ddbPK].(*types.AttributeValueMemberS)
		if pk == nil || !strings.HasPrefix(pk.Value, ddbOwnerPfx) || !itemLive(item, now) || !keep(item) {
			continue
		}
		r, err := decodeItem(pk.Value[len(ddbOwnerPfx):], item)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// GetMany is one strongly consistent BatchGetItem per 100 distinct keys
// (BatchGetItem refuses duplicates); missing and expired items are left out.
func (b *dynamoBackend) GetMany(ctx context.Context, keys []taskstore.Key) ([]taskstore.Record, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	seen := make(map[taskstore.Key]bool, len(keys))
	var want []map[string]types.AttributeValue
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			want = append(want, taskKey(k.Owner, k.TaskID))
		}
	}
	items, err := b.batchGet(ctx, want)
	if err != nil {
		return nil, err
	}
	return b.liveRecords(items, func(map[string]types.AttributeValue) bool { return true })
}

// batchGet reads keys consistently, 100 per BatchGetItem, following
// UnprocessedKeys with backoff.
func (b *dynamoBackend) batchGet(ctx context.Context, keys []map[string]types.AttributeValue) ([]map[string]types.AttributeValue, error) {
	var out []map[string]types.AttributeValue
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), 100)]
		keys = keys[len(chunk):]
		req := map[string]types.KeysAndAttributes{b.table: {Keys: chunk, ConsistentRead: aws.Bool(true)}}
		for attempt := 0; len(req) > 0; attempt++ {
			page, err := b.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return nil, ddbErr(ctx, "batch get", err)
			}
			out = append(out, page.Responses[b.table]...)
			req = page.UnprocessedKeys
			if len(req) > 0 {
				if err := ddbBackoff(ctx, attempt); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// MaxRecordSize keeps items inside DynamoDB's 400 KB limit.
func (b *dynamoBackend) MaxRecordSize() int { return DynamoDBMaxRecordSize }

// Close marks the backend closed and drops idle connections of a client
// it created. Calls in flight finish.
func (b *dynamoBackend) Close() error {
	if b.closed.CompareAndSwap(false, true) && b.onClose != nil {
		b.onClose()
	}
	return nil
}

// --- NoTransactions mode (dynalite) ---
//
// Create reserves first (the counters +1 if below the bounds), then puts
// the item; Delete removes the item, then uncounts it; an Update that
// resumes a task counts it before the write, one that ends it uncounts it
// after. Every item present holds exactly one reservation (and one active
// reservation if active), so the bounds are never overshot; a crash
// between two writes leaves a counter too high, which is safe. Expired
// items stay counted until DeleteExpired or a Create that finds a bound
// reached deletes them (uncounting each one it deleted).

func (b *dynamoBackend) addCounts(ctx context.Context, pk types.AttributeValue, dn, da int) error {
	_, _, err := b.updateItem(ctx, "count", countDelta(b.table, pk, dn, da))
	return err
}

// reserve counts a new record if the bounds allow it.
func (b *dynamoBackend) reserve(ctx context.Context, rec taskstore.Record, lim taskstore.Limits) (bool, error) {
	_, full, err := b.updateItem(ctx, "create", countNew(b.table, rec, lim))
	return !full && err == nil, err
}

func (b *dynamoBackend) createNoTx(ctx context.Context, rec taskstore.Record, lim taskstore.Limits) error {
	ok, err := b.reserve(ctx, rec, lim)
	if err != nil {
		return err
	}
	if !ok {
		s, err := b.scanOwner(ctx, rec.Owner, rec.TaskID)
		if err != nil {
			return err
		}
		if s.idIsLive {
			return taskstore.ErrAlreadyExists
		}
		for _, sk := range s.expiredSK {
			key := map[string]types.AttributeValue{ddbPK: ownerPK(rec.Owner), ddbSK: ddbS(sk)}
			if _, err := b.deleteExpiredItem(ctx, key); err != nil {
				return err
			}
		}
		if ok, err = b.reserve(ctx, rec, lim); err != nil {
			return err
		}
		if !ok {
			// The live count decides when it confirms a bound; otherwise
			// reservations in flight (or left by a crash) fill it: the
			// counters say which.
			if rec.Active && lim.MaxActive > 0 && s.liveActive >= lim.MaxActive {
				return taskstore.ErrQuotaExceeded
			}
			if lim.MaxStored > 0 && s.live >= lim.MaxStored {
				return taskstore.ErrStorageFull
			}
			out, err := b.client.GetItem(ctx, &dynamodb.GetItemInput{
				TableName: aws.String(b.table), Key: metaKey(rec.Owner), ConsistentRead: aws.Bool(true),
			})
			if err != nil {
				return ddbErr(ctx, "count", err)
			}
			a, _ := attrNum(out.Item, ddbActiveN)
			n, _ := attrNum(out.Item, ddbStoredN)
			return refusal(rec, lim, a, n)
		}
	}
	out, err := b.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(b.table),
		Item:                      b.taskItem(rec),
		ConditionExpression:       aws.String(ddbFreeCond),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": b.nowNS()},
		ReturnValues:              types.ReturnValueAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return errors.Join(taskstore.ErrAlreadyExists, b.addCounts(ctx, ownerPK(rec.Owner), -1, -oneIf(rec.Active)))
	case err != nil:
		// The put may have happened: keep the reservation (too high is safe).
		return ddbErr(ctx, "create", err)
	case len(out.Attributes) > 0:
		// Replaced an expired item, which held a reservation of its own.
		if err := b.addCounts(ctx, ownerPK(rec.Owner), -1, -oneIf(itemActive(out.Attributes))); err != nil {
			return err
		}
	}
	return b.addStatusCounts(ctx, countRecord(b.table, rec, 1))
}

func (b *dynamoBackend) deleteNoTx(ctx context.Context, owner, id string) (bool, error) {
	out, err := b.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(b.table),
		Key:                       taskKey(owner, id),
		ConditionExpression:       aws.String(ddbLiveCond),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": b.nowNS()},
		ReturnValues:              types.ReturnValueAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, ddbErr(ctx, "delete", err)
	}
	if err := b.addCounts(ctx, ownerPK(owner), -1, -oneIf(itemActive(out.Attributes))); err != nil {
		return true, err
	}
	return true, b.addStatusCounts(ctx, uncountState(b.table, stateOf(out.Attributes)))
}
