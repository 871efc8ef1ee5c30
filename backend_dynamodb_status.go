//go:build dynamodb

package mcptasks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/mcptasks/mcptasks/taskstore"
)

// The status index and the status counters (taskstore.StatusIndex); the
// why of each choice is in docs/dynamodb.md, "Tasks by status".
//
// Index: every task item with a status carries status_key =
// "{status}#{shard}", the hash key of the GSI status-index, whose range key
// is the table's SK (TASK#{taskId}). The shard (0 to ddbStatusShards-1) is
// a hash of the item's key, so the items of one status spread over
// ddbStatusShards index partitions instead of one hot one, and a page
// across owners is a merge of the shards' Queries in task id order. The
// owner is not in the index's range key (a range key holds at most 1 KB,
// an owner up to 2 KB): items of one task id under several owners tie in
// the index, and the merge orders them by owner itself.
//
// Counts: counter items
//
//	PK = COUNTS#{k mod 8}   SK = B#{bucket end}#{k div 8}   s_{status} N per status, expires_at
//
// where the bucket is the 10-minute interval (ddbCountBucket) in which the
// counted records expire (B#~ for records that never do) and k one of
// ddbCountShards counter items per bucket: a record is counted in the
// bucket of its expiry, so CountByStatus, summing only the buckets that
// end in the future, stops counting it at most ddbCountBucket after it
// expired, without anyone seeing DynamoDB's TTL delete it. Every write
// that adds, removes or changes the status of a record moves its count in
// the same transaction, on a counter item picked at random per attempt
// (counts are sums: any item will do), so that concurrent transactions
// seldom write the same one (which DynamoDB cancels as a conflict).
const (
	ddbStatus    = "status"     // S: Record.Status, only when set
	ddbStatusKey = "status_key" // S: {status}#{shard}, only when status is set: status-index's hash key
	// ddbStatusShards is how many index partitions (and counter
	// partitions) the records of one status spread over. It is part of the
	// table's layout: items keep the shard they were written with.
	ddbStatusShards = 8
	// ddbCountShards is how many counter items one bucket has, spread
	// over ddbStatusShards partitions.
	ddbCountShards  = 32
	ddbCountPfx     = "COUNTS#" // PK of a counter partition
	ddbBucketPfx    = "B#"      // a bucket: B#{bucket end, epoch seconds, 12 digits}
	ddbNoExpiry     = "B#~"     // the bucket of records without expiry; sorts after every other
	ddbCountAttrPfx = "s_"      // a counter item's attribute per status
	// ddbCountBucket is the width of a counter bucket: how long an expired
	// record can stay counted when no DeleteExpired removes it.
	ddbCountBucket = 10 * time.Minute
	// ddbCountKeep is how long a counter item outlives its bucket before
	// the table's TTL may delete it (writers with a slow clock may still
	// move it; nobody reads it).
	ddbCountKeep = time.Hour
)

// Interface guards
var _ taskstore.StatusIndex = (*dynamoBackend)(nil)

// statusIndex is the definition of DynamoDBStatusIndex.
func statusIndex() types.GlobalSecondaryIndex {
	return types.GlobalSecondaryIndex{
		IndexName: aws.String(DynamoDBStatusIndex),
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(ddbStatusKey), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(ddbSK), KeyType: types.KeyTypeRange},
		},
		Projection: &types.Projection{
			ProjectionType:   types.ProjectionTypeInclude,
			NonKeyAttributes: []string{ddbExpiresNS},
		},
	}
}

// statusShard is the index shard of the item at (owner, id).
func statusShard(owner, id string) int {
	h := fnv.New32a()
	h.Write([]byte(owner))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return int(h.Sum32() % ddbStatusShards)
}

func statusKey(status taskstore.Status, shard int) string {
	return string(status) + "#" + strconv.Itoa(shard)
}

// itemState is what a write assumes about the stored item: the fields
// that decide which counters it moves. A wrong assumption fails the
// write's condition, whose failure returns the stored item, and the next
// attempt assumes what it showed (see Update).
type itemState struct {
	active bool
	status taskstore.Status
	expNS  int64 // 0: no expiry
}

// stateOf reads an item's state. Items written before a field existed
// have none: inactive, no status.
func stateOf(item map[string]types.AttributeValue) itemState {
	s := itemState{active: itemActive(item)}
	if st, ok := item[ddbStatus].(*types.AttributeValueMemberS); ok {
		s.status = taskstore.Status(st.Value)
	}
	s.expNS, _ = attrNum(item, ddbExpiresNS)
	return s
}

// guessState is the first assumption of an Update of rec: a running task
// (active, working) with rec's expiry, which the Store never changes.
// Progress writes keep it, ends and waits for input leave it, so each is
// one request; a record without status (one the Store did not make)
// assumes none.
func guessState(rec taskstore.Record) itemState {
	s := itemState{active: true, expNS: expNS(rec.ExpiresAt)}
	if rec.Status != "" {
		s.status = taskstore.StatusWorking
	}
	return s
}

func expNS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// countBucket is the SK of the counter item for records expiring at expNS
// (0: never) and the epoch second its bucket ends (0: never).
func countBucket(expNS int64) (sk string, end int64) {
	if expNS == 0 {
		return ddbNoExpiry, 0
	}
	g := int64(ddbCountBucket)
	end = max(expNS+g-1, 0) / g * (g / int64(time.Second))
	return fmt.Sprintf("%s%012d", ddbBucketPfx, end), end
}

// bucketPassed reports whether the counts of records expiring at expNS are
// no longer read at now.
func bucketPassed(expNS int64, now time.Time) bool {
	_, end := countBucket(expNS)
	return end != 0 && end <= now.Unix()
}

// statusDelta is a change of the counts of one bucket, by status.
type statusDelta map[taskstore.Status]int

// add counts a record of state s in (+1) or out (-1); records without
// status are not counted.
func (d statusDelta) add(s taskstore.Status, n int) {
	if s != "" {
		d[s] += n
	}
}

// countStatus is the update of a random shard's counter item of the
// bucket of records expiring at expNS by delta, or nil when delta moves
// nothing.
func countStatus(table string, expNS int64, delta statusDelta) *types.Update {
	names := map[string]string{}
	vals := map[string]types.AttributeValue{}
	var adds []string
	for _, st := range slices.Sorted(maps.Keys(delta)) {
		if delta[st] == 0 {
			continue
		}
		i := strconv.Itoa(len(adds))
		names["#c"+i] = ddbCountAttrPfx + string(st)
		vals[":c"+i] = ddbN(delta[st])
		adds = append(adds, "#c"+i+" :c"+i)
	}
	if len(adds) == 0 {
		return nil
	}
	sk, end := countBucket(expNS)
	expr := "ADD " + strings.Join(adds, ", ")
	if end != 0 {
		expr = "SET #ttl = :ttl " + expr
		names["#ttl"] = ddbExpiresAt
		vals[":ttl"] = ddbN(end + int64(ddbCountKeep/time.Second))
	}
	k := rand.IntN(ddbCountShards)
	return &types.Update{
		TableName: aws.String(table),
		Key: map[string]types.AttributeValue{
			ddbPK: ddbS(ddbCountPfx + strconv.Itoa(k%ddbStatusShards)),
			ddbSK: ddbS(sk + "#" + strconv.Itoa(k/ddbStatusShards)),
		},
		UpdateExpression:          aws.String(expr),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: vals,
	}
}

// countRecord is countStatus's update counting rec in (n = 1) or out
// (n = -1), or nil when rec has no status.
func countRecord(table string, rec taskstore.Record, n int) *types.Update {
	d := statusDelta{}
	d.add(rec.Status, n)
	return countStatus(table, expNS(rec.ExpiresAt), d)
}

// uncountState is countStatus's update counting out an item of state
// was, or nil when it has no status.
func uncountState(table string, was itemState) *types.Update {
	d := statusDelta{}
	d.add(was.status, -1)
	return countStatus(table, was.expNS, d)
}

// moveStatus is countStatus's update of a record leaving state was for
// rec's status, or nil when its status does not change.
func moveStatus(table string, rec taskstore.Record, was itemState) *types.Update {
	if was.status == rec.Status {
		return nil
	}
	d := statusDelta{}
	d.add(was.status, -1)
	d.add(rec.Status, 1)
	return countStatus(table, was.expNS, d)
}

// addStatusCounts applies a counter update on its own (NoTransactions
// mode, and DeleteExpired's uncount there).
func (b *dynamoBackend) addStatusCounts(ctx context.Context, u *types.Update) error {
	if u == nil {
		return nil
	}
	_, _, err := b.updateItem(ctx, "count status", u)
	return err
}

// CountByStatus reads the counter items of the buckets that end after
// now: one consistent Query per counter partition (8, 4 in flight), in
// all 32 items per bucket in use (at most the longest TTL ÷ 10 minutes,
// plus two), never proportional to the tasks.
func (b *dynamoBackend) CountByStatus(ctx context.Context) (map[taskstore.Status]int64, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	// After every item of the bucket ending now ("#~" sorts after "#{digit}").
	from := fmt.Sprintf("%s%012d#~", ddbBucketPfx, b.now().Unix())
	sums := make([]map[taskstore.Status]int64, ddbStatusShards)
	errs := make([]error, ddbStatusShards)
	inParallel(ctx, ddbStatusShards, 4, func(shard int) {
		sums[shard] = map[taskstore.Status]int64{}
		p := dynamodb.NewQueryPaginator(b.client, &dynamodb.QueryInput{
			TableName:              aws.String(b.table),
			ConsistentRead:         aws.Bool(true),
			KeyConditionExpression: aws.String("PK = :pk AND SK > :from"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk":   ddbS(ddbCountPfx + strconv.Itoa(shard)),
				":from": ddbS(from),
			},
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				errs[shard] = ddbErr(ctx, "count by status", err)
				return
			}
			for _, item := range page.Items {
				for name := range item {
					if st, ok := strings.CutPrefix(name, ddbCountAttrPfx); ok {
						n, _ := attrNum(item, name)
						sums[shard][taskstore.Status(st)] += n
					}
				}
			}
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := map[taskstore.Status]int64{}
	for _, s := range sums {
		for st, n := range s {
			out[st] += n
		}
	}
	for st, n := range out {
		if n <= 0 {
			delete(out, st) // none left (below zero only after a lost uncount's twin: see docs)
		}
	}
	return out, nil
}

// statusCand is an entry of the status index: a record to read.
type statusCand struct {
	owner, id string
}

func (c statusCand) cmp(d statusCand) int {
	return cmp.Or(cmp.Compare(c.id, d.id), cmp.Compare(c.owner, d.owner))
}

// statusShardCursor reads one shard of a status in task id order.
type statusShardCursor struct {
	buf  []statusCand // fetched, sorted, not yet taken
	next map[string]types.AttributeValue
	// edge is the task id of the last index entry read while more may
	// follow: entries of that id may still be unread (ties: several
	// owners), so only buffered entries below it are safe to take.
	edge    string
	done    bool
	started bool
}

// ready reports whether the cursor's head can be compared with the other
// shards' heads: it is known to be the shard's smallest unread entry.
func (c *statusShardCursor) ready() bool {
	return c.done || (len(c.buf) > 0 && c.buf[0].id < c.edge)
}

// statusMerge merges the shards' cursors of one status.
type statusMerge struct {
	b       *dynamoBackend
	status  taskstore.Status
	after   taskstore.Key
	chunk   int
	shards  [ddbStatusShards]statusShardCursor
	queries int
}

// fetch reads the next index page of shard s into its buffer.
func (m *statusMerge) fetch(ctx context.Context, s int) error {
	c := &m.shards[s]
	keyCond := "#k = :k"
	vals := map[string]types.AttributeValue{
		":k":   ddbS(statusKey(m.status, s)),
		":now": m.b.nowNS(),
	}
	if m.after != (taskstore.Key{}) {
		keyCond += " AND SK >= :from"
		vals[":from"] = ddbS(ddbTaskPfx + m.after.TaskID)
	}
	page, err := m.b.client.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(m.b.table),
		IndexName:                 aws.String(DynamoDBStatusIndex),
		KeyConditionExpression:    aws.String(keyCond),
		FilterExpression:          aws.String(ddbLiveFilter),
		ExpressionAttributeNames:  map[string]string{"#k": ddbStatusKey},
		ExpressionAttributeValues: vals,
		Limit:                     aws.Int32(int32(m.chunk)),
		ExclusiveStartKey:         c.next,
	})
	if err != nil {
		return m.b.statusQueryErr(ctx, err)
	}
	c.started = true
	for _, item := range page.Items {
		pk, _ := item[ddbPK].(*types.AttributeValueMemberS)
		sk, _ := item[ddbSK].(*types.AttributeValueMemberS)
		if pk == nil || sk == nil || !strings.HasPrefix(pk.Value, ddbOwnerPfx) || !strings.HasPrefix(sk.Value, ddbTaskPfx) {
			return fmt.Errorf("%w: dynamodb: malformed entry of %s", taskstore.ErrBackend, DynamoDBStatusIndex)
		}
		e := statusCand{owner: pk.Value[len(ddbOwnerPfx):], id: sk.Value[len(ddbTaskPfx):]}
		if m.after != (taskstore.Key{}) && e.cmp(statusCand{owner: m.after.Owner, id: m.after.TaskID}) <= 0 {
			continue
		}
		c.buf = append(c.buf, e)
	}
	slices.SortFunc(c.buf, statusCand.cmp)
	c.next = page.LastEvaluatedKey
	if c.next == nil {
		c.done = true
	} else if sk, ok := c.next[ddbSK].(*types.AttributeValueMemberS); ok {
		c.edge = strings.TrimPrefix(sk.Value, ddbTaskPfx)
	}
	return nil
}

// take returns up to n entries in order, fetching what the merge needs
// (the first fetch of every shard in parallel). It stops early, with what
// it has, when bounded: after 4 Queries per shard once it holds an entry.
func (m *statusMerge) take(ctx context.Context, n int) ([]statusCand, error) {
	var out []statusCand
	for len(out) < n {
		var need []int
		for s := range m.shards {
			if !m.shards[s].ready() {
				need = append(need, s)
			}
		}
		if len(need) > 0 {
			if len(out) > 0 && m.queries >= 4*ddbStatusShards {
				return out, nil // expired entries in the way: a short page
			}
			m.queries += len(need)
			errs := make([]error, len(need))
			inParallel(ctx, len(need), ddbStatusShards, func(j int) { errs[j] = m.fetch(ctx, need[j]) })
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := errors.Join(errs...); err != nil {
				return nil, err
			}
			continue
		}
		best := -1
		for s := range m.shards {
			if c := &m.shards[s]; len(c.buf) > 0 && (best < 0 || c.buf[0].cmp(m.shards[best].buf[0]) < 0) {
				best = s
			}
		}
		if best < 0 {
			break // every shard read to its end
		}
		c := &m.shards[best]
		out = append(out, c.buf[0])
		c.buf = c.buf[1:]
	}
	return out, nil
}

// more reports whether entries may follow what was taken.
func (m *statusMerge) more() bool {
	for s := range m.shards {
		if c := &m.shards[s]; len(c.buf) > 0 || !c.done {
			return true
		}
	}
	return false
}

// ListByStatus merges the status's index shards in (task id, owner) order
// (one Query per shard to start, in parallel, each asking for a share of
// the page with room to spare, and more Queries only for the shards the
// page reaches into), then reads the page's records from the table with
// consistent BatchGetItems and keeps those still live with that status:
// the index is eventually consistent, so what it says is only where to
// look. Cost: about 8 Queries of small index entries and 1 BatchGetItem
// per 100 records, never a scan.
func (b *dynamoBackend) ListByStatus(ctx context.Context, status taskstore.Status, after taskstore.Key, limit int) ([]taskstore.Record, bool, error) {
	if err := b.begin(ctx); err != nil {
		return nil, false, err
	}
	if limit < 1 || limit > taskstore.MaxStatusPage {
		return nil, false, fmt.Errorf("%w: %d, want 1 to %d", taskstore.ErrInvalidPageSize, limit, taskstore.MaxStatusPage)
	}
	if !status.Valid() {
		return nil, false, fmt.Errorf("%w %q", taskstore.ErrInvalidStatus, status)
	}
	m := &statusMerge{b: b, status: status, after: after, chunk: min(limit+1, 2*limit/ddbStatusShards+8)}
	out := make([]taskstore.Record, 0, min(limit, 100))
	for len(out) < limit {
		cands, err := m.take(ctx, limit-len(out))
		if err != nil {
			return nil, false, err
		}
		if len(cands) == 0 {
			return out, false, nil
		}
		recs, err := b.readCands(ctx, cands, status)
		if err != nil {
			return nil, false, err
		}
		out = append(out, recs...)
		if len(out) > 0 && m.queries >= 4*ddbStatusShards {
			break
		}
	}
	// One more entry says whether a record follows; a stale one (the
	// index lags the table) may make that a false yes.
	if len(out) == limit {
		next, err := m.take(ctx, 1)
		if err != nil {
			return nil, false, err
		}
		return out, len(next) > 0, nil
	}
	return out, m.more(), nil
}

// readCands reads cands from the table, consistently, and returns the
// live records among them that have status, in the order of cands.
func (b *dynamoBackend) readCands(ctx context.Context, cands []statusCand, status taskstore.Status) ([]taskstore.Record, error) {
	keys := make([]map[string]types.AttributeValue, len(cands))
	for i, c := range cands {
		keys[i] = taskKey(c.owner, c.id)
	}
	items, err := b.batchGet(ctx, keys)
	if err != nil {
		return nil, err
	}
	recs, err := b.liveRecords(items, func(item map[string]types.AttributeValue) bool {
		st, _ := item[ddbStatus].(*types.AttributeValueMemberS)
		return st != nil && st.Value == string(status)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(recs, func(x, y taskstore.Record) int {
		return statusCand{owner: x.Owner, id: x.TaskID}.cmp(statusCand{owner: y.Owner, id: y.TaskID})
	})
	return recs, nil
}

// statusQueryErr explains a failed Query of the status index: a table
// made by an earlier release has no status-index until it is upgraded.
func (b *dynamoBackend) statusQueryErr(ctx context.Context, err error) error {
	var api smithy.APIError
	if ctx.Err() == nil && errors.As(err, &api) && api.ErrorCode() == "ValidationException" {
		d, derr := b.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(b.table)})
		if derr == nil {
			state := "missing"
			for _, g := range d.Table.GlobalSecondaryIndexes {
				if aws.ToString(g.IndexName) == DynamoDBStatusIndex {
					state = string(g.IndexStatus)
					if aws.ToBool(g.Backfilling) {
						state += ", backfilling"
					}
				}
			}
			if state != string(types.IndexStatusActive) {
				return fmt.Errorf("%w: dynamodb: table %s: index %s is %s (a table of an earlier release gets it from: mcptasks dynamodb create-table dynamodb://%s?…): %w",
					taskstore.ErrBackend, b.table, DynamoDBStatusIndex, strings.ToLower(state), b.table, err)
			}
		}
	}
	return ddbErr(ctx, "list by status", err)
}
