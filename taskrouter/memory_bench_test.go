package taskrouter_test

import (
	"context"
	"os"
	"testing"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/internal/runcost"
	"github.com/mcptasks/mcptasks/taskstore"
)

// BenchmarkRunningTaskMemory: what 5,000 running tasks hold, per task, in
// live heap (after a GC) and goroutine stacks: started through
// Router.Start (this module alone), and through a go-sdk server's
// task-augmented tools/call (adding the SDK's request, which the run
// holds). The memory store's own record of each task is measured apart
// (storedB/task) and left out of heapB/task. Each iteration measures
// 5,000 tasks anew:
//
//	go test -run '^$' -bench RunningTaskMemory -benchtime 3x ./taskrouter/
//	MCPTASKS_BENCH_STORE='redis://127.0.0.1:6379?prefix=bench:' go test -tags redis -run '^$' -bench RunningTaskMemory -benchtime 3x ./taskrouter/
func BenchmarkRunningTaskMemory(b *testing.B) {
	const n = 5000
	storeURL := "memory://"
	if u := os.Getenv("MCPTASKS_BENCH_STORE"); u != "" {
		storeURL = u // e.g. a redis:// URL, with -tags redis
	}
	for _, path := range []struct {
		name    string
		measure func(*runcost.Env, context.Context, int) (runcost.Memory, error)
	}{
		{"Router.Start", (*runcost.Env).StartMemory},
		{"gosdk-tools-call", (*runcost.Env).SDKMemory},
	} {
		b.Run(path.name, func(b *testing.B) {
			backend, err := mcptasks.OpenBackend(b.Context(), storeURL)
			if err != nil {
				b.Fatal(err)
			}
			defer backend.Close()
			env := runcost.NewEnv(backend, taskstore.Config{})
			var sum runcost.Memory
			iters := 0
			for b.Loop() {
				m, err := path.measure(env, b.Context(), n)
				if err != nil {
					b.Fatal(err)
				}
				sum.HeapPerTask += m.HeapPerTask
				sum.StackPerTask += m.StackPerTask
				sum.GoroutinesPerTask += m.GoroutinesPerTask
				sum.StoredPerTask += m.StoredPerTask
				iters++
			}
			per := float64(iters)
			b.ReportMetric(sum.HeapPerTask/per, "heapB/task")
			b.ReportMetric(sum.StackPerTask/per, "stackB/task")
			b.ReportMetric(sum.GoroutinesPerTask/per, "goroutines/task")
			b.ReportMetric(sum.StoredPerTask/per, "storedB/task")
		})
	}
}
