//go:build redis || dynamodb || postgres

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Takeover at scale, as real processes (issue 23): replica A runs N tasks,
// is killed with SIGKILL, and replica B ends them (plain sleep tasks) or
// takes them over (resumable slow_report tasks checkpointing every 5 s).
// Each backend's file (takeover_process_<backend>_test.go) runs
// benchTakeover against its server:
//
//	go test -tags redis -run '^$' -bench 'TakeoverAtScale' -benchtime 1x -count 3 ./cmd/mcptasks/
//
// These are benchmarks, as replicas_bench_redis_test.go's are: a run takes
// a minute and thousands of store writes, so `go test` (and the matrix)
// never starts one, and -count repeats it. One iteration is one whole
// scenario, so ns/op means nothing; the figures are the custom metrics
// and a REPORT line per measure, never asserted.
//
// Times are measured from B's "replica presumed dead" log line (its slog
// timestamp, same host clock) to the moment the test saw the last of the N
// tasks change: the test follows the store's change feed (a subscription,
// not a read per task, so that it adds nothing to the counts), or, on a
// store without one, polls versions through a connection the counter does
// not count. The counts are the store server's own (see each backend's
// storeCounter), from just before the kill to when the last task changed
// (plus a second for the resumed runs' first reads).

// takeoverKind is what runs on A.
type takeoverKind string

const (
	plainTasks     takeoverKind = "plain"     // sleep 3600: ended failed
	resumableTasks takeoverKind = "resumable" // slow_report: claimed and run again
)

const (
	takeoverTasksPerUser = 50 // under the default 100 active tasks per owner
	takeoverStepSeconds  = 5  // slow_report's checkpoint period
	takeoverIdleWindow   = 5 * time.Second
	// takeoverCreateBudget bounds the creates: a store that cannot keep
	// up with the checkpoints of the tasks already running starves them.
	takeoverCreateBudget = 3 * time.Minute
)

// storeCounter reads a store server's cumulative command counts by name.
type storeCounter interface {
	Counts(tb testing.TB) map[string]int64
}

// rowCounter is a storeCounter that also counts the records its reading
// commands returned, by name (where one command reads a page of them).
type rowCounter interface {
	Rows(tb testing.TB) map[string]int64
}

// takeoverStore is one backend's part of the probe.
type takeoverStore struct {
	tags string
	// replicaURL is the store URL of the serve replicas; probeURL the one
	// the test reads through (the same unless a proxy counts the
	// replicas' requests).
	replicaURL, probeURL string
	counter              storeCounter
	// counted says what the counts are, for the REPORT lines.
	counted string
	// runnersCmd names the count one Runtime.Runners call of the test
	// adds ("" when the test's calls are not counted).
	runnersCmd string
	// derived adds backend figures to the per-orphan counts (may be nil).
	derived func(perOrphan map[string]float64) string
}

// benchTakeover runs the probe for both kinds and N = 1,000 and 5,000;
// open gives each run a fresh store (a new prefix or table).
func benchTakeover(b *testing.B, open func(b *testing.B) takeoverStore) {
	for _, kind := range []takeoverKind{plainTasks, resumableTasks} {
		for _, n := range []int{1000, 5000} {
			b.Run(fmt.Sprintf("%s/n=%d", kind, n), func(b *testing.B) {
				for b.Loop() {
					runTakeover(b, open(b), kind, n)
				}
			})
		}
	}
}

// feedWatch records, per task, the times the test saw it change after
// from (set once the kill happened).
type feedWatch struct {
	mu      sync.Mutex
	from    time.Time
	seen    map[string][]time.Time // task id -> arrival times of its changes
	resyncs int
}

func (w *feedWatch) change(c taskstore.Change) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if c.Resync {
		w.resyncs++
		return
	}
	if w.from.IsZero() || now.Before(w.from) {
		return
	}
	w.seen[c.TaskID] = append(w.seen[c.TaskID], now)
}

// nth returns, for the tasks of ids that changed at least k times since
// from, the time of the k-th change of the last of them, and how many did.
func (w *feedWatch) nth(ids []taskstore.Key, k int) (last time.Time, done int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		if ts := w.seen[id.TaskID]; len(ts) >= k {
			done++
			if ts[k-1].After(last) {
				last = ts[k-1]
			}
		}
	}
	return last, done
}

// doneBy counts the tasks whose k-th change came by t.
func (w *feedWatch) doneBy(ids []taskstore.Key, k int, t time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, id := range ids {
		if ts := w.seen[id.TaskID]; len(ts) >= k && !ts[k-1].After(t) {
			n++
		}
	}
	return n
}

// pollVersions stands in for a change feed: it reads the versions of the
// tasks (BatchGetter pages) over and over, 250 ms apart, and records a
// change for each task whose version grew, once per version step. After
// the first read it reads only the tasks seen to change fewer than need
// times, so its load on the store shrinks as the sweep goes on. It
// returns its longest read (its resolution) when ctx ends.
func pollVersions(ctx context.Context, rt *taskstore.Runtime, ids []taskstore.Key, w *feedWatch, need int, longest chan<- time.Duration) {
	last := map[taskstore.Key]uint64{}
	var slowest time.Duration
	defer func() { longest <- slowest }()
	keys := ids
	for ctx.Err() == nil {
		start := time.Now()
		vs, err := rt.Versions(ctx, keys)
		if err == nil {
			slowest = max(slowest, time.Since(start))
			for _, k := range keys {
				v, ok := vs[k]
				if !ok {
					continue
				}
				if old, known := last[k]; known {
					for range v - min(v, old) {
						w.change(taskstore.Change{Owner: k.Owner, TaskID: k.TaskID, Version: v})
					}
				}
				last[k] = v
			}
			keys = w.pending(ids, need)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// pending returns the tasks of ids seen to change fewer than need times.
func (w *feedWatch) pending(ids []taskstore.Key, need int) []taskstore.Key {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []taskstore.Key
	for _, k := range ids {
		if len(w.seen[k.TaskID]) < need {
			out = append(out, k)
		}
	}
	return out
}

// runTakeover is one scenario; it reports its measures as metrics and
// REPORT lines.
func runTakeover(b *testing.B, s takeoverStore, kind takeoverKind, n int) {
	ctx := b.Context()
	bin := serveBinary(b, s.tags)
	users := (n + takeoverTasksPerUser - 1) / takeoverTasksPerUser
	tokens := make([]string, users)
	var file strings.Builder
	for i := range tokens {
		tokens[i] = fmt.Sprintf("tok-%d-%s", i, randomSuffix())
		fmt.Fprintf(&file, "%s u%04d\n", tokens[i], i)
	}
	tokensFile := filepath.Join(b.TempDir(), "tokens")
	if err := os.WriteFile(tokensFile, []byte(file.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	args := []string{"--store", s.replicaURL, "--tokens-file", tokensFile}
	a := startReplica(b, bin, args...)
	rb := startReplica(b, bin, args...)
	defer func() {
		rb.cmd.Process.Kill()
		rb.cmd.Wait()
	}()

	store, err := mcptasks.Open(ctx, s.probeURL, taskstore.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	rt := taskstore.NewRuntime(store)
	watch := &feedWatch{seen: map[string][]time.Time{}}
	fctx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	feed := "change feed"
	if nf, ok := rt.Backend().(taskstore.Notifier); ok {
		go nf.Subscribe(fctx, watch.change)
	} else {
		feed = "version polling (no change feed)"
	}

	time.Sleep(2 * time.Second) // both replicas beating
	idle0 := commandRate(b, s.counter, takeoverIdleWindow)

	toolArgs := map[string]any{"seconds": 3600}
	tool := "sleep"
	if kind == resumableTasks {
		tool = "slow_report"
		toolArgs = map[string]any{"topic": "takeover", "steps": 100, "stepSeconds": takeoverStepSeconds}
	}
	created := time.Now()
	ids, retried := createTasks(b, a, tokens, tool, toolArgs, n)
	createdIn := time.Since(created)
	name := fmt.Sprintf("backend=%s kind=%s n=%d", s.tags, kind, n)
	if len(ids) < n {
		// The store cannot keep up with what the tasks already running
		// write: the scenario (N tasks running, then a kill) is not reached.
		running := commandRate(b, s.counter, takeoverIdleWindow)
		b.Logf("REPORT takeover %s SATURATED: created %d of %d in %s; store-commands/s while they run=%.1f by name: %s",
			name, len(ids), n, createdIn.Round(time.Second), running.total, formatCounts(running.byName))
		return // no Skip: a skipped benchmark's log shows only with -v
	}
	first, err := store.Get(ctx, ids[0].Owner, ids[0].TaskID)
	if err != nil || first.Lease == nil {
		b.Fatalf("reading a task on A: %v %+v", err, first)
	}
	runnerA := first.Lease.Runner

	time.Sleep(2 * time.Second) // every task running, the creates' echoes past
	idleN := commandRate(b, s.counter, takeoverIdleWindow)

	before := s.counter.Counts(b)
	rc, countsRows := s.counter.(rowCounter)
	var rowsBefore map[string]int64
	if countsRows {
		rowsBefore = rc.Rows(b)
	}
	killed := time.Now()
	watch.mu.Lock()
	watch.from = killed
	watch.mu.Unlock()
	if err := a.cmd.Process.Kill(); err != nil {
		b.Fatal(err)
	}
	a.cmd.Wait()
	pollLongest := make(chan time.Duration, 1)
	if _, ok := rt.Backend().(taskstore.Notifier); !ok {
		// From here: A writes no more, and B acts only after the lease
		// timeout, so the first read is the baseline.
		need := map[takeoverKind]int{plainTasks: 1, resumableTasks: 2}[kind]
		go pollVersions(fctx, rt, ids, watch, need, pollLongest)
	} else {
		close(pollLongest)
	}

	declared := waitForLogLine(b, rb, killed, "replica presumed dead", runnerA, 60*time.Second)

	// Wait for every task's first change after the kill: B's end or claim.
	var last time.Time
	var done int
	progressAt, progressed := time.Now(), 0
	for {
		last, done = watch.nth(ids, 1)
		if done == n {
			break
		}
		if done > progressed {
			progressAt, progressed = time.Now(), done
		}
		if time.Since(progressAt) > 30*time.Second {
			b.Logf("no progress for 30 s: %d of %d tasks changed since the kill", done, n)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The sweep ends after the last change: its next page finds the
	// tasks moved on and it forgets A's runner. Wait for that (polling
	// Runners, whose own commands are taken off below), then half a
	// second more for the resumed runs' first reads.
	sweptAt, polls := waitRunnerGone(b, rt, runnerA, 60*time.Second)
	time.Sleep(500 * time.Millisecond)
	after := s.counter.Counts(b)
	var rowsRead map[string]int64
	if countsRows {
		rowsRead = delta(rowsBefore, rc.Rows(b))
	}
	counted := time.Now()
	counts := delta(before, after)
	if s.runnersCmd != "" {
		counts[s.runnersCmd] -= int64(polls)
	}
	// Checkpoints the resumed runs wrote within the window: the running
	// cost, not the takeover's (none when the takeover takes under a step).
	checkpoints := watch.laterChanges(ids, counted)

	actLabel := map[takeoverKind]string{plainTasks: "all-failed", resumableTasks: "all-claimed"}[kind]
	// A replica whose heartbeat cannot reach a saturated store in time is
	// presumed dead while it lives (its runs are fenced off, then taken
	// over): such lines before the kill are false alarms.
	early := 0
	for _, at := range logTimes(b, rb, "replica presumed dead", "runner="+runnerA) {
		if at.Before(killed.Truncate(time.Millisecond)) {
			early++
		}
	}
	b.Logf("REPORT takeover %s created-in=%s (creates retried after an error: %d) detection=%s (kill to B's log line; A presumed dead while alive before it: %d times) feed=%s",
		name, createdIn.Round(100*time.Millisecond), retried, declared.Sub(killed).Round(10*time.Millisecond), early, feed)
	if done == n {
		b.Logf("REPORT takeover %s %s=%s after the log line (done at +1s: %d, +5s: %d); sweep over (A's runner forgotten) at +%s", name, actLabel,
			last.Sub(declared).Round(time.Millisecond), watch.doneBy(ids, 1, declared.Add(time.Second)), watch.doneBy(ids, 1, declared.Add(5*time.Second)),
			sweptAt.Sub(declared).Round(10*time.Millisecond))
		b.ReportMetric(last.Sub(declared).Seconds(), actLabel+"-s")
	} else {
		b.Logf("REPORT takeover %s %s=INCOMPLETE %d of %d (done at +1s: %d, +5s: %d)", name, actLabel,
			done, n, watch.doneBy(ids, 1, declared.Add(time.Second)), watch.doneBy(ids, 1, declared.Add(5*time.Second)))
	}
	b.ReportMetric(declared.Sub(killed).Seconds(), "detect-s")
	// B's own log line for each end or claim (slog, to the millisecond):
	// when its write returned, free of the feed's or the polling's delay.
	logged := logTimes(b, rb, map[takeoverKind]string{plainTasks: "orphaned task failed", resumableTasks: "task taken over"}[kind],
		map[takeoverKind]string{plainTasks: "runner=", resumableTasks: "from="}[kind]+runnerA)
	if len(logged) > 0 {
		b.Logf("REPORT takeover %s B's log: %d %s, the last at +%s after the log line", name, len(logged),
			map[takeoverKind]string{plainTasks: "ended", resumableTasks: "claimed"}[kind], slices.MaxFunc(logged, time.Time.Compare).Sub(declared).Round(time.Millisecond))
	}

	var total int64
	for _, c := range counts {
		total += c
	}
	perOrphan := map[string]float64{}
	for k, c := range counts {
		perOrphan[k] = float64(c) / float64(n)
	}
	extra := ""
	if s.derived != nil {
		extra = " " + s.derived(perOrphan)
	}
	b.Logf("REPORT takeover %s store-commands/orphan=%.2f%s (%s, from the kill to 0.5 s after the sweep's end; checkpoints of resumed runs in the window: %d) by name: %s",
		name, float64(total)/float64(n), extra, s.counted, checkpoints, formatCounts(perOrphan))
	b.ReportMetric(float64(total)/float64(n), "cmds/orphan")
	if countsRows {
		read := map[string]float64{}
		var all float64
		for k, v := range rowsRead {
			read[k] = float64(v) / float64(n)
			all += read[k]
		}
		b.Logf("REPORT takeover %s records-read/orphan=%.2f by statement: %s", name, all, formatCounts(read))
	}
	if checkpoints > 0 {
		// Less the checkpoints, each costing what one did while A ran
		// (the running rate less the rate with no task, per checkpoint).
		perCheckpoint := map[string]float64{}
		for k, v := range idleN.byName {
			perCheckpoint[k] = (v - idle0.byName[k]) / (float64(n) / takeoverStepSeconds)
		}
		net := map[string]float64{}
		var netTotal float64
		for k, v := range perOrphan {
			net[k] = v - float64(checkpoints)*perCheckpoint[k]/float64(n)
			netTotal += net[k]
		}
		extra := ""
		if s.derived != nil {
			extra = " " + s.derived(net)
		}
		b.Logf("REPORT takeover %s store-commands/orphan less the %d checkpoints=%.2f%s by name: %s",
			name, checkpoints, netTotal, extra, formatCounts(net))
		b.ReportMetric(netTotal, "net-cmds/orphan")
	}

	b.Logf("REPORT takeover %s store-commands/s with no task=%.1f with %d running (A and B, %s window)=%.1f; by name: %s",
		name, idle0.total, n, takeoverIdleWindow, idleN.total, formatCounts(idleN.byName))
	b.ReportMetric(idleN.total, "running-cmds/s")
	if kind == resumableTasks {
		b.Logf("REPORT takeover %s store-commands per checkpoint while running=%.2f (%d checkpoints/s expected)",
			name, (idleN.total-idle0.total)/(float64(n)/takeoverStepSeconds), n/takeoverStepSeconds)
	}

	if kind == resumableTasks && done == n {
		// Each resumed run waits a step, then writes its first checkpoint:
		// that write, less the step, is when the run started on B.
		deadline := time.Now().Add(takeoverStepSeconds*time.Second + 60*time.Second)
		var started time.Time
		var ran int
		for time.Now().Before(deadline) {
			if started, ran = watch.nth(ids, 2); ran == n {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if ran == n {
			at := started.Add(-takeoverStepSeconds * time.Second).Sub(declared)
			b.Logf("REPORT takeover %s all-running-again=%s after the log line (the last first checkpoint of attempt 2, less its %d s step)",
				name, at.Round(time.Millisecond), takeoverStepSeconds)
			b.ReportMetric(at.Seconds(), "all-running-s")
		} else {
			b.Logf("REPORT takeover %s all-running-again=INCOMPLETE %d of %d wrote a checkpoint of attempt 2", name, ran, n)
		}
	}
	stopFeed()
	if d, ok := <-pollLongest; ok {
		b.Logf("REPORT takeover %s version polling: its longest read after the kill took %s (the times above are late by up to that and 250 ms)", name, d.Round(time.Millisecond))
	}
	checkTakeover(b, store, rb, ids, kind, runnerA)
}

// waitRunnerGone polls Runners until runner is no longer listed, and
// returns when it saw that and how many Runners calls it made.
func waitRunnerGone(b *testing.B, rt *taskstore.Runtime, runner string, within time.Duration) (time.Time, int) {
	deadline := time.Now().Add(within)
	for polls := 1; ; polls++ {
		beats, err := rt.Runners(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if !slices.ContainsFunc(beats, func(r taskstore.RunnerBeat) bool { return r.Runner == runner }) {
			return time.Now(), polls
		}
		if time.Now().After(deadline) {
			b.Fatalf("B still lists A's runner %s after %s", runner, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// laterChanges counts the changes after each task's first, up to t.
func (w *feedWatch) laterChanges(ids []taskstore.Key, t time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := 0
	for _, id := range ids {
		for i, at := range w.seen[id.TaskID] {
			if i > 0 && !at.After(t) {
				c++
			}
		}
	}
	return c
}

// checkTakeover reads every task once the measures are taken: each must
// be failed as an orphan (plain) or running on B as attempt 2 (resumable).
func checkTakeover(b *testing.B, store *taskstore.Store, rb *replicaProc, ids []taskstore.Key, kind takeoverKind, runnerA string) {
	if kind == resumableTasks {
		// A client sees the attempt on B.
		tok := tokenOf(b, ids[0].Owner)
		_, _, detail := taskState(b, rb.url, tok, ids[0].TaskID)
		var meta map[string]json.RawMessage
		json.Unmarshal(detail["_meta"], &meta)
		if string(meta[taskstore.AttemptKey]) != "2" {
			b.Errorf("tasks/get on B: _meta %s, want %s 2", detail["_meta"], taskstore.AttemptKey)
		}
	}
	// B stops first: its runs' checkpoints would slow the reads (a store
	// saturated by them answers a read in 100 ms), and the records keep
	// the lease B's claims wrote.
	rb.cmd.Process.Kill()
	rb.cmd.Wait()
	var bad atomic.Int64
	var example sync.Once
	var wg sync.WaitGroup
	next := make(chan taskstore.Key)
	for range 8 {
		wg.Go(func() {
			for k := range next {
				rec, err := store.Get(b.Context(), k.Owner, k.TaskID)
				var ok bool
				switch {
				case err != nil:
				case kind == plainTasks:
					ok = rec.Task.Status == taskstore.StatusFailed && rec.Task.StatusMessage == taskrouter.OrphanedMessage
				default:
					ok = rec.Task.Status == taskstore.StatusWorking && rec.Lease != nil && rec.Lease.Attempt == 2 && rec.Lease.Runner != runnerA
				}
				if !ok {
					bad.Add(1)
					example.Do(func() { b.Errorf("e.g. %s: %v %+v", k.TaskID, err, rec) })
				}
			}
		})
	}
	for _, k := range ids {
		next <- k
	}
	close(next)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		b.Errorf("%d of %d tasks are not as the takeover should leave them", n, len(ids))
	}
}

// rate is a store's commands per second over a window, in all and by name.
type rate struct {
	total  float64
	byName map[string]float64
}

func commandRate(b *testing.B, c storeCounter, window time.Duration) rate {
	before := c.Counts(b)
	time.Sleep(window)
	d := delta(before, c.Counts(b))
	r := rate{byName: map[string]float64{}}
	for k, v := range d {
		r.byName[k] = float64(v) / window.Seconds()
		r.total += r.byName[k]
	}
	return r
}

func delta(before, after map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		if v -= before[k]; v != 0 {
			d[k] = v
		}
	}
	return d
}

// formatCounts lists counts by name, largest first: two decimals, three
// under 0.1 (a batch statement per 1,000 orphans is 0.001).
func formatCounts(m map[string]float64) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.SortFunc(names, func(x, y string) int {
		if m[x] != m[y] {
			if m[x] > m[y] {
				return -1
			}
			return 1
		}
		return strings.Compare(x, y)
	})
	parts := make([]string, 0, len(names))
	for _, k := range names {
		switch {
		case m[k] >= 0.1:
			parts = append(parts, fmt.Sprintf("%s=%.2f", k, m[k]))
		case m[k] >= 0.0005:
			parts = append(parts, fmt.Sprintf("%s=%.3f", k, m[k]))
		}
	}
	return strings.Join(parts, " ")
}

// takeoverTokens maps each user to its token (filled by createTasks).
var takeoverTokens sync.Map

func tokenOf(b *testing.B, user string) string {
	t, ok := takeoverTokens.Load(user)
	if !ok {
		b.Fatalf("no token for %s", user)
	}
	return t.(string)
}

// createTasks starts n tasks of tool on replica a, spread over the users
// of tokens (user i is u%04d), 8 calls at a time. A call that fails is
// tried again (up to 3 times): under load a replica may fail a create
// (a store call timing out); how many were is returned. After
// takeoverCreateBudget it stops and returns the tasks made so far.
func createTasks(b *testing.B, a *replicaProc, tokens []string, tool string, args map[string]any, n int) ([]taskstore.Key, int) {
	for i, tok := range tokens {
		takeoverTokens.Store(fmt.Sprintf("u%04d", i), tok)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: time.Minute}
	defer client.CloseIdleConnections()
	ids := make([]taskstore.Key, n)
	var retried atomic.Int64
	errs := make(chan error, 8)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				user := i % len(tokens)
				id, err := callToolAsTask(b.Context(), client, a.url, tokens[user], tool, args)
				for try := 1; err != nil && try <= 3; try++ {
					retried.Add(1)
					time.Sleep(time.Duration(try) * 200 * time.Millisecond)
					id, err = callToolAsTask(b.Context(), client, a.url, tokens[user], tool, args)
				}
				if err != nil {
					errs <- fmt.Errorf("task %d: %w", i, err)
					return
				}
				ids[i] = taskstore.Key{Owner: fmt.Sprintf("u%04d", user), TaskID: id}
			}
		})
	}
	var failed error
	budget := time.After(takeoverCreateBudget)
	sent := 0
feed:
	for ; sent < n; sent++ {
		select {
		case next <- sent:
		case failed = <-errs:
			break feed
		case <-budget:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if sent < n && failed == nil {
		var made []taskstore.Key
		for _, k := range ids {
			if k.TaskID != "" {
				made = append(made, k)
			}
		}
		return made, int(retried.Load())
	}
	select {
	case err := <-errs:
		failed = errors.Join(failed, err)
	default:
	}
	if failed != nil {
		b.Fatalf("creating %d %s tasks: %v\nA's warnings and errors:\n%s", n, tool, failed, logProblems(a.logs.String(), 20))
	}
	if r := retried.Load(); r > 0 {
		b.Logf("%d creates failed and were tried again; A's warnings and errors:\n%s", r, logProblems(a.logs.String(), 5))
	}
	return ids, int(retried.Load())
}

// logProblems returns the last max WARN and ERROR lines of a slog text log.
func logProblems(log string, max int) string {
	var out []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, " level=WARN ") || strings.Contains(line, " level=ERROR ") {
			out = append(out, line)
		}
	}
	return strings.Join(out[len(out)-min(len(out), max):], "")
}

// callToolAsTask is modernCall for a goroutine: a 2026-07-28 tools/call
// that must answer with a task, its id returned.
func callToolAsTask(ctx context.Context, client *http.Client, url, token, tool string, args map[string]any) (string, error) {
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": map[string]any{
		"name": tool, "arguments": args,
		"_meta": map[string]any{
			"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
			"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "takeover-probe", "version": "1"},
			"io.modelcontextprotocol/clientCapabilities": map[string]any{"extensions": map[string]any{"io.modelcontextprotocol/tasks": map[string]any{}}},
		},
	}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", tool)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return "", err
	}
	raw := buf.Bytes()
	if i := bytes.LastIndex(raw, []byte("data: ")); i >= 0 {
		raw = bytes.TrimSpace(raw[i+len("data: "):])
	}
	var out struct {
		Result struct {
			TaskID string `json:"taskId"`
		} `json:"result"`
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, raw)
	}
	if out.Result.TaskID == "" {
		return "", fmt.Errorf("no task: %s", raw)
	}
	return out.Result.TaskID, nil
}

// slogTime reads the time= field of a slog text line.
var slogTime = regexp.MustCompile(`^time=(\S+) `)

// waitForLogLine waits for a line of p's log, written after since, that
// holds msg and runner, and returns its timestamp.
func waitForLogLine(b *testing.B, p *replicaProc, since time.Time, msg, runner string, within time.Duration) time.Time {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, at := range logTimes(b, p, msg, "runner="+runner) {
			if !at.Before(since.Truncate(time.Millisecond)) {
				return at
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("no %q line for %s within %s; B's log:\n%.4000s", msg, runner, within, p.logs)
	return time.Time{}
}

// logTimes returns the timestamps of p's log lines that hold msg and
// field (such as runner=ID).
func logTimes(b testing.TB, p *replicaProc, msg, field string) []time.Time {
	var out []time.Time
	for line := range strings.Lines(p.logs.String()) {
		if !strings.Contains(line, msg) || !strings.Contains(line, field+" ") && !strings.HasSuffix(strings.TrimSpace(line), field) {
			continue
		}
		m := slogTime.FindStringSubmatch(line)
		if m == nil {
			b.Fatalf("no time in %q", line)
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			b.Fatalf("time of %q: %v", line, err)
		}
		out = append(out, at)
	}
	return out
}
