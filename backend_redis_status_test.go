//go:build redis

package mcptasks

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

// redisStatusRecord is a record of owner in status, Active as the Store sets it.
// redisOldTaskID is a task id made age ago: taskid.New keeps ids
// increasing within the process, so it is written by hand.
func redisOldTaskID(age time.Duration) string {
	return fmt.Sprintf("%016x", time.Now().Add(-age).UnixNano()) + taskid.New(time.Now())[16:]
}

func redisStatusRecord(owner string, status taskstore.Status, expires time.Time) taskstore.Record {
	return taskstore.Record{Owner: owner, TaskID: taskid.New(time.Now()), Data: []byte(`{"v":0}`),
		ExpiresAt: expires, Active: !status.Terminal(), Status: status}
}

// statusEntries returns the status index and its expiry set as stored.
func statusEntries(t *testing.T, rb *redisBackend) (idx []string, exp map[string]float64) {
	t.Helper()
	idx, err := rb.client.ZRange(t.Context(), rb.statusKey(), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	zs, err := rb.client.ZRangeWithScores(t.Context(), rb.statusExpKey(), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	exp = map[string]float64{}
	for _, z := range zs {
		exp[z.Member.(string)] = z.Score
	}
	return idx, exp
}

// wantStatusEntries checks that the index holds exactly the entries of
// live, and its expiry set exactly their expiries.
func wantStatusEntries(t *testing.T, rb *redisBackend, live map[taskstore.Key]taskstore.Record) {
	t.Helper()
	var wantIdx []string
	wantExp := map[string]float64{}
	for _, r := range live {
		code, err := redisStatusCode(r.Status)
		if err != nil {
			t.Fatal(err)
		}
		km := r.TaskID + " " + r.Owner
		wantIdx = append(wantIdx, code+" "+km)
		if !r.ExpiresAt.IsZero() {
			wantExp[km] = float64(r.ExpiresAt.UnixMilli())
		}
	}
	slices.Sort(wantIdx)
	idx, exp := statusEntries(t, rb)
	if d := cmp.Diff(wantIdx, idx, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("status index (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantExp, exp, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("status index expiries (-want +got):\n%s", d)
	}
}

func redisStatusCounts(t *testing.T, rb *redisBackend) map[taskstore.Status]int64 {
	t.Helper()
	c, err := rb.CountByStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRedisStatusIndexExact: on a single server (also through Sentinels)
// the create, update and delete scripts keep the status index and its
// expiry set exactly equal to the live records, "CODE ID OWNER" with the
// owner's bytes as they are, through status changes, updates that keep
// the status, a refused update, a batch and deletes.
func TestRedisStatusIndexExact(t *testing.T) {
	for _, tc := range redisServers {
		if tc.name == "Cluster" {
			continue // a hint there: TestRedisStatusIndexStale
		}
		t.Run(tc.name, func(t *testing.T) {
			rb := newRedisFactory(redisTestURL(t, tc.env))(t).(*redisBackend)
			ctx := t.Context()
			hour := time.Now().Add(time.Hour).Truncate(time.Millisecond)
			live := map[taskstore.Key]taskstore.Record{}
			put := func(r taskstore.Record) { live[taskstore.Key{Owner: r.Owner, TaskID: r.TaskID}] = r }
			recs := []taskstore.Record{
				redisStatusRecord("alice", taskstore.StatusWorking, hour),
				redisStatusRecord("bob x", taskstore.StatusInputRequired, time.Time{}), // a space in the owner
				redisStatusRecord("", taskstore.StatusCompleted, hour),
				redisStatusRecord("a\x00b{c}", taskstore.StatusWorking, time.Time{}),
			}
			for i := range recs {
				if err := rb.Create(ctx, recs[i], taskstore.Limits{}); err != nil {
					t.Fatal(err)
				}
				recs[i].Version = 1
				put(recs[i])
			}
			wantStatusEntries(t, rb, live)
			update := func(r *taskstore.Record, s taskstore.Status) {
				t.Helper()
				r.Status, r.Active = s, !s.Terminal()
				r.Data = fmt.Appendf(nil, `{"v":%d}`, r.Version+1)
				v, err := rb.Update(ctx, *r, r.Version)
				if err != nil {
					t.Fatal(err)
				}
				r.Version = v
				put(*r)
			}
			update(&recs[0], taskstore.StatusInputRequired)
			wantStatusEntries(t, rb, live)
			update(&recs[0], taskstore.StatusInputRequired) // the status kept
			update(&recs[1], taskstore.StatusWorking)
			wantStatusEntries(t, rb, live)
			stale := recs[3]
			stale.Status = taskstore.StatusCancelled
			if _, err := rb.Update(ctx, stale, 7); !errors.Is(err, taskstore.ErrVersionConflict) {
				t.Fatalf("an update at a stale version: %v", err)
			}
			wantStatusEntries(t, rb, live)
			ends := []taskstore.Update{}
			for _, i := range []int{0, 1} {
				r := recs[i]
				r.Status, r.Active = taskstore.StatusFailed, false
				ends = append(ends, taskstore.Update{Record: r, Expected: r.Version})
			}
			res, err := rb.UpdateMany(ctx, ends)
			if err != nil {
				t.Fatal(err)
			}
			for i, u := range ends {
				if res[i].Err != nil {
					t.Fatal(res[i].Err)
				}
				u.Record.Version = res[i].Version
				put(u.Record)
			}
			wantStatusEntries(t, rb, live)
			for _, r := range recs[2:] {
				if ok, err := rb.Delete(ctx, r.Owner, r.TaskID); err != nil || !ok {
					t.Fatalf("Delete: %v, %v", ok, err)
				}
				delete(live, taskstore.Key{Owner: r.Owner, TaskID: r.TaskID})
			}
			wantStatusEntries(t, rb, live)
			if d := cmp.Diff(map[taskstore.Status]int64{taskstore.StatusFailed: 2}, redisStatusCounts(t, rb)); d != "" {
				t.Errorf("counts (-want +got):\n%s", d)
			}
		})
	}
}

// TestRedisStatusIndexStale: entries that disagree with their record (on
// a cluster a failed write's, or one whose drop was lost; anywhere, one a
// replica of the previous release left by rewriting the record) are
// counted until dropped, never listed: ListByStatus drops those it meets
// and reads on, so its page is still full; DeleteExpired drops them all.
func TestRedisStatusIndexStale(t *testing.T) {
	redisOnBoth(t, func(t *testing.T, rb *redisBackend) {
		ctx := t.Context()
		missing := taskstore.Key{Owner: "carol", TaskID: redisOldTaskID(time.Hour)} // the oldest
		a := redisStatusRecord("alice", taskstore.StatusWorking, time.Time{})
		b := redisStatusRecord("bob", taskstore.StatusWorking, time.Time{})
		for _, r := range []taskstore.Record{a, b} {
			if err := rb.Create(ctx, r, taskstore.Limits{}); err != nil {
				t.Fatal(err)
			}
		}
		inject := func() {
			t.Helper()
			err := rb.client.ZAdd(ctx, rb.statusKey(),
				redis.Z{Member: "3 " + redisStatusKM(a.Owner, a.TaskID)},             // a is working
				redis.Z{Member: "1 " + redisStatusKM(missing.Owner, missing.TaskID)}, // no record
			).Err()
			if err != nil {
				t.Fatal(err)
			}
		}
		inject()
		want := map[taskstore.Status]int64{taskstore.StatusWorking: 3, taskstore.StatusCompleted: 1}
		if d := cmp.Diff(want, redisStatusCounts(t, rb)); d != "" {
			t.Errorf("counts with stale entries (-want +got):\n%s", d)
		}
		recs, more, err := rb.ListByStatus(ctx, taskstore.StatusCompleted, taskstore.Key{}, 10)
		if err != nil || len(recs) != 0 || more {
			t.Fatalf("ListByStatus(completed) = %d records, more %v, %v; want none", len(recs), more, err)
		}
		// A page of 1: the missing record's entry comes first; it is
		// dropped and the page read on.
		recs, more, err = rb.ListByStatus(ctx, taskstore.StatusWorking, taskstore.Key{}, 1)
		if err != nil || len(recs) != 1 || recs[0].TaskID != a.TaskID || !more {
			t.Fatalf("ListByStatus(working, 1) = %v, more %v, %v; want alice's record and more", recs, more, err)
		}
		want = map[taskstore.Status]int64{taskstore.StatusWorking: 2}
		if d := cmp.Diff(want, redisStatusCounts(t, rb)); d != "" {
			t.Errorf("counts after the listings (-want +got):\n%s", d)
		}
		// An update of a record that is not there leaves no entry (on a
		// cluster it drops the one it sent).
		never := redisStatusRecord("dave", taskstore.StatusCompleted, time.Time{})
		if _, err := rb.Update(ctx, never, 1); !errors.Is(err, taskstore.ErrNotFound) {
			t.Fatalf("Update of a record never created: %v", err)
		}
		res, err := rb.UpdateMany(ctx, []taskstore.Update{{Record: never, Expected: 1}})
		if err != nil || !errors.Is(res[0].Err, taskstore.ErrNotFound) {
			t.Fatalf("UpdateMany of a record never created: %v, %v", res, err)
		}
		if d := cmp.Diff(want, redisStatusCounts(t, rb)); d != "" {
			t.Errorf("counts after updates of a record never created (-want +got):\n%s", d)
		}
		inject()
		if _, err := rb.DeleteExpired(ctx); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, redisStatusCounts(t, rb)); d != "" {
			t.Errorf("counts after DeleteExpired (-want +got):\n%s", d)
		}
	})
}

// TestRedisStatusIndexDropRace: a record that moves back to a status
// while ListByStatus drops its entry there as stale keeps that entry.
func TestRedisStatusIndexDropRace(t *testing.T) {
	redisOnBoth(t, func(t *testing.T, rb *redisBackend) {
		ctx := t.Context()
		r := redisStatusRecord("alice", taskstore.StatusWorking, time.Time{})
		if err := rb.Create(ctx, r, taskstore.Limits{}); err != nil {
			t.Fatal(err)
		}
		r.Version = 1
		move := func(ctx context.Context, s taskstore.Status) {
			r.Status = s
			v, err := rb.Update(ctx, r, r.Version)
			if err != nil {
				t.Error(err)
			}
			r.Version = v
		}
		move(ctx, taskstore.StatusInputRequired)
		// Its working entry as a listing that read the index just before
		// the move saw it.
		working := "1 " + redisStatusKM(r.Owner, r.TaskID)
		if err := rb.client.ZAdd(ctx, rb.statusKey(), redis.Z{Member: working}).Err(); err != nil {
			t.Fatal(err)
		}
		rb.client.AddHook(&redisBeforeZrem{key: rb.statusKey(), fn: func() { move(context.Background(), taskstore.StatusWorking) }})
		if _, _, err := rb.ListByStatus(ctx, taskstore.StatusWorking, taskstore.Key{}, 10); err != nil {
			t.Fatal(err)
		}
		recs, _, err := rb.ListByStatus(ctx, taskstore.StatusWorking, taskstore.Key{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Version != r.Version {
			t.Fatalf("ListByStatus(working) = %v, want the record at version %d", recs, r.Version)
		}
	})
}

// TestRedisStatusIndexExpiry: records the server expires leave their
// entries behind; a count drops them first (through the expiry set), so
// it is exact, and so do status pages and DeleteExpired.
func TestRedisStatusIndexExpiry(t *testing.T) {
	redisOnBoth(t, func(t *testing.T, rb *redisBackend) {
		ctx := t.Context()
		soon := time.Now().Add(200 * time.Millisecond)
		keep := redisStatusRecord("alice", taskstore.StatusWorking, time.Now().Add(time.Hour))
		for _, r := range []taskstore.Record{
			keep,
			redisStatusRecord("alice", taskstore.StatusWorking, soon),
			redisStatusRecord("bob", taskstore.StatusCompleted, soon),
			redisStatusRecord("bob", taskstore.StatusCompleted, time.Time{}),
		} {
			if err := rb.Create(ctx, r, taskstore.Limits{}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Until(soon) + 100*time.Millisecond)
		if idx, _ := statusEntries(t, rb); len(idx) != 4 {
			t.Fatalf("the index holds %d entries after the expiry, want 4 (Redis expires records, not entries)", len(idx))
		}
		want := map[taskstore.Status]int64{taskstore.StatusWorking: 1, taskstore.StatusCompleted: 1}
		if d := cmp.Diff(want, redisStatusCounts(t, rb)); d != "" {
			t.Errorf("counts after the expiry (-want +got):\n%s", d)
		}
		idx, exp := statusEntries(t, rb)
		if len(idx) != 2 || len(exp) != 1 {
			t.Errorf("after the count the index holds %v, its expiries %v; want 2 and 1", idx, exp)
		}
	})
}

// TestRedisStatusPreviousRelease: replicas of the previous release share
// the store during a rolling deploy. A record in its header (no status
// code) reads as Status "" and takes an update that gives it a status;
// a record of this release reads the same through the previous release's
// decoder (but Active false: the previous release never reads Active
// back), and the previous release's update script updates it, which drops
// its status: its index entry is then stale, never listed.
func TestRedisStatusPreviousRelease(t *testing.T) {
	prevUpdate, err := os.ReadFile("testdata/redis_previous/update.lua")
	if err != nil {
		t.Fatal(err)
	}
	prevUpdateScript := redis.NewScript(string(prevUpdate))
	redisOnBoth(t, func(t *testing.T, rb *redisBackend) {
		ctx := t.Context()
		hour := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		expMS, _ := redisExpiry(hour)

		// A record the previous release wrote: its create wrote no code
		// and no status index entry.
		old := taskstore.Record{Owner: "alice", TaskID: taskid.New(time.Now()), Data: []byte(`{"v":0}`), ExpiresAt: hour,
			Active: true, Runner: "r1"}
		if err := rb.client.Set(ctx, rb.recKey(old.Owner, old.TaskID), fmt.Sprintf("1:%s:1:%s:{\"v\":0}", expMS, redisRunnerField("r1")), time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		got, err := rb.Get(ctx, old.Owner, old.TaskID)
		old.Version = 1
		if err != nil || !cmp.Equal(old, got) {
			t.Fatalf("Get of a previous release's record = %+v, %v; want %+v", got, err, old)
		}
		old.Status, old.Data = taskstore.StatusWorking, []byte(`{"v":1}`)
		if old.Version, err = rb.Update(ctx, old, 1); err != nil {
			t.Fatal(err)
		}
		recs, _, err := rb.ListByStatus(ctx, taskstore.StatusWorking, taskstore.Key{}, 10)
		if err != nil || len(recs) != 1 || !cmp.Equal(old, recs[0]) {
			t.Fatalf("ListByStatus(working) = %+v, %v; want the updated record", recs, err)
		}

		// A record of this release, read and updated by the previous one.
		rec := redisStatusRecord("bob", taskstore.StatusInputRequired, hour)
		rec.Runner = "r2"
		if err := rb.Create(ctx, rec, taskstore.Limits{}); err != nil {
			t.Fatal(err)
		}
		rec.Version = 1
		val, err := rb.client.Get(ctx, rb.recKey(rec.Owner, rec.TaskID)).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		prev, err := decodeRedisRecordPrevious(rec.Owner, rec.TaskID, val)
		if err != nil {
			t.Fatal(err)
		}
		want := rec
		want.Status, want.Active = "", false
		if d := cmp.Diff(want, prev); d != "" {
			t.Fatalf("the previous release's decoder (-want +got):\n%s", d)
		}
		// The previous release's Update, as it built its call.
		recKey, _, _, act := rb.keys(rec.Owner, rec.TaskID)
		value := fmt.Appendf(nil, "2:%s:1:%s:", expMS, redisRunnerField("r2"))
		headerLen := len(value)
		value = append(value, `{"v":1}`...)
		keys := []string{recKey, act}
		args := []any{value, "1", "1", redisRunnerField("r2"), rec.TaskID, rb.changesChan(), rb.runMember(rec.Owner, rec.TaskID),
			expMS, headerLen, "1"}
		if !rb.cluster {
			keys = append(keys, rb.runnerKey("r2"))
			args = append(args, rb.runMember(rec.Owner, rec.TaskID), rb.prefix+"{r:")
		}
		if v, err := prevUpdateScript.Run(ctx, rb.client, keys, args...).Int(); err != nil || v != 2 {
			t.Fatalf("the previous release's update script: %v, %v; want version 2", v, err)
		}
		got, err = rb.Get(ctx, rec.Owner, rec.TaskID)
		want.Version, want.Active, want.Data = 2, true, []byte(`{"v":1}`)
		if err != nil || !cmp.Equal(want, got) {
			t.Fatalf("Get after the previous release's update = %+v, %v; want %+v", got, err, want)
		}
		recs, _, err = rb.ListByStatus(ctx, taskstore.StatusInputRequired, taskstore.Key{}, 10)
		if err != nil || len(recs) != 0 {
			t.Fatalf("ListByStatus(input_required) = %+v, %v; want none (the record has no status now)", recs, err)
		}
		if d := cmp.Diff(map[taskstore.Status]int64{taskstore.StatusWorking: 1}, redisStatusCounts(t, rb)); d != "" {
			t.Errorf("counts (-want +got):\n%s", d)
		}
	})
}

// decodeRedisRecordPrevious is decodeRedisRecord of the previous release
// (before status codes), as it reads this release's records.
func decodeRedisRecordPrevious(owner, id string, val []byte) (taskstore.Record, error) {
	var f [4][]byte
	rest := val
	for i := range f {
		var ok bool
		if f[i], rest, ok = bytes.Cut(rest, []byte{':'}); !ok {
			return taskstore.Record{}, fmt.Errorf("%w: %s", errRedisMalformed, id)
		}
	}
	rec := taskstore.Record{Owner: owner, TaskID: id, Data: rest, Active: string(f[2]) == "1"}
	var err error
	if rec.Version, err = strconv.ParseUint(string(f[0]), 10, 64); err != nil {
		return taskstore.Record{}, fmt.Errorf("%w: %s", errRedisMalformed, id)
	}
	if len(f[1]) > 0 {
		ms, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil {
			return taskstore.Record{}, fmt.Errorf("%w: %s", errRedisMalformed, id)
		}
		rec.ExpiresAt = time.UnixMilli(ms)
	}
	if len(f[3]) > 0 {
		r, err := base64.RawURLEncoding.DecodeString(string(f[3]))
		if err != nil {
			return taskstore.Record{}, fmt.Errorf("%w: %s", errRedisMalformed, id)
		}
		rec.Runner = string(r)
	}
	return rec, nil
}

// TestRedisStatusRefused: a status that is none of the task statuses is
// refused with ErrInvalidStatus before anything is written; listing by it
// finds nothing.
func TestRedisStatusRefused(t *testing.T) {
	rb := newRedisFactory(redisTestURL(t, envRedisURL))(t).(*redisBackend)
	ctx := t.Context()
	r := redisStatusRecord("alice", "paused", time.Time{})
	if err := rb.Create(ctx, r, taskstore.Limits{}); !errors.Is(err, taskstore.ErrInvalidStatus) {
		t.Fatalf("Create in status paused: %v, want ErrInvalidStatus", err)
	}
	r.Status = taskstore.StatusWorking
	if err := rb.Create(ctx, r, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	r.Status = "paused"
	if _, err := rb.Update(ctx, r, 1); !errors.Is(err, taskstore.ErrInvalidStatus) {
		t.Fatalf("Update to status paused: %v, want ErrInvalidStatus", err)
	}
	res, err := rb.UpdateMany(ctx, []taskstore.Update{{Record: r, Expected: 1}})
	if err != nil || !errors.Is(res[0].Err, taskstore.ErrInvalidStatus) {
		t.Fatalf("UpdateMany to status paused: %v, %v; want ErrInvalidStatus", res, err)
	}
	if recs, more, err := rb.ListByStatus(ctx, "paused", taskstore.Key{}, 10); err != nil || len(recs) != 0 || more {
		t.Fatalf("ListByStatus(paused) = %v, %v, %v", recs, more, err)
	}
	got, err := rb.Get(ctx, r.Owner, r.TaskID)
	if err != nil || got.Status != taskstore.StatusWorking || got.Version != 1 {
		t.Fatalf("Get = %+v, %v; want the record unchanged", got, err)
	}
}

// TestRedisStatusIndexWriteCost: what keeping the status index sends with
// each write. On a single server (also through Sentinels) nothing: the
// scripts keep it, in the same command. On a cluster, commands in the same
// round trip (a create's entry and expiry, an update's entry), and one
// more round trip only where the record's script must run first: an
// update that changed the status drops the old entry, a delete drops the
// record's entries. The server's commands per write (scripts' inner ones
// included) are logged for a single server.
func TestRedisStatusIndexWriteCost(t *testing.T) {
	redisOnBoth(t, func(t *testing.T, rb *redisBackend) {
		ctx := t.Context()
		hour := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		warm := redisStatusRecord("warm", taskstore.StatusWorking, hour)
		if err := rb.Create(ctx, warm, taskstore.Limits{}); err != nil { // connections made, scripts loaded
			t.Fatal(err)
		}
		sent := &redisSentCommands{}
		rb.client.AddHook(sent)
		r := redisStatusRecord("alice", taskstore.StatusWorking, hour)
		type cost struct {
			cmds  map[string]int64
			calls int64
		}
		for _, op := range []struct {
			name            string
			run             func() error
			single, cluster cost
		}{
			{"create", func() error { return rb.Create(ctx, r, taskstore.Limits{}) },
				cost{map[string]int64{"evalsha": 1}, 1}, cost{map[string]int64{"evalsha": 1, "zadd": 2}, 1}},
			{"update keeping the status", func() (err error) { r.Version, err = rb.Update(ctx, r, 1); return err },
				cost{map[string]int64{"evalsha": 1}, 1}, cost{map[string]int64{"evalsha": 1, "zadd": 1}, 1}},
			{"update changing the status", func() (err error) {
				r.Status = taskstore.StatusInputRequired
				r.Version, err = rb.Update(ctx, r, r.Version)
				return err
			}, cost{map[string]int64{"evalsha": 1}, 1}, cost{map[string]int64{"evalsha": 1, "zadd": 1, "zrem": 1}, 2}},
			{"delete", func() error { _, err := rb.Delete(ctx, r.Owner, r.TaskID); return err },
				cost{map[string]int64{"evalsha": 1}, 1}, cost{map[string]int64{"evalsha": 2}, 2}},
		} {
			var before map[string]redisCmdStat
			if !rb.cluster {
				var err error
				if before, err = redisCommandStats(ctx, rb.client); err != nil {
					t.Fatal(err)
				}
				sent.reset()
			}
			if err := op.run(); err != nil {
				t.Fatalf("%s: %v", op.name, err)
			}
			cmds, calls := sent.resetAll()
			want := op.single
			if rb.cluster {
				want = op.cluster
			}
			if !cmp.Equal(want, cost{cmds, calls}, cmp.AllowUnexported(cost{})) {
				t.Errorf("%s sent %v in %d calls, want %v in %d", op.name, cmds, calls, want.cmds, want.calls)
			}
			if !rb.cluster {
				after, err := redisCommandStats(ctx, rb.client)
				if err != nil {
					t.Fatal(err)
				}
				var n int64
				for k, v := range after {
					if k != "info" {
						n += v.calls - before[k].calls
					}
				}
				t.Logf("%s: %d commands run by the server", op.name, n)
			}
		}
	})
}

// On a cluster a create sends its runner index entry a round trip before
// its record, and its status entry beside it, to other nodes: after a
// stall or a partition the record may land seconds after the entries. A
// read between the two keeps the young entries of the missing record (it
// does not return them), so the record, once there, is found by both
// indexes; an entry whose record is still missing past redisPendingFor
// is dropped.
func TestRedisClusterEntryBeforeRecord(t *testing.T) {
	rb := newRedisFactory(redisTestURL(t, envRedisClusterURL))(t).(*redisBackend)
	ctx := t.Context()
	code, err := redisStatusCode(taskstore.StatusWorking)
	if err != nil {
		t.Fatal(err)
	}
	entries := func(rec taskstore.Record) {
		t.Helper()
		if err := rb.client.ZAdd(ctx, rb.runnerKey(rec.Runner), redis.Z{Member: rb.runMember(rec.Owner, rec.TaskID)}).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rb.client.ZAdd(ctx, rb.statusKey(), redis.Z{Member: code + " " + redisStatusKM(rec.Owner, rec.TaskID)}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	found := func(rec taskstore.Record) (byRunner, byStatus bool) {
		t.Helper()
		held, err := rb.RunnerTasks(ctx, rec.Runner, 10)
		if err != nil {
			t.Fatal(err)
		}
		listed, _, err := rb.ListByStatus(ctx, taskstore.StatusWorking, taskstore.Key{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		has := func(recs []taskstore.Record) bool {
			return slices.ContainsFunc(recs, func(r taskstore.Record) bool { return r.TaskID == rec.TaskID })
		}
		return has(held), has(listed)
	}

	rec := redisStatusRecord("alice", taskstore.StatusWorking, time.Time{})
	rec.Runner = "node-late"
	entries(rec) // the create's entries landed; its record has not yet
	if r, s := found(rec); r || s {
		t.Fatalf("before the record: found by runner %v, by status %v", r, s)
	}
	// The record lands: the create's script alone (on a cluster it writes
	// no index entry).
	keys, args := rb.createCall(rec, taskstore.Limits{}, code, nil, "")
	if err := redisCreate.Run(ctx, rb.client, keys, args...).Err(); err != nil {
		t.Fatal(err)
	}
	if r, s := found(rec); !r || !s {
		t.Errorf("once the record landed: found by runner %v, by status %v; want both", r, s)
	}

	old := redisStatusRecord("bob", taskstore.StatusWorking, time.Time{})
	old.TaskID = redisOldTaskID(redisPendingFor + time.Minute)
	old.Runner = "node-old"
	entries(old) // its create failed long ago: the entries are stale
	found(old)
	n, err := rb.client.ZCard(ctx, rb.runnerKey(old.Runner)).Result()
	if err != nil || n != 0 {
		t.Errorf("the old entry's runner index after a read: %d entries, %v; want it dropped", n, err)
	}
	idx, _ := statusEntries(t, rb)
	if slices.Contains(idx, code+" "+redisStatusKM(old.Owner, old.TaskID)) {
		t.Errorf("the old entry is still in the status index: %v", idx)
	}
}
