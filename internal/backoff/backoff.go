// Package backoff spreads out retries: of a Store's compare-and-swap, of a
// backend's own conflicts, of the router's writes and feed reconnects.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Sleep sleeps a random time in [unit/2, unit/2 + unit<<min(attempt,
// maxShift)), so that writers racing for one record or counter spread out,
// or returns ctx's error if ctx ends first.
func Sleep(ctx context.Context, attempt int, unit time.Duration, maxShift int) error {
	ceiling := unit << min(attempt, maxShift)
	t := time.NewTimer(unit/2 + rand.N(ceiling))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
