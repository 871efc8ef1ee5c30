//go:build redis

package mcptasks

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/mcptasks/mcptasks/internal/rawfloor"
	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
	"github.com/mcptasks/mcptasks/taskstore/storetest"
)

// Test servers come from the environment (scripts/redis_up.sh prints these
// lines). Unset skips the test, unless MCPTASKS_TEST_REQUIRE=1.
const (
	envRedisURL        = "MCPTASKS_TEST_REDIS_URL"
	envRedisClusterURL = "MCPTASKS_TEST_REDIS_CLUSTER_URL"
	// A master with one replica watched by three Sentinels.
	envRedisSentinelURL = "MCPTASKS_TEST_REDIS_SENTINEL_URL"
	redisEnvRequire     = "MCPTASKS_TEST_REQUIRE"
)

// redisServers are the three kinds of Redis the tests that run on each
// kind run on, and the variables that name them.
var redisServers = []struct{ name, env string }{
	{"Standalone", envRedisURL}, {"Cluster", envRedisClusterURL}, {"Sentinel", envRedisSentinelURL},
}

func redisTestURL(tb testing.TB, env string) string {
	tb.Helper()
	u := os.Getenv(env)
	if u == "" {
		if os.Getenv(redisEnvRequire) == "1" {
			tb.Fatalf("%s is not set and %s=1; start servers with: eval \"$(scripts/redis_up.sh .tmp/redis)\"", env, redisEnvRequire)
		}
		tb.Skipf("%s is not set; start servers with: eval \"$(scripts/redis_up.sh .tmp/redis)\"", env)
	}
	return u
}

// redisServerBinary finds redis-server for the tests that run their own.
func redisServerBinary(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(redisEnvRequire) == "1" {
			tb.Fatalf("redis-server is not on PATH and %s=1", redisEnvRequire)
		}
		tb.Skip("redis-server is not on PATH (Debian: apt-get install redis-server)")
	}
	return path
}

func redisRandomPrefix() string {
	var b [6]byte
	rand.Read(b[:])
	return "mcptasks-test:" + hex.EncodeToString(b[:]) + ":"
}

// redisWithOptions adds query options to a URL.
func redisWithOptions(raw string, opts ...string) string {
	sep := "?"
	if strings.Contains(raw, "?") {
		sep = "&"
	}
	if len(opts) == 0 {
		return raw
	}
	return raw + sep + strings.Join(opts, "&")
}

// newRedisFactory returns a storetest.NewBackend over the server at rawURL:
// a random key prefix per backend, whose keys are removed at cleanup.
func newRedisFactory(rawURL string) storetest.NewBackend {
	return func(tb testing.TB) taskstore.Backend {
		tb.Helper()
		b, err := OpenBackend(context.Background(), redisWithOptions(rawURL, "prefix="+redisRandomPrefix()))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			b.Close()
			// A backend of its own: the test may have closed b.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := OpenBackend(ctx, redisWithOptions(rawURL, "prefix="+b.(*redisBackend).prefix))
			if err != nil {
				tb.Errorf("removing test keys: %v", err)
				return
			}
			defer c.Close()
			if err := c.(*redisBackend).dropAll(ctx); err != nil {
				tb.Errorf("removing test keys: %v", err)
			}
		})
		return b
	}
}

func init() {
	sharedTestBackends["redis"] = func(tb testing.TB) taskstore.Backend { return newRedisFactory(redisTestURL(tb, envRedisURL))(tb) }
	sharedTestBackends["redis+cluster"] = func(tb testing.TB) taskstore.Backend {
		return newRedisFactory(redisTestURL(tb, envRedisClusterURL))(tb)
	}
	sharedTestBackends["redis+sentinel"] = func(tb testing.TB) taskstore.Backend {
		return newRedisFactory(redisTestURL(tb, envRedisSentinelURL))(tb)
	}
}

// dropAll removes every key under the backend's prefix (tests only).
func (b *redisBackend) dropAll(ctx context.Context) error {
	drop := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, redisGlobEscape(b.prefix)+"*", 1000).Iterator()
		for it.Next(ctx) {
			if err := c.Unlink(ctx, it.Val()).Err(); err != nil {
				return err
			}
		}
		return it.Err()
	}
	if c, ok := b.client.(*redis.ClusterClient); ok {
		return c.ForEachMaster(ctx, drop)
	}
	return drop(ctx, b.client.(*redis.Client))
}

func TestRedisConformance(t *testing.T) {
	for _, tc := range []struct{ name, env, opts string }{
		{"Standalone", envRedisURL, ""},
		{"Cluster", envRedisClusterURL, ""},
		// Every write followed by WAIT 1 (the cluster has a replica per
		// master): the same answers, only durable.
		{"ClusterWaitReplicas", envRedisClusterURL, "wait_replicas=1"},
		// Through the Sentinels to their master, which has one replica.
		{"Sentinel", envRedisSentinelURL, ""},
		{"SentinelWaitReplicas", envRedisSentinelURL, "wait_replicas=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := redisTestURL(t, tc.env)
			if tc.opts != "" {
				url = redisWithOptions(url, tc.opts)
			}
			storetest.Run(t, newRedisFactory(url))
		})
	}
}

// TestRedisKeyLayout checks what the server holds: one hash tag per owner,
// PEXPIREAT on records and on indexes, and indexes cleaned of expired ids.
func TestRedisKeyLayout(t *testing.T) {
	url := redisTestURL(t, envRedisURL)
	b := newRedisFactory(url)(t).(*redisBackend)
	ctx := t.Context()
	raw := b.client

	owner := "a{b}:c"
	base := b.prefix + "{" + "YXtifTpj" + "}" // base64url("a{b}:c")
	if got := b.ownerBase(owner); got != base {
		t.Fatalf("ownerBase = %q, want %q", got, base)
	}
	if got := b.ownerBase(""); got != b.prefix+"{=}" {
		t.Fatalf("ownerBase(\"\") = %q", got)
	}

	soon := taskstore.Record{Owner: owner, TaskID: taskid.New(time.Now()), Data: []byte(`{}`),
		ExpiresAt: time.Now().Add(300 * time.Millisecond)}
	if err := b.Create(ctx, soon, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{base + ":t:" + soon.TaskID, base + ":ids", base + ":exp"} {
		ttl, err := raw.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > 300*time.Millisecond+time.Millisecond {
			t.Fatalf("PTTL %s = %v, %v; want about 300ms", k, ttl, err)
		}
	}
	// A record that never expires makes the id index permanent.
	forever := taskstore.Record{Owner: owner, TaskID: taskid.New(time.Now()), Data: []byte(`{}`)}
	if err := b.Create(ctx, forever, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := raw.PTTL(ctx, base+":ids").Result(); ttl != -1 {
		t.Fatalf("ids PTTL = %v after a record without expiry, want none (-1)", ttl)
	}
	time.Sleep(400 * time.Millisecond)
	if n, _ := raw.Exists(ctx, base+":t:"+soon.TaskID).Result(); n != 0 {
		t.Fatal("Redis did not purge the expired record")
	}
	// The expired id is still indexed until a create, list or sweep.
	if n, _ := raw.ZCard(ctx, base+":ids").Result(); n != 2 {
		t.Fatalf("ids holds %d before the sweep, want 2", n)
	}
	if n, err := b.DeleteExpired(ctx); err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v; want 1", n, err)
	}
	if ids, _ := raw.ZRange(ctx, base+":ids", 0, -1).Result(); !slices.Equal(ids, []string{forever.TaskID}) {
		t.Fatalf("ids after sweep = %v", ids)
	}
	if n, _ := raw.Exists(ctx, base+":exp").Result(); n != 0 {
		t.Fatal("empty expiry index still exists")
	}
}

// redisFreePort returns a loopback port nothing listens on right now.
func redisFreePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// redisProc is a redis-server run by a test.
type redisProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedis runs redis-server on 127.0.0.1:port until stopped or the test
// ends, and waits until it answers.
func startRedis(t *testing.T, bin string, port int, args ...string) *redisProc {
	t.Helper()
	return runRedis(t, bin, port, append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--loglevel", "warning"}, args...)...)
}

// runRedis runs bin with args, which make it listen on 127.0.0.1:port,
// until stopped or the test ends, and waits until it accepts connections.
func runRedis(t *testing.T, bin string, port int, args ...string) *redisProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &redisProc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("redis-server exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not listen on %d: %s", port, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server and waits for it to exit.
func (p *redisProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

func TestRedisOpenErrors(t *testing.T) {
	t.Run("URL", func(t *testing.T) {
		for _, raw := range []string{
			"redis://127.0.0.1:1?nosuch=1",
			"redis://127.0.0.1:1?db=x",
			"redis://127.0.0.1:1?prefix=a{b}",
			"redis://127.0.0.1:1/0?db=1",
			"redis://127.0.0.1:1/x",
			"redis://127.0.0.1:1,127.0.0.1:2",
			"redis+cluster://127.0.0.1:1?db=1",
			"rediss://127.0.0.1:1?tls=false",
			"redis://127.0.0.1:1?tls_skip_verify=true",
			"redis://127.0.0.1:1?dial_timeout=0s",
			"redis://127.0.0.1:1?pool_size=-1",
			"redis://127.0.0.1:1?wait_replicas=-1",
			"redis://127.0.0.1:1?wait_replicas=x",
			"redis://127.0.0.1:1?wait_timeout=1s",
			"redis://127.0.0.1:1?wait_replicas=1&wait_timeout=0s",
			"redis://127.0.0.1:1?wait_replicas=1&wait_timeout=3s",
			"redis://127.0.0.1:1?wait_replicas=1&wait_timeout=200ms&read_timeout=100ms",
			"redis://127.0.0.1:1?stall_timeout=x",
			"redis://127.0.0.1:1?stall_timeout=-1s",
			"redis://127.0.0.1:1?cluster_reload_interval=1s",
			"redis://127.0.0.1:1?cluster_reload_on_failure=1s",
			"redis+cluster://127.0.0.1:1?cluster_reload_interval=0s",
			"redis+cluster://127.0.0.1:1?cluster_reload_on_failure=soon",
			"rediss://127.0.0.1:1?tls_cert=a.pem",
			"rediss://127.0.0.1:1?tls_key=a.key",
			"redis://127.0.0.1:1?tls_cert=a.pem&tls_key=a.key",
			"rediss://127.0.0.1:1?tls_cert=/nonexistent.pem&tls_key=/nonexistent.key",
			"redis://",
			"redis+sentinel://127.0.0.1:1",     // no master name
			"redis+sentinel://127.0.0.1:1/",    // empty master name
			"redis+sentinel://127.0.0.1:1/m/x", // database not a number
			"redis+sentinel://127.0.0.1:1/m/1?db=2",
			"redis+sentinel://127.0.0.1:1/m?nosuch=1",
			"redis+sentinel://127.0.0.1:1/m?cluster_reload_interval=1s",
			"redis+sentinel://127.0.0.1:1/m?sentinel_user=u", // user without password
			"redis+sentinel://127.0.0.1:1/m?tls_skip_verify=true",
			"redis+sentinel://127.0.0.1:1/m?sentinel_password=a&sentinel_password=b",
			"redis+sentinel://127.0.0.1:1,,127.0.0.1:2/m",
			"redis://127.0.0.1:1?sentinel_password=x",
			"redis+cluster://127.0.0.1:1?sentinel_user=u&sentinel_password=x",
		} {
			if b, err := OpenBackend(t.Context(), raw); err == nil {
				b.Close()
				t.Errorf("OpenBackend(%q) succeeded", raw)
			}
		}
	})

	t.Run("Unreachable", func(t *testing.T) {
		port := redisFreePort(t)
		start := time.Now()
		_, err := OpenBackend(t.Context(), fmt.Sprintf("redis://:s3cret@127.0.0.1:%d?dial_timeout=1s", port))
		if err == nil {
			t.Fatal("Open of a closed port succeeded")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Open took %v with dial_timeout=1s", d)
		}
		redisCheckOpenErr(t, err, "connection refused")
	})

	t.Run("UnreachableCluster", func(t *testing.T) {
		start := time.Now()
		_, err := OpenBackend(t.Context(), fmt.Sprintf("redis+cluster://u:s3cret@127.0.0.1:%d,127.0.0.1:%d?dial_timeout=1s", redisFreePort(t), redisFreePort(t)))
		if err == nil {
			t.Fatal("Open of closed ports succeeded")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Open took %v with dial_timeout=1s", d)
		}
		redisCheckOpenErr(t, err, "")
	})

	t.Run("WrongPassword", func(t *testing.T) {
		bin := redisServerBinary(t)
		port := redisFreePort(t)
		startRedis(t, bin, port, "--requirepass", "right-one")
		for _, userinfo := range []string{":s3cret", "default:s3cret", "nobody:s3cret"} {
			_, err := OpenBackend(t.Context(), fmt.Sprintf("redis://%s@127.0.0.1:%d?dial_timeout=2s", userinfo, port))
			if err == nil {
				t.Fatalf("Open with a wrong password (%s) succeeded", userinfo)
			}
			redisCheckOpenErr(t, err, "WRONGPASS")
		}
		_, err := OpenBackend(t.Context(), fmt.Sprintf("redis://127.0.0.1:%d?dial_timeout=2s", port))
		redisCheckOpenErr(t, err, "NOAUTH")
		b, err := OpenBackend(t.Context(), fmt.Sprintf("redis://:right-one@127.0.0.1:%d", port))
		if err != nil {
			t.Fatalf("Open with the right password: %v", err)
		}
		b.Close()
	})
}

// redisCheckOpenErr wants an ErrBackend that says why and never shows the password.
func redisCheckOpenErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one saying %q", want)
	}
	msg := err.Error()
	if !errors.Is(err, taskstore.ErrBackend) || !strings.Contains(msg, want) || !strings.Contains(msg, "cannot connect to Redis") {
		t.Fatalf("error %q: want ErrBackend saying %q", msg, want)
	}
	if strings.Contains(msg, "s3cret") || strings.Contains(msg, "right-one") {
		t.Fatalf("error shows the password: %q", msg)
	}
	t.Logf("Open error: %s", msg)
}

// TestRedisFault kills the server under an open store, then brings it back
// on the same port: every call fails within its deadline while it is gone,
// and the same store works again once it is back.
func TestRedisFault(t *testing.T) {
	bin := redisServerBinary(t)
	port := redisFreePort(t)
	srv := startRedis(t, bin, port)
	b, err := OpenBackend(t.Context(), fmt.Sprintf("redis://127.0.0.1:%d?dial_timeout=500ms&pool_size=4", port))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	calls := func(tag string) map[string]func(ctx context.Context) error {
		r := taskstore.Record{Owner: "alice", TaskID: taskid.New(time.Now()), Data: []byte(`{"n":"` + tag + `"}`),
			ExpiresAt: time.Now().Add(time.Hour)}
		return map[string]func(ctx context.Context) error{
			"1 Create": func(ctx context.Context) error { return b.Create(ctx, r, taskstore.Limits{MaxActive: 10}) },
			"2 Get":    func(ctx context.Context) error { _, err := b.Get(ctx, "alice", r.TaskID); return err },
			"3 Update": func(ctx context.Context) error {
				_, err := b.Update(ctx, taskstore.Record{Owner: "alice", TaskID: r.TaskID, Data: []byte(`{}`)}, 1)
				return err
			},
			"4 List": func(ctx context.Context) error { _, _, err := b.List(ctx, "alice", "", 10); return err },
			"5 Delete": func(ctx context.Context) error {
				_, err := b.Delete(ctx, "alice", r.TaskID)
				return err
			},
			"6 DeleteExpired": func(ctx context.Context) error { _, err := b.DeleteExpired(ctx); return err },
		}
	}
	runAll := func(tag string, wantErr bool) {
		t.Helper()
		ops := calls(tag)
		names := slices.Sorted(func(yield func(string) bool) {
			for k := range ops {
				if !yield(k) {
					return
				}
			}
		})
		// Many callers at once, as a server would have.
		var wg sync.WaitGroup
		for _, name := range names {
			for range 4 {
				wg.Go(func() {
					const deadline = 700 * time.Millisecond
					ctx, cancel := context.WithTimeout(t.Context(), deadline)
					defer cancel()
					start := time.Now()
					err := ops[name](ctx)
					took := time.Since(start)
					if took > deadline+300*time.Millisecond {
						t.Errorf("%s (%s): took %v, deadline %v", name, tag, took, deadline)
					}
					if wantErr && (err == nil || !errors.Is(err, taskstore.ErrBackend) && ctx.Err() == nil) {
						t.Errorf("%s (%s) with the server down: %v, want ErrBackend", name, tag, err)
					}
				})
			}
			if !wantErr {
				wg.Wait() // in order: create before get, and so on
			}
		}
		wg.Wait()
	}
	up := calls("up")
	for _, name := range []string{"1 Create", "2 Get", "3 Update", "4 List", "5 Delete", "6 DeleteExpired"} {
		if err := up[name](t.Context()); err != nil {
			t.Fatalf("%s before the fault: %v", name, err)
		}
	}
	runAll("up", false)

	srv.stop()
	runAll("down", true)

	startRedis(t, bin, port)
	// Pooled connections died with the server; calls may fail until the
	// pool notices, but not for long.
	back := time.Now()
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, _, err := b.List(ctx, "alice", "", 1)
		cancel()
		if err == nil {
			break
		}
		if time.Since(back) > 5*time.Second {
			t.Fatalf("store did not recover within 5s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("recovered %v after the restart", time.Since(back))
	// The server came back empty (no persistence): new writes work, old
	// records are gone, and every call succeeds.
	after := calls("after")
	for _, name := range []string{"1 Create", "2 Get", "3 Update", "4 List", "5 Delete", "6 DeleteExpired"} {
		if err := after[name](t.Context()); err != nil {
			t.Fatalf("%s after the restart: %v", name, err)
		}
	}
	if _, err := b.Get(t.Context(), "alice", taskid.New(time.Now())); !errors.Is(err, taskstore.ErrNotFound) {
		t.Fatalf("Get after the restart: %v, want ErrNotFound", err)
	}
	storetest.Report(t, "faults_injected", 1, "faults_survived", boolInt(!t.Failed()))
}

// ---- Benchmarks ----
//
//	eval "$(scripts/redis_up.sh .tmp/redis)"
//	go test -tags redis -run '^$' -bench 'Redis' -benchtime 2s .

// redisBenchCallers is how many goroutines the Parallel benchmarks run.
const redisBenchCallers = 64

func redisSetBenchParallelism(b *testing.B) {
	b.SetParallelism((redisBenchCallers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
}

func BenchmarkRedisStore(b *testing.B) {
	url := redisTestURL(b, envRedisURL)
	redisSetBenchParallelism(b)
	storetest.RunBenchmarks(b, newRedisFactory(url))
}

func BenchmarkRedisStoreCluster(b *testing.B) {
	url := redisTestURL(b, envRedisClusterURL)
	redisSetBenchParallelism(b)
	storetest.RunBenchmarks(b, newRedisFactory(url), 100)
}

// BenchmarkRedisFloor is what the store is compared with: plain go-redis
// round trips on the same server, on a hash the size of a task record.
func BenchmarkRedisFloor(b *testing.B) {
	url := redisTestURL(b, envRedisURL)
	rb := newRedisFactory(url)(b).(*redisBackend)
	c := rb.client
	key := rb.prefix + "floor"
	doc := bytes.Repeat([]byte("x"), 420)
	if err := c.HSet(b.Context(), key, "v", 1, "d", doc).Err(); err != nil {
		b.Fatal(err)
	}
	trivial := redis.NewScript(`return redis.call('HGET', KEYS[1], 'v')`)
	ops := map[string]func(ctx context.Context) error{
		"HGETALL": func(ctx context.Context) error { return c.HGetAll(ctx, key).Err() },
		"EVALSHA": func(ctx context.Context) error { return trivial.Run(ctx, c, []string{key}).Err() },
	}
	for _, name := range []string{"HGETALL", "EVALSHA"} {
		op := ops[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := op(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"Parallel", func(b *testing.B) {
			redisSetBenchParallelism(b)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := op(context.Background()); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// redisCmdStat is one line of INFO commandstats.
type redisCmdStat struct{ calls, usec int64 }

// redisCommandStats returns INFO commandstats by command name.
func redisCommandStats(ctx context.Context, c redis.UniversalClient) (map[string]redisCmdStat, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]redisCmdStat{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var st redisCmdStat
		for _, f := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(f, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				st.calls = n
			case "usec":
				st.usec = n
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = st
	}
	return out, nil
}

// redisServerStats is INFO commandstats of servers, summed.
func redisServerStats(ctx context.Context, servers []*redis.Client) (map[string]redisCmdStat, error) {
	sum := map[string]redisCmdStat{}
	for _, c := range servers {
		st, err := redisCommandStats(ctx, c)
		if err != nil {
			return nil, err
		}
		for k, v := range st {
			sum[k] = redisCmdStat{calls: sum[k].calls + v.calls, usec: sum[k].usec + v.usec}
		}
	}
	return sum, nil
}

// BenchmarkRedisOps runs each Store operation against the standalone
// server and reports, besides ns/op: latency p50 and p99, round trips per
// operation (commands the client sent: EVALSHA, EVAL) and commands the
// server executed per operation (including those inside scripts), both
// from INFO commandstats. Sequential and with 64 callers.
func BenchmarkRedisOps(b *testing.B) {
	url := redisTestURL(b, envRedisURL)
	ctx := b.Context()
	for _, size := range []int{100, 100_000} {
		rb := newRedisFactory(url)(b).(*redisBackend)
		s := taskstore.New(rb, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
		ids := redisFillPipelined(b, s, rb, "bench", size)
		sent := &redisSentCommands{}
		rb.client.AddHook(sent)
		// Caller c works on task ids[c] (ids has >= redisBenchCallers), so
		// status changes never race; flips[c] is that task's status.
		var flips [redisBenchCallers]int
		ops := []struct {
			name string
			run  func(ctx context.Context, c, i int) error
		}{
			{"Get", func(ctx context.Context, c, i int) error {
				_, err := s.Get(ctx, "bench", ids[c])
				return err
			}},
			{"Create", func(ctx context.Context, c, i int) error {
				_, err := s.Create(ctx, "bench-create", taskstore.CreateRequest{RequestMethod: "tools/call"})
				return err
			}},
			{"UpdateStatus", func(ctx context.Context, c, i int) error {
				flips[c]++
				st := [2]taskstore.Status{taskstore.StatusWorking, taskstore.StatusInputRequired}[flips[c]%2]
				_, err := s.UpdateStatus(ctx, "bench", ids[c], st, "")
				return err
			}},
			{"SetVariables", func(ctx context.Context, c, i int) error {
				_, err := s.SetVariables(ctx, "bench", ids[c], map[string]json.RawMessage{"progress": json.RawMessage(strconv.Itoa(i))})
				return err
			}},
			{"ListPage50", func(ctx context.Context, c, i int) error {
				p, err := s.List(ctx, "bench", "", 50)
				if err == nil && len(p.Tasks) != 50 {
					err = fmt.Errorf("page of %d", len(p.Tasks))
				}
				return err
			}},
		}
		for _, op := range ops {
			if size != 100 && op.name != "ListPage50" && op.name != "Get" {
				continue
			}
			for _, callers := range []int{1, redisBenchCallers} {
				name := fmt.Sprintf("%s/owner=%d/callers=%d", op.name, size, callers)
				b.Run(name, func(b *testing.B) {
					before, err := redisCommandStats(ctx, rb.client)
					if err != nil {
						b.Fatal(err)
					}
					sent.reset()
					lat := make([][]time.Duration, callers)
					var next sync.Mutex
					n := 0
					take := func() (int, bool) {
						next.Lock()
						defer next.Unlock()
						if n >= b.N {
							return 0, false
						}
						n++
						return n, true
					}
					b.ResetTimer()
					var wg sync.WaitGroup
					for c := range callers {
						wg.Go(func() {
							for {
								i, ok := take()
								if !ok {
									return
								}
								t0 := time.Now()
								if err := op.run(ctx, c, i); err != nil {
									b.Error(err)
									return
								}
								lat[c] = append(lat[c], time.Since(t0))
							}
						})
					}
					wg.Wait()
					b.StopTimer()
					client := sent.reset()
					after, err := redisCommandStats(ctx, rb.client)
					if err != nil {
						b.Fatal(err)
					}
					var all []time.Duration
					for _, l := range lat {
						all = append(all, l...)
					}
					slices.Sort(all)
					if len(all) > 0 {
						b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
						b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
					}
					// Round trips: what the client sent. Server work: every
					// command executed, scripts' inner ones included, and
					// the time spent in the commands the client sent.
					var trips, cmds, usec int64
					for k, n := range client {
						trips += n
						usec += after[k].usec - before[k].usec
					}
					for k, v := range after {
						if k != "info" {
							cmds += v.calls - before[k].calls
						}
					}
					b.ReportMetric(float64(trips)/float64(b.N), "roundtrips/op")
					b.ReportMetric(float64(cmds)/float64(b.N), "server-cmds/op")
					b.ReportMetric(float64(usec)/float64(b.N), "server-µs/op")
				})
			}
		}
	}
}

// redisFillPipelined gives owner n tasks fast: one made by the Store, then
// copies of its document under new ids, created with the backend's own
// create script in pipelines of 1000. It returns up to 100 of the ids.
func redisFillPipelined(b *testing.B, s *taskstore.Store, rb *redisBackend, owner string, n int) []string {
	ctx := b.Context()
	tmpl := redisStoreRecord(b, s, rb, owner)
	ids := []string{tmpl.TaskID}
	for done := 1; done < n; {
		pipe := rb.client.Pipeline()
		for ; done < n && pipe.Len() < 1000; done++ {
			r := tmpl
			r.TaskID = taskid.New(time.Now())
			r.Data = bytes.ReplaceAll(tmpl.Data, []byte(tmpl.TaskID), []byte(r.TaskID))
			r.Active = false
			code, err := redisStatusCode(r.Status)
			if err != nil {
				b.Fatal(err)
			}
			keys, args := rb.createCall(r, taskstore.Limits{}, code, nil, "")
			redisCreate.Run(ctx, pipe, keys, args...)
			if len(ids) < 100 {
				ids = append(ids, r.TaskID)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

// redisStoreRecord makes a task of owner through the Store and returns
// its stored record.
func redisStoreRecord(b *testing.B, s *taskstore.Store, rb *redisBackend, owner string) taskstore.Record {
	b.Helper()
	t, err := s.Create(b.Context(), owner, taskstore.CreateRequest{RequestMethod: "tools/call"})
	if err != nil {
		b.Fatal(err)
	}
	r, err := rb.Get(b.Context(), owner, t.Task.TaskID)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// redisSentCommands is a go-redis hook that counts the commands a client
// sends and the calls that send them (a command alone or a pipeline; on a
// server's own client, each is one round trip).
type redisSentCommands struct {
	mu    sync.Mutex
	n     map[string]int64
	calls int64
}

func (h *redisSentCommands) count(cmds ...redis.Cmder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == nil {
		h.n = map[string]int64{}
	}
	h.calls++
	for _, c := range cmds {
		h.n[strings.ToLower(c.Name())]++
	}
}

// reset returns the counts so far and starts again.
func (h *redisSentCommands) reset() map[string]int64 {
	n, _ := h.resetAll()
	return n
}

// resetAll returns the counts and the calls so far and starts again.
func (h *redisSentCommands) resetAll() (map[string]int64, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, calls := h.n, h.calls
	h.n, h.calls = nil, 0
	return n, calls
}

func (h *redisSentCommands) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *redisSentCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "info" {
			h.count(cmd)
		}
		return next(ctx, cmd)
	}
}

func (h *redisSentCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.count(cmds...)
		return next(ctx, cmds)
	}
}

// TestRedisTLS runs a TLS-only redis-server with a certificate from a test
// CA: rediss:// with tls_ca works, without it the certificate is refused,
// and plain redis:// to the TLS port fails.
func TestRedisTLS(t *testing.T) {
	bin := redisServerBinary(t)
	dir := t.TempDir()
	ca, caKey := redisTestCert(t, dir, "ca", nil, nil)
	redisTestCert(t, dir, "server", ca, caKey)
	port := redisFreePort(t)
	startRedis(t, bin, port, "--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", dir+"/server.pem", "--tls-key-file", dir+"/server.key",
		"--tls-ca-cert-file", dir+"/ca.pem", "--tls-auth-clients", "no")

	base := fmt.Sprintf("rediss://127.0.0.1:%d?dial_timeout=2s", port)
	b, err := OpenBackend(t.Context(), base+"&tls_ca="+dir+"/ca.pem&prefix="+redisRandomPrefix())
	if err != nil {
		t.Fatalf("rediss with tls_ca: %v", err)
	}
	defer b.Close()
	r := taskstore.Record{Owner: "alice", TaskID: taskid.New(time.Now()), Data: []byte(`{}`)}
	if err := b.Create(t.Context(), r, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(t.Context(), "alice", r.TaskID); err != nil || got.Version != 1 {
		t.Fatalf("Get over TLS: %+v, %v", got, err)
	}

	_, err = OpenBackend(t.Context(), base)
	redisCheckOpenErr(t, err, "certificate")
	_, err = OpenBackend(t.Context(), fmt.Sprintf("redis://127.0.0.1:%d?dial_timeout=1s", port))
	redisCheckOpenErr(t, err, "rediss://")
}

// redisTestCert writes NAME.pem and NAME.key to dir: a CA when parent is nil,
// else a certificate for 127.0.0.1 signed by parent.
func redisTestCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	return redisTestCertWith(t, dir, name, parent, parentKey, redisCertOptions{})
}

// redisCertOptions change what redisTestCertWith makes.
type redisCertOptions struct {
	dnsNames []string // the names it is for, instead of 127.0.0.1
	expired  bool     // valid until an hour ago
}

// redisTestCertWith is redisTestCert with options. A leaf certificate is
// good for both ends of a connection (server and client authentication):
// cluster nodes present theirs to each other.
func redisTestCertWith(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, opts redisCertOptions) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "mcptasks test " + name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	if opts.expired {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	} else {
		if opts.dnsNames != nil {
			tmpl.DNSNames = opts.dnsNames
		} else {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/"+name+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/"+name+".key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// BenchmarkRedisRatios measures the Store against the raw floor, a GET of
// a value the size of a stored task on the same server (rawfloor.Open), in
// alternating rounds (each round runs every operation 300 times with one
// caller, 2400 times with 64 callers), so that a busy machine slows all of
// them alike; it reports each operation's rate and its ratio to the GET
// rate (StoreList50 also to BackendList50). HandleSetVariables is a tool
// handler's mutation through its Handle. Run it with a fixed round count:
//
//	go test -tags redis -run '^$' -bench RedisRatios -benchtime 20x .
func BenchmarkRedisRatios(b *testing.B) {
	url := redisTestURL(b, envRedisURL)
	rb := newRedisFactory(url)(b).(*redisBackend)
	s := taskstore.New(rb, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	ids := redisFillPipelined(b, s, rb, "bench", 100)
	floorKey := rb.prefix + "floor"
	if err := rb.client.HSet(b.Context(), floorKey, "v", 1, "d", bytes.Repeat([]byte("x"), 420)).Err(); err != nil {
		b.Fatal(err)
	}
	trivial := redis.NewScript(`return redis.call('HGET', KEYS[1], 'v')`)
	var flips [redisBenchCallers]int
	names := []string{"GET", "EVALSHA", "BackendGet", "Get", "BackendUpdate", "UpdateStatus", "SetVariables", "HandleSetVariables", "BackendList50", "StoreList50"}
	raw, err := rb.Get(b.Context(), "bench", ids[0])
	if err != nil {
		b.Fatal(err)
	}
	// The stored value is "VERSION:EXPIRY:DATA".
	get, cleanup, err := rawfloor.Open(b.Context(), rb, len(raw.Data)+len("1:1767225600000:"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cleanup(context.Background()) })
	handles := make([]*taskstore.Handle, len(ids))
	for i, id := range ids {
		handles[i] = s.Handle("bench", id)
	}
	// BackendUpdate has tasks of its own, so it alone changes their versions.
	casIDs := redisFillPipelined(b, s, rb, "bench-cas", redisBenchCallers)
	var versions [redisBenchCallers]uint64
	ops := map[string]func(ctx context.Context, c, i int) error{
		"GET": func(ctx context.Context, c, i int) error { return get(ctx) },
		"EVALSHA": func(ctx context.Context, c, i int) error {
			return trivial.Run(ctx, rb.client, []string{floorKey}).Err()
		},
		"BackendGet": func(ctx context.Context, c, i int) error {
			_, err := rb.Get(ctx, "bench", ids[c])
			return err
		},
		"Get": func(ctx context.Context, c, i int) error {
			_, err := s.Get(ctx, "bench", ids[c])
			return err
		},
		// One compare-and-swap, no read: the caller tracks the version.
		"BackendUpdate": func(ctx context.Context, c, i int) error {
			if versions[c] == 0 {
				r, err := rb.Get(ctx, "bench-cas", casIDs[c])
				if err != nil {
					return err
				}
				versions[c] = r.Version
			}
			v, err := rb.Update(ctx, taskstore.Record{Owner: "bench-cas", TaskID: casIDs[c], Data: raw.Data, ExpiresAt: raw.ExpiresAt}, versions[c])
			versions[c] = v
			return err
		},
		"UpdateStatus": func(ctx context.Context, c, i int) error {
			flips[c]++
			st := [2]taskstore.Status{taskstore.StatusWorking, taskstore.StatusInputRequired}[flips[c]%2]
			_, err := s.UpdateStatus(ctx, "bench", ids[c], st, "")
			return err
		},
		"SetVariables": func(ctx context.Context, c, i int) error {
			_, err := s.SetVariables(ctx, "bench", ids[c], map[string]json.RawMessage{"progress": json.RawMessage(strconv.Itoa(i))})
			return err
		},
		"HandleSetVariables": func(ctx context.Context, c, i int) error {
			return handles[c].SetVariables(ctx, map[string]any{"progress": i})
		},
		"BackendList50": func(ctx context.Context, c, i int) error {
			_, _, err := rb.List(ctx, "bench", "", 50)
			return err
		},
		"StoreList50": func(ctx context.Context, c, i int) error {
			_, err := s.List(ctx, "bench", "", 50)
			return err
		},
	}
	for _, callers := range []int{1, redisBenchCallers} {
		perRound := 300 * max(1, callers/8)
		// One caller's rate drifts with where the scheduler puts it and
		// the server: alternate every 30 calls, not every 300.
		slots := max(1, 10/callers)
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			ctx := b.Context()
			spent := map[string]time.Duration{}
			for range b.N * slots {
				for _, name := range names {
					op := ops[name]
					start := time.Now()
					var wg sync.WaitGroup
					for c := range callers {
						wg.Go(func() {
							for i := c; i < perRound/slots; i += callers {
								if err := op(ctx, c, i); err != nil {
									b.Error(name, err)
									return
								}
							}
						})
					}
					wg.Wait()
					spent[name] += time.Since(start)
				}
			}
			rate := func(name string) float64 { return float64(b.N*perRound) / spent[name].Seconds() }
			for _, name := range names {
				b.ReportMetric(rate(name), name+"/s")
				if name != "GET" {
					b.ReportMetric(rate(name)/rate("GET"), name+"/GET")
				}
			}
			b.ReportMetric(rate("StoreList50")/rate("BackendList50"), "StoreList50/BackendList50")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkRedisUpdateMany measures UpdateMany against the raw floor of a
// batch of writes (rawfloor.OpenBatch: one pipeline of N SETs of values
// the size of the stored records, spread over a cluster's nodes as the
// records are), in alternating rounds, for batches of 100 and 1000, on
// the standalone server and on the cluster. Every round writes one floor
// batch and one batch of updates, in turns first; each update gives its
// task another runner, as a takeover's claim does (on a single server the
// script writes the runner index entry, on a cluster one ZADD per batch),
// with one subscriber on the change feed, as a replica has. It reports
//
//   - updates/s, the floor's writes/s, and updates/floor, their ratio;
//   - trips/update, round trips per update (a call to one server: each
//     node's share of a pipeline is one), floor-trips/write, the floor's,
//     and trips/floor, their ratio;
//   - cmds/update, the commands sent per update, and cmds/floor, its
//     ratio to the floor's (1 per write);
//   - serial-trips/batch, the pipelines one after the other per batch
//     (each waits for all its nodes; the floor: 1);
//   - server-µs/update, the server's time per update (the script's
//     whole run, INFO commandstats), floor-server-µs/write, per SET, and
//     server/floor, their ratio;
//   - single-updates/s, one Update at a time (100 of the tasks, in the
//     same rounds), and updates/single, what the batch gains over it.
//
// Run it with a fixed round count:
//
//	go test -tags redis -run '^$' -bench RedisUpdateMany -benchtime 30x .
func BenchmarkRedisUpdateMany(b *testing.B) {
	for _, srv := range []struct{ name, env string }{{"Standalone", envRedisURL}, {"Cluster", envRedisClusterURL}} {
		b.Run(srv.name, func(b *testing.B) {
			url := redisTestURL(b, srv.env)
			for _, n := range []int{100, 1000} {
				b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { redisBenchUpdateMany(b, url, n) })
			}
		})
	}
}

func redisBenchUpdateMany(b *testing.B, url string, n int) {
	rb := newRedisFactory(url)(b).(*redisBackend)
	s := taskstore.New(rb, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	ctx := b.Context()
	updates := make([]taskstore.Update, n)
	for i := range updates {
		r := redisStoreRecord(b, s, rb, fmt.Sprintf("owner-%d", i%100))
		updates[i] = taskstore.Update{Record: r, Expected: r.Version}
	}
	r := updates[0].Record
	expMS, _ := redisExpiry(r.ExpiresAt)
	size := len(redisValue(r.Version, expMS, r.Active, "1", redisRunnerField("r1"), r.Data))
	write, cleanup, err := rawfloor.OpenBatch(ctx, rb, n, size)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cleanup(context.Background()) })
	feedCtx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	up := make(chan struct{})
	go rb.Subscribe(feedCtx, func(c taskstore.Change) {
		if c.Resync {
			close(up)
		}
	})
	<-up
	sent := &redisSentCommands{}
	rb.client.AddHook(sent)
	nodes := redisNodeCounters(b, rb)
	trips := func() (n int64) {
		for _, h := range nodes {
			_, c := h.resetAll()
			n += c
		}
		return n
	}
	update := func(round int) error {
		for j := range updates {
			updates[j].Record.Runner = [2]string{"r1", "r2"}[round%2]
		}
		res, err := rb.UpdateMany(ctx, updates)
		if err != nil {
			return err
		}
		for j, r := range res {
			if r.Err != nil {
				return r.Err
			}
			updates[j].Expected = r.Version
		}
		return nil
	}
	// One of each first: connections made, scripts cached.
	if err := write(ctx); err != nil {
		b.Fatal(err)
	}
	if err := update(1); err != nil {
		b.Fatal(err)
	}
	// One Update at a time, for comparison: the first 100 tasks, given
	// runners of their own, so that every write moves its task.
	single := func(round int) error {
		for j := range min(n, 100) {
			u := &updates[j]
			u.Record.Runner = [2]string{"r3", "r4"}[round%2]
			v, err := rb.Update(ctx, u.Record, u.Expected)
			if err != nil {
				return err
			}
			u.Expected = v
		}
		return nil
	}
	type benchOp struct {
		run                 func(round int) error
		n                   int // writes per run
		spent               time.Duration
		trips, cmds, serial int64
		usec                int64 // server time of the commands it sent
	}
	// usec is the server time of the commands the floor and the batch
	// send (for a script, its whole run).
	masters := redisMasters(b, rb)
	usec := func() int64 {
		st, err := redisServerStats(ctx, masters)
		if err != nil {
			b.Fatal(err)
		}
		return st["set"].usec + st["evalsha"].usec + st["eval"].usec
	}
	floorOp := &benchOp{run: func(int) error { return write(ctx) }, n: n}
	batchOp := &benchOp{run: update, n: n}
	singleOp := &benchOp{run: single, n: min(n, 100)}
	ops := []*benchOp{floorOp, batchOp, singleOp}
	b.ResetTimer()
	for round := range b.N {
		for k := range ops {
			op := ops[(round+k)%len(ops)]
			u0 := usec()
			trips()
			sent.resetAll()
			t0 := time.Now()
			if err := op.run(round); err != nil {
				b.Fatal(err)
			}
			op.spent += time.Since(t0)
			op.usec += usec() - u0
			op.trips += trips()
			cmds, calls := sent.resetAll()
			for _, c := range cmds {
				op.cmds += c
			}
			op.serial += calls
		}
	}
	b.StopTimer()
	rate := func(op *benchOp) float64 { return float64(b.N*op.n) / op.spent.Seconds() }
	per := func(x int64, op *benchOp) float64 { return float64(x) / float64(b.N*op.n) }
	b.ReportMetric(rate(batchOp), "updates/s")
	b.ReportMetric(rate(floorOp), "floor-writes/s")
	b.ReportMetric(rate(batchOp)/rate(floorOp), "updates/floor")
	b.ReportMetric(rate(singleOp), "single-updates/s")
	b.ReportMetric(rate(batchOp)/rate(singleOp), "updates/single")
	b.ReportMetric(per(batchOp.trips, batchOp), "trips/update")
	b.ReportMetric(per(floorOp.trips, floorOp), "floor-trips/write")
	b.ReportMetric(per(batchOp.trips, batchOp)/per(floorOp.trips, floorOp), "trips/floor")
	b.ReportMetric(per(batchOp.cmds, batchOp), "cmds/update")
	b.ReportMetric(per(batchOp.cmds, batchOp)/per(floorOp.cmds, floorOp), "cmds/floor")
	b.ReportMetric(float64(batchOp.serial)/float64(b.N), "serial-trips/batch")
	b.ReportMetric(per(batchOp.usec, batchOp), "server-µs/update")
	b.ReportMetric(per(floorOp.usec, floorOp), "floor-server-µs/write")
	b.ReportMetric(per(batchOp.usec, batchOp)/per(floorOp.usec, floorOp), "server/floor")
	b.ReportMetric(0, "ns/op")
}

func TestRedisRawFloor(t *testing.T) {
	rb := newRedisFactory(redisTestURL(t, envRedisURL))(t).(*redisBackend)
	testRawFloor(t, rb)
	if n, err := rb.client.Exists(t.Context(), rb.prefix+"{floor}:test").Result(); err != nil || n != 0 {
		t.Fatalf("floor key left behind: %d, %v", n, err)
	}
}

// TestRedisRawBatchFloor: the batch floor writes its keys, on a cluster on
// more than one node, and its cleanup removes them all.
func TestRedisRawBatchFloor(t *testing.T) {
	redisOnBoth(t, func(t *testing.T, rb *redisBackend) {
		ctx := t.Context()
		const n = 30
		nodes := redisNodeCounters(t, rb)
		write, cleanup, err := rb.RawBatchFloor(ctx, "test", n, 400)
		if err != nil {
			t.Fatal(err)
		}
		if err := write(ctx); err != nil {
			t.Fatalf("floor write: %v", err)
		}
		keys := make([]string, n)
		for i := range keys {
			keys[i] = rb.prefix + "{floor:test:" + strconv.Itoa(i) + "}"
		}
		count := func() int {
			t.Helper()
			found := 0
			for _, k := range keys {
				v, err := rb.client.Get(ctx, k).Result()
				switch {
				case err == nil && len(v) == 400:
					found++
				case err != nil && !errors.Is(err, redis.Nil):
					t.Fatal(err)
				}
			}
			return found
		}
		if got := count(); got != n {
			t.Fatalf("%d of the %d floor keys hold 400 bytes", got, n)
		}
		used := 0
		for _, h := range nodes {
			if h.reset()["set"] > 0 {
				used++
			}
		}
		if rb.cluster && used < 2 {
			t.Errorf("the floor's keys were on %d node(s), want them spread", used)
		}
		if err := cleanup(ctx); err != nil {
			t.Fatalf("cleanup: %v", err)
		}
		if got := count(); got != 0 {
			t.Fatalf("%d floor keys left behind", got)
		}
	})
}

// TestRedisRecKey: the one-allocation record key is the key of keys().
func TestRedisRecKey(t *testing.T) {
	b := &redisBackend{prefix: "mcptasks:"}
	for _, owner := range []string{"", "alice", "ünïcødé/+=", strings.Repeat("o", 71), strings.Repeat("p", 72), strings.Repeat("q", 500)} {
		want, _, _, _ := b.keys(owner, "18ed17eecd142240-67e00e3112434b6b465561458269697a")
		if got := b.recKey(owner, "18ed17eecd142240-67e00e3112434b6b465561458269697a"); got != want {
			t.Errorf("owner %q: recKey %q, keys %q", owner, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = b.recKey("alice", "id") }); n > 1 {
		t.Errorf("recKey allocates %v times, want 1", n)
	}
}

// TestRedisUpdateExpiryKept: the update script stores the caller's value
// as it came only when the caller's expiry is the stored one; with any
// other (or none) it rebuilds the header, so the expiry never changes and
// the data is the caller's byte for byte. The active index follows the
// flag either way.
func TestRedisUpdateExpiryKept(t *testing.T) {
	rb := newRedisFactory(redisTestURL(t, envRedisURL))(t).(*redisBackend)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	r := taskstore.Record{Owner: "alice", TaskID: taskid.New(time.Now()), Data: []byte(`{"v":0}`), ExpiresAt: exp, Active: true}
	if err := rb.Create(ctx, r, taskstore.Limits{}); err != nil {
		t.Fatal(err)
	}
	_, _, _, act := rb.keys("alice", r.TaskID)
	for i, tc := range []struct {
		exp    time.Time
		active bool
		data   string
	}{
		{exp, true, `{"v":1}`},
		{time.Time{}, false, `{"v":2,"x":"::"}`},
		{exp.Add(time.Minute), true, `{"v":3}`},
		{exp, false, `{"v":4}`},
		{exp, false, `{"v":5}`},
	} {
		u := taskstore.Record{Owner: "alice", TaskID: r.TaskID, Data: []byte(tc.data), ExpiresAt: tc.exp, Active: tc.active}
		v, err := rb.Update(ctx, u, uint64(i+1))
		if err != nil || v != uint64(i+2) {
			t.Fatalf("update %d: version %d, %v", i, v, err)
		}
		got, err := rb.Get(ctx, "alice", r.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		want := taskstore.Record{Owner: "alice", TaskID: r.TaskID, Data: []byte(tc.data), Version: v, ExpiresAt: exp, Active: tc.active}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("after update %d (-want +got):\n%s", i, d)
		}
		score, err := rb.client.ZScore(ctx, act, r.TaskID).Result()
		switch {
		case tc.active && (err != nil || int64(score) != exp.UnixMilli()):
			t.Fatalf("update %d: active index score %v, %v; want %d", i, score, err, exp.UnixMilli())
		case !tc.active && !errors.Is(err, redis.Nil):
			t.Fatalf("update %d: inactive record still in the active index (%v, %v)", i, score, err)
		}
	}
}

// TestRedisStallGuardCheck: begin finds a stall from the calls in flight
// only once no reply came for stall_timeout, and then finds it.
func TestRedisStallGuardCheck(t *testing.T) {
	now := time.Now()
	h := &redisNodeHook{addr: "test", opts: &redisNodeOptions{stall: time.Second}, inflight: map[uint64]redisInflight{}, conns: map[net.Conn]struct{}{}}
	h.probing = true // no probe: the hook has no client
	// Sent 2 s ago, overdue, but the server answered since.
	h.inflight[1] = redisInflight{start: now.Add(-2 * time.Second), due: now.Add(-time.Second)}
	h.lastReply = now.Add(-500 * time.Millisecond)
	if _, err := h.begin(t.Context(), 0); err != nil {
		t.Fatalf("answered since the overdue call was sent: %v", err)
	}
	// Overdue, and no reply since it was sent, 1.5 s ago.
	h.inflight[2] = redisInflight{start: now.Add(-1500 * time.Millisecond), due: now.Add(-500 * time.Millisecond)}
	h.lastReply = now.Add(-1600 * time.Millisecond)
	if _, err := h.begin(t.Context(), 0); !errors.Is(err, errRedisStalled) {
		t.Fatalf("begin = %v, want %v", err, errRedisStalled)
	}
}

// BenchmarkRedisStallGuard reports the cost of a call's begin and end with
// 1,000 other calls in flight as a ratio to that with none: about 1 while
// the server answers (it was 64 when every begin read every call in flight).
func BenchmarkRedisStallGuard(b *testing.B) {
	cost := func(others int) time.Duration {
		h := &redisNodeHook{addr: "test", opts: &redisNodeOptions{stall: time.Second}, inflight: map[uint64]redisInflight{}, conns: map[net.Conn]struct{}{}}
		for range others {
			if _, err := h.begin(context.Background(), 0); err != nil {
				b.Fatal(err)
			}
		}
		h.lastReply = time.Now()
		start := time.Now()
		for range b.N {
			id, err := h.begin(context.Background(), 0)
			if err != nil {
				b.Fatal(err)
			}
			h.end(id, true)
		}
		return time.Since(start)
	}
	none := cost(0)
	many := cost(1000)
	b.ReportMetric(float64(many)/float64(none), "1000inflight/none")
	b.ReportMetric(0, "ns/op")
}

// TestRedisRunnerIndexedOnce: an update of a record that keeps its runner
// is one command, on a single server (also found through Sentinels), and
// one round trip on a cluster (where the runner index lives in another
// slot): its script and the ZADD of its status index entry (another slot
// too), in one pipeline; one that gives it a new runner puts the record in
// that runner's index and, on a single server, takes it out of the index
// of the runner it left.
func TestRedisRunnerIndexedOnce(t *testing.T) {
	for _, tc := range redisServers {
		t.Run(tc.name, func(t *testing.T) {
			rb := newRedisFactory(redisTestURL(t, tc.env))(t).(*redisBackend)
			ctx := t.Context()
			rec := taskstore.Record{Owner: "alice", TaskID: taskid.New(time.Now()), Data: []byte(`{"v":0}`),
				ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Millisecond), Active: true, Runner: "r1"}
			if err := rb.Create(ctx, rec, taskstore.Limits{}); err != nil {
				t.Fatal(err)
			}
			v := uint64(1)
			update := func(runner string) {
				t.Helper()
				rec.Runner = runner
				rec.Data = []byte(fmt.Sprintf(`{"v":%d}`, v))
				var err error
				if v, err = rb.Update(ctx, rec, v); err != nil {
					t.Fatal(err)
				}
			}
			update("r1") // loads the script
			sent := &redisSentCommands{}
			rb.client.AddHook(sent)
			for range 3 {
				update("r1")
			}
			want := map[string]int64{"evalsha": 3}
			if rb.cluster {
				want["zadd"] = 3
			}
			if n, calls := sent.resetAll(); !cmp.Equal(n, want) || calls != 3 {
				t.Errorf("3 updates keeping the runner sent %v in %d calls, want %v in 3", n, calls, want)
			}
			for _, runner := range []string{"r2", "r1"} {
				update(runner)
				// The runner it left: a single server's update removed the
				// entry, so a sweep of that runner never reads the record; a
				// cluster's stays behind (another slot) until RunnerTasks
				// meets it.
				left := map[string]string{"r2": "r1", "r1": "r2"}[runner]
				n, err := rb.client.ZCard(ctx, rb.runnerKey(left)).Result()
				if err != nil {
					t.Fatal(err)
				}
				if want := map[bool]int64{false: 0, true: 1}[rb.cluster]; n != want {
					t.Errorf("after moving from %s to %s, %s's index holds %d entries, want %d", left, runner, left, n, want)
				}
				recs, err := rb.RunnerTasks(ctx, runner, 10)
				if err != nil {
					t.Fatal(err)
				}
				if len(recs) != 1 || recs[0].TaskID != rec.TaskID || recs[0].Version != v {
					t.Errorf("after moving to %s, its index holds %v, want the record at version %d", runner, recs, v)
				}
			}
		})
	}
}

// redisBeforeZrem runs fn once, before the first ZREM of key is sent (fn
// may send one itself: that one it lets through).
type redisBeforeZrem struct {
	key  string
	done atomic.Bool
	fn   func()
}

func (h *redisBeforeZrem) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *redisBeforeZrem) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); cmd.Name() == "zrem" && len(args) > 1 && args[1] == h.key {
			if h.done.CompareAndSwap(false, true) {
				h.fn()
			}
		}
		return next(ctx, cmd)
	}
}

func (h *redisBeforeZrem) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestRedisRunnerTasksRace: a record that moves back to a runner while
// RunnerTasks prunes that runner's stale entry for it keeps its entry (an
// update that keeps the runner writes no entry, so a lost one would stay
// lost and the task would be missed when that runner dies).
func TestRedisRunnerTasksRace(t *testing.T) {
	for _, tc := range redisServers {
		t.Run(tc.name, func(t *testing.T) {
			rb := newRedisFactory(redisTestURL(t, tc.env))(t).(*redisBackend)
			ctx := t.Context()
			rec := taskstore.Record{Owner: "alice", TaskID: taskid.New(time.Now()), Data: []byte(`{}`),
				ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Millisecond), Active: true, Runner: "r1"}
			if err := rb.Create(ctx, rec, taskstore.Limits{}); err != nil {
				t.Fatal(err)
			}
			rec.Runner = "r2"
			v, err := rb.Update(ctx, rec, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !rb.cluster {
				// A single server's update removed r1's entry; put it back as
				// a RunnerTasks whose ZRANGE ran just before the move saw it.
				if err := rb.client.ZAdd(ctx, rb.runnerKey("r1"), redis.Z{Member: rb.runMember(rec.Owner, rec.TaskID)}).Err(); err != nil {
					t.Fatal(err)
				}
			}
			// r1's entry is stale now; RunnerTasks(r1) prunes it, and just
			// before it does the record moves back to r1.
			rb.client.AddHook(&redisBeforeZrem{key: rb.runnerKey("r1"), fn: func() {
				rec.Runner = "r1"
				if v, err = rb.Update(context.Background(), rec, v); err != nil {
					t.Error(err)
				}
			}})
			if _, err := rb.RunnerTasks(ctx, "r1", 10); err != nil {
				t.Fatal(err)
			}
			recs, err := rb.RunnerTasks(ctx, "r1", 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || recs[0].TaskID != rec.TaskID || recs[0].Version != v {
				t.Fatalf("r1's index holds %v, want the record at version %d", recs, v)
			}
		})
	}
}

// TestRedisParseChange: the feed's messages carry the version written (0
// for a delete); a message of an earlier release, "O ID", is a change of
// unknown version (0), and anything else is dropped.
func TestRedisParseChange(t *testing.T) {
	b := &redisBackend{prefix: "mcptasks:"}
	const id = "18ed17eecd142240-67e00e3112434b6b465561458269697a"
	for _, tc := range []struct {
		name, msg string
		want      taskstore.Change
		ok        bool
	}{
		{"create", b.changeMsg("al:ice", id, 1), taskstore.Change{Owner: "al:ice", TaskID: id, Version: 1}, true},
		{"update", b.changeMsg("al:ice", id, 1<<60), taskstore.Change{Owner: "al:ice", TaskID: id, Version: 1 << 60}, true},
		{"delete", b.changeMsg("al:ice", id, 0), taskstore.Change{Owner: "al:ice", TaskID: id}, true},
		{"empty owner", b.changeMsg("", id, 3), taskstore.Change{TaskID: id, Version: 3}, true},
		{"earlier release", b.runMember("al:ice", id), taskstore.Change{Owner: "al:ice", TaskID: id}, true},
		{"earlier release, empty owner", b.runMember("", id), taskstore.Change{TaskID: id}, true},
		{"no version after the space", b.runMember("al:ice", id) + " ", taskstore.Change{}, false},
		{"version not a number", b.runMember("al:ice", id) + " x", taskstore.Change{}, false},
		{"negative version", b.runMember("al:ice", id) + " -1", taskstore.Change{}, false},
		{"owner not base64url", "a:b " + id + " 1", taskstore.Change{}, false},
		{"one field", id, taskstore.Change{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := redisParseChange(tc.msg)
			if ok != tc.ok || got != tc.want {
				t.Errorf("redisParseChange(%q) = %+v, %v; want %+v, %v", tc.msg, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// redisOnBoth runs test against a backend of its own on each kind of
// server: standalone, the cluster, and the Sentinels' master.
func redisOnBoth(t *testing.T, test func(t *testing.T, rb *redisBackend)) {
	for _, tc := range redisServers {
		t.Run(tc.name, func(t *testing.T) {
			test(t, newRedisFactory(redisTestURL(t, tc.env))(t).(*redisBackend))
		})
	}
}

// TestRedisFeedEarlierRelease: on a channel shared with a replica of an
// earlier release, whose scripts publish "O ID", a subscriber gets its
// changes with version 0 (unknown) between this release's versioned ones.
func TestRedisFeedEarlierRelease(t *testing.T) {
	redisOnBoth(t, func(t *testing.T, rb *redisBackend) {
		ctx := t.Context()
		next := subscribed(t, rb)
		id := taskid.New(time.Now())
		if err := rb.client.Publish(ctx, rb.changesChan(), rb.runMember("al:ice", id)).Err(); err != nil {
			t.Fatal(err)
		}
		r := taskstore.Record{Owner: "al:ice", TaskID: id, Data: []byte(`{}`)}
		if err := rb.Create(ctx, r, taskstore.Limits{}); err != nil {
			t.Fatal(err)
		}
		got := []taskstore.Change{next(), next()}
		want := []taskstore.Change{{Owner: "al:ice", TaskID: id}, {Owner: "al:ice", TaskID: id, Version: 1}}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("changes (-want +got):\n%s", d)
		}
	})
}

// redisMasters returns the servers' own clients of rb: the client of a
// single server, the masters' of a cluster.
func redisMasters(t testing.TB, rb *redisBackend) []*redis.Client {
	t.Helper()
	cc, ok := rb.client.(*redis.ClusterClient)
	if !ok {
		return []*redis.Client{rb.client.(*redis.Client)}
	}
	var mu sync.Mutex
	var out []*redis.Client
	if err := cc.ForEachMaster(t.Context(), func(ctx context.Context, c *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// redisNodeCounters hooks a counter on each server's own client of rb (each
// master of a cluster), so that each call it counts is one round trip.
func redisNodeCounters(t testing.TB, rb *redisBackend) map[string]*redisSentCommands {
	t.Helper()
	nodes := map[string]*redisSentCommands{}
	for _, c := range redisMasters(t, rb) {
		h := &redisSentCommands{}
		nodes[c.Options().Addr] = h
		c.AddHook(h)
	}
	return nodes
}

// TestRedisUpdateManyRoundTrips: a batch is one EVALSHA per update and
// nothing else, in one round trip on a single server; on a cluster one
// round trip per node holding some of the records or the status index
// (one ZADD of every record's entry, with the scripts), after one ZADD per
// runner the batch names (the runner index lives in the runner's slot) in
// one round trip per node holding those. Each result is what Update gives,
// and the runner index follows.
func TestRedisUpdateManyRoundTrips(t *testing.T) {
	redisOnBoth(t, func(t *testing.T, rb *redisBackend) {
		ctx := t.Context()
		const n = 60
		var updates []taskstore.Update
		wantHeld := map[string][]string{}
		for i := range n {
			r := taskstore.Record{Owner: fmt.Sprintf("owner-%d", i), TaskID: taskid.New(time.Now()), Data: []byte(`{"v":0}`), Active: true, Runner: "dead"}
			if err := rb.Create(ctx, r, taskstore.Limits{}); err != nil {
				t.Fatal(err)
			}
			// A third ended (the runner kept), the others claimed.
			u := r
			u.Data = []byte(`{"v":1}`)
			if i%3 == 0 {
				u.Active = false
			} else {
				u.Runner = "alive"
			}
			wantHeld[u.Runner] = append(wantHeld[u.Runner], u.TaskID)
			updates = append(updates, taskstore.Update{Record: u, Expected: 1})
		}
		redisWarmBatch(t, rb, updates)
		// The first update has a stale version: it alone fails.
		updates[0].Expected = 7
		sent := &redisSentCommands{}
		rb.client.AddHook(sent)
		nodes := redisNodeCounters(t, rb)
		res, err := rb.UpdateMany(ctx, updates)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			switch {
			case i == 0 && !errors.Is(r.Err, taskstore.ErrVersionConflict):
				t.Errorf("update 0 at a stale version: %+v, want ErrVersionConflict", r)
			case i > 0 && (r.Err != nil || r.Version != 2):
				t.Errorf("update %d: %+v, want version 2", i, r)
			}
		}
		want := map[string]int64{"evalsha": n}
		if rb.cluster {
			want["zadd"] = 3 // "dead", "alive" and the status index
		}
		if got := sent.reset(); !cmp.Equal(want, got) {
			t.Errorf("the batch sent %v, want %v", got, want)
		}
		nodeOf := func(key string) string {
			cc, ok := rb.client.(*redis.ClusterClient)
			if !ok {
				return ""
			}
			c, err := cc.MasterForKey(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			return c.Options().Addr
		}
		withScripts := 0
		for addr, h := range nodes {
			cmds, trips := h.resetAll()
			wantTrips := int64(0)
			if cmds["evalsha"] > 0 {
				withScripts++
			}
			if cmds["evalsha"] > 0 || rb.cluster && addr == nodeOf(rb.statusKey()) {
				wantTrips++
			}
			if rb.cluster && (addr == nodeOf(rb.runnerKey("dead")) || addr == nodeOf(rb.runnerKey("alive"))) {
				wantTrips++
			}
			if trips != wantTrips {
				t.Errorf("node %s: %d round trips for %v, want %d", addr, trips, cmds, wantTrips)
			}
		}
		if rb.cluster && withScripts < 2 {
			t.Errorf("the records of %d owners were on %d node(s)", n, withScripts)
		}
		for runner, ids := range wantHeld {
			recs, err := rb.RunnerTasks(ctx, runner, 100)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]string, len(recs))
			for i, r := range recs {
				got[i] = r.TaskID
			}
			slices.Sort(got)
			slices.Sort(ids)
			if d := cmp.Diff(ids, got); d != "" {
				t.Errorf("RunnerTasks(%s) (-want +got):\n%s", runner, d)
			}
		}
	})
}

// redisWarmBatch sends the batch at a version none of its records has,
// which changes no record, so that the connections it needs are made (and
// their HELLO sent) before a test counts commands.
func redisWarmBatch(t testing.TB, rb *redisBackend, updates []taskstore.Update) {
	t.Helper()
	stale := slices.Clone(updates)
	for i := range stale {
		stale[i].Expected = 1 << 40
	}
	res, err := rb.UpdateMany(t.Context(), stale)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !errors.Is(r.Err, taskstore.ErrVersionConflict) {
			t.Fatalf("an update at a version nothing has: %+v", r)
		}
	}
}

// redisClaims creates n active records, of owners owner-0…, and returns
// updates that give each to runner "alive".
func redisClaims(t testing.TB, rb *redisBackend, n int) []taskstore.Update {
	t.Helper()
	var updates []taskstore.Update
	for i := range n {
		r := taskstore.Record{Owner: fmt.Sprintf("owner-%d", i), TaskID: taskid.New(time.Now()), Data: []byte(`{}`), Active: true}
		if err := rb.Create(t.Context(), r, taskstore.Limits{}); err != nil {
			t.Fatal(err)
		}
		r.Runner = "alive"
		updates = append(updates, taskstore.Update{Record: r, Expected: 1})
	}
	return updates
}

// TestRedisUpdateManyNoScript: a server that lost its scripts answers
// NOSCRIPT to the batch's EVALSHAs; the updates go again as EVAL and apply
// once each.
func TestRedisUpdateManyNoScript(t *testing.T) {
	bin := redisServerBinary(t)
	port := redisFreePort(t)
	startRedis(t, bin, port)
	b, err := OpenBackend(t.Context(), fmt.Sprintf("redis://127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rb := b.(*redisBackend)
	ctx := t.Context()
	updates := redisClaims(t, rb, 3)
	redisWarmBatch(t, rb, updates)
	if err := rb.client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	sent := &redisSentCommands{}
	rb.client.AddHook(sent)
	res, err := rb.UpdateMany(ctx, updates)
	if err != nil {
		t.Fatal(err)
	}
	want := []taskstore.UpdateResult{{Version: 2}, {Version: 2}, {Version: 2}}
	if d := cmp.Diff(want, res); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	if got := sent.reset(); !cmp.Equal(got, map[string]int64{"evalsha": 3, "eval": 3}) {
		t.Errorf("sent %v, want 3 evalsha, then 3 eval", got)
	}
	if recs, err := rb.RunnerTasks(ctx, "alive", 10); err != nil || len(recs) != 3 {
		t.Errorf("RunnerTasks(alive) = %d records, %v; want 3", len(recs), err)
	}
}

// redisFailScripts is a hook that fails, without sending them, the
// pipelines of scripts of one server.
type redisFailScripts struct{ err error }

func (h *redisFailScripts) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *redisFailScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *redisFailScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if cmds[0].Name() == "evalsha" {
			for _, c := range cmds {
				c.SetErr(h.err)
			}
			return h.err
		}
		return next(ctx, cmds)
	}
}

// TestRedisUpdateManyNodeFails: on a cluster, a node that fails fails the
// updates of its slots only, each with what Update would give (an
// ErrBackend); the other nodes' updates apply.
func TestRedisUpdateManyNodeFails(t *testing.T) {
	rb := newRedisFactory(redisTestURL(t, envRedisClusterURL))(t).(*redisBackend)
	ctx := t.Context()
	cc := rb.client.(*redis.ClusterClient)
	updates := redisClaims(t, rb, 30)
	// The node of the first owner fails.
	failing, err := cc.MasterForKey(ctx, rb.recKey(updates[0].Record.Owner, updates[0].Record.TaskID))
	if err != nil {
		t.Fatal(err)
	}
	cause := errors.New("injected failure")
	failing.AddHook(&redisFailScripts{err: cause})
	res, err := rb.UpdateMany(ctx, updates)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for i, r := range res {
		key := rb.recKey(updates[i].Record.Owner, updates[i].Record.TaskID)
		slot, err := cc.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		node, err := cc.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if node.Options().Addr == failing.Options().Addr {
			failed++
			if !errors.Is(r.Err, taskstore.ErrBackend) || !errors.Is(r.Err, cause) {
				t.Errorf("update %d (slot %d, on the failing node): %+v, want an ErrBackend with the cause", i, slot, r)
			}
		} else if r.Err != nil || r.Version != 2 {
			t.Errorf("update %d (slot %d, another node): %+v, want version 2", i, slot, r)
		}
	}
	if failed == 0 || failed == len(updates) {
		t.Fatalf("%d of %d updates on the failing node: the test needs some on each side", failed, len(updates))
	}
}

// BenchmarkRedisTakeover: benchTakeover on a single server and a cluster,
// round trips counted on each server's own client (a pipeline is one).
//
//	go test -tags redis -run '^$' -bench RedisTakeover -benchtime 3x .
func BenchmarkRedisTakeover(b *testing.B) {
	for _, srv := range []struct{ name, env string }{{"Standalone", envRedisURL}, {"Cluster", envRedisClusterURL}} {
		b.Run(srv.name, func(b *testing.B) {
			url := redisTestURL(b, srv.env)
			for _, n := range []int{1000, 5000} {
				b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
					rb := newRedisFactory(url)(b).(*redisBackend)
					nodes := redisNodeCounters(b, rb)
					var total int64
					trips := func() int64 {
						for _, h := range nodes {
							_, c := h.resetAll()
							total += c
						}
						return total
					}
					benchTakeover(b, rb, trips, n)
				})
			}
		})
	}
}
