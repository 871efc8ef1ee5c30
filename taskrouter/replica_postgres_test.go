//go:build postgres

package taskrouter_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

// With -tags postgres, the replica tests also run over one PostgreSQL
// shared by two stores (MCPTASKS_TEST_POSTGRES_URL), each test in a fresh
// table.
func init() {
	sharedBackends = append(sharedBackends, sharedBackend{
		name: "postgres",
		open: func(t *testing.T, cfg taskstore.Config) (*taskstore.Store, *taskstore.Store) {
			raw := requireEnv(t, "MCPTASKS_TEST_POSTGRES_URL")
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("MCPTASKS_TEST_POSTGRES_URL does not parse")
			}
			q := u.Query()
			q.Set("table", "router_test"+strings.ReplaceAll(randomSuffix(), "-", "_"))
			q.Set("create_table", "true")
			u.RawQuery = q.Encode()
			open := func() *taskstore.Store {
				s, err := mcptasks.Open(context.Background(), u.String(), cfg)
				if err != nil {
					t.Fatalf("opening the PostgreSQL store: %v", err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			return open(), open()
		},
	})
}
