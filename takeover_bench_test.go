//go:build redis || dynamodb || postgres

package mcptasks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/internal/rawfloor"
	"github.com/mcptasks/mcptasks/taskstore"
)

// benchTakeover measures what a survivor spends on the tasks of a dead
// replica, through the Runtime calls its lease keeper makes: pages of
// RunnerTasks (1,000 at a time) until none is left, each page's tasks
// ended (EndOrphans: plain tasks fail) or claimed (ClaimAll: resumable
// tasks move to the survivor), against the raw batch floor writing as
// many values of the same size, 1,000 at a time (rawfloor.OpenBatch). Each
// round creates n orphans held by "dead" (untimed), then runs the floor,
// the ends and, on n new orphans, the claims. trips counts the backend's
// round trips (its own counter: requests, statements or pipelines). It
// reports orphans/s and round trips per orphan of each phase, and the
// ends' and claims' as ratios to the floor's (reportBatchPhases).
func benchTakeover(b *testing.B, be taskstore.Backend, trips func() int64, n int) {
	const page = 1000
	ctx := b.Context()
	s := taskstore.New(be, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	rt := taskstore.NewRuntime(s)
	orphans := func() int {
		size := 0
		for i := range n {
			rec, err := s.Create(ctx, fmt.Sprintf("owner-%d", i%(n/10)), taskstore.CreateRequest{RequestMethod: "tools/call",
				Runner: "dead", Rerun: []byte(`{"tool":"slow_report","arguments":{"steps":10},"maxAttempts":3}`)})
			if err != nil {
				b.Fatal(err)
			}
			if i == 0 {
				br, err := be.Get(ctx, rec.OwnerID, rec.Task.TaskID)
				if err != nil {
					b.Fatal(err)
				}
				size = len(br.Data)
			}
		}
		return size
	}
	// sweep acts on every task "dead" holds, page by page, as the keeper does.
	sweep := func(act func([]*taskstore.TaskRecord) []taskstore.Written) error {
		for {
			recs, err := rt.RunnerTasks(ctx, "dead", page)
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				return nil
			}
			for i, w := range act(recs) {
				if w.Err != nil {
					return fmt.Errorf("task %s: %w", recs[i].Task.TaskID, w.Err)
				}
			}
		}
	}
	ends := func() error {
		return sweep(func(recs []*taskstore.TaskRecord) []taskstore.Written {
			return rt.EndOrphans(ctx, recs, func(*taskstore.TaskRecord) string { return "the server stopped" })
		})
	}
	claims := func() error {
		return sweep(func(recs []*taskstore.TaskRecord) []taskstore.Written { return rt.ClaimAll(ctx, recs, "alive") })
	}
	b.StopTimer()
	size := orphans()
	write, cleanup, err := rawfloor.OpenBatch(ctx, be, page, size)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cleanup(context.Background()) })
	floor := func() error {
		for range (n + page - 1) / page {
			if err := write(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	spent, done, trip := map[string]time.Duration{}, map[string]int{}, map[string]int64{}
	measure := func(name string, run func() error) {
		before, start := trips(), time.Now()
		b.StartTimer()
		err := run()
		b.StopTimer()
		spent[name] += time.Since(start)
		done[name] += n
		trip[name] += trips() - before
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
	}
	// Unmeasured, on the first orphans: connections made, scripts and
	// statements prepared, a JIT warmed.
	if err := floor(); err != nil {
		b.Fatal(err)
	}
	if err := ends(); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		orphans()
		measure("floor", floor)
		measure("ends", ends)
		orphans()
		measure("claims", claims)
	}
	reportBatchPhases(b, "orphan", []string{"floor", "ends", "claims"}, spent, done, trip)
}
