package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mcptasks/mcptasks/taskstore"
)

// RunBenchmarks measures the Store's operations over a backend, each
// sequentially and in parallel (b.RunParallel; scale callers with
// -cpu or b.SetParallelism before calling). listSizes are the numbers of
// tasks the owner holds in the list-page benchmarks (default 100 and
// 100,000): a page should cost the same for both.
func RunBenchmarks(b *testing.B, newBackend NewBackend, listSizes ...int) {
	if len(listSizes) == 0 {
		listSizes = []int{100, 100_000}
	}
	// One store for all sub-benchmarks: a sub-benchmark's function runs once
	// per b.N round, and setup (above all filling 100,000 tasks) must not.
	s := taskstore.New(newBackend(b), taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	ops := []struct {
		name string
		// setup prepares one caller; the returned func runs one operation.
		setup func(b *testing.B, s *taskstore.Store) func(ctx context.Context, i int) error
	}{
		{"Create", func(b *testing.B, s *taskstore.Store) func(context.Context, int) error {
			return func(ctx context.Context, _ int) error {
				_, err := s.Create(ctx, "bench", toolCall)
				return err
			}
		}},
		{"Get", func(b *testing.B, s *taskstore.Store) func(context.Context, int) error {
			id := create(b, s, "bench").Task.TaskID
			return func(ctx context.Context, _ int) error {
				_, err := s.Get(ctx, "bench", id)
				return err
			}
		}},
		{"UpdateStatus", func(b *testing.B, s *taskstore.Store) func(context.Context, int) error {
			id := create(b, s, "bench").Task.TaskID
			next := [2]taskstore.Status{taskstore.StatusInputRequired, taskstore.StatusWorking}
			return func(ctx context.Context, i int) error {
				_, err := s.UpdateStatus(ctx, "bench", id, next[i%2], "")
				return err
			}
		}},
		{"SetVariables", func(b *testing.B, s *taskstore.Store) func(context.Context, int) error {
			id := create(b, s, "bench").Task.TaskID
			return func(ctx context.Context, i int) error {
				_, err := s.SetVariables(ctx, "bench", id, map[string]json.RawMessage{"progress": json.RawMessage(fmt.Sprint(i))})
				return err
			}
		}},
	}
	for _, op := range ops {
		b.Run(op.name, func(b *testing.B) {
			run := op.setup(b, s)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if err := run(b.Context(), i); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(op.name+"Parallel", func(b *testing.B) {
			var mu sync.Mutex
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock() // setup uses b, which is not safe for concurrent use
				run := op.setup(b, s)
				mu.Unlock()
				for i := 0; pb.Next(); i++ {
					if err := run(context.Background(), i); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	for _, n := range listSizes {
		owner := fmt.Sprint("list", n)
		fill(b, s, owner, n)
		b.Run(fmt.Sprintf("ListPage50/owner=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				p, err := s.List(b.Context(), owner, "", 50)
				if err != nil || len(p.Tasks) != min(50, n) {
					b.Fatalf("List: %d tasks, %v", len(p.Tasks), err)
				}
			}
		})
		b.Run(fmt.Sprintf("ListPage50Parallel/owner=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.List(context.Background(), owner, "", 50); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// fill creates n tasks for owner with a few concurrent writers.
func fill(b *testing.B, s *taskstore.Store, owner string, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := s.Create(context.Background(), owner, toolCall); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatalf("filling %d tasks: %v", n, err)
	}
}
