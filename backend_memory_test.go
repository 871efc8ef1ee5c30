package mcptasks_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/mcptasks/mcptasks"
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
