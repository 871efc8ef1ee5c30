package mcptasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
	"github.com/mcptasks/mcptasks/taskstore/storetest"
)

// This file is the fault tests' shared harness (no build tag, so the
// memory tests below keep it honest in every build): a steady load of
// Store calls from several goroutines, a record of every write the store
// acknowledged, and a goroutine leak check by stack. What only a test
// that kills a real server uses is in faultload_servers_test.go.

// Load phases, in order.
const (
	phaseUp      = iota // server up, before the fault
	phaseDown           // from the kill until the restarted server serves
	phaseRestart        // after that
	numPhases
)

var phaseNames = [numPhases]string{"up", "down", "recovered"}

// faultLoad runs Store calls from workers goroutines until stopped.
type faultLoad struct {
	s        *taskstore.Store
	deadline time.Duration // each call's context deadline

	phase atomic.Int32
	stop  chan struct{}
	wg    sync.WaitGroup
	opts  faultLoadOptions

	mu    sync.Mutex
	acked map[ackKey]ackedWrite // highest acknowledged version per task
	// unsyncedSince, if set, is when the server started acknowledging
	// writes it may lose when killed (see allowUnsynced).
	unsyncedSince time.Time
	unsyncedLost  int
	ackedInPhase  [numPhases]int // acknowledged writes (creates and CASes), by phase
	calls         [numPhases]int
	failed        [numPhases]int // failures other than domain answers
	maxOvershoot  time.Duration  // how far past its deadline the slowest call returned
	slowest       string
	panics        int
	firstErr      [numPhases]error
}

type ackKey struct{ owner, id string }

// faultLoadOptions are what a fault test can change about the load.
type faultLoadOptions struct {
	// owners, if set, are the owners every worker spreads its calls over
	// (a random one per call), so that each worker reaches every shard;
	// by default worker w calls as owner "load-w" only.
	owners []string
	// observe, if set, is told about every call when it ends.
	observe func(loadCall)
}

// loadCall is one Store call of the load, as observe sees it.
type loadCall struct {
	owner, op  string
	start, end time.Time
	err        error
	acked      bool // a write the store acknowledged
}

type ackedWrite struct {
	version uint64
	phase   int // when the call that acknowledged it started
	// every acknowledged version of the task and when it was acknowledged
	acks []ackPoint
}

type ackPoint struct {
	version uint64
	at      time.Time
}

// domainAnswer reports whether err is one of the store's answers about the
// data (as opposed to a failure to reach it).
func domainAnswer(err error) bool {
	return errors.Is(err, taskstore.ErrInvalidTransition) || errors.Is(err, taskstore.ErrNotFound) ||
		errors.Is(err, taskstore.ErrConcurrentModification)
}

// startFaultLoad starts workers goroutines, each with its own owner and
// tasks: creates, variable merges (compare-and-swap), gets, lists and
// cancels, one call after another with no pause.
func startFaultLoad(s *taskstore.Store, workers int, deadline time.Duration) *faultLoad {
	return startFaultLoadWith(s, workers, deadline, faultLoadOptions{})
}

// startFaultLoadWith is startFaultLoad with options.
func startFaultLoadWith(s *taskstore.Store, workers int, deadline time.Duration, opts faultLoadOptions) *faultLoad {
	l := &faultLoad{s: s, deadline: deadline, stop: make(chan struct{}), acked: map[ackKey]ackedWrite{}, maxOvershoot: -deadline, opts: opts}
	for w := range workers {
		l.wg.Go(func() { l.worker(w) })
	}
	return l
}

// Stop ends the load and waits for every call in flight.
func (l *faultLoad) Stop() {
	close(l.stop)
	l.wg.Wait()
}

func (l *faultLoad) worker(w int) {
	owners := l.opts.owners
	if len(owners) == 0 {
		owners = []string{fmt.Sprintf("load-%d", w)}
	}
	rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
	tasks := map[string][]string{} // the tasks this worker made, by owner
	for n := 0; ; n++ {
		select {
		case <-l.stop:
			return
		default:
		}
		owner := owners[rng.IntN(len(owners))]
		ids := tasks[owner]
		r := rng.IntN(100)
		if len(ids) == 0 {
			r = 0
		}
		var id string
		if len(ids) > 0 {
			id = ids[rng.IntN(len(ids))]
		}
		var op string
		var do func(ctx context.Context) (*taskstore.TaskRecord, error)
		switch {
		case r < 25:
			op = "Create"
			do = func(ctx context.Context) (*taskstore.TaskRecord, error) {
				return l.s.Create(ctx, owner, taskstore.CreateRequest{RequestMethod: "tools/call"})
			}
		case r < 55:
			op = "SetVariables"
			do = func(ctx context.Context) (*taskstore.TaskRecord, error) {
				return l.s.SetVariables(ctx, owner, id, map[string]json.RawMessage{"n": json.RawMessage(fmt.Sprint(n))})
			}
		case r < 60:
			op = "Cancel"
			do = func(ctx context.Context) (*taskstore.TaskRecord, error) { return l.s.Cancel(ctx, owner, id) }
		case r < 85:
			op = "Get"
			do = func(ctx context.Context) (*taskstore.TaskRecord, error) { return l.s.Get(ctx, owner, id) }
		default:
			op = "List"
			do = func(ctx context.Context) (*taskstore.TaskRecord, error) {
				_, err := l.s.List(ctx, owner, "", 20)
				return nil, err
			}
		}
		rec, err := l.call(owner, op, do)
		if err == nil && op == "Create" {
			tasks[owner] = append(ids, rec.Task.TaskID)
		}
	}
}

// call runs one call under the deadline and records how it ended.
func (l *faultLoad) call(owner, op string, do func(ctx context.Context) (*taskstore.TaskRecord, error)) (rec *taskstore.TaskRecord, err error) {
	phase := int(l.phase.Load())
	ctx, cancel := context.WithTimeout(context.Background(), l.deadline)
	defer cancel()
	start := time.Now()
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic in %s: %v", op, p)
				l.mu.Lock()
				l.panics++
				l.mu.Unlock()
			}
		}()
		rec, err = do(ctx)
	}()
	end := time.Now()
	over := end.Sub(start) - l.deadline
	acked := err == nil && rec != nil && op != "Get"
	if l.opts.observe != nil {
		l.opts.observe(loadCall{owner: owner, op: op, start: start, end: end, err: err, acked: acked})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[phase]++
	if over > l.maxOvershoot {
		l.maxOvershoot, l.slowest = over, op
	}
	switch {
	case acked:
		// Create, SetVariables and Cancel write: the store acknowledged
		// rec.Version of this task.
		l.ackLocked(ackKey{rec.OwnerID, rec.Task.TaskID}, rec.Version, phase, time.Now())
		l.ackedInPhase[phase]++
	case err != nil && !domainAnswer(err):
		l.failed[phase]++
		if l.firstErr[phase] == nil {
			l.firstErr[phase] = err
		}
	}
	return rec, err
}

// verifyAcked reads every task the store acknowledged a write to and
// counts those missing or below their acknowledged version.
func (l *faultLoad) verifyAcked(t *testing.T, s *taskstore.Store) (checked, lost int) {
	t.Helper()
	checked, losses := l.countAcked(t, s)
	for _, msg := range losses {
		t.Errorf("acknowledged write lost: %s", msg)
	}
	return checked, len(losses)
}

// ackLocked records that the store acknowledged version of task k at at.
func (l *faultLoad) ackLocked(k ackKey, version uint64, phase int, at time.Time) {
	a := l.acked[k]
	if version > a.version {
		a.version, a.phase = version, phase
	}
	a.acks = append(a.acks, ackPoint{version, at})
	l.acked[k] = a
}

// allowUnsynced says that the writes the server acknowledges from since
// on may be lost when it is killed: it answers before its write is
// stored. Their losses are counted apart (unsyncedLost), not as losses.
func (l *faultLoad) allowUnsynced(since time.Time) {
	l.mu.Lock()
	l.unsyncedSince = since
	l.mu.Unlock()
}

// countAcked reads every task the store acknowledged a write to and
// describes each one missing or below its acknowledged version, for tests
// where a loss is a measured outcome rather than a failure.
func (l *faultLoad) countAcked(t *testing.T, s *taskstore.Store) (checked int, losses []string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, a := range l.acked {
		// need: the highest version acknowledged before the server could
		// lose writes (all of them when it never could).
		need := a.version
		if !l.unsyncedSince.IsZero() {
			need = 0
			for _, p := range a.acks {
				if p.at.Before(l.unsyncedSince) {
					need = max(need, p.version)
				}
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		got, err := s.Get(ctx, k.owner, k.id)
		cancel()
		checked++
		var have uint64
		switch {
		case errors.Is(err, taskstore.ErrNotFound):
		case err != nil:
			t.Fatalf("reading back task %s: %v", k.id, err)
		default:
			have = got.Version
		}
		switch {
		case have < need && have == 0:
			losses = append(losses, fmt.Sprintf("task %s v%d (acknowledged in phase %s) is gone", k.id, need, phaseNames[a.phase]))
		case have < need:
			losses = append(losses, fmt.Sprintf("task %s is at v%d, v%d was acknowledged (phase %s)", k.id, have, need, phaseNames[a.phase]))
		case have < a.version:
			l.unsyncedLost++
			t.Logf("task %s: v%d, acknowledged just before the kill, is lost (at v%d): the server's own", k.id, a.version, have)
		}
	}
	return checked, losses
}

// summary is one human line per phase.
func (l *faultLoad) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for p := range numPhases {
		fmt.Fprintf(&b, "%s: %d calls, %d failed, %d writes acknowledged", phaseNames[p], l.calls[p], l.failed[p], l.ackedInPhase[p])
		if l.firstErr[p] != nil {
			fmt.Fprintf(&b, " (first failure: %v)", l.firstErr[p])
		}
		b.WriteString("; ")
	}
	fmt.Fprintf(&b, "slowest call %s, %v past its deadline", l.slowest, l.maxOvershoot.Round(time.Millisecond))
	return b.String()
}

// goroutineKinds counts the goroutines running now by kind: the function
// that started them and the first frame outside the runtime.
func goroutineKinds() map[string]int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	kinds := map[string]int{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		lines := strings.Split(strings.TrimSpace(g), "\n")
		// The test's own goroutines, and those os/exec runs for the
		// servers a test starts, are not the store's.
		if len(lines) < 2 || strings.Contains(g, "testing.tRunner") || strings.Contains(g, "testing.(*F).Fuzz") ||
			strings.Contains(g, "os/exec.") {
			continue
		}
		top, creator := "", ""
		for _, ln := range lines[1:] {
			if strings.HasPrefix(ln, "\t") {
				continue // file:line
			}
			if strings.HasPrefix(ln, "created by ") {
				creator = goroutineIDs.ReplaceAllString(strings.TrimPrefix(ln, "created by "), "")
				continue
			}
			fn := ln[:max(strings.LastIndex(ln, "("), 0)]
			if top == "" && !strings.HasPrefix(fn, "runtime.") && !strings.HasPrefix(fn, "internal/") {
				top = fn
			}
		}
		kinds[top+" <- "+creator]++
	}
	return kinds
}

var goroutineIDs = regexp.MustCompile(` in goroutine \d+`)

// checkNoGoroutineLeak polls until no kind of goroutine is more numerous
// than in before, and fails naming the extra ones if that takes too long.
// Kinds that ignore reports true for are not counted.
func checkNoGoroutineLeak(t *testing.T, before map[string]int, within time.Duration, ignore ...func(kind string) bool) {
	t.Helper()
	var extra []string
	for deadline := time.Now().Add(within); ; time.Sleep(10 * time.Millisecond) {
		extra = extra[:0]
		for k, n := range goroutineKinds() {
			if slices.ContainsFunc(ignore, func(f func(string) bool) bool { return f(k) }) {
				continue
			}
			if n > before[k] {
				extra = append(extra, fmt.Sprintf("%d more: %s", n-before[k], k))
			}
		}
		if len(extra) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	slices.Sort(extra)
	t.Fatalf("goroutines left %v after Close:\n%s", within, strings.Join(extra, "\n"))
}

// TestFaultLoadHarness runs the load against the memory backend without a
// fault: every write it counts is there, every call is on time, and
// closing the store leaves no goroutine behind.
func TestFaultLoadHarness(t *testing.T) {
	before := goroutineKinds()
	b, err := OpenBackend(t.Context(), "memory://?sweep=10ms")
	if err != nil {
		t.Fatal(err)
	}
	s := taskstore.New(b, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	l := startFaultLoad(s, 8, time.Second)
	time.Sleep(200 * time.Millisecond)
	l.Stop()
	checked, lost := l.verifyAcked(t, s)
	if checked == 0 || lost != 0 || l.failed[phaseUp] != 0 || l.panics != 0 {
		t.Fatalf("%d acknowledged tasks, %d lost; %s", checked, lost, l.summary())
	}
	s.Close()
	// The memory backend makes no HTTP connection: one an HTTP client of
	// an earlier test of the package is still dialing (seen in a loaded
	// matrix run, its readLoop started after before was taken) is not its.
	httpClients := func(kind string) bool { return strings.Contains(kind, "net/http.(*Transport)") }
	checkNoGoroutineLeak(t, before, 2*time.Second, httpClients)
	t.Logf("%s", l.summary())
	storetest.Report(t, "acked_writes", l.ackedInPhase[phaseUp], "acked_tasks_checked", checked, "acked_writes_lost", lost,
		"max_overshoot_ms", l.maxOvershoot.Milliseconds())
}

// TestFaultLoadUnsynced: with allowUnsynced, a write acknowledged before
// the instant it names must still be there, one acknowledged after it may
// be lost (counted apart).
func TestFaultLoadUnsynced(t *testing.T) {
	s := taskstore.New(NewMemoryBackend(0), taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	defer s.Close()
	l := &faultLoad{acked: map[ackKey]ackedWrite{}}
	ack := func(id string, version uint64, at time.Time) { l.ackLocked(ackKey{"o", id}, version, phaseUp, at) }
	kill := time.Now()
	var ids []string
	for range 2 {
		r, err := s.Create(t.Context(), "o", taskstore.CreateRequest{RequestMethod: "tools/call"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.Task.TaskID)
	}
	never := func() string { return taskid.New(time.Now()) } // ids the store never had
	ack(ids[0], 1, kill.Add(-time.Second))                   // there, as it must be
	ack(ids[1], 1, kill.Add(-time.Second))                   // v1 there,
	ack(ids[1], 2, kill.Add(-time.Millisecond))              // v2, just before the kill, lost: counted apart
	ack(never(), 1, kill.Add(-time.Millisecond))             // gone, acknowledged just before: counted apart
	ack(never(), 1, kill.Add(-time.Second))                  // gone, acknowledged before: a loss
	l.allowUnsynced(kill.Add(-100 * time.Millisecond))
	checked, losses := l.countAcked(t, s)
	if checked != 4 || len(losses) != 1 || !strings.Contains(losses[0], "is gone") || l.unsyncedLost != 2 {
		t.Fatalf("checked %d, losses %q, unsynced %d; want 4, one task gone, 2", checked, losses, l.unsyncedLost)
	}
}
