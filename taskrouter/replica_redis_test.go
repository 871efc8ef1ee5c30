//go:build redis

package taskrouter_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

// With -tags redis, the replica tests also run over one Redis shared by two
// stores (MCPTASKS_TEST_REDIS_URL), each test under a fresh key prefix.
func init() {
	sharedBackends = append(sharedBackends, sharedBackend{
		name: "redis",
		open: func(t *testing.T, cfg taskstore.Config) (*taskstore.Store, *taskstore.Store) {
			return openRedisStores(t, cfg)
		},
	})
}

// openRedisStores opens two stores (two connection pools) over the test
// Redis under one fresh key prefix, as two replicas would have.
func openRedisStores(tb testing.TB, cfg taskstore.Config) (*taskstore.Store, *taskstore.Store) {
	raw := requireEnv(tb, "MCPTASKS_TEST_REDIS_URL")
	u, err := url.Parse(raw)
	if err != nil {
		tb.Fatalf("MCPTASKS_TEST_REDIS_URL does not parse")
	}
	q := u.Query()
	q.Set("prefix", "router-test"+randomSuffix()+":")
	u.RawQuery = q.Encode()
	open := func() *taskstore.Store {
		s, err := mcptasks.Open(context.Background(), u.String(), cfg)
		if err != nil {
			tb.Fatalf("opening the Redis store: %v", err)
		}
		tb.Cleanup(func() { s.Close() })
		return s
	}
	return open(), open()
}
