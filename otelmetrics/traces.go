package otelmetrics

import (
	"context"
	"errors"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Attribute keys of the spans (besides those of the metrics).
const (
	// Of the MCP semantic conventions.
	KeySessionID = attribute.Key("mcp.session.id")
	// Of this package.
	KeyTaskID      = attribute.Key("mcptasks.task.id")
	KeyTaskAttempt = attribute.Key("mcptasks.task.attempt")
	KeyInputKey    = attribute.Key("mcptasks.input.key")
)

// EventInputAnswered is the span event of a client's answer to a task's
// input request, on the span of the tasks/result or tasks/update that
// brought it.
const EventInputAnswered = "mcptasks.input.answered"

// Traces turns a Router's span hooks into OpenTelemetry spans on a
// TracerProvider the application passes; W3C trace context is read with
// the otel propagation package's TraceContext, never a global propagator.
//
//   - a server span per MCP request ("tools/call echo", "tasks/get"…),
//     whose parent is the trace context of the request's params._meta
//     (else whatever span ctx holds, such as an HTTP server span); it
//     links to the task's trace when the request named a task of another
//     trace;
//   - a server span per task run ("tools/call echo", with
//     mcptasks.task.attempt), whose parent is the span of the tools/call
//     that created the task: its trace context is kept in the task's
//     record (Observer.TraceContext), so this holds on the replica that
//     created the task and on one that took it over;
//   - a client span per input request of a run (elicitation/create,
//     sampling/createMessage, roots/list: the server asks its client),
//     from asked to answered, and an event mcptasks.input.answered on the
//     span of the request that brought the answer.
//
// Span statuses are Error when error.type is set (as Operation.ErrorType
// and RunEnd.ErrorType spell it).
type Traces struct {
	tracer trace.Tracer
	prop   propagation.TraceContext
}

// NewTraces makes spans on a tracer of tp.
func NewTraces(tp trace.TracerProvider) (*Traces, error) {
	if tp == nil {
		return nil, errors.New("otelmetrics: nil TracerProvider")
	}
	return &Traces{tracer: tp.Tracer(ScopeName)}, nil
}

// Observer returns o with its span hooks (Request, Run, InputAsked,
// InputAnswered, TraceContext) set to make spans; o's other funcs are
// kept, so metrics and traces go together: tr.Observer(m.Observer()).
func (t *Traces) Observer(o taskrouter.Observer) taskrouter.Observer {
	o.Request, o.Run, o.InputAsked, o.InputAnswered = t.request, t.run, t.inputAsked, t.inputAnswered
	o.TraceContext = t.traceContext
	return o
}

// traceContext is the W3C trace context of the span in ctx (the
// tools/call's), or "" when there is none.
func (t *Traces) traceContext(ctx context.Context) (traceparent, tracestate string) {
	c := propagation.MapCarrier{}
	t.prop.Inject(ctx, c)
	return c["traceparent"], c["tracestate"]
}

// remote is ctx with the trace context tc (a remote parent), or ctx when
// tc is nil.
func (t *Traces) remote(ctx context.Context, tc *taskstore.TraceContext) context.Context {
	if tc == nil {
		return ctx
	}
	return t.prop.Extract(ctx, propagation.MapCarrier{"traceparent": tc.Traceparent, "tracestate": tc.Tracestate})
}

// toolAttrs are the attributes of a tools/call (or a run of one).
func toolAttrs(attrs []attribute.KeyValue, tool string) []attribute.KeyValue {
	if tool == "" {
		return attrs
	}
	return append(attrs, KeyToolName.String(tool), KeyOperationName.String("execute_tool"))
}

// spanName is "{mcp.method.name} {tool}", or the method alone.
func spanName(method, tool string) string {
	if tool == "" {
		return method
	}
	return method + " " + tool
}

func (t *Traces) request(ctx context.Context, r taskrouter.RequestStart) (context.Context, func(taskrouter.RequestEnd)) {
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs, KeyMethod.String(r.Method), KeyProtocolVersion.String(r.Protocol))
	if r.Session != "" {
		attrs = append(attrs, KeySessionID.String(r.Session))
	}
	attrs = toolAttrs(attrs, r.Tool)
	ctx, span := t.tracer.Start(t.remote(ctx, r.Trace), spanName(r.Method, r.Tool),
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	return ctx, func(e taskrouter.RequestEnd) {
		if e.TaskID != "" {
			span.SetAttributes(KeyTaskID.String(e.TaskID))
		}
		if e.Status != "" {
			span.SetAttributes(KeyStatus.String(string(e.Status)))
		}
		if e.TaskTrace != nil {
			task := trace.SpanContextFromContext(t.remote(context.Background(), e.TaskTrace))
			if task.IsValid() && task.TraceID() != span.SpanContext().TraceID() {
				span.AddLink(trace.Link{SpanContext: task})
			}
		}
		end(span, e.ErrorType)
	}
}

func (t *Traces) run(ctx context.Context, r taskrouter.RunStart) (context.Context, func(taskrouter.RunEnd)) {
	method := r.Method
	if method == "" {
		method = "tools/call"
	}
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs, KeyMethod.String(method), KeyTaskID.String(r.TaskID), KeyTaskAttempt.Int(r.Attempt))
	if r.Runner != "" {
		attrs = append(attrs, KeyReplica.String(r.Runner))
	}
	attrs = toolAttrs(attrs, r.Tool)
	ctx, span := t.tracer.Start(t.remote(ctx, r.Trace), spanName(method, r.Tool),
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	return ctx, func(e taskrouter.RunEnd) {
		if e.Status != "" {
			span.SetAttributes(KeyStatus.String(string(e.Status)))
		}
		end(span, e.ErrorType)
	}
}

func (t *Traces) inputAsked(ctx context.Context, in taskrouter.Input) func(taskrouter.InputEnd) {
	attrs := inputAttrs(in)
	_, span := t.tracer.Start(ctx, spanName(attrs[0].Value.AsString(), ""),
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return func(e taskrouter.InputEnd) { end(span, e.ErrorType) }
}

func (t *Traces) inputAnswered(ctx context.Context, in taskrouter.Input) {
	trace.SpanFromContext(ctx).AddEvent(EventInputAnswered, trace.WithAttributes(inputAttrs(in)...))
}

// inputAttrs describe an input request; the method comes first.
func inputAttrs(in taskrouter.Input) []attribute.KeyValue {
	method := in.Method
	if method == "" {
		method = "mcptasks.input" // a key of the handler's own
	}
	return []attribute.KeyValue{KeyMethod.String(method), KeyTaskID.String(in.TaskID), KeyInputKey.String(in.Key)}
}

// end ends span, with error.type and an Error status when errorType is
// set (and rpc.response.status_code when it is a JSON-RPC code).
func end(span trace.Span, errorType string) {
	if errorType != "" {
		span.SetAttributes(KeyErrorType.String(errorType))
		if _, err := strconv.Atoi(errorType); err == nil {
			span.SetAttributes(KeyRPCStatusCode.String(errorType))
		}
		span.SetStatus(codes.Error, errorType)
	}
	span.End()
}
