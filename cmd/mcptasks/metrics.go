package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/mcptasks/mcptasks/otelmetrics"
)

// metricsServer serves serve's metrics (package otelmetrics) in the
// Prometheus text format at /metrics, on a listener of its own, so that
// the metrics can be reachable where the MCP endpoint is not (and the
// other way round). The exporter has a registry of its own, not the
// Prometheus client's global one.
type metricsServer struct {
	metrics  *otelmetrics.Metrics
	provider *sdkmetric.MeterProvider
	ln       net.Listener
	srv      *http.Server
}

// listenMetrics listens on addr and makes the instruments; serve starts
// serving them once the store is open.
func listenMetrics(addr string) (*metricsServer, error) {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes))
	if err != nil {
		return nil, err
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	m, err := otelmetrics.New(provider)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return &metricsServer{metrics: m, provider: provider, ln: ln,
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}, nil
}

// serve serves until close; a failure is logged (serve goes on without
// metrics).
func (s *metricsServer) serve(logger *slog.Logger) {
	go func() {
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server failed", "error", err)
		}
	}()
}

// close stops the listener and the provider; nil-safe.
func (s *metricsServer) close() {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	s.ln.Close() // when serve never started
	s.provider.Shutdown(ctx)
}
