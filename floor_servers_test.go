//go:build redis || dynamodb || postgres

package mcptasks

import (
	"context"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/internal/rawfloor"
)

// testRawFloor (each server backend's test runs it; memory has no floor):
// the floor reads, and the batch floor, where there is one, writes; both
// leave the backend's records alone and clean up after themselves.
func testRawFloor(t *testing.T, b rawfloor.Floorer) {
	floorWorks(t, "floor read")(b.RawFloor(t.Context(), "test", 400))
	if bf, ok := b.(rawfloor.BatchFloorer); ok {
		floorWorks(t, "floor batch write")(bf.RawBatchFloor(t.Context(), "test", 50, 400))
	}
}

// floorWorks returns a check of what a floor's constructor returned: it
// was made, its operation runs three times, its cleanup runs.
func floorWorks(t *testing.T, what string) func(op, cleanup func(context.Context) error, err error) {
	return func(op, cleanup func(context.Context) error, err error) {
		t.Helper()
		ctx := t.Context()
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := op(ctx); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		if err := cleanup(ctx); err != nil {
			t.Fatalf("cleanup: %v", err)
		}
	}
}

// reportBatchPhases reports the phases of a batch benchmark measured
// against a phase named "floor" (rawfloor.OpenBatch), by the same names on
// every backend: each phase's updates/s and round trips per update, and
// the others' rate and round trips as ratios to the floor's. spent, done
// and trips hold each phase's time, updates and round trips.
func reportBatchPhases(b *testing.B, phases []string, spent map[string]time.Duration, done map[string]int, trips map[string]int64) {
	rate := func(name string) float64 { return float64(done[name]) / spent[name].Seconds() }
	perUpdate := func(name string) float64 { return float64(trips[name]) / float64(done[name]) }
	for _, name := range phases {
		b.ReportMetric(rate(name), name+"-updates/s")
		b.ReportMetric(perUpdate(name), name+"-roundtrips/update")
		if name != "floor" {
			b.ReportMetric(rate(name)/rate("floor"), name+"-rate/floor")
			b.ReportMetric(perUpdate(name)/perUpdate("floor"), name+"-roundtrips/floor")
		}
	}
	b.ReportMetric(0, "ns/op")
}
