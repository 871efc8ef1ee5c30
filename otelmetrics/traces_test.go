package otelmetrics_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcptasks/mcptasks/otelmetrics"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

const (
	clientTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientParent = "00f067aa0ba902b7"
)

var clientContext = &taskstore.TraceContext{Traceparent: "00-" + clientTrace + "-" + clientParent + "-01", Tracestate: "rojo=1"}

func newTraces(t *testing.T) (*otelmetrics.Traces, *tracetest.SpanRecorder) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tr, err := otelmetrics.NewTraces(tp)
	if err != nil {
		t.Fatal(err)
	}
	return tr, sr
}

// spanAttrs renders a span's attributes as "k=v" sorted.
func spanAttrs(s sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, kv := range s.Attributes() {
		out = append(out, string(kv.Key)+"="+kv.Value.String())
	}
	slices.Sort(out)
	return out
}

// TestSpans: each span hook makes the span the semantic conventions
// describe: its name, kind, parent (the trace context carried), attributes
// and status, the input request as a client span of its run, the answer as
// an event, and a link from a request of another trace to its task's.
func TestSpans(t *testing.T) {
	tr, sr := newTraces(t)
	m, _ := newMetrics(t)
	o := tr.Observer(m.Observer())
	if o.TaskCreated == nil || o.Operation == nil {
		t.Fatal("the metrics' hooks were dropped")
	}
	bg := context.Background()

	callCtx, end := o.Request(bg, taskrouter.RequestStart{Method: "tools/call", Protocol: "2025-11-25", Session: "sha256:0011", Tool: "echo", Trace: clientContext})
	if tp, ts := o.TraceContext(bg); tp != "" || ts != "" {
		t.Errorf("the trace context of no span: %q %q", tp, ts)
	}
	tp, ts := o.TraceContext(callCtx)
	end(taskrouter.RequestEnd{TaskID: "t1", Status: taskstore.StatusWorking})
	runCtx, endRun := o.Run(bg, taskrouter.RunStart{TaskID: "t1", Method: "tools/call", Tool: "echo", Attempt: 2, Runner: "b", Trace: clientContext})
	endInput := o.InputAsked(runCtx, taskrouter.Input{TaskID: "t1", Key: "elicitation/create#1@2", Method: "elicitation/create"})
	endInput(taskrouter.InputEnd{})
	endRun(taskrouter.RunEnd{Status: taskstore.StatusFailed, ErrorType: "-32603"})
	resCtx, endResult := o.Request(bg, taskrouter.RequestStart{Method: "tasks/result", Protocol: "2025-11-25"})
	o.InputAnswered(resCtx, taskrouter.Input{TaskID: "t1", Key: "elicitation/create#1@2", Method: "elicitation/create"})
	endResult(taskrouter.RequestEnd{TaskID: "t1", Status: taskstore.StatusFailed, TaskTrace: clientContext, ErrorType: "cancelled"})

	spans := sr.Ended()
	if len(spans) != 4 {
		t.Fatalf("%d spans ended, want 4", len(spans))
	}
	type want struct {
		name   string
		kind   trace.SpanKind
		parent string // the parent span's id, "" for a root
		trace  string // "" for a trace of its own
		attrs  []string
		status codes.Code
	}
	call, run, input, result := spans[0], spans[2], spans[1], spans[3]
	for _, tc := range []struct {
		span sdktrace.ReadOnlySpan
		want want
	}{
		{call, want{"tools/call echo", trace.SpanKindServer, clientParent, clientTrace, []string{
			"gen_ai.operation.name=execute_tool", "gen_ai.tool.name=echo", "mcp.method.name=tools/call", "mcp.protocol.version=2025-11-25",
			"mcp.session.id=sha256:0011", "mcptasks.task.id=t1", "mcptasks.task.status=working"}, codes.Unset}},
		{run, want{"tools/call echo", trace.SpanKindServer, clientParent, clientTrace, []string{
			"error.type=-32603", "gen_ai.operation.name=execute_tool", "gen_ai.tool.name=echo", "mcp.method.name=tools/call",
			"mcptasks.replica=b", "mcptasks.task.attempt=2", "mcptasks.task.id=t1", "mcptasks.task.status=failed", "rpc.response.status_code=-32603"}, codes.Error}},
		{input, want{"elicitation/create", trace.SpanKindClient, run.SpanContext().SpanID().String(), clientTrace, []string{
			"mcp.method.name=elicitation/create", "mcptasks.input.key=elicitation/create#1@2", "mcptasks.task.id=t1"}, codes.Unset}},
		{result, want{"tasks/result", trace.SpanKindServer, "", "", []string{
			"error.type=cancelled", "mcp.method.name=tasks/result", "mcp.protocol.version=2025-11-25", "mcptasks.task.id=t1", "mcptasks.task.status=failed"}, codes.Error}},
	} {
		s := tc.span
		got := want{s.Name(), s.SpanKind(), "", "", spanAttrs(s), s.Status().Code}
		if s.Parent().IsValid() {
			got.parent = s.Parent().SpanID().String()
		}
		if id := s.SpanContext().TraceID().String(); id == clientTrace {
			got.trace = id
		}
		if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); d != "" {
			t.Errorf("span %s (-want +got):\n%s", s.Name(), d)
		}
	}
	if !call.Parent().IsRemote() || call.Parent().TraceState().Get("rojo") != "1" {
		t.Errorf("the tools/call span's parent %+v is not the client's context with its tracestate", call.Parent())
	}
	if want := "00-" + clientTrace + "-" + call.SpanContext().SpanID().String() + "-01"; tp != want || ts != "rojo=1" {
		t.Errorf("the trace context kept for a task: %q %q, want %q rojo=1 (the tools/call span's)", tp, ts, want)
	}
	if ev := result.Events(); len(ev) != 1 || ev[0].Name != otelmetrics.EventInputAnswered {
		t.Errorf("tasks/result events: %+v", ev)
	}
	if l := result.Links(); len(l) != 1 || l[0].SpanContext.TraceID().String() != clientTrace || l[0].SpanContext.SpanID().String() != clientParent {
		t.Errorf("tasks/result links: %+v, want the task's trace context", l)
	}
	if l := call.Links(); len(l) != 0 {
		t.Errorf("a request in its task's trace links: %+v", l)
	}
}

// TestNewTracesRefusesNil: a nil provider is an error, not a panic later.
func TestNewTracesRefusesNil(t *testing.T) {
	if _, err := otelmetrics.NewTraces(nil); err == nil || !strings.Contains(err.Error(), "TracerProvider") {
		t.Fatalf("NewTraces(nil) = %v", err)
	}
}
