package mcptasks

import (
	"errors"
	"testing"
)

func TestRawFloorMemoryHasNone(t *testing.T) {
	b, err := OpenBackend(t.Context(), "memory://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if _, _, err := RawFloor(t.Context(), b, 100); !errors.Is(err, ErrNoFloor) {
		t.Fatalf("RawFloor(memory) = %v, want ErrNoFloor", err)
	}
}

// testRawFloor: the floor reads, leaves the backend's records alone and
// cleans up after itself.
func testRawFloor(t *testing.T, b rawFloorer) {
	ctx := t.Context()
	read, cleanup, err := b.rawFloor(ctx, "test", 400)
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
