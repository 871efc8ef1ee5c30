package taskrouter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// recorder keeps what a Router told its Observer.
type recorder struct {
	mu                        sync.Mutex
	created                   []taskrouter.TaskCreated
	ended                     []taskrouter.TaskEnded
	running, input, waiters   int // current sums of the deltas
	maxRunning, maxInput, max int // the highest each reached
	orphans, takenOver        int
	ages                      []map[string]time.Duration
	feed                      []bool
	refused                   []string
	ops                       []taskrouter.Operation
}

func (r *recorder) observer() taskrouter.Observer {
	locked := func(f func()) {
		r.mu.Lock()
		defer r.mu.Unlock()
		f()
	}
	gauge := func(v, peak *int) func(int) {
		return func(d int) {
			locked(func() {
				*v += d
				*peak = max(*peak, *v)
			})
		}
	}
	return taskrouter.Observer{
		TaskCreated:   func(c taskrouter.TaskCreated) { locked(func() { r.created = append(r.created, c) }) },
		TaskEnded:     func(e taskrouter.TaskEnded) { locked(func() { r.ended = append(r.ended, e) }) },
		Running:       gauge(&r.running, &r.maxRunning),
		InputWaiting:  gauge(&r.input, &r.maxInput),
		ResultWaiters: gauge(&r.waiters, &r.max),
		OrphanEnded:   func() { locked(func() { r.orphans++ }) },
		TakenOver:     func() { locked(func() { r.takenOver++ }) },
		Heartbeats:    func(a map[string]time.Duration) { locked(func() { r.ages = append(r.ages, a) }) },
		Feed:          func(up bool) { locked(func() { r.feed = append(r.feed, up) }) },
		Refused:       func(reason string) { locked(func() { r.refused = append(r.refused, reason) }) },
		Operation:     func(o taskrouter.Operation) { locked(func() { r.ops = append(r.ops, o) }) },
	}
}

// eventually polls cond (under the recorder's lock) until it holds.
func (r *recorder) eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// endedAs is the recorded ends as "tool status", sorted.
func (r *recorder) endedAs() []string {
	var out []string
	for _, e := range r.ended {
		out = append(out, e.Tool+" "+string(e.Status))
	}
	slices.Sort(out)
	return out
}

// TestObserverTaskLife: over HTTP, the Router tells its Observer of each
// task created and ended (with its tool and status), of its runs, of a
// tasks/result wait, of a quota refusal, of the change feed, and of every
// MCP request with its method, revision, tool and error type.
func TestObserverTaskLife(t *testing.T) {
	var rec recorder
	store := newStore(t, taskstore.Config{MaxActiveTasks: 1})
	rep := newReplica(t, store, replicaOptions{opts: taskrouter.Options{Observer: rec.observer()}})
	c := newMGClient(t, rep.URL, "tok-alice", "2025-11-25")
	ctx := t.Context()

	echo := c.callTask(ctx, "echo", map[string]any{"text": "hi"}, map[string]any{})
	if resp := c.raw(ctx, "tasks/result", map[string]any{"taskId": echo.TaskId}); resp.Error != nil {
		t.Fatalf("tasks/result: %v", resp.Error)
	}
	// tasks/result answers once the end is stored; the run's goroutine
	// leaves the running gauge just after, so wait for it before the next.
	rec.eventually(t, "echo's run stopped", func() bool { return len(rec.ended) == 1 && rec.running == 0 })
	c.callTask(ctx, "fail", map[string]any{"text": "nope"}, map[string]any{})
	rec.eventually(t, "echo and fail ended", func() bool { return len(rec.ended) == 2 && rec.running == 0 })
	block := c.callTask(ctx, "block", map[string]any{}, map[string]any{})
	waitClosed(t, rep.probe.Started(block.TaskId), "block starts")
	wantCode(t, "a second active task", c.raw(ctx, "tools/call", map[string]any{"name": "block", "arguments": map[string]any{}, "task": map[string]any{}}), taskstore.CodeInternalError)
	if resp := c.raw(ctx, "tasks/cancel", map[string]any{"taskId": block.TaskId}); resp.Error != nil {
		t.Fatalf("tasks/cancel: %v", resp.Error)
	}
	wantCode(t, "tasks/get of no task", c.raw(ctx, "tasks/get", map[string]any{"taskId": "nope"}), taskstore.CodeInvalidParams)
	rec.eventually(t, "every run stopped", func() bool { return len(rec.ended) == 3 && rec.running == 0 })
	rec.eventually(t, "a heartbeat", func() bool { return len(rec.ages) > 0 })

	rec.mu.Lock()
	defer rec.mu.Unlock()
	rev := "2025-11-25"
	if diff := cmp.Diff([]taskrouter.TaskCreated{{Tool: "echo", Protocol: rev}, {Tool: "fail", Protocol: rev}, {Tool: "block", Protocol: rev}}, rec.created); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"block cancelled", "echo completed", "fail failed"}, rec.endedAs()); diff != "" {
		t.Errorf("ended (-want +got):\n%s", diff)
	}
	for _, e := range rec.ended {
		if e.Duration < 0 || e.Duration > time.Minute {
			t.Errorf("%s ended after %v", e.Tool, e.Duration)
		}
	}
	if rec.maxRunning != 1 || rec.running != 0 {
		t.Errorf("running: peaked at %d, now %d; want 1 and 0 (one task at a time)", rec.maxRunning, rec.running)
	}
	if rec.max != 1 || rec.waiters != 0 {
		t.Errorf("result waiters: peaked at %d, now %d; want 1 and 0", rec.max, rec.waiters)
	}
	if diff := cmp.Diff([]string{taskrouter.RefusedQuota}, rec.refused); diff != "" {
		t.Errorf("refused (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]bool{true}, rec.feed); diff != "" {
		t.Errorf("feed (-want +got):\n%s", diff)
	}
	for _, a := range rec.ages {
		if len(a) != 0 {
			t.Errorf("a lone replica reported other replicas' heartbeats: %v", a)
		}
	}
	// Every request, as it was answered; the order of the tool calls is the test's.
	var calls []string
	for _, o := range rec.ops {
		if o.Protocol != rev || o.Duration < 0 {
			t.Errorf("operation %+v: want protocol %s and a duration", o, rev)
		}
		if o.Method == "tools/call" || o.Method == "tasks/get" || o.Method == "tasks/cancel" || o.Method == "tasks/result" {
			calls = append(calls, fmt.Sprintf("%s %s %q", o.Method, o.Tool, o.ErrorType))
		}
	}
	want := []string{`tools/call echo ""`, `tasks/result  ""`, `tools/call fail ""`, `tools/call block ""`,
		`tools/call block "-32603"`, `tasks/cancel  ""`, `tasks/get  "-32602"`}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("operations (-want +got):\n%s", diff)
	}
	if !slices.ContainsFunc(rec.ops, func(o taskrouter.Operation) bool { return o.Method == "initialize" }) {
		t.Error("no initialize operation")
	}
}

// TestObserverReplicaDies: A stops beating while it runs a resumable task
// and a plain one; the survivor B reports A's heartbeat age growing past
// the lease timeout, then one task taken over and one orphan ended (and
// the ends of both), and stops reporting A once A's tasks are dealt with.
func TestObserverReplicaDies(t *testing.T) {
	var recA, recB recorder
	store := newStore(t, taskstore.Config{})
	var reps []*replica
	release := make(chan struct{})
	for _, rec := range []*recorder{&recA, &recB} {
		opts := fastLeases
		opts.Observer = rec.observer()
		rep := newReplica(t, store, replicaOptions{opts: opts})
		mcp.AddTool(rep.server, &mcp.Tool{Name: "resumable"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
			if taskrouter.TaskHandle(ctx).Attempt() == 1 {
				close(rep.probe.Started("resumable"))
				<-ctx.Done()
				return nil, nil, ctx.Err()
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "again"}}}, nil, nil
		})
		rep.router.SetTaskSupport("resumable", taskrouter.TaskOptional)
		rep.router.SetResumable("resumable", 2)
		// A frozen replica's run goes on (nothing tells it its task was
		// ended): "stuck" returns when the test ends, before the shutdown.
		mcp.AddTool(rep.server, &mcp.Tool{Name: "stuck"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
			close(rep.probe.Started("stuck"))
			<-release
			return nil, nil, errors.New("released")
		})
		rep.router.SetTaskSupport("stuck", taskrouter.TaskOptional)
		reps = append(reps, rep)
	}
	t.Cleanup(func() { close(release) })
	a := reps[0]
	c := newMGClient(t, a.URL, "tok-alice", "2025-11-25")
	c.callTask(t.Context(), "resumable", map[string]any{}, map[string]any{})
	c.callTask(t.Context(), "stuck", map[string]any{}, map[string]any{})
	waitClosed(t, a.probe.Started("resumable"), "attempt 1")
	waitClosed(t, a.probe.Started("stuck"), "stuck starts")
	recB.eventually(t, "B sees A beat", func() bool {
		return len(recB.ages) > 0 && slices.ContainsFunc(recB.ages, func(m map[string]time.Duration) bool { _, ok := m[a.router.Runner()]; return ok })
	})
	taskrouter.StopLeaseKeeper(a.router)
	recB.eventually(t, "B takes over and ends A's tasks", func() bool {
		return recB.takenOver == 1 && recB.orphans == 1 && len(recB.ended) == 2
	})
	recB.eventually(t, "B forgets A", func() bool {
		_, ok := recB.ages[len(recB.ages)-1][a.router.Runner()]
		return !ok
	})

	recB.mu.Lock()
	defer recB.mu.Unlock()
	if diff := cmp.Diff([]string{"resumable completed", "stuck failed"}, recB.endedAs()); diff != "" {
		t.Errorf("B's ends (-want +got):\n%s", diff)
	}
	if len(recB.created) != 0 {
		t.Errorf("B created %v; the tasks were A's", recB.created)
	}
	if recB.maxRunning != 1 || recB.running != 0 {
		t.Errorf("B's runs: peaked at %d, now %d; want 1 (the resumed one) and 0", recB.maxRunning, recB.running)
	}
	var oldest time.Duration
	for _, m := range recB.ages {
		oldest = max(oldest, m[a.router.Runner()])
	}
	if oldest < fastLeases.LeaseTimeout {
		t.Errorf("A's heartbeat age as B saw it peaked at %v, below the lease timeout %v after which B acted", oldest, fastLeases.LeaseTimeout)
	}
	recA.mu.Lock()
	defer recA.mu.Unlock()
	if len(recA.created) != 2 || recA.running != 2 || len(recA.ended) != 0 {
		t.Errorf("A: created %v, running %d, ended %v; want 2 created, 2 running (frozen), none ended", recA.created, recA.running, recA.ended)
	}
}

// TestObserverInputAndLimits: a run waiting for input is counted while it
// waits; the rate limit and the per-owner bound on waits are refusals.
func TestObserverInputAndLimits(t *testing.T) {
	var rec recorder
	store := newStore(t, taskstore.Config{CreatesPerSecond: 0.001, CreateBurst: 1})
	r := taskrouter.New(store, taskrouter.Options{Logger: quiet, MaxWaitsPerOwner: 1, Observer: rec.observer()})
	shutdown(t, r)
	asked := make(chan struct{})
	task, err := r.Start(t.Context(), taskrouter.StartRequest{Owner: "alice", Method: "tools/call", Tool: "ask"}, func(ctx context.Context) taskrouter.Outcome {
		h := taskrouter.TaskHandle(ctx)
		close(asked)
		answers, err := h.AwaitInput(ctx, map[string]any{"q": "why?"}, "asking")
		if err != nil {
			return taskrouter.Outcome{Err: &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: err.Error()}}
		}
		return taskrouter.Outcome{Result: answers["q"]}
	})
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, asked, "the run asks")
	rec.eventually(t, "input waiting", func() bool { return rec.input == 1 })
	if _, err := r.Start(t.Context(), taskrouter.StartRequest{Owner: "alice", Method: "tools/call"}, nil); !errors.Is(err, taskstore.ErrRateLimited) {
		t.Fatalf("a second create at once: %v, want the rate limit", err)
	}
	// One wait is the bound: a second at once is refused.
	waited := make(chan error, 1)
	go func() {
		_, err := taskrouter.Await(t.Context(), r, "alice", task.Task.TaskID)
		waited <- err
	}()
	rec.eventually(t, "a result waiter", func() bool { return rec.waiters == 1 })
	if _, err := taskrouter.Await(t.Context(), r, "alice", task.Task.TaskID); err == nil {
		t.Fatal("a second wait of one owner at once was not refused")
	}
	if _, err := taskstore.NewRuntime(store).SubmitInput(t.Context(), "alice", task.Task.TaskID, map[string]json.RawMessage{"q": json.RawMessage(`"because"`)}); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	rec.eventually(t, "the run ends", func() bool { return rec.running == 0 && len(rec.ended) == 1 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.maxInput != 1 || rec.input != 0 {
		t.Errorf("input waiting: peaked at %d, now %d; want 1 and 0", rec.maxInput, rec.input)
	}
	if diff := cmp.Diff([]string{"ask completed"}, rec.endedAs()); diff != "" {
		t.Errorf("ended (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{taskrouter.RefusedRateLimit, taskrouter.RefusedWaits}, rec.refused); diff != "" {
		t.Errorf("refused (-want +got):\n%s", diff)
	}
	if rec.waiters != 0 {
		t.Errorf("result waiters left: %d", rec.waiters)
	}
}

// TestObserverBodyRefusals: HTTPHandler's refusals of request bodies are
// reported: too large (413) and over the budget of bodies held (503).
func TestObserverBodyRefusals(t *testing.T) {
	var rec recorder
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{
		opts: taskrouter.Options{Observer: rec.observer()},
		edge: &taskrouter.HTTPOptions{MaxBodyBytes: 1000, MaxBufferedBytes: 100},
	})
	for _, tc := range []struct {
		size, status int
	}{{2000, http.StatusRequestEntityTooLarge}, {500, http.StatusServiceUnavailable}} {
		resp, err := http.Post(rep.URL+"/mcp", "application/json", bytes.NewReader(make([]byte, tc.size)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("a body of %d bytes: HTTP %d, want %d", tc.size, resp.StatusCode, tc.status)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if diff := cmp.Diff([]string{taskrouter.RefusedBodyTooLarge, taskrouter.RefusedBodyBudget}, rec.refused); diff != "" {
		t.Errorf("refused (-want +got):\n%s", diff)
	}
}

// TestObserveBackend: taskstore.Config.ObserveBackend hears of each
// backend call a Store and a Router make, by name, with its error.
func TestObserveBackend(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	var notFound int
	store := newStore(t, taskstore.Config{ObserveBackend: func(op string, d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if d < 0 {
			t.Errorf("%s took %v", op, d)
		}
		calls[op]++
		if errors.Is(err, taskstore.ErrNotFound) {
			notFound++
		}
	}})
	r := taskrouter.New(store, taskrouter.Options{Logger: quiet, Heartbeat: 10 * time.Millisecond})
	shutdown(t, r)
	task, err := r.Start(t.Context(), taskrouter.StartRequest{Owner: "alice", Method: "tools/call"}, func(context.Context) taskrouter.Outcome {
		return taskrouter.Outcome{Result: json.RawMessage(`{}`)}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := taskrouter.Await(t.Context(), r, "alice", task.Task.TaskID); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(t.Context(), "alice", "0000000000000000-00000000000000000000000000000000"); !errors.Is(err, taskstore.ErrNotFound) {
		t.Fatalf("get of no task: %v", err)
	}
	if _, err := store.List(t.Context(), "alice", "", 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // a few heartbeats
	mu.Lock()
	defer mu.Unlock()
	for _, op := range []string{"create", "get", "update", "list", "heartbeat", "runners"} {
		if calls[op] == 0 {
			t.Errorf("no %s call observed: %v", op, calls)
		}
	}
	if notFound != 1 {
		t.Errorf("%d calls answered ErrNotFound, want 1 (the get of no task)", notFound)
	}
}
