package mcptasks

import (
	"errors"
	"testing"

	"github.com/mcptasks/mcptasks/internal/rawfloor"
)

func TestRawFloorMemoryHasNone(t *testing.T) {
	b, err := OpenBackend(t.Context(), "memory://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if _, _, err := rawfloor.Open(t.Context(), b, 100); !errors.Is(err, rawfloor.ErrUnsupported) {
		t.Fatalf("rawfloor.Open(memory) = %v, want ErrUnsupported", err)
	}
	if _, _, err := rawfloor.OpenBatch(t.Context(), b, 10, 100); !errors.Is(err, rawfloor.ErrUnsupported) {
		t.Fatalf("rawfloor.OpenBatch(memory) = %v, want ErrUnsupported", err)
	}
}
