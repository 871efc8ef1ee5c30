package mcptasks_test

import (
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
	"github.com/mcptasks/mcptasks/taskstore/storetest"
)

func newMemory(t testing.TB) taskstore.Backend {
	b, err := mcptasks.OpenBackend(t.Context(), "memory://?sweep=50ms")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestMemoryConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, newMemory)
}

func BenchmarkMemory(b *testing.B) {
	storetest.RunBenchmarks(b, newMemory)
}

// BenchmarkMapFloor is the floor the memory backend is compared with: the
// same reads and writes on a plain mutex-guarded map of byte slices, with
// a record-sized document and no JSON.
func BenchmarkMapFloor(b *testing.B) {
	doc := make([]byte, 420) // about the size of a stored task record
	type floor struct {
		mu sync.Mutex
		m  map[string][]byte
	}
	get := func(f *floor, k string) []byte {
		f.mu.Lock()
		defer f.mu.Unlock()
		return slices.Clone(f.m[k])
	}
	put := func(f *floor, k string, v []byte) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.m[k] = slices.Clone(v)
	}
	b.Run("Get", func(b *testing.B) {
		f := &floor{m: map[string][]byte{"k": doc}}
		b.ReportAllocs()
		for b.Loop() {
			get(f, "k")
		}
	})
	b.Run("GetParallel", func(b *testing.B) {
		f := &floor{m: map[string][]byte{"k": doc}}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				get(f, "k")
			}
		})
	})
	b.Run("Put", func(b *testing.B) {
		f := &floor{m: map[string][]byte{}}
		b.ReportAllocs()
		for b.Loop() {
			put(f, "k", doc)
		}
	})
	b.Run("PutParallel", func(b *testing.B) {
		f := &floor{m: map[string][]byte{}}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				put(f, "k", doc)
			}
		})
	})
}

// TestMemoryCloseStopsSweeper: no goroutine outlives Close. It counts
// sweeper goroutines by their stacks, so goroutines of other tests that
// come and go meanwhile do not matter.
func TestMemoryCloseStopsSweeper(t *testing.T) {
	sweepers := func() int {
		buf := make([]byte, 1<<22)
		return strings.Count(string(buf[:runtime.Stack(buf, true)]), "(*memoryBackend).sweepLoop")
	}
	// Goroutines start and finish asynchronously: poll for each count.
	waitFor := func(what string, want func(n int) bool) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); !want(sweepers()); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d sweepers", what, sweepers())
			}
		}
	}
	// Every store other tests opened is closed by now (parallel tests run later).
	waitFor("before", func(n int) bool { return n == 0 })
	var stores []*taskstore.Store
	for range 20 {
		s, err := mcptasks.Open(t.Context(), "memory://?sweep=1ms", taskstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	waitFor("20 stores open", func(n int) bool { return n == 20 })
	for _, s := range stores {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("all closed", func(n int) bool { return n == 0 })
}

// TestMemorySweepFreesExpired: expired tasks leave memory without any call.
func TestMemorySweepFreesExpired(t *testing.T) {
	b, err := mcptasks.OpenBackend(t.Context(), "memory://?sweep=10ms")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := taskstore.New(b, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	ttl := 50 * time.Millisecond
	for range 1000 {
		if _, err := s.Create(t.Context(), "alice", taskstore.CreateRequest{RequestMethod: "tools/call", TTL: &ttl}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for mcptasks.MemoryRecords(b) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d expired records still held", mcptasks.MemoryRecords(b))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkMemoryHeapPerTask reports the heap a finished task keeps on the
// memory backend: a tools/call task with its tool name and arguments as
// variables and a short text result.
func BenchmarkMemoryHeapPerTask(b *testing.B) {
	const n = 20_000
	for b.Loop() {
		store, err := mcptasks.Open(b.Context(), "memory://?sweep=0", taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			owner := fmt.Sprint("user-", i%100)
			r, err := store.Create(b.Context(), owner, taskstore.CreateRequest{
				RequestMethod: "tools/call",
				Variables: map[string]json.RawMessage{
					"tool": json.RawMessage(`"sleep"`), "arguments": json.RawMessage(`{"seconds":1}`)},
			})
			if err != nil {
				b.Fatal(err)
			}
			result := json.RawMessage(`{"content":[{"type":"text","text":"slept 1s"}]}`)
			if _, err := store.CompleteWithResult(b.Context(), owner, r.Task.TaskID, taskstore.StatusCompleted, "", result); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heapB/task")
		runtime.KeepAlive(store)
		store.Close()
	}
}

// TestMemoryHasStatusIndex: every backend implements the optional
// StatusIndex, memory first; without it the conformance group
// StatusIndex would only skip.
func TestMemoryHasStatusIndex(t *testing.T) {
	if _, ok := newMemory(t).(taskstore.StatusIndex); !ok {
		t.Fatal("the memory backend does not implement taskstore.StatusIndex")
	}
}

// BenchmarkMemoryListByStatus: a page of 50 from the middle of one
// status's index, and a status change, at 1,000 and at 100,000 records:
// O(limit + log n) and O(log n), so the larger store costs only what
// deeper trees and colder caches add, nothing like the 100-fold a scan
// would.
func BenchmarkMemoryListByStatus(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		m := mcptasks.NewMemoryBackend(0)
		si := m.(taskstore.StatusIndex)
		var mid taskstore.Key
		for i := range n {
			r := taskstore.Record{Owner: fmt.Sprint("o", i%100), TaskID: taskid.New(time.Now()), Data: []byte(`{}`),
				Active: true, Status: taskstore.StatusWorking}
			if err := m.Create(b.Context(), r, taskstore.Limits{}); err != nil {
				b.Fatal(err)
			}
			if i == n/2 {
				mid = taskstore.Key{Owner: r.Owner, TaskID: r.TaskID}
			}
		}
		b.Run(fmt.Sprint("Page50/n=", n), func(b *testing.B) {
			for b.Loop() {
				if recs, _, err := si.ListByStatus(b.Context(), taskstore.StatusWorking, mid, 50); err != nil || len(recs) != 50 {
					b.Fatal(len(recs), err)
				}
			}
		})
		b.Run(fmt.Sprint("StatusChange/n=", n), func(b *testing.B) {
			r, err := m.Get(b.Context(), mid.Owner, mid.TaskID)
			if err != nil {
				b.Fatal(err)
			}
			next := [2]taskstore.Status{taskstore.StatusInputRequired, taskstore.StatusWorking}
			for i := 0; b.Loop(); i++ {
				r.Status = next[i%2]
				if r.Version, err = m.Update(b.Context(), r, r.Version); err != nil {
					b.Fatal(err)
				}
			}
		})
		m.Close()
	}
}
