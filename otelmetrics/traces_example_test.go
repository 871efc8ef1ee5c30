package otelmetrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/otelmetrics"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// A Router's spans on a TracerProvider of the application's
// (docs/operations.md). A service exports them (OTLP: an exporter of
// go.opentelemetry.io/otel/exporters/otlp/otlptrace); this example keeps
// them in memory and prints them.
func ExampleNewTraces() {
	ctx := context.Background()
	exporter := tracetest.NewInMemoryExporter()
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter))
	defer provider.Shutdown(ctx)
	tr, err := otelmetrics.NewTraces(provider)
	if err != nil {
		log.Fatal(err)
	}
	store, err := mcptasks.Open(ctx, "memory://", taskstore.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	tasks := taskrouter.New(store, taskrouter.Options{Observer: tr.Observer(taskrouter.Observer{})})
	// … install tasks on your MCP server: each request and each task run is a span.

	// A task started directly, in the trace of a client's traceparent.
	client := taskstore.NewTraceContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "")
	_, err = tasks.Start(ctx, taskrouter.StartRequest{Owner: "alice", Method: "tools/call", Tool: "sum", Trace: client},
		func(context.Context) taskrouter.Outcome {
			return taskrouter.Outcome{Result: json.RawMessage(`{"sum":3}`)}
		})
	if err != nil {
		log.Fatal(err)
	}
	tasks.Shutdown(ctx) // waits for the run to end
	provider.ForceFlush(ctx)
	for _, s := range exporter.GetSpans() {
		fmt.Println(s.Name, s.SpanKind, s.SpanContext.TraceID(), s.Parent.SpanID())
	}
	// Output:
	// tools/call sum server 4bf92f3577b34da6a3ce929d0e0e4736 00f067aa0ba902b7
}
