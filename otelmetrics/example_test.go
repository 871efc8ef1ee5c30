package otelmetrics_test

import (
	"context"
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/otelmetrics"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// A service's metrics in the Prometheus text format, through the
// OpenTelemetry Prometheus exporter with a registry of its own (docs/operations.md).
func ExampleNew() {
	ctx := context.Background()
	registry := prometheus.NewRegistry()
	// Underscored names with unit and _total suffixes, as docs/operations.md lists them.
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry), otelprom.WithoutScopeInfo(),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes))
	if err != nil {
		log.Fatal(err)
	}
	m, err := otelmetrics.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter)))
	if err != nil {
		log.Fatal(err)
	}
	store, err := mcptasks.Open(ctx, "memory://", taskstore.Config{ObserveBackend: m.ObserveBackend})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	tasks := taskrouter.New(store, taskrouter.Options{Observer: m.Observer()})
	defer tasks.Shutdown(ctx)
	http.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	// … install tasks on your MCP server, serve /metrics on a listener of its own.
}
