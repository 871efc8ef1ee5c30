//go:build redis

package mcptasks

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
	"github.com/mcptasks/mcptasks/taskstore/storetest"
)

// Failover tests: a cluster of the test's own (3 masters, one replica
// each, --cluster-node-timeout 2000), a store open on it, 8 goroutines
// calling it for 12 owners spread over the three shards (each call a random
// owner, so every goroutine reaches every shard), 1 s deadline per call.
const (
	redisFailoverNodeTimeout = 2 * time.Second
	redisFailoverDeadline    = time.Second
	// After the cluster promotes a replica, the store must be writing to it
	// within this (the bound: node timeout + 2 s).
	redisFailoverBound  = redisFailoverNodeTimeout + 2*time.Second
	redisFailoverOwners = 4 // per shard
)

// redisPartialCoverage lets the healthy shards serve while one has no
// master (between a master's failure and its replica's promotion); by
// default Redis answers CLUSTERDOWN for every slot then (docs/redis.md).
var redisPartialCoverage = []string{"--cluster-require-full-coverage", "no"}

// shardWatch follows the load's calls, by shard.
type shardWatch struct {
	mu       sync.Mutex
	shardOf  map[string]int // owner -> shard
	faultAt  time.Time      // when the fault was injected; zero before
	firstOK  []time.Time    // per shard: first write acknowledged (or reaching the server) after faultAt
	lastAck  []time.Time    // per shard: latest acknowledged write
	failed   []int          // per shard: calls failed (not a domain answer) after faultAt
	acked    []int          // per shard: writes acknowledged after faultAt
	firstErr []error        // per shard: first failure after faultAt
}

func newShardWatch(byShard [][]string) *shardWatch {
	w := &shardWatch{shardOf: map[string]int{}, firstOK: make([]time.Time, len(byShard)), lastAck: make([]time.Time, len(byShard)),
		failed: make([]int, len(byShard)), acked: make([]int, len(byShard)), firstErr: make([]error, len(byShard))}
	for shard, owners := range byShard {
		for _, o := range owners {
			w.shardOf[o] = shard
		}
	}
	return w
}

func (w *shardWatch) fault(at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.faultAt = at
}

// reached reports whether a write reached a master that took it: it was
// acknowledged, or it applied but too few replicas confirmed it.
func redisWriteReached(c loadCall) bool {
	return c.acked || (c.op != "Get" && c.op != "List" && errors.Is(c.err, taskstore.ErrNotDurable))
}

func (w *shardWatch) observe(c loadCall) {
	shard := w.shardOf[c.owner]
	w.mu.Lock()
	defer w.mu.Unlock()
	if c.acked {
		w.lastAck[shard] = c.end
	}
	if w.faultAt.IsZero() || c.start.Before(w.faultAt) {
		return
	}
	if c.acked {
		w.acked[shard]++
	}
	if redisWriteReached(c) && w.firstOK[shard].IsZero() {
		w.firstOK[shard] = c.end
	}
	if c.err != nil && !domainAnswer(c.err) && !redisWriteReached(c) {
		w.failed[shard]++
		if w.firstErr[shard] == nil {
			w.firstErr[shard] = c.err
		}
	}
}

func (w *shardWatch) get() (firstOK, lastAck []time.Time, failed, acked []int, firstErr []error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Time(nil), w.firstOK...), append([]time.Time(nil), w.lastAck...),
		append([]int(nil), w.failed...), append([]int(nil), w.acked...), append([]error(nil), w.firstErr...)
}

// waitUntil polls cond every 20 ms for at most within; it reports whether
// cond came true, and when.
func waitUntil(t *testing.T, within time.Duration, cond func() bool) (time.Time, bool) {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return time.Now(), true
		}
		if time.Now().After(deadline) || t.Context().Err() != nil {
			return time.Time{}, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRedisClusterFailover kills (SIGKILL) a master under load and measures
// how long the cluster takes to promote its replica and the open store to
// write to it, which must be within redisFailoverBound of the promotion;
// the other shards must not lose a call meanwhile. Without wait_replicas the
// acknowledged writes lost are measured and reported (replication is
// asynchronous); with wait_replicas=1 none may be lost (the killed node is
// restarted after the promotion, so that the promoted one has a replica to
// confirm writes again).
func TestRedisClusterFailover(t *testing.T) {
	t.Run("Kill", func(t *testing.T) { redisClusterKill(t, false) })
	t.Run("KillWaitReplicas", func(t *testing.T) { redisClusterKill(t, true) })
}

func redisClusterKill(t *testing.T, durable bool) {
	const victim = 0
	c := startRedisCluster(t, 3, 1, redisFailoverNodeTimeout, nil, redisPartialCoverage...)
	ctx := t.Context()
	replica := c.replicaOf(victim)

	before := goroutineKinds()
	opts := []string{"prefix=" + redisRandomPrefix(), "dial_timeout=500ms"}
	if durable {
		opts = append(opts, "wait_replicas=1", "wait_timeout=500ms")
	}
	b, err := OpenBackend(ctx, c.url(opts...))
	if err != nil {
		t.Fatal(err)
	}
	byShard, owners := c.ownersPerShard(ctx, b.(*redisBackend), redisFailoverOwners)
	watch := newShardWatch(byShard)
	s := taskstore.New(b, taskstore.Config{MaxTasksPerOwner: -1})
	load := startFaultLoadWith(s, 8, redisFailoverDeadline, faultLoadOptions{owners: owners, observe: watch.observe})
	stopped := false
	defer func() {
		if !stopped {
			load.Stop()
		}
		s.Close() // again after a normal end: a no-op
	}()

	time.Sleep(1500 * time.Millisecond)
	killedAt := time.Now()
	c.kill(victim)
	watch.fault(killedAt)
	load.setPhase(phaseDown)

	promotedAt, ok := waitUntil(t, 30*time.Second, func() bool { return c.isMaster(ctx, replica) })
	if !ok {
		t.Fatalf("the cluster did not promote the replica within 30s of the kill")
	}
	t.Logf("replica promoted %v after the kill", promotedAt.Sub(killedAt).Round(time.Millisecond))

	// The store reaches the promoted master when a write to the victim's
	// slots gets there.
	_, ok = waitUntil(t, redisFailoverBound+3*time.Second, func() bool {
		first, _, _, _, _ := watch.get()
		return !first[victim].IsZero()
	})
	first, _, _, _, firstErr := watch.get()
	recovery := first[victim].Sub(promotedAt)
	if !ok {
		recovery = time.Since(promotedAt)
		t.Errorf("the store did not write to the promoted master within %v of the promotion (bound %v); last failure: %v",
			recovery.Round(time.Millisecond), redisFailoverBound, firstErr[victim])
	} else if recovery > redisFailoverBound {
		t.Errorf("the store wrote to the promoted master %v after the promotion, bound %v", recovery.Round(time.Millisecond), redisFailoverBound)
	}
	t.Logf("store writing to the promoted master %v after the promotion", recovery.Round(time.Millisecond))

	if durable {
		// Writes there now fail as not durable (no replica): bring the
		// killed node back; it rejoins as the new master's replica.
		c.start(victim)
		syncedAt, ok := waitUntil(t, 30*time.Second, func() bool { return c.hasSyncedReplica(ctx, replica) })
		if !ok {
			t.Fatal("the restarted node did not sync as a replica within 30s")
		}
		if _, ok := waitUntil(t, redisFailoverBound, func() bool {
			_, last, _, _, _ := watch.get()
			return last[victim].After(syncedAt)
		}); !ok {
			t.Errorf("no durable write to the victim's slots within %v of its new replica syncing", redisFailoverBound)
		}
	}
	load.setPhase(phaseRestart)
	time.Sleep(time.Second)
	load.Stop()
	t.Log(load.summary())

	_, _, failed, acked, firstErr := watch.get()
	for shard := range c.masters {
		t.Logf("shard %d after the kill: %d writes acknowledged, %d calls failed (first: %v)", shard, acked[shard], failed[shard], firstErr[shard])
		if shard != victim && failed[shard] > 0 {
			t.Errorf("shard %d (not killed) failed %d calls after the kill, first: %v", shard, failed[shard], firstErr[shard])
		}
	}
	checked, losses := load.countAcked(t, s)
	for _, l := range losses {
		if durable {
			t.Errorf("acknowledged write lost with wait_replicas=1: %s", l)
		} else {
			t.Logf("acknowledged write lost (asynchronous replication): %s", l)
		}
	}
	stopped = true
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoGoroutineLeak(t, before, 15*time.Second)
	if load.panics != 0 {
		t.Errorf("%d calls panicked", load.panics)
	}
	if load.maxOvershoot > time.Second {
		t.Errorf("a %s call returned %v after its deadline", load.slowest, load.maxOvershoot)
	}
	total := load.ackedInPhase[phaseUp] + load.ackedInPhase[phaseDown] + load.ackedInPhase[phaseRestart]
	t.Logf("%d acknowledged tasks read back, %d lost", checked, len(losses))
	ackKey, lostKey := "acked_writes", "acked_writes_lost"
	if durable {
		ackKey, lostKey = "durable_acked_writes", "durable_acked_writes_lost"
	}
	storetest.Report(t, "faults_injected", 1, "faults_survived", boolInt(!t.Failed()),
		"failover_promotion_ms", promotedAt.Sub(killedAt).Milliseconds(),
		"failover_recovery_ms", recovery.Milliseconds(),
		"max_overshoot_ms", load.maxOvershoot.Milliseconds(),
		ackKey, total, lostKey, len(losses), "acked_tasks_checked", checked)
}
