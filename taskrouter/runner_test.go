package taskrouter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// faultBackend makes Get and Update hang (until their context ends) or
// fail like a storage server that went away. (A handle's mutation may start
// from the record it knows, without a Get, so Update is faulted too.)
type faultBackend struct {
	taskstore.Backend
	mode atomic.Int32 // 0 ok, 1 hang, 2 fail
}

func (f *faultBackend) Get(ctx context.Context, owner, id string) (taskstore.Record, error) {
	switch f.mode.Load() {
	case 1:
		<-ctx.Done()
		return taskstore.Record{}, ctx.Err()
	case 2:
		return taskstore.Record{}, fmt.Errorf("%w: redis get: dial tcp 127.0.0.1:16399: connect: connection refused", taskstore.ErrBackend)
	}
	return f.Backend.Get(ctx, owner, id)
}

func (f *faultBackend) Update(ctx context.Context, rec taskstore.Record, expected uint64) (uint64, error) {
	switch f.mode.Load() {
	case 1:
		<-ctx.Done()
		return 0, ctx.Err()
	case 2:
		return 0, fmt.Errorf("%w: redis update: dial tcp 127.0.0.1:16399: connect: connection refused", taskstore.ErrBackend)
	}
	return f.Backend.Update(ctx, rec, expected)
}

func faultStore(t *testing.T, cfg taskstore.Config) (*taskstore.Store, *faultBackend) {
	fb := &faultBackend{Backend: taskstore.NewRuntime(newStore(t, taskstore.Config{})).Backend()}
	return taskstore.New(fb, cfg), fb
}

// settledGoroutines waits (up to 10s) for the goroutine count to drop to
// at most want, and returns the last count.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(10 * time.Second); n > want && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// With a backend that hangs, Shutdown still returns by its deadline plus
// its grace period, and leaves no goroutine behind; the tasks it could not
// mark failed stay working in the store.
func TestShutdownWithAHungBackend(t *testing.T) {
	store, fb := faultStore(t, taskstore.Config{PollInterval: 20 * time.Millisecond})
	before := runtime.NumGoroutine()
	r := taskrouter.New(store, taskrouter.Options{})
	var started sync.WaitGroup
	var ids []string
	for i := range 20 {
		started.Add(1)
		rec, err := r.Start(t.Context(), taskrouter.StartRequest{Owner: fmt.Sprint("owner-", i%3), Method: "tools/call"}, func(ctx context.Context) taskrouter.Outcome {
			started.Done()
			<-ctx.Done()
			return taskrouter.Outcome{Result: json.RawMessage(`{"content":[]}`)}
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.Task.TaskID)
	}
	started.Wait()
	fb.mode.Store(1) // every store call from here on hangs

	const deadline = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	begin := time.Now()
	err := r.Shutdown(ctx)
	took := time.Since(begin)
	if err == nil {
		t.Error("Shutdown reported nothing although tasks were running")
	}
	// The bound is the documented one (deadline + 2s) plus slack for a
	// loaded machine; without it, 20 hung writes took 20×10s.
	if limit := deadline + 2*time.Second + 3*time.Second; took > limit {
		t.Errorf("Shutdown took %v with a hung backend, want at most %v", took, limit)
	}
	if n := r.Running(); n != 0 {
		t.Errorf("%d runs left", n)
	}
	if n := settledGoroutines(before); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before, %d after Shutdown:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
	fb.mode.Store(0)
	for i, id := range ids {
		rec, err := store.Get(t.Context(), fmt.Sprint("owner-", i%3), id)
		if err != nil || rec.Task.Status != taskstore.StatusWorking {
			t.Errorf("task %s: %+v, %v; want it left working (its failure could not be written)", id, rec, err)
		}
	}
}

// An outcome that cannot be stored because the store is unreachable for
// longer than a few quick retries (a Redis restart) is stored once the
// store is back: the run holds the task's lease, so nobody else ends it.
func TestOutcomeStoredAfterAStoreOutage(t *testing.T) {
	t.Parallel()
	// Longer than five retries take (at most 3.4 s).
	testOutcomeStoredAfterOutage(t, 5*time.Second)
}

// The same after an outage longer than 30 s, which once ended the
// retries and left the task working for good while this replica lived
// and kept beating (the robustness test, on DynamoDB Local restarted
// several times in a row).
func TestOutcomeStoredAfterALongStoreOutage(t *testing.T) {
	t.Parallel()
	testOutcomeStoredAfterOutage(t, 32*time.Second)
}

func testOutcomeStoredAfterOutage(t *testing.T, outage time.Duration) {
	store, fb := faultStore(t, taskstore.Config{PollInterval: 20 * time.Millisecond})
	r := taskrouter.New(store, taskrouter.Options{})
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	finish := make(chan struct{})
	rec, err := r.Start(t.Context(), taskrouter.StartRequest{Owner: "alice", Method: "tools/call"}, func(ctx context.Context) taskrouter.Outcome {
		<-finish
		return taskrouter.Outcome{Result: json.RawMessage(`{"content":[{"type":"text","text":"done"}]}`)}
	})
	if err != nil {
		t.Fatal(err)
	}
	fb.mode.Store(2) // every Get and Update fails as a server that went away
	close(finish)
	time.Sleep(outage)
	fb.mode.Store(0)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got, err := store.Get(t.Context(), "alice", rec.Task.TaskID)
		if err == nil && got.Task.Status == taskstore.StatusCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the task is %+v, %v 30 s after a %s outage ended; want it completed", got.Task, err, outage)
		}
	}
}

// When a task expires its work stops at once, whatever its pollInterval (a
// timer at the expiry); when it is deleted, within one pollInterval.
func TestWorkStopsWhenTheTaskIsGone(t *testing.T) {
	store := newStore(t, taskstore.Config{})
	r := taskrouter.New(store, taskrouter.Options{MaxPollInterval: time.Hour})
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	start := func(ttl, poll time.Duration) (string, chan struct{}) {
		stopped := make(chan struct{})
		rec, err := r.Start(t.Context(), taskrouter.StartRequest{Owner: "alice", Method: "tools/call", TTL: &ttl, PollInterval: &poll},
			func(ctx context.Context) taskrouter.Outcome {
				<-ctx.Done()
				close(stopped)
				return taskrouter.Outcome{Result: json.RawMessage(`{}`)}
			})
		if err != nil {
			t.Fatal(err)
		}
		return rec.Task.TaskID, stopped
	}
	_, expired := start(time.Millisecond, time.Hour)
	waitClosed(t, expired, "the work of a task expired after 1ms, polled every hour")

	id, deleted := start(time.Hour, 50*time.Millisecond)
	if _, err := taskstore.NewRuntime(store).Backend().Delete(t.Context(), "alice", id); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, deleted, "the work of a deleted task")
}

func TestRequestedPollIntervalIsBounded(t *testing.T) {
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	s := newRawSession(t, rep.URL+"/mcp", &http.Client{Transport: bearer{"tok-alice"}})
	for _, tc := range []struct{ asked, want float64 }{{1, 50}, {1e9, 60000}, {1e300, 60000}, {750, 750}} {
		res, err := s.call("tools/call", map[string]any{"name": "echo", "arguments": echoArgs, "task": map[string]any{"pollInterval": tc.asked}})
		if err != nil {
			t.Fatalf("pollInterval %v: %v", tc.asked, err)
		}
		var got struct {
			Task struct {
				PollInterval float64 `json:"pollInterval"`
			} `json:"task"`
		}
		json.Unmarshal(res, &got)
		if got.Task.PollInterval != tc.want {
			t.Errorf("asked pollInterval %v, got %v, want %v", tc.asked, got.Task.PollInterval, tc.want)
		}
	}
}

// Errors say what is wrong with the request, in JSON terms, and nothing
// about the infrastructure.
func TestErrorsSayEnoughAndNoMore(t *testing.T) {
	store, fb := faultStore(t, taskstore.Config{})
	var logs bytes.Buffer
	var mu sync.Mutex
	rep := newReplica(t, store, replicaOptions{opts: taskrouter.Options{Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))}})
	s := newRawSession(t, rep.URL+"/mcp", &http.Client{Transport: bearer{"tok-alice"}})
	for _, tc := range []struct {
		method string
		params map[string]any
		code   int
		want   string
	}{
		{"tools/call", map[string]any{"name": "echo", "task": map[string]any{"ttl": 1e30}}, -32602, "params.task.ttl is 1e+30 ms, above the maximum of 86400000 ms"},
		{"tools/call", map[string]any{"name": "echo", "task": map[string]any{"ttl": "5000"}}, -32602, "params.task.ttl must be a number of milliseconds, not a string"},
		{"tools/call", map[string]any{"name": "echo", "task": map[string]any{"ttl": 0}}, -32602, "params.task.ttl must be at least 1 (milliseconds), got 0"},
		{"tools/call", map[string]any{"name": "echo", "task": 5}, -32602, "params.task must be an object, not a number"},
		{"tasks/get", map[string]any{"taskId": 5}, -32602, "params.taskId must be a string, not a number"},
		{"tasks/cancel", map[string]any{"taskId": []int{1}}, -32602, "params.taskId must be a string, not an array"},
		{"tasks/result", map[string]any{"taskId": true}, -32602, "params.taskId must be a string, not a boolean"},
		{"tasks/list", map[string]any{"cursor": 7}, -32602, "params.cursor must be a string, not a number"},
	} {
		_, err := s.call(tc.method, tc.params)
		if want := fmt.Sprintf("error %d %s", tc.code, tc.want); err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("%s %v: %v, want %q", tc.method, tc.params, err, want)
		}
	}

	fb.mode.Store(2)
	_, err := s.call("tasks/get", map[string]any{"taskId": "18ed19e0c075a4c0-2e75fb60599f919657f607df43a88839"})
	if err == nil || !strings.HasSuffix(err.Error(), "error -32603 internal error") {
		t.Errorf("backend failure answered %v, want a bare -32603", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "dial tcp 127.0.0.1:16399") {
		t.Errorf("the backend failure is not logged:\n%s", logs.String())
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// A tasks/result wait ends with its HTTP request, and an owner may have at
// most MaxWaitsPerOwner of them blocked at once.
func TestAbandonedWaitsEnd(t *testing.T) {
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{opts: taskrouter.Options{MaxWaitsPerOwner: 2}})
	s := newRawSession(t, rep.URL+"/mcp", &http.Client{Transport: bearer{"tok-alice"}})
	res, err := s.call("tools/call", map[string]any{"name": "block", "task": map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	id := createdTask(t, res)
	defer s.call("tasks/cancel", map[string]any{"taskId": id})
	var ids atomic.Int64
	// fork is another client of the same session, with its own request ids.
	fork := func(timeout time.Duration, ctx context.Context) *rawSession {
		ws := &rawSession{url: s.url, sid: s.sid, hc: &http.Client{Transport: bearer{"tok-alice"}, Timeout: timeout}, ctx: ctx}
		ws.id.Store(ids.Add(1000))
		return ws
	}
	wait := func(timeout time.Duration) error {
		_, err := fork(timeout, nil).call("tasks/result", map[string]any{"taskId": id})
		return err
	}
	// Two waits abandoned by their clients (an HTTP timeout), repeatedly:
	// each ends with its request, so the cap is never reached.
	for range 5 {
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				// The probe wait below may still be ending on the server
				// (its request just timed out): a refusal is retried, for a
				// bound; a wait that is never freed still fails the test.
				deadline := time.Now().Add(10 * time.Second)
				err := wait(300 * time.Millisecond)
				for err != nil && strings.Contains(err.Error(), "too many") && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
					err = wait(300 * time.Millisecond)
				}
				if err == nil || strings.Contains(err.Error(), "too many") {
					t.Errorf("abandoned wait: %v, want the client's timeout", err)
				}
			})
		}
		wg.Wait()
		// The cap counts live waits only: poll until the abandoned ones have
		// ended on the server side.
		deadline := time.Now().Add(10 * time.Second)
		for err := wait(300 * time.Millisecond); err != nil && strings.Contains(err.Error(), "too many"); err = wait(300 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("abandoned waits still count against the cap after 10s")
			}
		}
	}
	// Beyond the cap: two live waits, the third is refused at once.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { // a live wait; retried while earlier ones still hold the slots
			for ctx.Err() == nil {
				if _, err := fork(0, ctx).call("tasks/result", map[string]any{"taskId": id}); err == nil || !strings.Contains(err.Error(), "too many") {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := wait(300 * time.Millisecond)
		if err != nil && strings.Contains(err.Error(), "error -32603 too many waits for this caller (at most 2 tasks/result calls and listen streams at once)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("third wait: %v, want -32603 too many", err)
		}
	}
	cancel()
	wg.Wait()
}
