//go:build dynamodb

package taskrouter_test

import (
	"context"
	"net/url"
	"os"
	"testing"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

// With -tags dynamodb, the replica tests also run over one DynamoDB Local
// (MCPTASKS_TEST_DYNAMODB_ENDPOINT) shared by two stores, in a fresh table.
func init() {
	sharedBackends = append(sharedBackends, sharedBackend{
		name: "dynamodb",
		open: func(t *testing.T, cfg taskstore.Config) (*taskstore.Store, *taskstore.Store) {
			endpoint := requireEnv(t, "MCPTASKS_TEST_DYNAMODB_ENDPOINT")
			for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_EC2_METADATA_DISABLED": "true"} {
				if os.Getenv(k) == "" {
					t.Setenv(k, v)
				}
			}
			table := "router-test" + randomSuffix()
			openTable := func(create bool) *taskstore.Store {
				q2 := url.Values{"endpoint": {endpoint}, "region": {"us-east-1"}}
				if create {
					q2.Set("create_table", "true")
				}
				s, err := mcptasks.Open(context.Background(), "dynamodb://"+table+"?"+q2.Encode(), cfg)
				if err != nil {
					t.Fatalf("opening the DynamoDB store: %v", err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			return openTable(true), openTable(false)
		},
	})
}
