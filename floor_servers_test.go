//go:build redis || dynamodb || postgres

package mcptasks

import (
	"context"
	"testing"

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
