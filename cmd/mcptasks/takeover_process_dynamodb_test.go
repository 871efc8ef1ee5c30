//go:build dynamodb

package main

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// BenchmarkTakeoverAtScaleDynamoDB: see benchTakeover. DynamoDB Local
// keeps no request counts, so the replicas reach it through a proxy in
// the test that counts each request by its operation; the test itself
// polls versions around it (DynamoDB has no change feed). Run:
//
//	eval "$(scripts/dynamodb_up.sh .tmp/ddb)"
//	go test -tags dynamodb -run '^$' -bench TakeoverAtScaleDynamoDB -benchtime 1x -count 3 -timeout 60m ./cmd/mcptasks/
func BenchmarkTakeoverAtScaleDynamoDB(b *testing.B) {
	ep := testServerEnv(b, "MCPTASKS_TEST_DYNAMODB_ENDPOINT", "scripts/dynamodb_up.sh")
	target, err := url.Parse(ep)
	if err != nil {
		b.Fatal(err)
	}
	benchTakeover(b, func(b *testing.B) takeoverStore {
		c := &ddbCounter{counts: map[string]int64{}}
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.ErrorHandler = func(w http.ResponseWriter, req *http.Request, err error) {
			if req.Context().Err() == nil { // else a replica killed mid-request
				b.Logf("proxy: %v", err)
			}
			w.WriteHeader(http.StatusBadGateway)
		}
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			op := strings.TrimPrefix(req.Header.Get("X-Amz-Target"), "DynamoDB_20120810.")
			c.mu.Lock()
			c.counts[op]++
			c.mu.Unlock()
			rp.ServeHTTP(w, req)
		}))
		b.Cleanup(proxy.Close)
		table := "takeover_" + randomSuffix()
		return takeoverStore{tags: "dynamodb",
			replicaURL: "dynamodb://" + table + "?region=us-east-1&create_table=true&endpoint=" + url.QueryEscape(proxy.URL),
			probeURL:   "dynamodb://" + table + "?region=us-east-1&endpoint=" + url.QueryEscape(ep),
			counter:    c,
			counted:    "the replicas' requests by operation, counted by a proxy: each a round trip"}
	})
}

type ddbCounter struct {
	mu     sync.Mutex
	counts map[string]int64
}

func (c *ddbCounter) Counts(testing.TB) map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}
