//go:build redis

package main

import (
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
)

// BenchmarkTakeoverAtScaleRedis: see benchTakeover. Run:
//
//	eval "$(scripts/redis_up.sh .tmp/redis)"
//	go test -tags redis -run '^$' -bench TakeoverAtScaleRedis -benchtime 1x -count 3 -timeout 60m ./cmd/mcptasks/
func BenchmarkTakeoverAtScaleRedis(b *testing.B) {
	benchTakeover(b, func(b *testing.B) takeoverStore {
		storeURL, raw := benchRedis(b)
		return takeoverStore{tags: "redis", replicaURL: storeURL, probeURL: storeURL,
			counter: redisCounter{raw}, runnersCmd: "hgetall",
			counted: "INFO commandstats: every command the server ran, the update script's own included",
			derived: redisSent}
	})
}

type redisCounter struct{ c *redis.Client }

func (r redisCounter) Counts(tb testing.TB) map[string]int64 { return redisCommandStats(tb, r.c) }

// redisSent estimates the commands the replicas sent: all but those the
// update script runs itself (GETRANGE, SET, PUBLISH, and the index
// ZADD/ZREM of each task; the sweep's own ZADD and ZREM are one per page
// of 500, under 0.01 per orphan).
func redisSent(perOrphan map[string]float64) string {
	var all, inScript float64
	for name, v := range perOrphan {
		all += v
		switch name {
		case "getrange", "set", "publish", "zadd", "zrem":
			inScript += v
		}
	}
	return fmt.Sprintf("sent-by-replicas≈%.2f in-scripts≈%.2f", all-inScript, inScript)
}
