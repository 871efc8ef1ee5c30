//go:build redis

package main

import (
	"context"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	mg "github.com/mark3labs/mcp-go/mcp"
	"github.com/redis/go-redis/v9"
)

// Cross-replica costs over a real Redis, two serve processes. Run:
//
//	eval "$(scripts/redis_up.sh .tmp/redis)"
//	go test -tags redis -run '^$' -bench CrossReplica -benchtime 40x ./cmd/mcptasks/

func benchRedis(b *testing.B) (storeURL string, raw *redis.Client) {
	u := os.Getenv("MCPTASKS_TEST_REDIS_URL")
	if u == "" {
		b.Skip("MCPTASKS_TEST_REDIS_URL is not set; run scripts/redis_up.sh")
	}
	pu, err := url.Parse(u)
	if err != nil {
		b.Fatal(err)
	}
	raw = redis.NewClient(&redis.Options{Addr: pu.Host})
	b.Cleanup(func() { raw.Close() })
	return u + "?prefix=bench-" + randomSuffix() + ":", raw
}

// BenchmarkCrossReplicaWake: a task runs on A; a tasks/result blocked on
// B answers. Reported: how long after the task ended (its lastUpdatedAt,
// same host clock) B's answer arrived, median and 90th percentile.
func BenchmarkCrossReplicaWake(b *testing.B) {
	storeURL, _ := benchRedis(b)
	bin := serveBinary(b, "redis")
	const token = "secret-b"
	args := []string{"--store", storeURL, "--token", "alice:" + token}
	a, rb := startReplica(b, bin, args...), startReplica(b, bin, args...)
	onB := connect(b, rb.url, token)
	var lat []time.Duration
	for b.Loop() {
		_, res := modernCall(b, a.url, token, "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 0.2}}, "slow_compute")
		id := field[string](b, res["result"], "taskId")
		if _, err := onB.TaskResult(b.Context(), mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: id}}); err != nil {
			b.Fatal(err)
		}
		got := time.Now()
		task, err := onB.GetTask(b.Context(), mg.GetTaskRequest{Params: mg.GetTaskParams{TaskId: id}})
		if err != nil {
			b.Fatal(err)
		}
		ended, err := time.Parse(time.RFC3339Nano, task.LastUpdatedAt)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, got.Sub(ended))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "wake-ms-p50")
	b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "wake-ms-p90")
}

// BenchmarkCrossReplicaStoreLoad: N tasks run on A, a tasks/result waits
// on each on B; reported: Redis commands per second over a 5 s window
// (INFO commandstats), which push and per-replica heartbeats keep
// independent of N.
func BenchmarkCrossReplicaStoreLoad(b *testing.B) {
	for _, n := range []int{1, 60} {
		b.Run(strconv.Itoa(n)+"tasks", func(b *testing.B) {
			storeURL, raw := benchRedis(b)
			bin := serveBinary(b, "redis")
			const token = "secret-l"
			args := []string{"--store", storeURL, "--token", "alice:" + token}
			a, rb := startReplica(b, bin, args...), startReplica(b, bin, args...)
			onB := connect(b, rb.url, token)
			ctx, cancel := context.WithCancel(b.Context())
			defer cancel()
			for range n {
				_, res := modernCall(b, a.url, token, "tools/call", map[string]any{"name": "slow_compute", "arguments": map[string]any{"seconds": 600}}, "slow_compute")
				id := field[string](b, res["result"], "taskId")
				go onB.TaskResult(ctx, mg.TaskResultRequest{Params: mg.TaskResultParams{TaskId: id}})
			}
			time.Sleep(time.Second) // every waiter blocked
			const window = 5 * time.Second
			for b.Loop() {
				before := redisCalls(b, raw)
				time.Sleep(window)
				after := redisCalls(b, raw)
				b.ReportMetric(float64(after-before)/window.Seconds(), "store-cmds/s")
			}
		})
	}
}

// redisCalls sums the calls of every command the server has counted, less
// the INFO calls that read them.
func redisCalls(b *testing.B, c *redis.Client) int64 {
	var total int64
	for _, n := range redisCommandStats(b, c) {
		total += n
	}
	return total
}

// redisCommandStats reads INFO commandstats: the calls of each command
// (lower case, as Redis names them) the server has counted, less the INFO
// calls that read them. Commands a script runs count too.
func redisCommandStats(tb testing.TB, c *redis.Client) map[string]int64 {
	info, err := c.Info(tb.Context(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(line, "cmdstat_") || name == "info" {
			continue
		}
		i := strings.Index(rest, "calls=")
		j := strings.Index(rest[i:], ",")
		n, _ := strconv.ParseInt(rest[i+6:i+j], 10, 64)
		out[name] = n
	}
	return out
}
