package taskstore

import (
	"sync"
	"time"
)

// createLimiter is a token bucket per owner for task creation. It is per
// Store, so a deployment of N replicas admits up to N times the rate.
type createLimiter struct {
	rate  float64 // tokens per second
	burst float64
	mu    sync.Mutex
	byOwn map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxIdleBuckets bounds memory: past it, full (idle) buckets are dropped,
// which changes nothing since a new bucket starts full.
const maxIdleBuckets = 10_000

func newCreateLimiter(perSecond float64, burst int) *createLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &createLimiter{rate: perSecond, burst: float64(max(burst, 1)), byOwn: map[string]*bucket{}}
}

// allow takes a token for owner at now, or reports that none is left.
func (l *createLimiter) allow(owner string, now time.Time) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.byOwn[owner]
	if b == nil {
		if len(l.byOwn) >= maxIdleBuckets {
			l.dropFull(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.byOwn[owner] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *createLimiter) dropFull(now time.Time) {
	for o, b := range l.byOwn {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.byOwn, o)
		}
	}
}
