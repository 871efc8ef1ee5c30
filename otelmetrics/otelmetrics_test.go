package otelmetrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/otelmetrics"
	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// collected is what a ManualReader collected, by instrument name.
type collected map[string]metricdata.Metrics

func collect(t *testing.T, r *sdkmetric.ManualReader) collected {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	out := collected{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelmetrics.ScopeName {
			t.Errorf("instrumentation scope %q, want %q", sm.Scope.Name, otelmetrics.ScopeName)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// attrs renders an attribute set as "k=v,k=v" (sorted by key, as sets are).
func attrs(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.String())
	}
	return strings.Join(parts, ",")
}

// points renders an instrument's data points as attributes -> value: the
// value of a sum or gauge, "count/sum" of a histogram.
func (c collected) points(t *testing.T, name string) map[string]string {
	t.Helper()
	m, ok := c[name]
	if !ok {
		t.Errorf("no instrument %s collected", name)
		return nil
	}
	out := map[string]string{}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out[attrs(p.Attributes)] = fmt.Sprint(p.Value)
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out[attrs(p.Attributes)] = fmt.Sprint(p.Value)
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			out[attrs(p.Attributes)] = fmt.Sprintf("%.1f", p.Value)
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			out[attrs(p.Attributes)] = fmt.Sprintf("%d/%.3f", p.Count, p.Sum)
		}
	default:
		t.Fatalf("%s: unexpected data %T", name, m.Data)
	}
	return out
}

func newMetrics(t *testing.T) (*otelmetrics.Metrics, *sdkmetric.ManualReader) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	m, err := otelmetrics.New(mp)
	if err != nil {
		t.Fatal(err)
	}
	return m, reader
}

// TestInstruments: each Observer event and store call lands in its
// instrument, with the attributes docs/operations.md names.
func TestInstruments(t *testing.T) {
	m, reader := newMetrics(t)
	o := m.Observer()
	if got := collect(t, reader); got["mcptasks.feed.up"].Name != "" || got["mcptasks.replica.heartbeat.age"].Name != "" {
		t.Errorf("feed state or heartbeat ages before any were reported: %v", got)
	}
	o.TaskCreated(taskrouter.TaskCreated{Tool: "echo", Protocol: "2025-11-25"})
	o.TaskCreated(taskrouter.TaskCreated{Tool: "echo", Protocol: "2026-07-28"})
	o.TaskCreated(taskrouter.TaskCreated{Tool: "echo", Protocol: "2026-07-28"})
	o.TaskEnded(taskrouter.TaskEnded{Tool: "echo", Status: taskstore.StatusCompleted, Duration: 1500 * time.Millisecond})
	o.TaskEnded(taskrouter.TaskEnded{Tool: "echo", Status: taskstore.StatusCompleted, Duration: 500 * time.Millisecond})
	o.TaskEnded(taskrouter.TaskEnded{Tool: "echo", Status: taskstore.StatusCancelled, Duration: time.Second})
	for _, d := range []int{1, 1, 1, -1} {
		o.Running(d)
	}
	o.InputWaiting(1)
	o.ResultWaiters(1)
	o.ResultWaiters(-1)
	o.OrphanEnded()
	o.OrphanEnded()
	o.TakenOver()
	o.Heartbeats(map[string]time.Duration{"a": 0, "b": 3 * time.Second})
	o.Feed(true)
	o.Feed(false)
	o.Refused(taskrouter.RefusedQuota)
	o.Refused(taskrouter.RefusedQuota)
	o.Refused(taskrouter.RefusedBodyBudget)
	o.Operation(taskrouter.Operation{Method: "tools/call", Protocol: "2025-11-25", Tool: "echo", Duration: 20 * time.Millisecond})
	o.Operation(taskrouter.Operation{Method: "tasks/get", Protocol: "2026-07-28", Duration: time.Millisecond, ErrorType: "-32602"})
	o.Operation(taskrouter.Operation{Method: "tasks/result", Protocol: "2025-11-25", Duration: time.Second, ErrorType: "cancelled"})
	m.ObserveBackend("get", 2*time.Millisecond, nil)
	m.ObserveBackend("get", 4*time.Millisecond, fmt.Errorf("reading: %w", taskstore.ErrNotFound))
	m.ObserveBackend("update", time.Millisecond, taskstore.ErrVersionConflict)
	m.ObserveBackend("update", time.Millisecond, errors.Join(taskstore.ErrBackend, errors.New("connection reset")))
	m.ObserveBackend("heartbeat", time.Millisecond, context.DeadlineExceeded)

	got := collect(t, reader)
	for _, tc := range []struct {
		name string
		want map[string]string
	}{
		{"mcptasks.tasks.created", map[string]string{
			"gen_ai.tool.name=echo,mcp.protocol.version=2025-11-25": "1",
			"gen_ai.tool.name=echo,mcp.protocol.version=2026-07-28": "2"}},
		{"mcptasks.tasks.ended", map[string]string{
			"gen_ai.tool.name=echo,mcptasks.task.status=completed": "2",
			"gen_ai.tool.name=echo,mcptasks.task.status=cancelled": "1"}},
		{"mcptasks.task.duration", map[string]string{
			"gen_ai.tool.name=echo,mcptasks.task.status=completed": "2/2.000",
			"gen_ai.tool.name=echo,mcptasks.task.status=cancelled": "1/1.000"}},
		{"mcptasks.tasks.running", map[string]string{"": "2"}},
		{"mcptasks.tasks.input_waiting", map[string]string{"": "1"}},
		{"mcptasks.result.waiters", map[string]string{"": "0"}},
		{"mcptasks.orphans.ended", map[string]string{"": "2"}},
		{"mcptasks.tasks.taken_over", map[string]string{"": "1"}},
		{"mcptasks.feed.up", map[string]string{"": "0"}},
		{"mcptasks.refusals", map[string]string{"mcptasks.refusal.reason=quota": "2", "mcptasks.refusal.reason=body_budget": "1"}},
		{"mcp.server.operation.duration", map[string]string{
			"gen_ai.operation.name=execute_tool,gen_ai.tool.name=echo,mcp.method.name=tools/call,mcp.protocol.version=2025-11-25": "1/0.020",
			"error.type=-32602,mcp.method.name=tasks/get,mcp.protocol.version=2026-07-28,rpc.response.status_code=-32602":         "1/0.001",
			"error.type=cancelled,mcp.method.name=tasks/result,mcp.protocol.version=2025-11-25":                                   "1/1.000"}},
		{"mcptasks.store.call.duration", map[string]string{
			"mcptasks.store.operation=get,mcptasks.store.outcome=ok":            "1/0.002",
			"mcptasks.store.operation=get,mcptasks.store.outcome=not_found":     "1/0.004",
			"mcptasks.store.operation=update,mcptasks.store.outcome=conflict":   "1/0.001",
			"mcptasks.store.operation=update,mcptasks.store.outcome=error":      "1/0.001",
			"mcptasks.store.operation=heartbeat,mcptasks.store.outcome=timeout": "1/0.001"}},
	} {
		if diff := cmp.Diff(tc.want, got.points(t, tc.name)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	// The ages grow between heartbeats: at least what was reported.
	ages := got.points(t, "mcptasks.replica.heartbeat.age")
	a, errA := strconv.ParseFloat(ages["mcptasks.replica=a"], 64)
	b, errB := strconv.ParseFloat(ages["mcptasks.replica=b"], 64)
	if len(ages) != 2 || errA != nil || errB != nil || a < 0 || b < 3 {
		t.Errorf("heartbeat ages: %v, want a ≥ 0 and b ≥ 3", ages)
	}
	if u := got["mcptasks.store.call.duration"].Unit; u != "s" {
		t.Errorf("store call unit %q", u)
	}
	// A failed heartbeat forgets the ages: unknown, not stale.
	o.Heartbeats(nil)
	if after := collect(t, reader); after["mcptasks.replica.heartbeat.age"].Name != "" {
		t.Errorf("heartbeat ages after a failed heartbeat: %v", after.points(t, "mcptasks.replica.heartbeat.age"))
	}
}

// TestWithRouter: a Router and its Store wired to Metrics record a task's
// life and the store calls it made.
func TestWithRouter(t *testing.T) {
	m, reader := newMetrics(t)
	store, err := mcptasks.Open(t.Context(), "memory://", taskstore.Config{ObserveBackend: m.ObserveBackend})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r := taskrouter.New(store, taskrouter.Options{Logger: slog.New(slog.DiscardHandler), Observer: m.Observer()})
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	rec, err := r.Start(t.Context(), taskrouter.StartRequest{Owner: "alice", Method: "tools/call", Tool: "sum"}, func(context.Context) taskrouter.Outcome {
		return taskrouter.Outcome{Result: json.RawMessage(`{"sum":3}`)}
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Read first, then collect: the collection holds this get even
		// when the run made none (it needs no read when nothing wakes it).
		cur, err := store.Get(t.Context(), "alice", rec.Task.TaskID)
		got := collect(t, reader)
		running := got.points(t, "mcptasks.tasks.running")
		if err == nil && cur.Task.Status.Terminal() && running[""] == "0" {
			if diff := cmp.Diff(map[string]string{"gen_ai.tool.name=sum,mcp.protocol.version=2025-11-25": "1"}, got.points(t, "mcptasks.tasks.created")); diff != "" {
				t.Errorf("created (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]string{"gen_ai.tool.name=sum,mcptasks.task.status=completed": "1"}, got.points(t, "mcptasks.tasks.ended")); diff != "" {
				t.Errorf("ended (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]string{"": "1"}, got.points(t, "mcptasks.feed.up")); diff != "" {
				t.Errorf("feed (-want +got):\n%s", diff)
			}
			calls := got.points(t, "mcptasks.store.call.duration")
			for _, op := range []string{"create", "update", "heartbeat", "get"} {
				if _, ok := calls["mcptasks.store.operation="+op+",mcptasks.store.outcome=ok"]; !ok {
					t.Errorf("no successful %s call recorded: %v", op, calls)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not stop: running %v", running)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNewRefusesNil: a nil provider is an error, not a panic later.
func TestNewRefusesNil(t *testing.T) {
	if _, err := otelmetrics.New(nil); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}
