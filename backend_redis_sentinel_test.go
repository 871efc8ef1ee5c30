//go:build redis

package mcptasks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcptasks/mcptasks/taskstore"
)

// This file starts Sentinel setups of a test's own (a master, one replica,
// three Sentinels), for the tests that kill the master or need passwords
// (the shared setup of scripts/redis_up.sh serves the conformance suite
// and must stay whole).

const (
	redisSentinelMaster = "mcptasks-test"
	// The Sentinels call the master down after this without an answer;
	// a failover follows once two of the three agree.
	redisSentinelDownAfter = time.Second
	// After the promotion the store must be writing to the new master
	// within this: the Sentinel it asks may learn of the promotion only
	// from the leader's next hello (every 2 s), after the leader has seen
	// the replica report its new role (INFO, every second during a
	// failover); 2 s more for a loaded machine.
	redisSentinelBound = 5 * time.Second
)

// redisSentinelSetup says how to start a test's Sentinel setup.
type redisSentinelSetup struct {
	dataPass     string // requirepass of the master and replica (and their masterauth)
	sentinelPass string // requirepass of the Sentinels
	// quorum: wait until every Sentinel knows the replica and the other
	// two, which a failover needs (they find each other through the
	// master's hello channel, every 2 s).
	quorum bool
}

// redisTestSentinels is a Sentinel setup run by one test: data nodes 0
// (the first master) and 1 (its replica), and three Sentinels.
type redisTestSentinels struct {
	t         *testing.T
	bin       string
	setup     redisSentinelSetup
	ports     [2]int // data nodes, below the ephemeral range: they restart on them
	procs     [2]*redisProc
	admin     [2]*redis.Client // the test's own connections, never the store's
	sentinels []int
	watchers  []*redis.SentinelClient
}

// startRedisSentinels starts the data nodes and the Sentinels and waits
// until the replica has synced (and, with setup.quorum, until the
// Sentinels can fail over).
func startRedisSentinels(t *testing.T, setup redisSentinelSetup) *redisTestSentinels {
	t.Helper()
	s := &redisTestSentinels{t: t, bin: redisServerBinary(t), setup: setup}
	for i := range s.ports {
		s.ports[i] = restartPort(t)
		replicaOf := -1
		if i == 1 {
			replicaOf = 0
		}
		s.start(i, replicaOf)
		s.admin[i] = redis.NewClient(&redis.Options{Addr: s.addr(i), Password: setup.dataPass, MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: time.Second, PoolSize: 2, DisableIdentity: true})
		t.Cleanup(func() { s.admin[i].Close() })
	}
	for range 3 {
		port := redisFreePort(t)
		dir := t.TempDir()
		conf := []string{
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", redisSentinelMaster, s.ports[0]),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", redisSentinelMaster, redisSentinelDownAfter.Milliseconds()),
			// A failover that did not finish is tried again after twice this.
			fmt.Sprintf("sentinel failover-timeout %s 3000", redisSentinelMaster),
		}
		if setup.dataPass != "" {
			conf = append(conf, fmt.Sprintf("sentinel auth-pass %s %s", redisSentinelMaster, setup.dataPass))
		}
		if setup.sentinelPass != "" {
			conf = append(conf, "requirepass "+setup.sentinelPass, "sentinel sentinel-pass "+setup.sentinelPass)
		}
		file := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(file, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		runRedis(t, s.bin, port, file, "--sentinel", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--dir", dir, "--loglevel", "warning")
		w := redis.NewSentinelClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Password: setup.sentinelPass,
			MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second, PoolSize: 2, DisableIdentity: true})
		t.Cleanup(func() { w.Close() })
		s.sentinels = append(s.sentinels, port)
		s.watchers = append(s.watchers, w)
	}
	ctx := t.Context()
	if _, ok := waitUntil(t, 30*time.Second, func() bool { return s.hasSyncedReplica(ctx, 0) }); !ok {
		t.Fatal("the replica did not sync within 30s")
	}
	if setup.quorum {
		if _, ok := waitUntil(t, 30*time.Second, func() bool { return s.watching(ctx, 0, 1) }); !ok {
			t.Fatal("the Sentinels did not find the replica and each other within 30s")
		}
	}
	return s
}

// start runs data node i (again, after a kill: same port), as a replica of
// node replicaOf unless that is -1.
func (s *redisTestSentinels) start(i, replicaOf int) {
	args := []string{"--repl-diskless-sync-delay", "0"} // a replica's full sync at once
	if s.setup.dataPass != "" {
		args = append(args, "--requirepass", s.setup.dataPass, "--masterauth", s.setup.dataPass)
	}
	if replicaOf >= 0 {
		args = append(args, "--replicaof", "127.0.0.1", strconv.Itoa(s.ports[replicaOf]))
	}
	s.procs[i] = startRedis(s.t, s.bin, s.ports[i], args...)
}

func (s *redisTestSentinels) addr(i int) string { return fmt.Sprintf("127.0.0.1:%d", s.ports[i]) }

// url is a redis+sentinel:// URL naming every Sentinel, with the data
// nodes' password and the given options.
func (s *redisTestSentinels) url(opts ...string) string {
	hosts := make([]string, len(s.sentinels))
	for i, p := range s.sentinels {
		hosts[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	auth := ""
	if s.setup.dataPass != "" {
		auth = ":" + s.setup.dataPass + "@"
	}
	return redisWithOptions("redis+sentinel://"+auth+strings.Join(hosts, ",")+"/"+redisSentinelMaster, opts...)
}

// isMaster asks data node i its role.
func (s *redisTestSentinels) isMaster(ctx context.Context, i int) bool {
	role, err := s.admin[i].Do(ctx, "ROLE").Slice()
	return err == nil && len(role) > 0 && role[0] == "master"
}

// hasSyncedReplica reports whether data node i is a master with a replica
// in sync.
func (s *redisTestSentinels) hasSyncedReplica(ctx context.Context, i int) bool {
	repl, err := s.admin[i].Info(ctx, "replication").Result()
	return err == nil && strings.Contains(repl, "role:master") && strings.Contains(repl, "state=online")
}

// watching reports whether every Sentinel names data node master as the
// master, knows replica as its replica, up, and knows the other two
// Sentinels: a failover can then happen.
func (s *redisTestSentinels) watching(ctx context.Context, master, replica int) bool {
	for _, w := range s.watchers {
		addr, err := w.GetMasterAddrByName(ctx, redisSentinelMaster).Result()
		if err != nil || len(addr) != 2 || addr[1] != strconv.Itoa(s.ports[master]) {
			return false
		}
		m, err := w.Master(ctx, redisSentinelMaster).Result()
		if err != nil || m["num-other-sentinels"] != "2" {
			return false
		}
		reps, err := w.Replicas(ctx, redisSentinelMaster).Result()
		if err != nil || len(reps) != 1 || reps[0]["port"] != strconv.Itoa(s.ports[replica]) ||
			strings.Contains(reps[0]["flags"], "down") || strings.Contains(reps[0]["flags"], "disconnected") {
			return false
		}
	}
	return true
}

// TestRedisSentinelOpenErrors: with passwords on the data nodes and on the
// Sentinels, the right ones open the store and each wrong or missing one,
// an unknown master name and unreachable Sentinels fail Open with an
// ErrBackend that says why and never shows a password. (Bad URLs:
// TestRedisOpenErrors.)
func TestRedisSentinelOpenErrors(t *testing.T) {
	t.Run("Unreachable", func(t *testing.T) {
		start := time.Now()
		_, err := OpenBackend(t.Context(), fmt.Sprintf("redis+sentinel://:s3cret@127.0.0.1:%d,127.0.0.1:%d/m?dial_timeout=1s&sentinel_password=s3cret",
			redisFreePort(t), redisFreePort(t)))
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Open took %v with dial_timeout=1s", d)
		}
		redisCheckOpenErr(t, err, "connection refused")
	})

	t.Run("Passwords", func(t *testing.T) {
		s := startRedisSentinels(t, redisSentinelSetup{dataPass: "s3cret", sentinelPass: "right-one"})
		base := func(dataPass string) string {
			return strings.Replace(s.url("dial_timeout=2s"), ":s3cret@", dataPass, 1)
		}
		for _, tc := range []struct{ name, url, want string }{
			{"wrong data password", base(":right-one@") + "&sentinel_password=right-one", "WRONGPASS"},
			{"no data password", base("") + "&sentinel_password=right-one", "NOAUTH"},
			{"wrong Sentinel password", s.url("dial_timeout=2s", "sentinel_password=s3cret"), "WRONGPASS"},
			{"no Sentinel password", s.url("dial_timeout=2s"), "NOAUTH"},
			{"unknown master", strings.Replace(s.url("dial_timeout=2s", "sentinel_password=right-one"), "/"+redisSentinelMaster, "/nosuch", 1),
				`no Sentinel there knows a master named "nosuch"`},
		} {
			t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
				b, err := OpenBackend(t.Context(), tc.url)
				if err == nil {
					b.Close()
				}
				redisCheckOpenErr(t, err, tc.want)
			})
		}
		b, err := OpenBackend(t.Context(), s.url("sentinel_password=right-one", "prefix="+redisRandomPrefix()))
		if err != nil {
			t.Fatalf("Open with the right passwords: %v", err)
		}
		defer b.Close()
		r := sharedRecord("alice")
		if err := b.Create(t.Context(), r, taskstore.Limits{}); err != nil {
			t.Fatal(err)
		}
		// Written on the master the Sentinels name, node 0.
		if n, err := s.admin[0].Exists(t.Context(), b.(*redisBackend).recKey(r.Owner, r.TaskID)).Result(); err != nil || n != 1 {
			t.Fatalf("the record is not on the master: %d, %v", n, err)
		}
	})
}

// redisFeedWatch keeps a subscriber on a backend's change feed through
// failures (subscribing again, as the Store does) and records the tasks
// whose changes it saw.
type redisFeedWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	seen   map[string]bool
	ends   int // Subscribe calls that ended with an error
}

func watchRedisFeed(n taskstore.Notifier) *redisFeedWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &redisFeedWatch{cancel: cancel, done: make(chan struct{}), seen: map[string]bool{}}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			err := n.Subscribe(ctx, func(c taskstore.Change) {
				w.mu.Lock()
				w.seen[c.TaskID] = true
				w.mu.Unlock()
			})
			if ctx.Err() == nil {
				w.mu.Lock()
				w.ends++
				w.mu.Unlock()
				if errors.Is(err, errClosed) {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	return w
}

func (w *redisFeedWatch) saw(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[id]
}

func (w *redisFeedWatch) stop() {
	w.cancel()
	<-w.done
}

// TestRedisSentinelFailover kills (SIGKILL) the master of a Sentinel setup
// of its own under load (8 goroutines, 1 s deadline per call) and
// measures how long the Sentinels take to promote the replica, how long
// writes fail, and when the store writes to the promoted master, which
// must be within redisSentinelBound of the promotion. The killed master is
// then started again as a replica of the promoted one, so the setup can
// fail over again (the Sentinels must see it so). The change feed must
// carry changes made after the failover. Without wait_replicas the
// acknowledged writes lost are measured and reported (replication is
// asynchronous); with wait_replicas=1 none may be lost.
func TestRedisSentinelFailover(t *testing.T) {
	t.Run("Kill", func(t *testing.T) { redisSentinelKill(t, false) })
	t.Run("KillWaitReplicas", func(t *testing.T) { redisSentinelKill(t, true) })
}

func redisSentinelKill(t *testing.T, durable bool) {
	ctx := t.Context()
	st := startRedisSentinels(t, redisSentinelSetup{quorum: true})
	opts := []string{"prefix=" + redisRandomPrefix(), "dial_timeout=500ms"}
	if durable {
		opts = append(opts, "wait_replicas=1", "wait_timeout=500ms")
	}
	r := &redisFailoverRun{t: t, before: goroutineKinds()}
	b, err := OpenBackend(ctx, st.url(opts...))
	if err != nil {
		t.Fatal(err)
	}
	var owners []string
	for i := range 8 {
		owners = append(owners, fmt.Sprintf("owner-%d", i))
	}
	r.calls = newShardLog([][]string{owners}) // one shard: the master
	r.s = taskstore.New(b, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	feed := watchRedisFeed(b.(taskstore.Notifier))
	r.load = startFaultLoadWith(r.s, 8, redisFailoverDeadline, faultLoadOptions{owners: owners, observe: r.calls.observe})
	t.Cleanup(func() {
		r.stop()
		feed.stop()
		r.s.Close()
	})

	time.Sleep(1500 * time.Millisecond)
	killedAt := time.Now()
	st.procs[0].stop()
	r.load.setPhase(phaseDown)
	promotedAt, ok := waitUntil(t, 30*time.Second, func() bool { return st.isMaster(ctx, 1) })
	if !ok {
		t.Fatal("the Sentinels did not promote the replica within 30s of the kill")
	}
	t.Logf("replica promoted %v after the kill (down-after-milliseconds %v)", promotedAt.Sub(killedAt).Round(time.Millisecond), redisSentinelDownAfter)
	recovery := redisCheckRecovery(t, r.calls, 0, killedAt, promotedAt, redisSentinelBound)
	// How long writes failed: from the kill to the end of the first write
	// sent after it that reached a master (acknowledged, or with
	// wait_replicas applied but not yet confirmed).
	first, _ := r.calls.firstCall(0, killedAt, redisWriteReached)
	outage := first.end.Sub(killedAt)

	// The old master comes back as the new one's replica (started so; the
	// Sentinels would otherwise turn it into one some seconds later).
	st.start(0, 1)
	syncedAt, ok := waitUntil(t, 30*time.Second, func() bool { return st.hasSyncedReplica(ctx, 1) })
	if !ok {
		t.Fatal("the restarted master did not sync as a replica within 30s")
	}
	if durable {
		// Until then the promoted master had no replica to confirm writes.
		if _, ok := waitUntil(t, redisFailoverBound, func() bool {
			_, ok := r.calls.first(0, syncedAt, func(c loadCall) bool { return c.acked })
			return ok
		}); !ok {
			t.Errorf("no durable write within %v of the new replica syncing", redisFailoverBound)
		}
	}
	r.load.setPhase(phaseRestart)
	if _, ok := waitUntil(t, 30*time.Second, func() bool { return st.watching(ctx, 1, 0) }); !ok {
		t.Error("the Sentinels do not see the restarted master as the promoted one's replica within 30s: no second failover possible")
	}

	// The change feed, subscribed again after the failover, carries a
	// change made now.
	rec, err := r.s.Create(ctx, "feed", taskstore.CreateRequest{RequestMethod: "tools/call"})
	if err != nil {
		t.Fatalf("create after the failover: %v", err)
	}
	if _, ok := waitUntil(t, 10*time.Second, func() bool { return feed.saw(rec.Task.TaskID) }); !ok {
		t.Errorf("the change feed did not carry a change made after the failover within 10s (%d subscriptions ended)", feed.ends)
	}
	time.Sleep(time.Second)
	r.stop()
	feed.stop()

	failed := r.calls.stats(func(int) bool { return true }, killedAt, time.Now())
	t.Logf("writes failed for %v after the kill (first write to reach a master ended then: %s, %v); %d calls failed after the kill, first: %v",
		outage.Round(time.Millisecond), first.op, first.err, failed.failed, failed.firstErr)
	r.finish(durable, "failover_promotion_ms", promotedAt.Sub(killedAt).Milliseconds(), "failover_recovery_ms", recovery.Milliseconds(),
		"write_outage_ms", outage.Milliseconds(), "calls_failed_during_fault", failed.failed)
}
