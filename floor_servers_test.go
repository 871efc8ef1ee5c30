//go:build redis || dynamodb || postgres

package mcptasks

import (
	"testing"

	"github.com/mcptasks/mcptasks/internal/rawfloor"
)

// testRawFloor (each server backend's test runs it; memory has no floor):
// the floor reads, leaves the backend's records alone and cleans up after
// itself.
func testRawFloor(t *testing.T, b rawfloor.Floorer) {
	ctx := t.Context()
	read, cleanup, err := b.RawFloor(ctx, "test", 400)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := read(ctx); err != nil {
			t.Fatalf("floor read: %v", err)
		}
	}
	if err := cleanup(ctx); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
}
