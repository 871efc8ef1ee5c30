//go:build redis

package taskrouter_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// BenchmarkCrossReplicaCancel: a task runs on router A; the task is
// cancelled through router B's store (its own connection pool to the same
// Redis, as another replica's would be); reported is how long until A's
// handler saw its context end, median and 90th percentile. Run:
//
//	eval "$(scripts/redis_up.sh .tmp/redis)"
//	go test -tags redis -run '^$' -bench CrossReplicaCancel -benchtime 50x ./taskrouter/
func BenchmarkCrossReplicaCancel(b *testing.B) {
	sa, sb := openRedisStores(b, taskstore.Config{})
	ra := taskrouter.New(sa, taskrouter.Options{Logger: quiet})
	defer ra.Shutdown(context.Background())
	time.Sleep(200 * time.Millisecond) // A's change feed subscribed
	var lat []time.Duration
	for b.Loop() {
		started, stopped := make(chan struct{}), make(chan time.Time, 1)
		rec, err := ra.Start(b.Context(), taskrouter.StartRequest{Owner: "alice", Method: "tools/call"}, func(ctx context.Context) taskrouter.Outcome {
			close(started)
			<-ctx.Done()
			stopped <- time.Now()
			return taskrouter.Outcome{Result: json.RawMessage(`{}`)}
		})
		if err != nil {
			b.Fatal(err)
		}
		<-started
		at := time.Now()
		if _, err := sb.Cancel(b.Context(), "alice", rec.Task.TaskID); err != nil {
			b.Fatal(err)
		}
		select {
		case end := <-stopped:
			lat = append(lat, end.Sub(at))
		case <-time.After(10 * time.Second):
			b.Fatal("the handler on A did not stop within 10 s of the cancel on B")
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "cancel-ms-p50")
	b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "cancel-ms-p90")
}
