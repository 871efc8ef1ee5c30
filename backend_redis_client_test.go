//go:build redis

package mcptasks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcptasks/mcptasks/taskstore"
	"github.com/mcptasks/mcptasks/taskstore/storetest"
)

// redisTestClient is a client of the caller's own for the server (or
// cluster) in env, as a program holding one would make it.
func redisTestClient(tb testing.TB, env string) redis.UniversalClient {
	tb.Helper()
	raw := redisTestURL(tb, env)
	if hosts, ok := strings.CutPrefix(raw, "redis+cluster://"); ok {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(hosts, ","), ContextTimeoutEnabled: true})
	}
	if rest, ok := strings.CutPrefix(raw, "redis+sentinel://"); ok {
		// HOST:PORT,…/MASTER, as scripts/redis_up.sh writes it.
		hosts, master, _ := strings.Cut(rest, "/")
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: master, SentinelAddrs: strings.Split(hosts, ","), ContextTimeoutEnabled: true})
	}
	o, err := redis.ParseURL(raw)
	if err != nil {
		tb.Fatal(err)
	}
	o.ContextTimeoutEnabled = true
	return redis.NewClient(o)
}

// newGivenRedisFactory is newRedisFactory over NewRedisBackend: a client
// per backend, which the test closes after the backend.
func newGivenRedisFactory(env string) storetest.NewBackend {
	return func(tb testing.TB) taskstore.Backend {
		tb.Helper()
		client := redisTestClient(tb, env)
		b, err := NewRedisBackend(context.Background(), client, RedisOptions{Prefix: redisRandomPrefix()})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			b.Close()
			defer client.Close()
			// Close left the client open: it removes the keys.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := b.(*redisBackend).dropAll(ctx); err != nil {
				tb.Errorf("removing test keys: %v", err)
			}
		})
		return b
	}
}

func TestRedisGivenClientConformance(t *testing.T) {
	for _, tc := range redisServers {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, newGivenRedisFactory(tc.env))
		})
	}
}

// TestRedisGivenClient: the store's hooks act on its own calls only (its
// writes wait for more replicas than there are, the program's own do not
// wait at all), on the nodes the client had before it too; Close leaves
// the client open and working.
func TestRedisGivenClient(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		replicas  int // each master has
	}{
		{"Standalone", envRedisURL, 0},
		{"Cluster", envRedisClusterURL, 1},
		{"Sentinel", envRedisSentinelURL, 1}, // a failover client
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			client := redisTestClient(t, tc.env)
			t.Cleanup(func() { client.Close() })
			// In use before the store gets it: a cluster has its nodes already.
			if cc, ok := client.(*redis.ClusterClient); ok {
				if err := cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() }); err != nil {
					t.Fatal(err)
				}
			}
			prefix := redisRandomPrefix()
			b, err := NewRedisBackend(ctx, client, RedisOptions{Prefix: prefix, WaitReplicas: tc.replicas + 1, WaitTimeout: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.(*redisBackend).dropAll(context.Background()) })
			// WAITs as the servers count them (a hook of the test's would
			// not see those the store's hook adds to its pipelines).
			masters := redisMasters(t, b.(*redisBackend))
			waits := func() int64 {
				t.Helper()
				st, err := redisServerStats(ctx, masters)
				if err != nil {
					t.Fatal(err)
				}
				return st["wait"].calls
			}
			before := waits()

			// Owners spread over every master of a cluster.
			for i := range 40 {
				err := b.Create(ctx, sharedRecord(fmt.Sprintf("owner-%d", i)), taskstore.Limits{})
				if !errors.Is(err, taskstore.ErrNotDurable) {
					t.Fatalf("Create with more wait_replicas than replicas: %v, want ErrNotDurable", err)
				}
				if strings.Contains(err.Error(), redisFailoverAddr) {
					t.Fatalf("the error names go-redis's placeholder address: %v", err)
				}
			}
			sent := waits() - before
			if sent < 40 {
				t.Fatalf("%d WAITs for 40 creates", sent)
			}
			for i := range 40 {
				if err := client.Set(ctx, fmt.Sprintf("%sown-%d", prefix, i), "v", time.Minute).Err(); err != nil {
					t.Fatalf("the program's own SET: %v", err)
				}
			}
			if n := waits() - before; n != sent {
				t.Fatalf("the program's own writes sent %d WAITs", n-sent)
			}

			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Get(ctx, "owner-0", "x"); !errors.Is(err, errClosed) {
				t.Fatalf("Get after Close: %v, want errClosed", err)
			}
			if err := client.Set(ctx, prefix+"after", "v", time.Minute).Err(); err != nil {
				t.Fatalf("the client after the backend's Close: %v", err)
			}
		})
	}
}

func TestRedisGivenClientRefused(t *testing.T) {
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	if _, err := NewRedisBackend(t.Context(), ring, RedisOptions{}); err == nil {
		t.Error("NewRedisBackend took a Ring")
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ReadTimeout: time.Second})
	defer c.Close()
	for _, o := range []RedisOptions{
		{Prefix: "a{b}"},
		{WaitReplicas: -1},
		{WaitReplicas: 1, WaitTimeout: time.Second}, // not below ReadTimeout
	} {
		if _, err := NewRedisBackend(t.Context(), c, o); err == nil || errors.Is(err, taskstore.ErrBackend) {
			t.Errorf("NewRedisBackend with %+v: %v, want an options error", o, err)
		}
	}
	// Unreachable: an ErrBackend, and the client still the caller's.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := NewRedisBackend(ctx, c, RedisOptions{}); !errors.Is(err, taskstore.ErrBackend) {
		t.Errorf("NewRedisBackend of a closed port: %v, want ErrBackend", err)
	}
	if err := c.Ping(t.Context()).Err(); errors.Is(err, redis.ErrClosed) {
		t.Error("a failed NewRedisBackend closed the client")
	}
}
