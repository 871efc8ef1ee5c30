package taskrouter_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

const testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// spanLog keeps what a Router told the span hooks of its Observer, one
// line per hook call, and checks that each end comes once and that the
// contexts the hooks returned are the ones the work ran in.
type spanLog struct {
	mu    sync.Mutex
	lines []string
}

type spanKey struct{}

func (l *spanLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// with returns the lines that start with prefix.
func (l *spanLog) with(prefix string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.lines {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}

func traceString(tc *taskstore.TraceContext) string {
	if tc == nil {
		return "none"
	}
	return tc.Traceparent + ";" + tc.Tracestate
}

func (l *spanLog) observer(t *testing.T) taskrouter.Observer {
	once := func(what string) func() {
		var done bool
		var mu sync.Mutex
		return func() {
			mu.Lock()
			defer mu.Unlock()
			if done {
				t.Errorf("%s ended twice", what)
			}
			done = true
		}
	}
	return taskrouter.Observer{
		Request: func(ctx context.Context, r taskrouter.RequestStart) (context.Context, func(taskrouter.RequestEnd)) {
			if !strings.HasPrefix(r.Method, "tasks/") && r.Method != "tools/call" {
				return ctx, func(taskrouter.RequestEnd) {}
			}
			end := once("request " + r.Method)
			session := "none"
			if r.Session != "" {
				session = "digest"
				if !strings.HasPrefix(r.Session, "sha256:") {
					t.Errorf("session %q is not a digest", r.Session)
				}
			}
			return context.WithValue(ctx, spanKey{}, r.Method), func(e taskrouter.RequestEnd) {
				end()
				l.add("request %s %s tool=%s session=%s trace=%s -> task=%s status=%s error=%s",
					r.Method, r.Protocol, r.Tool, session, traceString(r.Trace), e.TaskID, e.Status, e.ErrorType)
			}
		},
		Run: func(ctx context.Context, r taskrouter.RunStart) (context.Context, func(taskrouter.RunEnd)) {
			end := once("run " + r.TaskID)
			return context.WithValue(ctx, spanKey{}, "run "+r.TaskID), func(e taskrouter.RunEnd) {
				end()
				l.add("run %s %s attempt=%d trace=%s -> status=%s error=%s", r.TaskID, r.Tool, r.Attempt, traceString(r.Trace), e.Status, e.ErrorType)
			}
		},
		InputAsked: func(ctx context.Context, in taskrouter.Input) func(taskrouter.InputEnd) {
			end := once("input " + in.Key)
			in2 := ctx.Value(spanKey{})
			return func(e taskrouter.InputEnd) {
				end()
				l.add("asked %s %s %s in=%v -> error=%s", in.TaskID, in.Key, in.Method, in2, e.ErrorType)
			}
		},
		InputAnswered: func(ctx context.Context, in taskrouter.Input) {
			l.add("answered %s %s %s in=%v", in.TaskID, in.Key, in.Method, ctx.Value(spanKey{}))
		},
	}
}

// TestSpanHooks: a task-augmented tools/call with a trace context in
// _meta keeps it in the task's record; the Request hook sees it and ends
// with the task created; the run's hook starts with it and ends with the
// task's status; the handler's elicitation shows as asked (in the run's
// context) and answered (in the tasks/result's context that delivered it).
func TestSpanHooks(t *testing.T) {
	ctx := t.Context()
	var log spanLog
	store := newStore(t, taskstore.Config{})
	rep := newReplica(t, store, replicaOptions{opts: taskrouter.Options{Observer: log.observer(t)}})
	var a asked
	c := httpClient(t, rep.URL, "tok-alice", false, answering(&a, "yes"))
	id := startMeta(t, c, "elicit", map[string]any{"question": "Go?"}, mcp.Meta{"traceparent": testTraceparent, "tracestate": "a=1"})
	rec, err := store.Get(ctx, "alice", id)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&taskstore.TraceContext{Traceparent: testTraceparent, Tracestate: "a=1"}, rec.Trace); d != "" {
		t.Errorf("the record's trace (-want +got):\n%s", d)
	}
	if txt, _ := resultText(t, c, ctx, id); txt != "answers: accept:yes" {
		t.Fatalf("tasks/result: %q", txt)
	}
	c.task(t, ctx, "tasks/get", id)
	waitFor(t, "the run's end", func() bool { return len(log.with("run ")) == 1 })
	want := []string{
		"request tools/call 2025-11-25 tool=elicit session=digest trace=" + testTraceparent + ";a=1 -> task=" + id + " status=working error=",
		"request tasks/result 2025-11-25 tool= session=digest trace=none -> task=" + id + " status=completed error=",
		"request tasks/get 2025-11-25 tool= session=digest trace=none -> task=" + id + " status=completed error=",
		"run " + id + " elicit attempt=1 trace=" + testTraceparent + ";a=1 -> status=completed error=",
		"asked " + id + " elicitation/create#1 elicitation/create in=run " + id + " -> error=",
		"answered " + id + " elicitation/create#1 elicitation/create in=tasks/result",
	}
	var got []string
	for _, p := range []string{"request tools/call", "request tasks/result", "request tasks/get", "run ", "asked ", "answered "} {
		got = append(got, log.with(p)...)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("span hooks (-want +got):\n%s", d)
	}
}

// TestSpanHooksHostileTraceContext: a malformed or oversized traceparent
// (or one of another JSON type) is ignored: nothing is stored, the hooks
// see none, and the task works; a bad tracestate is dropped alone.
func TestSpanHooksHostileTraceContext(t *testing.T) {
	ctx := t.Context()
	var log spanLog
	store := newStore(t, taskstore.Config{})
	rep := newReplica(t, store, replicaOptions{opts: taskrouter.Options{Observer: log.observer(t)}})
	c := newSDKHTTPClient(t, rep.URL, "tok-alice")
	for _, tc := range []struct {
		name string
		meta mcp.Meta
		want *taskstore.TraceContext
	}{
		{"oversized", mcp.Meta{"traceparent": "01" + testTraceparent[2:] + "-" + strings.Repeat("f", 100_000)}, nil},
		{"malformed", mcp.Meta{"traceparent": "00-xyz-<script>-01", "tracestate": "a=1"}, nil},
		{"zero trace id", mcp.Meta{"traceparent": "00-" + strings.Repeat("0", 32) + "-00f067aa0ba902b7-01"}, nil},
		{"a number", mcp.Meta{"traceparent": 42}, nil},
		{"an object", mcp.Meta{"traceparent": map[string]any{"a": strings.Repeat("x", 1000)}}, nil},
		{"bad tracestate", mcp.Meta{"traceparent": testTraceparent, "tracestate": strings.Repeat("k=v,", 300)}, &taskstore.TraceContext{Traceparent: testTraceparent}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := startMeta(t, c, "echo", map[string]any{"text": tc.name}, tc.meta)
			if txt, isErr := resultText(t, c, ctx, id); isErr || txt != "echo: "+tc.name {
				t.Fatalf("tasks/result: %q (isError %v)", txt, isErr)
			}
			rec, err := store.Get(ctx, "alice", id)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, rec.Trace); d != "" {
				t.Errorf("stored trace (-want +got):\n%s", d)
			}
			waitFor(t, "the run's end", func() bool { return len(log.with("run "+id)) == 1 })
			wantTrace := "trace=" + traceString(tc.want)
			for _, l := range append(log.with("run "+id), log.with("request tools/call 2025-11-25 tool=echo")...) {
				if strings.Contains(l, "-> task="+id) || strings.HasPrefix(l, "run ") {
					if !strings.Contains(l, wantTrace) {
						t.Errorf("%s: want %s", l, wantTrace)
					}
				}
			}
		})
	}
}

// TestSpanHooksCancel: a run cancelled by tasks/cancel ends its hook as
// cancelled.
func TestSpanHooksCancel(t *testing.T) {
	ctx := t.Context()
	var log spanLog
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{opts: taskrouter.Options{Observer: log.observer(t)}})
	c := newSDKHTTPClient(t, rep.URL, "tok-alice")
	task := c.start(t, ctx, "block", map[string]any{}, map[string]any{})
	waitClosed(t, rep.probe.Started(task.TaskID), "block starts")
	c.task(t, ctx, "tasks/cancel", task.TaskID)
	waitFor(t, "the run's end", func() bool { return len(log.with("run ")) == 1 })
	if got, want := log.with("run ")[0], "run "+task.TaskID+" block attempt=1 trace=none -> status=cancelled error=cancelled"; got != want {
		t.Errorf("run: %s, want %s", got, want)
	}
	if got := log.with("request tasks/cancel"); len(got) != 1 || !strings.HasSuffix(got[0], "-> task="+task.TaskID+" status=cancelled error=") {
		t.Errorf("tasks/cancel: %v", got)
	}
}

// startMeta starts tool as a task (a task-augmented tools/call whose
// params carry meta as _meta) and returns the task's id.
func startMeta(t *testing.T, c *sdkClient, tool string, args any, meta mcp.Meta) string {
	t.Helper()
	res, err := c.call(t.Context(), taskCallMethod, &taskCallParams{ParamsBase: mcp.ParamsBase{Meta: meta}, Name: tool, Arguments: args, Task: map[string]any{}})
	if err != nil {
		t.Fatalf("tools/call %s as a task: %v", tool, err)
	}
	var out struct {
		Task wireTask `json:"task"`
	}
	res.decode(t, &out)
	return out.Task.TaskID
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
