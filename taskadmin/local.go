package taskadmin

import (
	"maps"
	"sync"
	"time"
)

// Local holds what the Router in this process reports through its
// Observer, for the overview: the change feed's state and the heartbeat
// ages of the other replicas as that Router measures them (at each of its
// heartbeats, so more precisely than the page can). Its zero value is
// ready; pass its methods to the Router's Observer, chained with any other
// observer's:
//
//	var local taskadmin.Local
//	router := taskrouter.New(store, taskrouter.Options{Observer: taskrouter.Observer{
//		Feed: local.Feed, Heartbeats: local.Heartbeats}})
//	admin := taskadmin.New(taskstore.NewRuntime(store), taskadmin.Options{Local: &local, Runner: router.Runner()})
type Local struct {
	mu     sync.Mutex
	feed   feedState
	ages   map[string]time.Duration
	agesAt time.Time // when ages were reported; zero when unknown
}

type feedState int8

const (
	feedUnknown feedState = iota
	feedUp
	feedDown
)

// Feed records the change feed's state (taskrouter.Observer.Feed).
func (l *Local) Feed(up bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.feed = feedDown
	if up {
		l.feed = feedUp
	}
}

// Heartbeats records the other replicas' heartbeat ages
// (taskrouter.Observer.Heartbeats); nil means unknown. It keeps a copy of
// ages, so the map may go on to another observer.
func (l *Local) Heartbeats(ages map[string]time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ages == nil {
		l.ages, l.agesAt = nil, time.Time{}
		return
	}
	l.ages, l.agesAt = maps.Clone(ages), time.Now()
}

// state returns the feed state, the other replicas' ages, and this
// replica's own (the time since the Router last reported, after a
// heartbeat of its own). Both are nil when unknown, or reported longer
// than stale ago (the Router's heartbeats fail or it stopped).
func (l *Local) state(now time.Time, stale time.Duration) (feedState, map[string]time.Duration, *time.Duration) {
	if l == nil {
		return feedUnknown, nil, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	since := max(now.Sub(l.agesAt), 0)
	if l.agesAt.IsZero() || since > stale {
		return l.feed, nil, nil
	}
	out := make(map[string]time.Duration, len(l.ages))
	for r, a := range l.ages {
		out[r] = a + since
	}
	return l.feed, out, &since
}

// beatClock turns the beat counters the page reads into ages: how long ago
// the page first read each runner's current counter. Without a Router's
// ages (Local) that is all the page knows; a runner read for the first
// time has no age yet.
type beatClock struct {
	mu   sync.Mutex
	seen map[string]observedBeat
}

type observedBeat struct {
	beat  uint64
	since time.Time
}

// age records beat for runner at now and returns the runner's age, or
// false when the page saw this runner for the first time.
func (c *beatClock) age(runner string, beat uint64, now time.Time) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.seen[runner]
	if !ok || o.beat != beat {
		c.seen[runner] = observedBeat{beat: beat, since: now}
		if !ok {
			return 0, false
		}
		// Moved since the last read: it beat at some time in between.
		return 0, true
	}
	return now.Sub(o.since), true
}

// forget drops the runners no longer registered (keep reports whether a
// runner is), so the map holds only what the store lists.
func (c *beatClock) forget(keep func(string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for r := range c.seen {
		if !keep(r) {
			delete(c.seen, r)
		}
	}
}
