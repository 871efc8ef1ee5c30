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
