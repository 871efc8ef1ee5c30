//go:build redis

package mcptasks

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/mcptasks/mcptasks/taskstore"
)

// The status index (taskstore.StatusIndex): ListByStatus and CountByStatus
// over every owner's records.
//
//	P{status:index}      sorted set, all scores 0, of "CODE ID OWNER" for
//	                     every record: CODE its status code (below), ID its
//	                     task id, OWNER the owner's bytes as they are. Task
//	                     ids hold no space and all have one length, so
//	                     lexical order within a code is (task id, owner)
//	                     order, and "CODE " starts every entry of a status.
//	P{status:index}:expiry
//	                     sorted set of "ID OWNER" of the records that
//	                     expire, scored by expiry (ms): the entries of
//	                     expired records are dropped by it, so the counts
//	                     need no record read.
//
// Status codes: a record's status is stored as one digit after its active
// flag (the header's ACTIVE field, see decodeRedisRecord), so the header
// keeps the shape an earlier release reads. The set of codes is closed, so
// the entries a record may have are known without reading it (a delete
// and an expiry drop them all).
//
// Single server (and Sentinel): the create, update and delete scripts
// keep the index exact in the same script (keys named in ARGV, which a
// single server allows, as for the runner index). Records that expire
// leave their entries until a status page, a count or DeleteExpired drops
// them through the expiry set; a count drops them first, so it is exact.
//
// Cluster: the index is in its own slot, so it is a hint kept next to the
// record's script: a create adds the entry and its expiry, and an update
// ZADDs its record's entry (whatever the status, which only the script
// knows) in the same pipeline as the record's script, each on its own
// node, in parallel: one round trip. An update that changed the status
// then drops the old entry (a second round trip), and so does one that
// found no record, for the entry it sent; a delete drops the record's
// entries after its script. A create or a compare-and-swap that failed
// leaves an entry its record does not have; ListByStatus checks every
// entry against its record and drops those that disagree, DeleteExpired
// checks them all, and the record's expiry drops it with the others.

// redisStatusCodeList holds the code of each status, indexed as
// status_count.lua returns its counts: "" is a record without a status.
var redisStatusCodeList = []string{"", "1", "2", "3", "4", "5"}

// redisStatuses is the status of each code, in the same order.
var redisStatuses = []taskstore.Status{"", taskstore.StatusWorking, taskstore.StatusInputRequired,
	taskstore.StatusCompleted, taskstore.StatusFailed, taskstore.StatusCancelled}

// redisStatusCode is the code a record of status s is stored with; a
// status that is none of the task statuses (nor "") is refused.
func redisStatusCode(s taskstore.Status) (string, error) {
	for i, st := range redisStatuses {
		if st == s {
			return redisStatusCodeList[i], nil
		}
	}
	return "", fmt.Errorf("%w: redis stores only the task statuses, not %q", taskstore.ErrInvalidStatus, s)
}

// redisStatusOf is the status of a stored code; a code this release does
// not know (a later one's) reads as no status.
func redisStatusOf(code []byte) taskstore.Status {
	if len(code) == 1 && code[0] >= '1' && code[0] <= '5' {
		return redisStatuses[code[0]-'0']
	}
	return ""
}

// redisStatusKM is "ID OWNER": a status index entry without its code, and
// a member of the expiry set.
func redisStatusKM(owner, id string) string { return id + " " + owner }

// redisParseStatusEntry reads "CODE ID OWNER".
func redisParseStatusEntry(m string) (code string, k taskstore.Key, ok bool) {
	code, km, ok1 := strings.Cut(m, " ")
	id, owner, ok2 := strings.Cut(km, " ")
	return code, taskstore.Key{Owner: owner, TaskID: id}, ok1 && ok2
}

func (b *redisBackend) statusKey() string    { return b.prefix + "{status:index}" }
func (b *redisBackend) statusExpKey() string { return b.prefix + "{status:index}:expiry" }

var errRedisStatusEntry = fmt.Errorf("%w: redis status index: malformed entry", taskstore.ErrBackend)

// runWith sends the commands pre adds and script (EVALSHA) in one
// pipeline, so on a cluster each node gets its share in parallel, one
// round trip, and returns the script's reply, or the first error of
// either. A server without the script (NOSCRIPT) gets it again with
// EVAL, alone.
func (b *redisBackend) runWith(ctx context.Context, pre func(redis.Pipeliner), script *redis.Script, keys []string, args []any) (any, error) {
	pipe := b.client.Pipeline()
	pre(pipe)
	cmd := script.EvalSha(ctx, pipe, keys, args...)
	cmds, _ := pipe.Exec(ctx) // each command has its own outcome
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		cmd = script.Eval(ctx, b.client, keys, args...)
	}
	res, err := cmd.Result()
	if err != nil {
		return nil, err
	}
	for _, c := range cmds {
		if c != cmd && c.Err() != nil {
			return nil, c.Err()
		}
	}
	return res, nil
}

// redisLeftEntry is, on a cluster, the status index entry an update whose
// arguments are args (see updateCall) leaves behind: the old status's
// when the script reported one (was), or, for a record that is not there,
// the entry the update itself added (the Store never creates a record it
// updates, so no create wants it); else nil.
func redisLeftEntry(args []any, was *string, err error) any {
	switch {
	case was != nil:
		return *was + " " + args[11].(string)
	case errors.Is(err, taskstore.ErrNotFound):
		return args[10].(string) + " " + args[11].(string)
	}
	return nil
}

// dropLeft removes, on a cluster, the status index entries updates left
// behind (see redisLeftEntry). If that fails
// the entries stay behind, stale, until ListByStatus or DeleteExpired
// meets them: the writes themselves are done, so it reports nothing.
func (b *redisBackend) dropLeft(ctx context.Context, members []any) {
	if len(members) > 0 {
		_ = b.client.ZRem(ctx, b.statusKey(), members...).Err()
	}
}

// ListByStatus reads the entries of the page from the index (one script
// that first drops up to redisPruneBatch entries of expired records), then
// their records (one pipeline: on a cluster, one round trip per node in
// parallel), and returns those that are live and in status. Entries whose
// record is gone or in another status are dropped from the index and, when
// any were, the page is read on from there, up to 4 reads in all: so on a
// cluster, where such entries linger, a page may hold fewer than limit
// records while more is true.
func (b *redisBackend) ListByStatus(ctx context.Context, status taskstore.Status, after taskstore.Key, limit int) ([]taskstore.Record, bool, error) {
	ctx, err := b.enter(ctx)
	if err != nil {
		return nil, false, err
	}
	if limit < 1 || limit > taskstore.MaxStatusPage {
		return nil, false, fmt.Errorf("%w: %d, must be 1 to %d", taskstore.ErrInvalidPageSize, limit, taskstore.MaxStatusPage)
	}
	code, err := redisStatusCode(status)
	if err != nil {
		return nil, false, nil // no record has it
	}
	rctx := redisNoWait(ctx) // its only writes drop dead entries
	start := "[" + code + " "
	if after != (taskstore.Key{}) {
		start = "(" + code + " " + redisStatusKM(after.Owner, after.TaskID)
	}
	end := "(" + code + "!" // "!" follows " ": past every entry of code
	var out []taskstore.Record
	for range 4 {
		need := limit - len(out)
		members, err := redisStringSlice(redisStatusPage.Run(rctx, b.client, []string{b.statusKey(), b.statusExpKey()}, start, end, need+1))
		if err != nil {
			return nil, false, b.fail(ctx, "list by status", err)
		}
		more := len(members) > need
		members = members[:min(len(members), need)]
		recs, stale, err := b.checkEntries(rctx, members, code, false)
		if err != nil {
			return nil, false, err
		}
		out = append(out, recs...)
		if len(stale) > 0 {
			if err := b.dropStale(rctx, stale); err != nil {
				return nil, false, err
			}
		}
		if !more || len(out) == limit {
			return out, more, nil
		}
		start = "(" + members[len(members)-1]
	}
	return out, true, nil
}

// redisStringSlice reads a reply that is a list of strings.
func redisStringSlice(cmd *redis.Cmd) ([]string, error) {
	res, err := cmd.Slice()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(res))
	for i, v := range res {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%w: redis: unexpected reply %v", taskstore.ErrBackend, res)
		}
		out[i] = s
	}
	return out, nil
}

// checkEntries reads the records of the status index entries members
// (one pipeline), all of code, and returns the live records in that
// status, in the order of members, and the entries that are stale: their
// record is missing or expired (and on a cluster has been for longer than
// it may take to land, see redisPendingFor), or in another status. With headerOnly it
// reads only each record's header (the records it returns then have part
// of their Data, or none).
func (b *redisBackend) checkEntries(ctx context.Context, members []string, code string, headerOnly bool) ([]taskstore.Record, []string, error) {
	if len(members) == 0 {
		return nil, nil, nil
	}
	keys := make([]taskstore.Key, len(members))
	cmds := make([]*redis.StringCmd, len(members))
	pipe := b.client.Pipeline()
	for i, m := range members {
		c, k, ok := redisParseStatusEntry(m)
		if !ok || c != code {
			return nil, nil, errRedisStatusEntry
		}
		keys[i] = k
		if headerOnly {
			cmds[i] = pipe.GetRange(ctx, b.recKey(k.Owner, k.TaskID), 0, 255)
		} else {
			cmds[i] = pipe.Get(ctx, b.recKey(k.Owner, k.TaskID))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, b.fail(ctx, "list by status", err)
	}
	want := redisStatusOf([]byte(code))
	var recs []taskstore.Record
	var stale []string
	for i, c := range cmds {
		val, err := c.Bytes()
		if errors.Is(err, redis.Nil) || err == nil && len(val) == 0 { // GETRANGE of a missing key: ""
			if !b.pending(keys[i].TaskID) {
				stale = append(stale, members[i])
			}
			continue
		}
		if err != nil {
			return nil, nil, b.fail(ctx, "list by status", err)
		}
		rec, err := decodeRedisRecord(keys[i].Owner, keys[i].TaskID, val)
		if err != nil {
			return nil, nil, err
		}
		if rec.Status != want {
			stale = append(stale, members[i])
			continue
		}
		recs = append(recs, rec)
	}
	return recs, stale, nil
}

// dropStale removes status index entries found stale, then reads their
// records again and puts back the entries of those that are in that
// status again: a record that moved back meanwhile would otherwise lose
// the entry its own write added (as RunnerTasks' heldAgain).
func (b *redisBackend) dropStale(ctx context.Context, stale []string) error {
	members := make([]any, len(stale))
	keys := make([]taskstore.Key, len(stale))
	for i, m := range stale {
		members[i] = m
		_, keys[i], _ = redisParseStatusEntry(m)
	}
	if err := b.client.ZRem(ctx, b.statusKey(), members...).Err(); err != nil {
		return b.fail(ctx, "status index", err)
	}
	recs, err := b.GetMany(ctx, keys)
	if err != nil {
		return err
	}
	dropped := make(map[string]bool, len(stale))
	for _, m := range stale {
		dropped[m] = true
	}
	var back []redis.Z
	for _, r := range recs {
		code, _ := redisStatusCode(r.Status) // read back: always valid
		if m := code + " " + redisStatusKM(r.Owner, r.TaskID); dropped[m] {
			back = append(back, redis.Z{Member: m})
		}
	}
	if len(back) > 0 {
		if err := b.client.ZAdd(ctx, b.statusKey(), back...).Err(); err != nil {
			return b.fail(ctx, "status index", err)
		}
	}
	return nil
}

// CountByStatus is one script on the index: it drops the entries of up to
// redisStatusCountPrune expired records, then counts each status's
// entries (ZLEXCOUNT, O(log n) each). On a single server the index is
// exact, so the counts are, unless more records expired since the last
// count, page or DeleteExpired than it drops. On a cluster they also
// count the stale entries of failed writes until ListByStatus or
// DeleteExpired drops them.
func (b *redisBackend) CountByStatus(ctx context.Context) (map[taskstore.Status]int64, error) {
	ctx, err := b.enter(ctx)
	if err != nil {
		return nil, err
	}
	res, err := redisStatusCount.Run(redisNoWait(ctx), b.client, []string{b.statusKey(), b.statusExpKey()}).Int64Slice()
	if err != nil {
		return nil, b.fail(ctx, "count by status", err)
	}
	if len(res) != len(redisStatuses) {
		return nil, fmt.Errorf("%w: redis count by status: unexpected reply %v", taskstore.ErrBackend, res)
	}
	out := map[taskstore.Status]int64{}
	for i, n := range res {
		if n > 0 {
			out[redisStatuses[i]] = n
		}
	}
	return out, nil
}

// repairStatusIndex drops every entry of an expired record, then walks
// the whole index in batches, checking each entry against its record
// (dropStale): what DeleteExpired adds for the status index. Its cost is
// proportional to the number of records indexed.
func (b *redisBackend) repairStatusIndex(ctx context.Context) error {
	keys := []string{b.statusKey(), b.statusExpKey()}
	for {
		n, err := redisStatusPrune.Run(ctx, b.client, keys, redisStatusCountPrune).Int()
		if err != nil {
			return err
		}
		if n < redisStatusCountPrune {
			break
		}
	}
	start := "-"
	for {
		members, err := b.client.ZRangeByLex(ctx, b.statusKey(), &redis.ZRangeBy{Min: start, Max: "+", Count: redisRepairBatch}).Result()
		if err != nil {
			return err
		}
		byCode := map[string][]string{}
		for _, m := range members {
			code, _, ok := redisParseStatusEntry(m)
			if !ok {
				return errRedisStatusEntry
			}
			byCode[code] = append(byCode[code], m)
		}
		for code, ms := range byCode {
			if _, stale, err := b.checkEntries(ctx, ms, code, true); err != nil {
				return err
			} else if len(stale) > 0 {
				if err := b.dropStale(ctx, stale); err != nil {
					return err
				}
			}
		}
		if len(members) < redisRepairBatch {
			return nil
		}
		start = "(" + members[len(members)-1]
	}
}
