// Package otelmetrics records what an mcptasks service does as
// OpenTelemetry metrics and traces: it turns a taskrouter.Observer's
// events and the store calls taskstore.Config.ObserveBackend reports into
// instruments of a MeterProvider the application passes (Metrics), and
// the Observer's span hooks into spans of a TracerProvider it passes
// (Traces). Nothing global is read or set, and nothing is exported: the
// application chooses the providers and their readers and exporters (a
// Prometheus exporter, OTLP, …).
//
// It is a package of its own so that a service that does not import it
// links none of OpenTelemetry; the core only offers the hook.
//
//	m, err := otelmetrics.New(meterProvider)
//	tr, err := otelmetrics.NewTraces(tracerProvider)
//	store, err := mcptasks.Open(ctx, url, taskstore.Config{ObserveBackend: m.ObserveBackend})
//	router := taskrouter.New(store, taskrouter.Options{Observer: tr.Observer(m.Observer())})
//
// Names and attributes follow the OpenTelemetry semantic conventions for
// MCP where they apply (mcp.server.operation.duration, mcp.method.name,
// mcp.protocol.version, mcp.session.id, gen_ai.tool.name, error.type,
// server spans named "{mcp.method.name} {tool}", W3C trace context in
// params._meta); the rest are named mcptasks.*. docs/operations.md lists
// every instrument and span, what it means and what to alert on.
//
// One Metrics serves one Router: the heartbeat ages are the last ones its
// Router reported.
package otelmetrics

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// ScopeName is the instrumentation scope of the instruments.
const ScopeName = "github.com/mcptasks/mcptasks/otelmetrics"

// Attribute keys.
const (
	// Of the MCP semantic conventions.
	KeyMethod          = attribute.Key("mcp.method.name")
	KeyProtocolVersion = attribute.Key("mcp.protocol.version")
	KeyToolName        = attribute.Key("gen_ai.tool.name")
	KeyOperationName   = attribute.Key("gen_ai.operation.name")
	KeyErrorType       = attribute.Key("error.type")
	KeyRPCStatusCode   = attribute.Key("rpc.response.status_code")
	// Of this package.
	KeyStatus         = attribute.Key("mcptasks.task.status")
	KeyReplica        = attribute.Key("mcptasks.replica")
	KeyRefusalReason  = attribute.Key("mcptasks.refusal.reason")
	KeyStoreOperation = attribute.Key("mcptasks.store.operation")
	KeyStoreOutcome   = attribute.Key("mcptasks.store.outcome")
)

// Outcomes of a store call (mcptasks.store.outcome).
const (
	OutcomeOK        = "ok"
	OutcomeNotFound  = "not_found" // ErrNotFound: an answer, not a failure
	OutcomeConflict  = "conflict"  // ErrVersionConflict, ErrAlreadyExists: a lost race, retried
	OutcomeRefused   = "refused"   // ErrQuotaExceeded, ErrStorageFull
	OutcomeCancelled = "cancelled" // the caller's context ended
	OutcomeTimeout   = "timeout"   // its deadline passed
	OutcomeError     = "error"     // anything else: the store failed
)

// Bucket boundaries, in seconds. The operation's are the MCP semantic
// conventions' own; a task runs from milliseconds to its TTL (a day at
// most by default); a store call takes a fraction of a millisecond to
// seconds.
var (
	operationBuckets = []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}
	taskBuckets      = []float64{0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600}
	storeBuckets     = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
)

// Metrics holds the instruments. Its methods are safe for concurrent use.
type Metrics struct {
	operation     metric.Float64Histogram
	created       metric.Int64Counter
	ended         metric.Int64Counter
	taskDuration  metric.Float64Histogram
	running       metric.Int64UpDownCounter
	inputWaiting  metric.Int64UpDownCounter
	resultWaiters metric.Int64UpDownCounter
	orphans       metric.Int64Counter
	takenOver     metric.Int64Counter
	refusals      metric.Int64Counter
	storeCall     metric.Float64Histogram

	// feed is 1 up, 0 down, -1 before the Router reported it (no feed).
	feed atomic.Int64

	mu     sync.Mutex
	ages   map[string]time.Duration // the last heartbeat ages reported
	agesAt time.Time                // when

	storeAttrs sync.Map // storeKey -> metric.MeasurementOption
}

type storeKey struct{ op, outcome string }

// New makes the instruments on a meter of mp.
func New(mp metric.MeterProvider) (*Metrics, error) {
	if mp == nil {
		return nil, errors.New("otelmetrics: nil MeterProvider")
	}
	meter := mp.Meter(ScopeName)
	m := &Metrics{}
	m.feed.Store(-1)
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	upDown := func(name, unit, desc string) metric.Int64UpDownCounter {
		c, err := meter.Int64UpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	seconds := func(name, desc string, buckets []float64) metric.Float64Histogram {
		h, err := meter.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(buckets...))
		errs = append(errs, err)
		return h
	}
	m.operation = seconds("mcp.server.operation.duration",
		"MCP request or notification duration as observed on the receiver from the time it was received until the result or ack is sent.", operationBuckets)
	m.created = counter("mcptasks.tasks.created", "{task}", "Tasks created on this replica.")
	m.ended = counter("mcptasks.tasks.ended", "{task}", "Tasks whose end this replica wrote: a run's outcome, a tasks/cancel, an orphan's end.")
	m.taskDuration = seconds("mcptasks.task.duration", "Time from a task's creation to its end, for the tasks counted in mcptasks.tasks.ended.", taskBuckets)
	m.running = upDown("mcptasks.tasks.running", "{task}", "Tasks running on this replica.")
	m.inputWaiting = upDown("mcptasks.tasks.input_waiting", "{task}", "Tasks running on this replica that wait for their client's input.")
	m.resultWaiters = upDown("mcptasks.result.waiters", "{request}", "tasks/result calls waiting on this replica for a task to end.")
	m.orphans = counter("mcptasks.orphans.ended", "{task}", "Tasks this replica ended because the replica running them stopped.")
	m.takenOver = counter("mcptasks.tasks.taken_over", "{task}", "Resumable tasks this replica claimed from a replica that stopped, to run again.")
	m.refusals = counter("mcptasks.refusals", "{request}", "Requests refused for a limit, by reason.")
	m.storeCall = seconds("mcptasks.store.call.duration", "Duration of the calls to the task store's backend, by operation and outcome.", storeBuckets)
	_, err := meter.Float64ObservableGauge("mcptasks.replica.heartbeat.age", metric.WithUnit("s"),
		metric.WithDescription("Time since each other replica's heartbeat was last seen to move, on this replica's clock."),
		metric.WithFloat64Callback(m.observeAges))
	errs = append(errs, err)
	_, err = meter.Int64ObservableGauge("mcptasks.feed.up",
		metric.WithDescription("1 while the store's change feed is up on this replica, 0 while it is down (waiters poll)."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			if v := m.feed.Load(); v >= 0 {
				o.Observe(v)
			}
			return nil
		}))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// The ones without attributes exist from the start, at 0: a rate or
	// an alert on them needs no special case for a fresh process.
	bg := context.Background()
	for _, c := range []metric.Int64UpDownCounter{m.running, m.inputWaiting, m.resultWaiters} {
		c.Add(bg, 0)
	}
	for _, c := range []metric.Int64Counter{m.orphans, m.takenOver} {
		c.Add(bg, 0)
	}
	return m, nil
}

// Observer is the taskrouter.Observer that records into m: give it to
// taskrouter.Options.Observer.
func (m *Metrics) Observer() taskrouter.Observer {
	bg := context.Background()
	return taskrouter.Observer{
		TaskCreated: func(c taskrouter.TaskCreated) {
			m.created.Add(bg, 1, metric.WithAttributes(KeyToolName.String(c.Tool), KeyProtocolVersion.String(c.Protocol)))
		},
		TaskEnded: func(e taskrouter.TaskEnded) {
			attrs := metric.WithAttributes(KeyToolName.String(e.Tool), KeyStatus.String(string(e.Status)))
			m.ended.Add(bg, 1, attrs)
			m.taskDuration.Record(bg, e.Duration.Seconds(), attrs)
		},
		Running:       func(d int) { m.running.Add(bg, int64(d)) },
		InputWaiting:  func(d int) { m.inputWaiting.Add(bg, int64(d)) },
		ResultWaiters: func(d int) { m.resultWaiters.Add(bg, int64(d)) },
		OrphanEnded:   func() { m.orphans.Add(bg, 1) },
		TakenOver:     func() { m.takenOver.Add(bg, 1) },
		Heartbeats: func(ages map[string]time.Duration) {
			m.mu.Lock()
			m.ages, m.agesAt = ages, time.Now()
			m.mu.Unlock()
		},
		Feed: func(up bool) {
			if up {
				m.feed.Store(1)
			} else {
				m.feed.Store(0)
			}
		},
		Refused: func(reason string) {
			m.refusals.Add(bg, 1, metric.WithAttributes(KeyRefusalReason.String(reason)))
		},
		Operation: m.recordOperation,
	}
}

// recordOperation records an MCP operation's duration with the semantic
// conventions' attributes.
func (m *Metrics) recordOperation(o taskrouter.Operation) {
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, KeyMethod.String(o.Method), KeyProtocolVersion.String(o.Protocol))
	if o.Tool != "" {
		attrs = append(attrs, KeyToolName.String(o.Tool), KeyOperationName.String("execute_tool"))
	}
	if o.ErrorType != "" {
		attrs = append(attrs, KeyErrorType.String(o.ErrorType))
		if _, err := strconv.Atoi(o.ErrorType); err == nil {
			attrs = append(attrs, KeyRPCStatusCode.String(o.ErrorType))
		}
	}
	m.operation.Record(context.Background(), o.Duration.Seconds(), metric.WithAttributes(attrs...))
}

// observeAges reports each replica's heartbeat age as of now: its age at
// the last heartbeat of this replica plus the time since, so the ages
// keep growing if this replica stops looking.
func (m *Metrics) observeAges(_ context.Context, o metric.Float64Observer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	since := time.Since(m.agesAt)
	for replica, age := range m.ages {
		o.Observe((age + since).Seconds(), metric.WithAttributes(KeyReplica.String(replica)))
	}
	return nil
}

// ObserveBackend records a store call: give it to
// taskstore.Config.ObserveBackend.
func (m *Metrics) ObserveBackend(op string, d time.Duration, err error) {
	k := storeKey{op, Outcome(err)}
	attrs, ok := m.storeAttrs.Load(k)
	if !ok {
		// The operations and outcomes are a few dozen pairs: made once each.
		attrs, _ = m.storeAttrs.LoadOrStore(k, metric.WithAttributeSet(attribute.NewSet(KeyStoreOperation.String(op), KeyStoreOutcome.String(k.outcome))))
	}
	m.storeCall.Record(context.Background(), d.Seconds(), attrs.(metric.MeasurementOption))
}

// Outcome classifies a store call's error (mcptasks.store.outcome).
func Outcome(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, taskstore.ErrNotFound):
		return OutcomeNotFound
	case errors.Is(err, taskstore.ErrVersionConflict), errors.Is(err, taskstore.ErrAlreadyExists):
		return OutcomeConflict
	case errors.Is(err, taskstore.ErrQuotaExceeded), errors.Is(err, taskstore.ErrStorageFull):
		return OutcomeRefused
	case errors.Is(err, context.Canceled):
		return OutcomeCancelled
	case errors.Is(err, context.DeadlineExceeded):
		return OutcomeTimeout
	}
	return OutcomeError
}
