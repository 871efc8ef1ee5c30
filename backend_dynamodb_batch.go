//go:build dynamodb

package mcptasks

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mcptasks/mcptasks/taskstore"
)

// Batched updates: how UpdateMany writes.
//
// DynamoDB has two requests that write many items. BatchWriteItem takes no
// condition, so it cannot compare-and-swap. TransactWriteItems (up to 100
// actions, 4 MB of items) takes a condition per item but is all or
// nothing: one failed condition cancels every write of the request. It
// says which, though: the cancellation carries a reason per action and,
// for a failed condition, the stored item (ReturnValuesOnConditionCheck-
// Failure). So UpdateMany sends independent updates as transactions of up
// to 100, judges each update whose condition failed from its stored item
// exactly as Update judges its own failure, and sends the others again at
// once, without them: a batch with stale entries costs one request more,
// not one per entry, and a transaction only ever applies updates whose
// own condition held.
//
// Why not Update's single conditional UpdateItem per update, many in
// flight: that stays one request per update, and on DynamoDB Local it was
// slower, one at a time or 32 in flight alike, than these transactions
// (BenchmarkDynamoDBUpdateMany; docs/dynamodb.md has the figures). And the
// owner's active counter must move in the same transaction as an update
// that ends or resumes a task (the counter repair relies on it): one at a
// time, ends of one owner's tasks are as many transactions all writing
// its META item, which conflict with each other on AWS; in a batch they
// share one counter update per owner and transaction (ADD a -k), and
// transactions are cut at owner boundaries, so two transactions of a
// batch write the same counter only for an owner with more than 99 ends
// or resumes in it.
//
// What it costs: on AWS a transactional write consumes twice the write
// capacity of a plain one, and a transaction conflicts with any write in
// flight to any of its items (TransactionConflict), for instance a create
// of one of its owners; it is then sent again after a backoff, as
// Update's transactions are. A chunk left with one update is sent as
// Update sends it. Without transactions (dynalite only, not for AWS)
// UpdateMany is Update per item, one after another: 4 to 32 in flight
// were slower on dynalite, which serves one request at a time (a one-off
// measurement).
const (
	// ddbTxMaxActions is TransactWriteItems' limit on actions.
	ddbTxMaxActions = 100
	// ddbTxMaxBytes bounds the data of one transaction's updates, below
	// the 4 MB its items may total, leaving room for keys and attributes
	// (ddbTxItemBytes per item).
	ddbTxMaxBytes  = 3_500_000
	ddbTxItemBytes = 2048
	// ddbTxInFlight is how many transactions of one batch are in flight.
	// DynamoDB Local runs transactions one at a time: there (one-off
	// measurements of batches of 1000 claims, not kept as a benchmark) 2
	// ran about as fast as 1, and 4 or 8 a third slower; on AWS, where a
	// transaction mostly waits for the network, a second one in flight
	// should halve a batch's time (not measured).
	ddbTxInFlight = 2
	// ddbGuesses is how many guesses of the stored active flag an update
	// of a batch gets before it answers ErrVersionConflict, as Update.
	ddbGuesses = 8
)

// batchUpdate is one update of a batch on its way: its index in the batch
// and the stored state it assumes (see Update).
type batchUpdate struct {
	i       int
	was     itemState
	guesses int
}

// UpdateMany applies each update as Update would, in transactions of up
// to 100 independent updates (see the comment above ddbTxMaxActions).
// Updates of the same key apply one after another, in batch order. A
// batch whose ctx ends returns ctx's error; then any of its updates may
// or may not have been applied.
func (b *dynamoBackend) UpdateMany(ctx context.Context, updates []taskstore.Update) ([]taskstore.UpdateResult, error) {
	if err := b.begin(ctx); err != nil {
		return nil, err
	}
	out := make([]taskstore.UpdateResult, len(updates))
	for _, wave := range updateWaves(updates) {
		if b.opts.NoTransactions {
			for _, i := range wave {
				if ctx.Err() != nil {
					break
				}
				out[i].Version, out[i].Err = b.Update(ctx, updates[i].Record, updates[i].Expected)
			}
		} else {
			b.updateWave(ctx, updates, wave, out)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// updateWaves splits the indices of a batch so that no key occurs twice in
// a wave (a transaction may not name an item twice): the k-th update of a
// key goes to wave k, so updates of one key apply in batch order.
func updateWaves(updates []taskstore.Update) [][]int {
	seen := make(map[taskstore.Key]int, len(updates))
	var waves [][]int
	for i, u := range updates {
		k := taskstore.Key{Owner: u.Record.Owner, TaskID: u.Record.TaskID}
		w := seen[k]
		seen[k] = w + 1
		if w == len(waves) {
			waves = append(waves, make([]int, 0, len(updates)))
		}
		waves[w] = append(waves[w], i)
	}
	return waves
}

// inParallel calls fn(0) … fn(n-1), at most limit at a time, and returns
// when every call has returned. Once ctx is done it starts no more.
func inParallel(ctx context.Context, n, limit int, fn func(j int)) {
	if n == 1 {
		fn(0)
		return
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	defer wg.Wait()
	for j := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if ctx.Err() != nil {
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(j)
		})
	}
}

// updateWave applies one wave (distinct keys) and fills in its results:
// rounds of transactions, each round sending what the previous one left
// to another guess of the stored active flag.
func (b *dynamoBackend) updateWave(ctx context.Context, updates []taskstore.Update, wave []int, out []taskstore.UpdateResult) {
	pending := make([]batchUpdate, 0, len(wave))
	for _, i := range wave {
		if err := b.checkSize(updates[i].Record.Data); err != nil {
			out[i].Err = err
			continue
		}
		pending = append(pending, batchUpdate{i: i, was: guessState(updates[i].Record)})
	}
	for len(pending) > 0 && ctx.Err() == nil {
		// Owner by owner, so that an owner's counter is updated once per
		// transaction, not once per update.
		slices.SortStableFunc(pending, func(x, y batchUpdate) int {
			return cmp.Compare(updates[x.i].Record.Owner, updates[y.i].Record.Owner)
		})
		chunks := txChunks(updates, pending)
		again := make([][]batchUpdate, len(chunks))
		inParallel(ctx, len(chunks), ddbTxInFlight, func(c int) {
			again[c] = b.updateChunk(ctx, updates, chunks[c], out)
		})
		var next []batchUpdate
		for _, a := range again {
			for _, u := range a {
				if u.guesses++; u.guesses >= ddbGuesses {
					// The item kept changing under the attempts, as in Update.
					out[u.i].Err = taskstore.ErrVersionConflict
					continue
				}
				next = append(next, u)
			}
		}
		pending = next
	}
}

// txChunks cuts pending (sorted by owner) into transactions of at most
// ddbTxMaxActions actions (the updates, one counter update per owner
// whose active count they change, and one per status counter bucket they
// move) and ddbTxMaxBytes. A transaction that fills up in the middle of an
// owner's updates that move its counter ends before that owner instead,
// unless the owner began it: the transactions of a batch run in parallel,
// and two writing one counter would conflict. (Status counters need no
// such care: each transaction picks its shards at random.)
func txChunks(updates []taskstore.Update, pending []batchUpdate) [][]batchUpdate {
	var chunks [][]batchUpdate
	var start, run, actions, size int // run: where the current owner's updates begin
	counted := map[string]bool{}
	buckets := map[string]bool{}
	cost := func(u batchUpdate) (actions, bytes int, moves bool, bucket string) {
		rec := updates[u.i].Record
		moves = rec.Active != u.was.active
		a := 1 + oneIf(moves && !counted[rec.Owner])
		if rec.Status != u.was.status {
			bucket, _ = countBucket(u.was.expNS)
			a += oneIf(!buckets[bucket])
		}
		return a, len(rec.Data) + ddbTxItemBytes, moves, bucket
	}
	add := func(u batchUpdate) {
		a, n, moves, bucket := cost(u)
		actions, size = actions+a, size+n
		if moves {
			counted[updates[u.i].Record.Owner] = true
		}
		if bucket != "" {
			buckets[bucket] = true
		}
	}
	for j, u := range pending {
		owner := updates[u.i].Record.Owner
		if j > 0 && owner != updates[pending[j-1].i].Record.Owner {
			run = j
		}
		if a, n, _, _ := cost(u); j > start && (actions+a > ddbTxMaxActions || size+n > ddbTxMaxBytes) {
			cut := j
			if run > start && counted[owner] {
				cut = run
			}
			chunks = append(chunks, pending[start:cut])
			start, actions, size = cut, 0, 0
			clear(counted)
			clear(buckets)
			for _, v := range pending[cut:j] {
				add(v)
			}
		}
		add(u)
	}
	return append(chunks, pending[start:])
}

// updateChunk applies a chunk of a wave: one transaction of its updates
// and their owners' counter changes, sent again without the updates whose
// condition failed (their results judged from the stored items the
// cancellation returned) and, after a backoff, when it conflicted with
// another write. It fills in the results it knows and returns the
// updates to try with another guess of the stored active flag.
func (b *dynamoBackend) updateChunk(ctx context.Context, updates []taskstore.Update, chunk []batchUpdate, out []taskstore.UpdateResult) (again []batchUpdate) {
	chunk = slices.Clone(chunk)
	for attempt := 0; len(chunk) > 0; {
		if len(chunk) == 1 {
			// Update's own request: a plain UpdateItem unless the active
			// flag moves.
			u := chunk[0]
			rec, expected := updates[u.i].Record, updates[u.i].Expected
			v, stored, err := b.update(ctx, rec, expected, u.was)
			if errors.Is(err, errStateGuess) {
				u.was = stored
				return append(again, u)
			}
			out[u.i] = taskstore.UpdateResult{Version: v, Err: err}
			return again
		}
		now := b.now()
		items := make([]types.TransactWriteItem, 0, len(chunk)+1)
		var owners []string
		deltas := map[string]int{}
		var buckets []int64 // expiries, one per bucket, in order of appearance
		moves := map[string]statusDelta{}
		for _, u := range chunk {
			rec, expected := updates[u.i].Record, updates[u.i].Expected
			items = append(items, types.TransactWriteItem{Update: updateAction(b.table, rec, expected, u.was, now)})
			if d := oneIf(rec.Active) - oneIf(u.was.active); d != 0 {
				if _, ok := deltas[rec.Owner]; !ok {
					owners = append(owners, rec.Owner)
				}
				deltas[rec.Owner] += d
			}
			if rec.Status != u.was.status {
				sk, _ := countBucket(u.was.expNS)
				if moves[sk] == nil {
					moves[sk] = statusDelta{}
					buckets = append(buckets, u.was.expNS)
				}
				moves[sk].add(u.was.status, -1)
				moves[sk].add(rec.Status, 1)
			}
		}
		for _, o := range owners {
			if deltas[o] != 0 {
				items = append(items, types.TransactWriteItem{Update: countDelta(b.table, ownerPK(o), 0, deltas[o])})
			}
		}
		for _, exp := range buckets {
			sk, _ := countBucket(exp)
			if u := countStatus(b.table, exp, moves[sk]); u != nil {
				items = append(items, types.TransactWriteItem{Update: u})
			}
		}
		_, err := b.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil {
			for _, u := range chunk {
				out[u.i] = taskstore.UpdateResult{Version: updates[u.i].Expected + 1}
			}
			return again
		}
		var tc *types.TransactionCanceledException
		if !errors.As(err, &tc) {
			return failChunk(chunk, out, ddbErr(ctx, "update", err), again)
		}
		// The updates whose condition failed have their answer; the rest
		// go again.
		rest := chunk[:0]
		conflict, other := false, false
		for _, r := range tc.CancellationReasons {
			code := aws.ToString(r.Code)
			switch {
			case code == "TransactionConflict":
				conflict = true
			case code != "None" && code != "" && code != ddbCondFailed:
				other = true
			}
		}
		for j, u := range chunk {
			var r types.CancellationReason
			if j < len(tc.CancellationReasons) {
				r = tc.CancellationReasons[j]
			}
			if aws.ToString(r.Code) != ddbCondFailed {
				rest = append(rest, u)
				continue
			}
			stored, err := b.judgeFailed(ctx, items[j].Update.Key, r.Item, now, updates[u.i].Expected, u.was)
			if errors.Is(err, errStateGuess) {
				u.was = stored
				again = append(again, u)
			} else {
				out[u.i].Err = err
			}
		}
		switch {
		case len(rest) == 0:
			return again
		case other:
			return failChunk(rest, out, ddbErr(ctx, "update", err), again)
		case len(rest) < len(chunk):
			// Some conditions failed: the rest at once, without them.
		case conflict:
			if err := ddbBackoff(ctx, attempt); err != nil {
				return failChunk(rest, out, err, again)
			}
			attempt++
		default:
			return failChunk(rest, out, ddbErr(ctx, "update", err), again)
		}
		chunk = rest
	}
	return again
}

// failChunk gives every update of chunk the error err.
func failChunk(chunk []batchUpdate, out []taskstore.UpdateResult, err error, again []batchUpdate) []batchUpdate {
	for _, u := range chunk {
		out[u.i].Err = err
	}
	return again
}
