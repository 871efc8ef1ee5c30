package taskrouter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// outageBackend fails every call while down, as a store that cannot be
// reached does.
type outageBackend struct {
	taskstore.Backend
	down atomic.Bool
}

var errOutage = errors.New("store unreachable (test outage)")

func (o *outageBackend) err() error {
	if o.down.Load() {
		return errors.Join(taskstore.ErrBackend, errOutage)
	}
	return nil
}

func (o *outageBackend) Get(ctx context.Context, owner, id string) (taskstore.Record, error) {
	if err := o.err(); err != nil {
		return taskstore.Record{}, err
	}
	return o.Backend.Get(ctx, owner, id)
}

func (o *outageBackend) Update(ctx context.Context, rec taskstore.Record, v uint64) (uint64, error) {
	if err := o.err(); err != nil {
		return 0, err
	}
	return o.Backend.Update(ctx, rec, v)
}

func (o *outageBackend) Heartbeat(ctx context.Context, runner string) error {
	if err := o.err(); err != nil {
		return err
	}
	return o.Backend.Heartbeat(ctx, runner)
}

func (o *outageBackend) Runners(ctx context.Context) ([]taskstore.RunnerBeat, error) {
	if err := o.err(); err != nil {
		return nil, err
	}
	return o.Backend.Runners(ctx)
}

func (o *outageBackend) RunnerTasks(ctx context.Context, runner string, limit int) ([]taskstore.Record, error) {
	if err := o.err(); err != nil {
		return nil, err
	}
	return o.Backend.RunnerTasks(ctx, runner, limit)
}

var fastLeases = taskrouter.Options{Heartbeat: 20 * time.Millisecond, LeaseTimeout: 200 * time.Millisecond}

func shutdown(t *testing.T, r *taskrouter.Router) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	})
}

// blockingWork runs until its context ends or release is closed.
func blockingWork(started chan<- struct{}, release <-chan struct{}, stopped *atomic.Bool) taskrouter.Work {
	return func(ctx context.Context) taskrouter.Outcome {
		close(started)
		select {
		case <-ctx.Done():
			stopped.Store(true)
			return taskrouter.Outcome{Result: json.RawMessage(`{"late":true}`)}
		case <-release:
			return taskrouter.Outcome{Result: json.RawMessage(`{"done":true}`)}
		}
	}
}

// TestLeaseOutageFailsNothing: the store is unreachable for many lease
// timeouts; once it is back, the live replicas' tasks are still running
// and finish normally.
func TestLeaseOutageFailsNothing(t *testing.T) {
	ob := &outageBackend{Backend: mcptasks.NewMemoryBackend(0)}
	store := taskstore.New(ob, taskstore.Config{})
	t.Cleanup(func() { store.Close() })
	a, b := taskrouter.New(store, fastLeases), taskrouter.New(store, fastLeases)
	shutdown(t, a)
	shutdown(t, b)
	started, release := make(chan struct{}), make(chan struct{})
	var stopped atomic.Bool
	task, err := a.Start(t.Context(), taskrouter.StartRequest{Owner: "alice", Method: "tools/call"}, blockingWork(started, release, &stopped))
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, started, "work start")
	time.Sleep(100 * time.Millisecond) // B has seen A beat
	ob.down.Store(true)
	time.Sleep(5 * fastLeases.LeaseTimeout)
	ob.down.Store(false)
	time.Sleep(5 * fastLeases.LeaseTimeout)
	rec, err := store.Get(t.Context(), "alice", task.Task.TaskID)
	if err != nil || rec.Task.Status != taskstore.StatusWorking || stopped.Load() {
		t.Fatalf("after the outage: %v %v, work stopped %v", rec.Task.Status, err, stopped.Load())
	}
	close(release)
	got, err := taskrouter.Await(t.Context(), b, "alice", task.Task.TaskID)
	if err != nil || got.Task.Status != taskstore.StatusCompleted {
		t.Fatalf("result after the outage: %v, %v", got, err)
	}
}

// TestLeaseOrphanEndedOnce: A's heartbeat stops (frozen for good) while it
// runs a task; of two survivors sweeping at once exactly one ends it, a
// tasks/result waiting on a survivor answers, and A's late outcome is
// fenced off.
func TestLeaseOrphanEndedOnce(t *testing.T) {
	store := newStore(t, taskstore.Config{})
	a := taskrouter.New(store, fastLeases)
	b, c := taskrouter.New(store, fastLeases), taskrouter.New(store, fastLeases)
	shutdown(t, a)
	shutdown(t, b)
	shutdown(t, c)
	started, release := make(chan struct{}), make(chan struct{})
	var stopped atomic.Bool
	task, err := a.Start(t.Context(), taskrouter.StartRequest{Owner: "alice", Method: "tools/call"}, blockingWork(started, release, &stopped))
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, started, "work start")
	waited := make(chan error, 1)
	go func() {
		rec, err := taskrouter.Await(t.Context(), b, "alice", task.Task.TaskID)
		if err == nil && rec.Error != nil {
			err = rec.Error
		}
		waited <- err
	}()
	frozen := time.Now()
	taskrouter.StopLeaseKeeper(a)
	var rpcErr *taskstore.RPCError
	select {
	case err := <-waited:
		if !errors.As(err, &rpcErr) || rpcErr.Code != taskstore.CodeInternalError || rpcErr.Message != taskrouter.OrphanedMessage {
			t.Fatalf("tasks/result on a survivor: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tasks/result on a survivor did not return")
	}
	t.Logf("orphan ended %v after the heartbeat stopped (lease timeout %v)", time.Since(frozen).Round(time.Millisecond), fastLeases.LeaseTimeout)
	rec, err := store.Get(t.Context(), "alice", task.Task.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	// One write ended it: created at v1, ended at v2.
	if rec.Version != 2 || rec.Task.Status != taskstore.StatusFailed {
		t.Fatalf("the orphan is %s at version %d, want failed at 2 (one sweeper wrote)", rec.Task.Status, rec.Version)
	}
	// A's work returns a result now: the fence refuses it.
	close(release)
	time.Sleep(100 * time.Millisecond)
	after, err := store.Get(t.Context(), "alice", task.Task.TaskID)
	if err != nil || after.Version != rec.Version || after.Result != nil {
		t.Fatalf("the frozen replica's late outcome was written: v%d result %s (%v)", after.Version, after.Result, err)
	}
	// The dead runner is forgotten once its tasks are ended.
	deadline := time.Now().Add(5 * time.Second)
	for {
		rs, err := taskstore.NewRuntime(store).Runners(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		gone := true
		for _, r := range rs {
			if r.Runner == a.Runner() {
				gone = false
			}
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead runner is still registered: %v", rs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// attemptSeen is what one run of the "resumable" test tool saw.
type attemptSeen struct {
	Attempt, Step int
	Owner, User   string
}

// TestTakeoverRerunsTool: a replica running a resumable tool freezes; the
// survivor claims the task and runs the tool's handler again through its
// in-memory session, as attempt 2, with the original caller's identity and
// the checkpoint attempt 1 wrote; its result is the task's.
func TestTakeoverRerunsTool(t *testing.T) {
	store := newStore(t, taskstore.Config{})
	seen := make(chan attemptSeen, 4)
	var reps []*replica
	for range 2 {
		rep := newReplica(t, store, replicaOptions{opts: fastLeases})
		mcp.AddTool(rep.server, &mcp.Tool{Name: "resumable"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
			h := taskrouter.TaskHandle(ctx)
			step, _, err := taskstore.Variable[int](ctx, h, "step")
			if err != nil {
				return nil, nil, err
			}
			s := attemptSeen{Attempt: h.Attempt(), Step: step}
			s.Owner, _ = taskrouter.Owner(ctx)
			if ti := req.Extra.TokenInfo; ti != nil {
				s.User = ti.UserID
			}
			if h.Attempt() == 1 {
				if err := h.SetVariables(ctx, map[string]any{"step": 1}); err != nil {
					return nil, nil, err
				}
				seen <- s
				<-ctx.Done() // frozen: never returns on its own
				return nil, nil, ctx.Err()
			}
			seen <- s
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s from step %d", in.Text, step)}}}, nil, nil
		})
		rep.router.SetTaskSupport("resumable", taskrouter.TaskOptional)
		rep.router.SetResumable("resumable", 3)
		reps = append(reps, rep)
	}
	a, b := reps[0], reps[1]
	c := newMGClient(t, a.URL, "tok-alice", "2025-11-25")
	task := c.callTask(t.Context(), "resumable", map[string]any{"text": "report"}, map[string]any{})
	next := func(what string) attemptSeen {
		t.Helper()
		select {
		case s := <-seen:
			return s
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting: %s", what)
			return attemptSeen{}
		}
	}
	if got, want := next("attempt 1"), (attemptSeen{Attempt: 1, Owner: "alice", User: "alice"}); got != want {
		t.Errorf("attempt 1 saw %+v, want %+v", got, want)
	}
	taskrouter.StopLeaseKeeper(a.router)
	if got, want := next("attempt 2 on the survivor"), (attemptSeen{Attempt: 2, Step: 1, Owner: "alice", User: "alice"}); got != want {
		t.Errorf("attempt 2 saw %+v, want %+v", got, want)
	}
	rec, err := taskrouter.Await(t.Context(), b.router, "alice", task.TaskId)
	if err != nil {
		t.Fatal(err)
	}
	var res mcp.CallToolResult
	if err := json.Unmarshal(rec.Result, &res); err != nil || rec.Task.Status != taskstore.StatusCompleted ||
		len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != "report from step 1" {
		t.Fatalf("the resumed task: %s, %s (%v)", rec.Task.Status, rec.Result, err)
	}
	if *rec.Lease != (taskstore.Lease{Runner: b.router.Runner(), Attempt: 2}) {
		t.Errorf("lease of the resumed task: %+v", *rec.Lease)
	}
}
