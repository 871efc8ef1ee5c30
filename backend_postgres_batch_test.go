//go:build postgres

package mcptasks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

// pgCountingConn counts the writes a client makes on a connection: each
// one sends a request and starts a round trip (pgx writes a request, a
// pipeline included, with one Write).
type pgCountingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c pgCountingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// newPostgresCounted returns a backend over a pool of its own on the test
// server (a table of its own, dropped at cleanup) and the count of the
// writes its connections made.
func newPostgresCounted(tb testing.TB, maxConns int32) (*postgresBackend, *atomic.Int64) {
	tb.Helper()
	raw := postgresTestURL(tb)
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		tb.Fatal(err)
	}
	writes := new(atomic.Int64)
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return pgCountingConn{Conn: c, writes: writes}, nil
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	table := pgRandomTable()
	b, err := NewPostgresBackend(context.Background(), pool, PostgresOptions{Table: table, CreateTable: true, Sweep: -1})
	if err != nil {
		pool.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		b.Close()
		pool.Close()
		pgDropTable(tb, raw, table)
	})
	return b.(*postgresBackend), writes
}

// pgErrName names the sentinel an error is, for comparing outcomes.
func pgErrName(err error) string {
	for _, s := range []error{taskstore.ErrNotFound, taskstore.ErrVersionConflict, taskstore.ErrRecordTooLarge, taskstore.ErrBackend} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return ""
}

// TestPostgresUpdateManyAsUpdate runs one batch of every case (applies,
// stale, deleted, expired, never created, another owner's, an expected
// version above bigint, one key given twice: both applying, the second
// stale) three ways on the same records: UpdateMany on PostgreSQL, Update
// after Update on PostgreSQL, UpdateMany on the memory backend. The
// results, the records after, the runner index and the active quota must
// be the same all three ways.
func TestPostgresUpdateManyAsUpdate(t *testing.T) {
	ctx := t.Context()
	newID := func() string { return taskid.New(time.Now()) }
	ids := map[string]string{}
	for _, n := range []string{"apply", "end", "claim", "stale", "deleted", "expired", "never", "carol", "huge", "twice", "twiceStale", "nul"} {
		ids[n] = newID()
	}
	nulOwner := "al\x00ice"
	setup := func(t *testing.T, b taskstore.Backend) {
		mk := func(owner, name string, exp time.Time) {
			r := taskstore.Record{Owner: owner, TaskID: ids[name], Data: []byte(`{"n":0}`), Active: true, Runner: "dead", ExpiresAt: exp}
			if err := b.Create(ctx, r, taskstore.Limits{}); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range []string{"apply", "end", "claim", "stale", "deleted", "huge", "twice", "twiceStale"} {
			mk("alice", n, time.Time{})
		}
		mk("alice", "expired", time.Now().Add(100*time.Millisecond))
		mk("carol", "carol", time.Time{})
		mk(nulOwner, "nul", time.Time{})
		if _, err := b.Update(ctx, taskstore.Record{Owner: "alice", TaskID: ids["stale"], Data: []byte(`{"n":1}`), Active: true, Runner: "dead"}, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Delete(ctx, "alice", ids["deleted"]); err != nil {
			t.Fatal(err)
		}
	}
	u := func(owner, name, data string, expected uint64, active bool, runner string) taskstore.Update {
		return taskstore.Update{Record: taskstore.Record{Owner: owner, TaskID: ids[name], Data: []byte(data), Active: active, Runner: runner}, Expected: expected}
	}
	batch := []taskstore.Update{
		u("alice", "apply", `{"n":"apply"}`, 1, true, "dead"),
		u("alice", "end", `{"n":"ended"}`, 1, false, ""),
		u("alice", "claim", `{"n":"claimed"}`, 1, true, "alive"),
		u("alice", "stale", `{"n":"stale"}`, 1, true, "alive"),
		u("alice", "deleted", `{"n":"deleted"}`, 1, true, "alive"),
		u("alice", "expired", `{"n":"expired"}`, 1, true, "alive"),
		u("alice", "never", `{"n":"never"}`, 1, true, "alive"),
		u("alice", "carol", `{"n":"not yours"}`, 1, true, "alive"),
		u("alice", "huge", `{"n":"huge"}`, 1<<63, true, "alive"),
		u("alice", "twice", `{"n":"first"}`, 1, true, "alive"),
		u("alice", "twiceStale", `{"n":"first"}`, 1, false, ""),
		u(nulOwner, "nul", `{"n":"nul"}`, 1, false, "alive"),
		u("alice", "twice", `{"n":"second"}`, 2, false, ""),
		u("alice", "twiceStale", `{"n":"second"}`, 1, true, "alive"),
	}
	type outcome struct {
		Version uint64
		Err     string
	}
	type state struct {
		Results []outcome
		Records map[string]string // name: data vVersion active runner, or the error
		Held    map[string][]string
		Quota   string // a create at MaxActive = the active tasks before the batch
	}
	observe := func(t *testing.T, b taskstore.Backend, res []taskstore.UpdateResult) state {
		s := state{Records: map[string]string{}, Held: map[string][]string{}}
		for _, r := range res {
			s.Results = append(s.Results, outcome{r.Version, pgErrName(r.Err)})
		}
		for name, id := range ids {
			owner := "alice"
			switch name {
			case "carol":
				owner = "carol"
			case "nul":
				owner = nulOwner
			}
			r, err := b.Get(ctx, owner, id)
			if err != nil {
				s.Records[name] = pgErrName(err)
				continue
			}
			s.Records[name] = fmt.Sprintf("%s v%d active=%v runner=%q", r.Data, r.Version, r.Active, r.Runner)
		}
		for _, runner := range []string{"dead", "alive", ""} {
			recs, err := b.RunnerTasks(ctx, runner, 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Runner == runner {
					s.Held[runner] = append(s.Held[runner], r.TaskID)
				}
			}
			slices.Sort(s.Held[runner])
		}
		// Before the batch alice had 7 active tasks (apply, end, claim,
		// stale, huge, twice, twiceStale); after it 4 (end, twice and
		// twiceStale ended; the stale update left stale active).
		err := b.Create(ctx, taskstore.Record{Owner: "alice", TaskID: newID(), Data: []byte(`{}`), Active: true}, taskstore.Limits{MaxActive: 5})
		s.Quota = pgErrName(err)
		return s
	}
	run := func(t *testing.T, b taskstore.Backend, apply func(taskstore.Backend) []taskstore.UpdateResult) state {
		setup(t, b)
		time.Sleep(150 * time.Millisecond) // "expired" expires
		return observe(t, b, apply(b))
	}
	many := func(b taskstore.Backend) []taskstore.UpdateResult {
		res, err := b.(taskstore.BatchUpdater).UpdateMany(ctx, batch)
		if err != nil {
			t.Fatalf("UpdateMany: %v", err)
		}
		return res
	}
	oneByOne := func(b taskstore.Backend) []taskstore.UpdateResult {
		res := make([]taskstore.UpdateResult, len(batch))
		for i, u := range batch {
			res[i].Version, res[i].Err = b.Update(ctx, u.Record, u.Expected)
		}
		return res
	}
	mem := NewMemoryBackend(0)
	t.Cleanup(func() { mem.Close() })
	want := run(t, mem, many)
	if want.Quota != "" {
		t.Fatalf("memory: a create within the quota after the batch: %s", want.Quota)
	}
	for _, c := range []struct {
		name  string
		apply func(taskstore.Backend) []taskstore.UpdateResult
	}{{"Update one by one", oneByOne}, {"UpdateMany", many}} {
		t.Run(c.name, func(t *testing.T) {
			got := run(t, newPostgresFactory(postgresTestURL(t), "sweep=0")(t), c.apply)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("PostgreSQL %s differs from the memory backend's UpdateMany (-memory +postgres):\n%s", c.name, diff)
			}
		})
	}
	t.Logf("outcomes: %+v", want.Results)
}

// TestPostgresUpdateManyRoundTrips: a batch is one round trip (once its
// statement is prepared on the connection), whatever its size; a key
// given twice takes a second one; a batch of more than pgUpdateManyBytes
// of data is split, and each update is still applied once.
func TestPostgresUpdateManyRoundTrips(t *testing.T) {
	ctx := t.Context()
	b, writes := newPostgresCounted(t, 1)
	recs := pgCreateMany(t, b, "alice", 1000, 100)
	batch := func(recs []taskstore.Record) []taskstore.Update {
		out := make([]taskstore.Update, len(recs))
		for i, r := range recs {
			out[i] = taskstore.Update{Record: r, Expected: r.Version}
			out[i].Record.Data = []byte(`{"n":` + strconv.FormatUint(r.Version, 10) + `}`)
		}
		return out
	}
	apply := func(updates []taskstore.Update) int64 {
		t.Helper()
		before := writes.Load()
		res, err := b.UpdateMany(ctx, updates)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("update %d: %v", i, r.Err)
			}
		}
		return writes.Load() - before
	}
	apply(batch(recs[:1])) // prepares the statement
	recs[0].Version++
	for _, n := range []int{1, 100, 1000} {
		if got := apply(batch(recs[:n])); got != 1 {
			t.Errorf("a batch of %d: %d round trips, want 1", n, got)
		}
		for i := range recs[:n] {
			recs[i].Version++
		}
	}
	twice := batch(recs[:3])
	again := twice[0]
	again.Expected++
	if got := apply(append(twice, again)); got != 2 {
		t.Errorf("a batch with a key twice: %d round trips, want 2", got)
	}

	// Three records of 12 MiB: two fit in pgUpdateManyBytes, the third
	// goes in a second statement.
	big := pgCreateMany(t, b, "bob", 3, 12<<20)
	updates := batch(big)
	for i := range updates {
		updates[i].Record.Data = bytes.Repeat([]byte{'a' + byte(i)}, 12<<20)
	}
	if got := apply(updates); got != 2 {
		t.Errorf("a batch of 36 MiB: %d round trips, want 2", got)
	}
	for i, r := range big {
		got, err := b.Get(ctx, "bob", r.TaskID)
		if err != nil || got.Version != 2 || !bytes.Equal(got.Data, updates[i].Record.Data) {
			t.Errorf("record %d of the split batch: v%d, %d bytes, %v", i, got.Version, len(got.Data), err)
		}
	}
}

// pgCreateMany creates n active records of owner, each of size bytes,
// held by runner "dead", in one statement, and returns them.
func pgCreateMany(tb testing.TB, b *postgresBackend, owner string, n, size int) []taskstore.Record {
	tb.Helper()
	recs := make([]taskstore.Record, n)
	owners, ids, data := make([][]byte, n), make([][]byte, n), make([][]byte, n)
	for i := range recs {
		recs[i] = taskstore.Record{Owner: owner, TaskID: taskid.New(time.Now()), Data: bytes.Repeat([]byte("x"), size), Version: 1, Active: true, Runner: "dead"}
		owners[i], ids[i], data[i] = []byte(owner), []byte(recs[i].TaskID), recs[i].Data
	}
	_, err := b.pool.Exec(tb.Context(), `INSERT INTO `+b.qualified()+` (owner, task_id, version, data, active, runner)
SELECT o, i, 1, d, true, 'dead' FROM unnest($1::bytea[], $2::bytea[], $3::bytea[]) AS u(o, i, d)`, owners, ids, data)
	if err != nil {
		tb.Fatal(err)
	}
	return recs
}

// TestPostgresUpdateManyNotifies: every update a batch applies publishes
// its change with the version written, and no other does.
func TestPostgresUpdateManyNotifies(t *testing.T) {
	ctx := t.Context()
	b := newPostgresFactory(postgresTestURL(t), "sweep=0")(t).(*postgresBackend)
	next := subscribed(t, b)
	recs := pgCreateMany(t, b, "alice", 3, 10)
	updates := []taskstore.Update{
		{Record: recs[0], Expected: 1},
		{Record: recs[1], Expected: 7}, // stale: no change
		{Record: recs[2], Expected: 1},
		{Record: recs[2], Expected: 2},
	}
	if _, err := b.UpdateMany(ctx, updates); err != nil {
		t.Fatal(err)
	}
	sentinel := taskstore.Record{Owner: "alice", TaskID: taskid.New(time.Now()), Data: []byte(`{}`)}
	if err := b.Create(ctx, sentinel, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	var got []taskstore.Change
	for {
		c := next()
		if c.TaskID == sentinel.TaskID {
			break
		}
		got = append(got, c)
	}
	want := []taskstore.Change{
		{Owner: "alice", TaskID: recs[0].TaskID, Version: 2},
		{Owner: "alice", TaskID: recs[2].TaskID, Version: 2},
		{Owner: "alice", TaskID: recs[2].TaskID, Version: 3},
	}
	byKeyAndVersion := cmpopts.SortSlices(func(a, b taskstore.Change) bool {
		return a.TaskID < b.TaskID || a.TaskID == b.TaskID && a.Version < b.Version
	})
	if diff := cmp.Diff(want, got, byKeyAndVersion); diff != "" {
		t.Errorf("changes of the batch (-want +got):\n%s", diff)
	}
}

// TestPostgresUpdateManyRaces: batches in random orders race each other
// and single Updates on the same keys (each a read, then a
// compare-and-swap). None may deadlock, and no update may be lost: every key's version is one more than the updates
// that reported success on it, and its counter counts them.
func TestPostgresUpdateManyRaces(t *testing.T) {
	ctx := t.Context()
	b := newPostgresFactory(postgresTestURL(t), "sweep=0", "pool_max_conns=8")(t).(*postgresBackend)
	const keys, writers, rounds = 20, 4, 40
	recs := pgCreateMany(t, b, "alice", keys, 0)
	wins := make([]atomic.Int64, keys)
	count := func(r taskstore.Record) int {
		n, _ := strconv.Atoi(string(r.Data))
		return n
	}
	bump := func(r taskstore.Record) taskstore.Record {
		r.Data = []byte(strconv.Itoa(count(r) + 1))
		return r
	}
	keyList := make([]taskstore.Key, keys)
	for i, r := range recs {
		keyList[i] = taskstore.Key{Owner: r.Owner, TaskID: r.TaskID}
	}
	index := map[string]int{}
	for i, r := range recs {
		index[r.TaskID] = i
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range rounds * 5 {
				k := rng.IntN(keys)
				r, err := b.Get(ctx, "alice", recs[k].TaskID)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := b.Update(ctx, bump(r), r.Version); err == nil {
					wins[k].Add(1)
				} else if !errors.Is(err, taskstore.ErrVersionConflict) {
					t.Error(err)
					return
				}
			}
		})
	}
	for u := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(u), 2))
			for range rounds {
				cur, err := b.GetMany(ctx, keyList)
				if err != nil {
					t.Error(err)
					return
				}
				// Batches over the same keys in different orders, as
				// replicas taking over the same dead one: they must not
				// deadlock.
				rng.Shuffle(len(cur), func(i, j int) { cur[i], cur[j] = cur[j], cur[i] })
				updates := make([]taskstore.Update, len(cur))
				for i, r := range cur {
					updates[i] = taskstore.Update{Record: bump(r), Expected: r.Version}
				}
				res, err := b.UpdateMany(ctx, updates)
				if err != nil {
					t.Error(err)
					return
				}
				for i, r := range res {
					switch {
					case r.Err == nil:
						if r.Version != updates[i].Expected+1 {
							t.Errorf("update to v%d from v%d", r.Version, updates[i].Expected)
						}
						wins[index[cur[i].TaskID]].Add(1)
					case !errors.Is(r.Err, taskstore.ErrVersionConflict):
						t.Error(r.Err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for i, r := range recs {
		got, err := b.Get(ctx, "alice", r.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		w := wins[i].Load()
		total += int(w)
		if got.Version != uint64(w)+1 || count(got) != int(w) {
			t.Errorf("key %d: v%d, counter %d, after %d successful updates", i, got.Version, count(got), w)
		}
	}
	t.Logf("%d successful updates on %d keys", total, keys)
}
