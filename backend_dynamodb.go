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
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mcptasks/mcptasks/taskstore"
)

func init() {
	Register("dynamodb", openDynamoDB)
}

// DynamoDBMaxRecordSize is the largest record data the DynamoDB backend
// stores. DynamoDB items are limited to 400 KB (names and values of every
// attribute); the rest is room for the keys (an owner of up to 2 KB) and
// the few other attributes.
const DynamoDBMaxRecordSize = 350_000

// Attribute names and key prefixes of the table (see docs/dynamodb.md).
const (
	ddbPK         = "PK"         // S: OWNER#{owner}
	ddbSK         = "SK"         // S: TASK#{taskId}, or META for the owner's counter
	ddbVersion    = "version"    // N: 1 on create, +1 per update
	ddbData       = "data"       // B: the record's document, byte for byte
	ddbExpiresAt  = "expires_at" // N: epoch seconds, rounded up; the table's native TTL attribute
	ddbExpiresNS  = "expires_ns" // N: epoch nanoseconds; what reads compare against
	ddbCount      = "n"          // N, on the META item: the owner's counted tasks
	ddbSeq        = "seq"        // N, on the META item: +1 on every change of n
	ddbOwnerPfx   = "OWNER#"
	ddbTaskPfx    = "TASK#"
	ddbMetaSK     = "META"
	ddbLiveCond   = "attribute_exists(SK) AND (attribute_not_exists(expires_ns) OR expires_ns > :now)"
	ddbFreeCond   = "attribute_not_exists(SK) OR expires_ns <= :now"
	ddbQuotaCond  = "attribute_not_exists(#n) OR #n < :max"
	ddbCondFailed = "ConditionalCheckFailed"
)

// DynamoDBOptions tunes a DynamoDB backend.
type DynamoDBOptions struct {
	// NoTransactions makes Create and Delete keep the per-owner counter with
	// separate conditional writes instead of TransactWriteItems, for servers
	// without transactions (dynalite). The quota is still never overshot,
	// but a crash between the two writes leaves the counter one too high
	// until DeleteExpired runs, and items removed by the table's native TTL
	// are never uncounted: do not use it on AWS.
	NoTransactions bool
	// NoOldItemOnFailure is for servers that ignore
	// ReturnValuesOnConditionCheckFailure (dynalite): a failed
	// compare-and-swap then reads the item to tell missing from stale.
	NoOldItemOnFailure bool
}

// dynamoBackend keeps records in one DynamoDB table:
//
//	PK = OWNER#{owner}   SK = TASK#{taskId}   version, data, expires_at, expires_ns
//	PK = OWNER#{owner}   SK = META            n (the owner's counted tasks)
//
// Consistency: every read is strongly consistent and every write is a
// single conditional request or one TransactWriteItems, so each method is
// atomic on the server. Task ids are fixed-width hex that sort by time, so
// a descending Query on SK lists newest first, one request per page.
//
// Expiry: expires_at feeds the table's native TTL, which deletes items up
// to days late; until then reads hide an item whose expires_ns has passed
// (client clock), and writes treat it as missing.
//
// Quota: the META item's n is an upper bound of the owner's live tasks:
// Create adds 1 in the same transaction as its conditional Put (condition
// n < max), Delete of a live task subtracts 1 in the same transaction.
// Expired items still counted make n too high, never too low; when the
// condition fails, Create recounts the live items with a consistent Query
// and repairs n with a compare-and-swap on the META item's seq, which every
// Create and Delete increments, so the repair fails (and is retried) if any
// of them committed in between. (A swap on n itself would not do: n can
// leave and come back to the same value.)
type dynamoBackend struct {
	client  *dynamodb.Client
	table   string
	opts    DynamoDBOptions
	closed  atomic.Bool
	onClose func()
}

// Interface guards
var _ taskstore.Backend = (*dynamoBackend)(nil)

var errDynamoClosed = fmt.Errorf("%w: dynamodb store is closed", taskstore.ErrBackend)

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
// string keys PK (hash) and SK (range), on-demand billing (PAY_PER_REQUEST),
// and native TTL on expires_at. It waits until the table is active and is
// safe to run again on an existing table.
func CreateDynamoDBTable(ctx context.Context, client *dynamodb.Client, table string) error {
	return createDynamoTable(ctx, client, table, true)
}

func createDynamoTable(ctx context.Context, client *dynamodb.Client, table string, ttl bool) error {
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(ddbPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(ddbSK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(ddbPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(ddbSK), KeyType: types.KeyTypeRange},
		},
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return ddbErr(ctx, "create table", err)
	}
	w := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = 2 * time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, 5*time.Minute); err != nil {
		return ddbErr(ctx, "wait for table", err)
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

// ddbErr maps an SDK error: context errors pass through, anything else is
// a backend error that keeps its cause.
func ddbErr(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: dynamodb %s: %w", taskstore.ErrBackend, op, err)
}

func (b *dynamoBackend) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.closed.Load() {
		return errDynamoClosed
	}
	return nil
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

func nowNS() types.AttributeValue { return ddbN(time.Now().UnixNano()) }

func attrNum(item map[string]types.AttributeValue, name string) (int64, bool) {
	n, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	return v, err == nil
}

// itemLive reports whether an item exists and has not expired at now.
func itemLive(item map[string]types.AttributeValue, now time.Time) bool {
	if len(item) == 0 {
		return false
	}
	exp, ok := attrNum(item, ddbExpiresNS)
	return !ok || now.UnixNano() < exp
}

func decodeItem(owner string, item map[string]types.AttributeValue) (taskstore.Record, error) {
	sk, _ := item[ddbSK].(*types.AttributeValueMemberS)
	data, _ := item[ddbData].(*types.AttributeValueMemberB)
	ver, ok := attrNum(item, ddbVersion)
	if sk == nil || data == nil || !ok || len(sk.Value) <= len(ddbTaskPfx) {
		return taskstore.Record{}, fmt.Errorf("%w: dynamodb: malformed task item", taskstore.ErrBackend)
	}
	r := taskstore.Record{Owner: owner, TaskID: sk.Value[len(ddbTaskPfx):], Data: data.Value, Version: uint64(ver)}
	if ns, ok := attrNum(item, ddbExpiresNS); ok {
		r.ExpiresAt = time.Unix(0, ns).UTC()
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
	if !rec.ExpiresAt.IsZero() {
		ns := rec.ExpiresAt.UnixNano()
		// Round up, so native TTL never deletes before the precise expiry.
		item[ddbExpiresAt] = ddbN((ns + int64(time.Second) - 1) / int64(time.Second))
		item[ddbExpiresNS] = ddbN(ns)
	}
	return item
}

// Create is one TransactWriteItems on the happy path: add 1 to the owner's
// counter if below the quota, and put the item if no live one is there.
func (b *dynamoBackend) Create(ctx context.Context, rec taskstore.Record, maxPerOwner int) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	if err := b.checkSize(rec.Data); err != nil {
		return err
	}
	if b.opts.NoTransactions {
		return b.createNoTx(ctx, rec, maxPerOwner)
	}
	for repairs := 0; ; repairs++ {
		quotaFull, err := b.createTx(ctx, rec, maxPerOwner)
		if err != nil || !quotaFull {
			return err
		}
		// The counter says full; it may count expired items. Recount.
		if repairs >= 8 {
			return taskstore.ErrQuotaExceeded
		}
		if err := b.repairCount(ctx, rec, maxPerOwner); err != nil {
			return err
		}
	}
}

// createTx runs the create transaction, retrying transaction conflicts.
// It reports quotaFull when only the counter's condition failed.
func (b *dynamoBackend) createTx(ctx context.Context, rec taskstore.Record, maxPerOwner int) (quotaFull bool, err error) {
	counter := &types.Update{
		TableName:                aws.String(b.table),
		Key:                      metaKey(rec.Owner),
		UpdateExpression:         aws.String("ADD #n :one"),
		ExpressionAttributeNames: map[string]string{"#n": ddbCount},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":one": ddbN(1),
		},
	}
	if maxPerOwner > 0 {
		counter.ConditionExpression = aws.String(ddbQuotaCond)
		counter.ExpressionAttributeValues[":max"] = ddbN(maxPerOwner)
	}
	item := b.taskItem(rec)
	for attempt := 0; ; attempt++ {
		_, err := b.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
			TransactItems: []types.TransactWriteItem{
				{Update: counter},
				{Put: &types.Put{
					TableName:                 aws.String(b.table),
					Item:                      item,
					ConditionExpression:       aws.String(ddbFreeCond),
					ExpressionAttributeValues: map[string]types.AttributeValue{":now": nowNS()},
				}},
			},
		})
		if err == nil {
			return false, nil
		}
		codes, ok := cancelCodes(err)
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

// cancelCodes returns the per-item cancellation codes of a canceled
// transaction ("None" where an item was not the cause), padded to two.
func cancelCodes(err error) ([]string, bool) {
	var tc *types.TransactionCanceledException
	if !errors.As(err, &tc) {
		return nil, false
	}
	codes := []string{"", ""}
	for i, r := range tc.CancellationReasons {
		if i < len(codes) {
			codes[i] = aws.ToString(r.Code)
		}
	}
	return codes, true
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
	return taskstore.Backoff(ctx, attempt, 2*time.Millisecond, 5)
}

// ownerScan is a strongly consistent read of all of an owner's items.
type ownerScan struct {
	count     int64 // the META item's n
	hasCount  bool
	seq       int64 // the META item's seq
	hasSeq    bool
	live      int  // live task items
	idIsLive  bool // the key being created is taken by a live item
	expiredSK []string
}

func (b *dynamoBackend) scanOwner(ctx context.Context, owner, id string) (ownerScan, error) {
	var s ownerScan
	now := time.Now()
	p := dynamodb.NewQueryPaginator(b.client, &dynamodb.QueryInput{
		TableName:                 aws.String(b.table),
		ConsistentRead:            aws.Bool(true),
		KeyConditionExpression:    aws.String("PK = :pk"),
		ProjectionExpression:      aws.String("SK, #n, #s, expires_ns"),
		ExpressionAttributeNames:  map[string]string{"#n": ddbCount, "#s": ddbSeq},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": ownerPK(owner)},
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return s, ddbErr(ctx, "count", err)
		}
		for _, item := range out.Items {
			sk, _ := item[ddbSK].(*types.AttributeValueMemberS)
			switch {
			case sk == nil:
			case sk.Value == ddbMetaSK:
				s.count, s.hasCount = attrNum(item, ddbCount)
				s.seq, s.hasSeq = attrNum(item, ddbSeq)
			case itemLive(item, now):
				s.live++
				if sk.Value == ddbTaskPfx+id {
					s.idIsLive = true
				}
			default:
				s.expiredSK = append(s.expiredSK, sk.Value)
			}
		}
	}
	return s, nil
}

// repairCount recounts the owner's live tasks and sets the counter to that
// number, if no Create or Delete changed the counter since it was read:
// META sorts before every TASK# item, so the Query reads the counter
// first, and a write that commits after that changes seq and fails the
// compare-and-swap. It returns ErrQuotaExceeded (or ErrAlreadyExists) when
// the recount confirms the refusal.
func (b *dynamoBackend) repairCount(ctx context.Context, rec taskstore.Record, maxPerOwner int) error {
	s, err := b.scanOwner(ctx, rec.Owner, rec.TaskID)
	if err != nil {
		return err
	}
	if s.idIsLive {
		return taskstore.ErrAlreadyExists
	}
	if s.live >= maxPerOwner {
		return taskstore.ErrQuotaExceeded
	}
	if !s.hasCount || s.count == int64(s.live) {
		return nil // changed under us: try the transaction again
	}
	in := &dynamodb.UpdateItemInput{
		TableName:                aws.String(b.table),
		Key:                      metaKey(rec.Owner),
		UpdateExpression:         aws.String("SET #n = :live ADD #s :one"),
		ConditionExpression:      aws.String("attribute_not_exists(#s)"),
		ExpressionAttributeNames: map[string]string{"#n": ddbCount, "#s": ddbSeq},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":live": ddbN(s.live),
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
		return ddbErr(ctx, "repair count", err)
	}
	return nil
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
	if !itemLive(out.Item, time.Now()) {
		return taskstore.Record{}, taskstore.ErrNotFound
	}
	return decodeItem(owner, out.Item)
}

// Update is one conditional UpdateItem (version and liveness). When the
// condition fails, DynamoDB returns the item as it was, which tells a stale
// version from a missing or expired item without another request.
func (b *dynamoBackend) Update(ctx context.Context, owner, id string, data []byte, expected uint64) (uint64, error) {
	if err := b.begin(ctx); err != nil {
		return 0, err
	}
	if err := b.checkSize(data); err != nil {
		return 0, err
	}
	for attempt := 0; ; attempt++ {
		v, retry, err := b.update(ctx, owner, id, data, expected)
		if !retry || attempt >= 8 {
			return v, err
		}
	}
}

// update is one attempt of Update. It asks for a retry only on servers
// that do not return the old item, when the item read after the failed
// condition is live at the expected version: then the condition failed on
// an older version or a missing item, and which of the two is unknown.
func (b *dynamoBackend) update(ctx context.Context, owner, id string, data []byte, expected uint64) (v uint64, retry bool, err error) {
	now := time.Now()
	_, err = b.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(b.table),
		Key:                 taskKey(owner, id),
		UpdateExpression:    aws.String("SET #d = :d, #v = :next"),
		ConditionExpression: aws.String("#v = :exp AND (" + ddbLiveCond + ")"),
		// DATA is a reserved word; the others are named for safety.
		ExpressionAttributeNames: map[string]string{"#d": ddbData, "#v": ddbVersion},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":d":    &types.AttributeValueMemberB{Value: data},
			":next": ddbN(expected + 1),
			":exp":  ddbN(expected),
			":now":  ddbN(now.UnixNano()),
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		return expected + 1, false, nil
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return 0, false, ddbErr(ctx, "update", err)
	}
	old := ccf.Item
	if len(old) == 0 && b.opts.NoOldItemOnFailure {
		// The server does not say (dynalite): look, consistently.
		out, err := b.client.GetItem(ctx, &dynamodb.GetItemInput{
			TableName:                aws.String(b.table),
			Key:                      taskKey(owner, id),
			ConsistentRead:           aws.Bool(true),
			ProjectionExpression:     aws.String("#v, expires_ns"),
			ExpressionAttributeNames: map[string]string{"#v": ddbVersion},
		})
		if err != nil {
			return 0, false, ddbErr(ctx, "update", err)
		}
		now = time.Now()
		if ver, _ := attrNum(out.Item, ddbVersion); itemLive(out.Item, now) && uint64(ver) == expected {
			return 0, true, nil
		}
		old = out.Item
	}
	if ver, _ := attrNum(old, ddbVersion); !itemLive(old, now) || uint64(ver) == expected {
		// Missing, or expired at the time the condition used: a live
		// item at the expected version fails the condition only so.
		return 0, false, taskstore.ErrNotFound
	}
	return 0, false, taskstore.ErrVersionConflict
}

// Delete of a live item is one transaction that also uncounts it. An
// expired item is left to DeleteExpired and the native TTL.
func (b *dynamoBackend) Delete(ctx context.Context, owner, id string) (bool, error) {
	if err := b.begin(ctx); err != nil {
		return false, err
	}
	if b.opts.NoTransactions {
		return b.deleteNoTx(ctx, owner, id)
	}
	for attempt := 0; ; attempt++ {
		_, err := b.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
			TransactItems: []types.TransactWriteItem{
				{Delete: &types.Delete{
					TableName:                 aws.String(b.table),
					Key:                       taskKey(owner, id),
					ConditionExpression:       aws.String(ddbLiveCond),
					ExpressionAttributeValues: map[string]types.AttributeValue{":now": nowNS()},
				}},
				{Update: &types.Update{
					TableName:                 aws.String(b.table),
					Key:                       metaKey(owner),
					UpdateExpression:          aws.String("ADD #n :minus, #s :one"),
					ExpressionAttributeNames:  map[string]string{"#n": ddbCount, "#s": ddbSeq},
					ExpressionAttributeValues: map[string]types.AttributeValue{":minus": ddbN(-1), ":one": ddbN(1)},
				}},
			},
		})
		if err == nil {
			return true, nil
		}
		codes, ok := cancelCodes(err)
		switch {
		case !ok:
			return false, ddbErr(ctx, "delete", err)
		case codes[0] == ddbCondFailed:
			return false, nil
		case hasConflict(codes):
			if err := ddbBackoff(ctx, attempt); err != nil {
				return false, err
			}
		default:
			return false, ddbErr(ctx, "delete", err)
		}
	}
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
			FilterExpression:       aws.String("attribute_not_exists(expires_ns) OR expires_ns > :now"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk":   ownerPK(owner),
				":task": ddbS(ddbTaskPfx),
				":now":  nowNS(),
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
		TableName:            aws.String(b.table),
		ConsistentRead:       aws.Bool(true),
		FilterExpression:     aws.String("begins_with(SK, :task) AND expires_ns <= :now"),
		ProjectionExpression: aws.String("PK, SK"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":task": ddbS(ddbTaskPfx),
			":now":  nowNS(),
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

// deleteExpiredItem deletes one item if it is still expired. In
// NoTransactions mode it also uncounts it: there every item present is
// counted exactly once. With transactions an expired item may or may not
// be counted (a repair drops it), so n is left for the next repair.
func (b *dynamoBackend) deleteExpiredItem(ctx context.Context, key map[string]types.AttributeValue) (bool, error) {
	_, err := b.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(b.table),
		Key:                       map[string]types.AttributeValue{ddbPK: key[ddbPK], ddbSK: key[ddbSK]},
		ConditionExpression:       aws.String("expires_ns <= :now"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": nowNS()},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, ddbErr(ctx, "delete expired", err)
	}
	if b.opts.NoTransactions {
		if err := b.addCount(ctx, key[ddbPK], -1); err != nil {
			return true, err
		}
	}
	return true, nil
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
// Create reserves a place first (counter +1 if below the quota), then puts
// the item; Delete removes the item, then uncounts it. Every item present
// holds exactly one reservation, so the quota is never overshot; a crash
// between the two writes leaves the counter too high, which is safe.
// Expired items stay counted until DeleteExpired or a Create that finds the
// quota full deletes them (uncounting each one it deleted).

func (b *dynamoBackend) addCount(ctx context.Context, pk types.AttributeValue, delta int) error {
	_, err := b.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(b.table),
		Key:                       map[string]types.AttributeValue{ddbPK: pk, ddbSK: ddbS(ddbMetaSK)},
		UpdateExpression:          aws.String("ADD #n :d"),
		ExpressionAttributeNames:  map[string]string{"#n": ddbCount},
		ExpressionAttributeValues: map[string]types.AttributeValue{":d": ddbN(delta)},
	})
	if err != nil {
		return ddbErr(ctx, "count", err)
	}
	return nil
}

func (b *dynamoBackend) reserve(ctx context.Context, owner string, maxPerOwner int) (bool, error) {
	in := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(b.table),
		Key:                       metaKey(owner),
		UpdateExpression:          aws.String("ADD #n :one"),
		ExpressionAttributeNames:  map[string]string{"#n": ddbCount},
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": ddbN(1)},
	}
	if maxPerOwner > 0 {
		in.ConditionExpression = aws.String(ddbQuotaCond)
		in.ExpressionAttributeValues[":max"] = ddbN(maxPerOwner)
	}
	_, err := b.client.UpdateItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, ddbErr(ctx, "create", err)
	}
	return true, nil
}

func (b *dynamoBackend) createNoTx(ctx context.Context, rec taskstore.Record, maxPerOwner int) error {
	ok, err := b.reserve(ctx, rec.Owner, maxPerOwner)
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
		if ok, err = b.reserve(ctx, rec.Owner, maxPerOwner); err != nil {
			return err
		}
		if !ok {
			return taskstore.ErrQuotaExceeded
		}
	}
	out, err := b.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(b.table),
		Item:                      b.taskItem(rec),
		ConditionExpression:       aws.String(ddbFreeCond),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": nowNS()},
		ReturnValues:              types.ReturnValueAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return errors.Join(taskstore.ErrAlreadyExists, b.addCount(ctx, ownerPK(rec.Owner), -1))
	case err != nil:
		// The put may have happened: keep the reservation (too high is safe).
		return ddbErr(ctx, "create", err)
	case len(out.Attributes) > 0:
		// Replaced an expired item, which held a reservation of its own.
		return b.addCount(ctx, ownerPK(rec.Owner), -1)
	}
	return nil
}

func (b *dynamoBackend) deleteNoTx(ctx context.Context, owner, id string) (bool, error) {
	_, err := b.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(b.table),
		Key:                       taskKey(owner, id),
		ConditionExpression:       aws.String(ddbLiveCond),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": nowNS()},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, ddbErr(ctx, "delete", err)
	}
	return true, b.addCount(ctx, ownerPK(owner), -1)
}
