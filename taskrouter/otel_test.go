package taskrouter_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcptasks/mcptasks/otelmetrics"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// These tests run Routers with package otelmetrics' Traces on an SDK
// TracerProvider whose spans an in-memory recorder keeps. (The library
// does not link OpenTelemetry; its tests may.)

// The client's trace: its spans' ids, as a traceparent in _meta.
const clientTraceID = "0af7651916cd43dd8448eb211c80319c"

func clientMeta(spanID string) mcp.Meta {
	return mcp.Meta{"traceparent": "00-" + clientTraceID + "-" + spanID + "-01"}
}

// traced returns Router options (fastLeases) whose Observer makes spans
// into the returned recorder.
func traced(t *testing.T) (taskrouter.Options, *tracetest.SpanRecorder) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tr, err := otelmetrics.NewTraces(tp)
	if err != nil {
		t.Fatal(err)
	}
	opts := fastLeases
	opts.Observer = tr.Observer(taskrouter.Observer{})
	return opts, sr
}

// spanDesc is what the tests check of a span.
type spanDesc struct {
	s sdktrace.ReadOnlySpan
}

func (d spanDesc) attr(k string) string {
	for _, kv := range d.s.Attributes() {
		if string(kv.Key) == k {
			return kv.Value.String()
		}
	}
	return ""
}

func (d spanDesc) trace() string  { return d.s.SpanContext().TraceID().String() }
func (d spanDesc) id() string     { return d.s.SpanContext().SpanID().String() }
func (d spanDesc) parent() string { return d.s.Parent().SpanID().String() }

// findSpans returns the spans of the name whose attributes include the
// given k=v pairs.
func findSpans(spans []sdktrace.ReadOnlySpan, name string, attrs ...string) []spanDesc {
	var out []spanDesc
	for _, s := range spans {
		d := spanDesc{s}
		ok := s.Name() == name
		for _, kv := range attrs {
			k, v, _ := strings.Cut(kv, "=")
			ok = ok && d.attr(k) == v
		}
		if ok {
			out = append(out, d)
		}
	}
	return out
}

// oneSpan waits until exactly one ended span matches, and returns it.
func oneSpan(t *testing.T, sr *tracetest.SpanRecorder, name string, attrs ...string) spanDesc {
	t.Helper()
	var found []spanDesc
	waitFor(t, fmt.Sprintf("a span %s %v", name, attrs), func() bool {
		found = findSpans(sr.Ended(), name, attrs...)
		return len(found) > 0
	})
	if len(found) != 1 {
		t.Fatalf("%d spans %s %v", len(found), name, attrs)
	}
	return found[0]
}

func wantSpan(t *testing.T, what string, d spanDesc, kind trace.SpanKind, traceID, parent string) {
	t.Helper()
	if d.s.SpanKind() != kind || d.trace() != traceID || d.parent() != parent {
		t.Errorf("%s: kind %v trace %s parent %s, want %v %s %s", what, d.s.SpanKind(), d.trace(), d.parent(), kind, traceID, parent)
	}
}

// TestOTelTraceAcrossReplicas: a client's tools/call on replica A carries
// its trace context; the task's run on A is a child of that request's
// span, its elicitation a client span of the run; the client's
// tasks/result and tasks/get on replica B (with trace context of the same
// trace) belong to it, the answer shows as an event of B's tasks/result;
// a tasks/get without trace context is a trace of its own that links to
// the task's (the tools/call's span).
func TestOTelTraceAcrossReplicas(t *testing.T) {
	ctx := t.Context()
	opts, sr := traced(t)
	store := newStore(t, taskstore.Config{})
	a := newReplica(t, store, replicaOptions{opts: opts})
	b := newReplica(t, store, replicaOptions{opts: opts})
	var onA, onB asked
	ca := httpClient(t, a.URL, "tok-alice", false, answering(&onA, "a"))
	cb := httpClient(t, b.URL, "tok-alice", false, answering(&onB, "b"))

	id := startMeta(t, ca, "elicit", map[string]any{"question": "Go?"}, clientMeta("1000000000000001"))
	waitStatus(t, cb, id, "input_required")
	if _, err := cb.call(ctx, "tasks/result", &idParams{ParamsBase: mcp.ParamsBase{Meta: clientMeta("1000000000000002")}, TaskID: id}); err != nil {
		t.Fatalf("tasks/result on B: %v", err)
	}
	if _, err := cb.call(ctx, "tasks/get", &idParams{ParamsBase: mcp.ParamsBase{Meta: clientMeta("1000000000000003")}, TaskID: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.call(ctx, "tasks/get", &idParams{TaskID: id}); err != nil {
		t.Fatal(err)
	}
	onB.check(t, id, 1)
	onA.check(t, id, 0)

	task := "mcptasks.task.id=" + id
	call := oneSpan(t, sr, "tools/call elicit", task, "mcp.method.name=tools/call", "mcptasks.task.attempt=")
	run := oneSpan(t, sr, "tools/call elicit", task, "mcptasks.task.attempt=1")
	input := oneSpan(t, sr, "elicitation/create", task)
	result := oneSpan(t, sr, "tasks/result", task)
	gets := findSpans(sr.Ended(), "tasks/get", task)
	wantSpan(t, "tools/call on A", call, trace.SpanKindServer, clientTraceID, "1000000000000001")
	wantSpan(t, "the run on A", run, trace.SpanKindServer, clientTraceID, call.id())
	wantSpan(t, "its elicitation", input, trace.SpanKindClient, clientTraceID, run.id())
	wantSpan(t, "tasks/result on B", result, trace.SpanKindServer, clientTraceID, "1000000000000002")
	if got := run.attr("mcptasks.replica") + " " + run.attr("mcptasks.task.status") + " " + run.attr("error.type"); got != a.router.Runner()+" completed " {
		t.Errorf("the run: replica, status, error %q", got)
	}
	if ev := result.s.Events(); len(ev) != 1 || ev[0].Name != otelmetrics.EventInputAnswered ||
		!hasAttr(ev[0].Attributes, "mcptasks.input.key", "elicitation/create#1") {
		t.Errorf("tasks/result's events: %+v", ev)
	}
	var traced, own int
	for _, g := range gets {
		switch {
		case g.trace() == clientTraceID && g.parent() == "1000000000000003":
			traced++
		case g.trace() != clientTraceID && len(g.s.Links()) == 1 && g.s.Links()[0].SpanContext.SpanID().String() == call.id():
			own++
		default:
			t.Errorf("a tasks/get span: trace %s parent %s links %+v", g.trace(), g.parent(), g.s.Links())
		}
	}
	if traced != 1 || own < 1 { // waitStatus polled without trace context
		t.Errorf("tasks/get spans: %d in the client's trace, %d of their own linked to the task's; want 1 and ≥1", traced, own)
	}
}

func hasAttr(kvs []attribute.KeyValue, k, v string) bool {
	for _, kv := range kvs {
		if string(kv.Key) == k && kv.Value.String() == v {
			return true
		}
	}
	return false
}

// TestOTelTraceTakeover: replica A's run of a resumable task dies (its
// lease keeper stops, as in a frozen process); replica B takes the task
// over, and its run (attempt 2) is a span of the client's trace, a child
// of the tools/call's span on A, as A's run was.
func TestOTelTraceTakeover(t *testing.T) {
	ctx := t.Context()
	opts, sr := traced(t)
	store := newStore(t, taskstore.Config{})
	started := make(chan struct{})
	var reps []*replica
	for range 2 {
		rep := newReplica(t, store, replicaOptions{opts: opts})
		mcp.AddTool(rep.server, &mcp.Tool{Name: "hold"}, func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
			h := taskrouter.TaskHandle(ctx)
			if h.Attempt() == 1 {
				close(started)
				<-ctx.Done()
				return nil, nil, ctx.Err()
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("attempt %d", h.Attempt())}}}, nil, nil
		})
		rep.router.SetTaskSupport("hold", taskrouter.TaskOptional)
		rep.router.SetResumable("hold", 3)
		reps = append(reps, rep)
	}
	a, b := reps[0], reps[1]
	ca := newSDKHTTPClient(t, a.URL, "tok-alice")
	id := startMeta(t, ca, "hold", nil, clientMeta("2000000000000001"))
	waitClosed(t, started, "attempt 1 starts on A")
	taskrouter.StopLeaseKeeper(a.router)
	cb := newSDKHTTPClient(t, b.URL, "tok-alice")
	if txt, _ := resultText(t, cb, ctx, id); txt != "attempt 2" {
		t.Fatalf("tasks/result on B: %q", txt)
	}

	task := "mcptasks.task.id=" + id
	call := oneSpan(t, sr, "tools/call hold", task, "mcptasks.task.attempt=")
	second := oneSpan(t, sr, "tools/call hold", task, "mcptasks.task.attempt=2")
	wantSpan(t, "tools/call on A", call, trace.SpanKindServer, clientTraceID, "2000000000000001")
	wantSpan(t, "the run on B", second, trace.SpanKindServer, clientTraceID, call.id())
	if got := second.attr("mcptasks.replica") + " " + second.attr("mcptasks.task.status"); got != b.router.Runner()+" completed" {
		t.Errorf("B's run: replica and status %q", got)
	}
	// A's run started in the same trace; it ends (lease lost) only when A
	// shuts down, as a dead process never would.
	var startedSpans []sdktrace.ReadOnlySpan
	for _, s := range sr.Started() {
		startedSpans = append(startedSpans, s)
	}
	first := findSpans(startedSpans, "tools/call hold", task, "mcptasks.task.attempt=1", "mcptasks.replica="+a.router.Runner())
	if len(first) != 1 {
		t.Fatalf("%d spans of A's run", len(first))
	}
	wantSpan(t, "the run on A", first[0], trace.SpanKindServer, clientTraceID, call.id())
}

// TestOTelTraceHostileContext: a malformed or oversized traceparent is
// ignored: the tools/call's span starts a trace of its own, the run is a
// child of it, and the task works.
func TestOTelTraceHostileContext(t *testing.T) {
	ctx := t.Context()
	opts, sr := traced(t)
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{opts: opts})
	c := newSDKHTTPClient(t, rep.URL, "tok-alice")
	for name, tp := range map[string]any{
		"oversized": "01-" + clientTraceID + "-1000000000000001-01-" + strings.Repeat("a", 200_000),
		"malformed": "00-" + strings.ToUpper(clientTraceID) + "-1000000000000001-01",
		"an object": map[string]any{"traceparent": "00-" + clientTraceID + "-1000000000000001-01"},
	} {
		t.Run(name, func(t *testing.T) {
			id := startMeta(t, c, "echo", map[string]any{"text": name}, mcp.Meta{"traceparent": tp, "tracestate": "x=1"})
			if txt, _ := resultText(t, c, ctx, id); txt != "echo: "+name {
				t.Fatalf("tasks/result: %q", txt)
			}
			task := "mcptasks.task.id=" + id
			call := oneSpan(t, sr, "tools/call echo", task, "mcptasks.task.attempt=")
			run := oneSpan(t, sr, "tools/call echo", task, "mcptasks.task.attempt=1")
			if call.s.Parent().IsValid() || call.trace() == clientTraceID {
				t.Errorf("the tools/call span has parent %s in trace %s", call.parent(), call.trace())
			}
			wantSpan(t, "the run", run, trace.SpanKindServer, call.trace(), call.id())
		})
	}
}
