package taskstore

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestNewTraceContext(t *testing.T) {
	long := strings.Repeat("k=v,", 200)
	for _, tc := range []struct {
		name, parent, state string
		want                *TraceContext
	}{
		{"valid", testTraceparent, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", &TraceContext{testTraceparent, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}},
		{"no state", testTraceparent, "", &TraceContext{Traceparent: testTraceparent}},
		{"tenant key and blanks", testTraceparent, " a1@sys=x y , ,b=1", &TraceContext{testTraceparent, " a1@sys=x y , ,b=1"}},
		{"higher version keeps its 00 fields", "01" + testTraceparent[2:] + "-more-fields", "", &TraceContext{Traceparent: "01" + testTraceparent[2:]}},
		{"missing", "", "a=b", nil},
		{"uppercase", strings.ToUpper(testTraceparent), "", nil},
		{"version ff", "ff" + testTraceparent[2:], "", nil},
		{"00 with more", testTraceparent + "-00", "", nil},
		{"higher version without a dash", "01" + testTraceparent[2:] + "x", "", nil},
		{"zero trace id", "00-" + strings.Repeat("0", 32) + "-00f067aa0ba902b7-01", "", nil},
		{"zero parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "", nil},
		{"short", testTraceparent[:54], "", nil},
		{"oversized", "01" + testTraceparent[2:] + "-" + strings.Repeat("a", 1<<20), "", nil},
		{"not hex", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", "", nil},
		{"wrong dashes", "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", nil},
		{"state oversized: dropped alone", testTraceparent, long, &TraceContext{Traceparent: testTraceparent}},
		{"state of 33 members", testTraceparent, strings.TrimSuffix(strings.Repeat("k=v,", 33), ","), &TraceContext{Traceparent: testTraceparent}},
		{"state key uppercase", testTraceparent, "Rojo=1", &TraceContext{Traceparent: testTraceparent}},
		{"state value with =", testTraceparent, "a=b=c", &TraceContext{Traceparent: testTraceparent}},
		{"state control char", testTraceparent, "a=b\n", &TraceContext{Traceparent: testTraceparent}},
		{"state no value", testTraceparent, "a", &TraceContext{Traceparent: testTraceparent}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NewTraceContext(tc.parent, tc.state)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Fatalf("(-want +got):\n%s", d)
			}
			if got != nil && !got.valid() {
				t.Fatalf("%+v is not valid", got)
			}
		})
	}
}

// TestCreateKeepsTrace: the trace context is stored, read back, kept
// through later writes, and a hand-made invalid one is refused.
func TestCreateKeepsTrace(t *testing.T) {
	s, _ := newCounting(t)
	ctx := t.Context()
	tc := NewTraceContext(testTraceparent, "a=b")
	rec, err := s.Create(ctx, "alice", CreateRequest{RequestMethod: "tools/call", Trace: tc})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.HandleFor(rec).SetVariables(ctx, map[string]any{"step": 1}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "alice", rec.Task.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(tc, got.Trace); d != "" {
		t.Errorf("stored trace (-want +got):\n%s", d)
	}
	for _, bad := range []*TraceContext{
		{Traceparent: "nope"},
		{Traceparent: testTraceparent, Tracestate: "A=1"},
		{Traceparent: "01" + testTraceparent[2:] + "-x"},
	} {
		if _, err := s.Create(ctx, "alice", CreateRequest{RequestMethod: "tools/call", Trace: bad}); !errors.Is(err, ErrInvalidTraceContext) || !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Create with trace %+v = %v, want ErrInvalidTraceContext", bad, err)
		}
	}
}

// TestCodecTrace: the trace field round-trips; a record without it (an
// older release's) has none; a null or traceparent-less one reads as none;
// unknown members inside it are skipped.
func TestCodecTrace(t *testing.T) {
	base := `{"task":{"taskId":"t","status":"working","createdAt":"2026-12-01T09:51:30.031Z","lastUpdatedAt":"2026-12-01T09:51:30.031Z","ttl":null},` +
		`"ownerId":"alice","variables":{},"result":null,"requestMethod":"tools/call","expiresAt":null`
	for _, tc := range []struct {
		name, doc string
		want      *TraceContext
	}{
		{"older release", base + `}`, nil},
		{"null", base + `,"trace":null}`, nil},
		{"empty", base + `,"trace":{}}`, nil},
		{"parent only", base + `,"trace":{"traceparent":"` + testTraceparent + `"}}`, &TraceContext{Traceparent: testTraceparent}},
		{"both, and a newer member", base + `,"trace":{"x":[1],"traceparent":"` + testTraceparent + `","tracestate":"a=b"}}`, &TraceContext{testTraceparent, "a=b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := decodeRecord(Record{TaskID: "t", Data: []byte(tc.doc)})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, rec.Trace); d != "" {
				t.Fatalf("trace (-want +got):\n%s", d)
			}
			out, err := encodeRecord(rec)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil && strings.Contains(string(out), `"trace"`) {
				t.Errorf("a record without trace context wrote one:\n%s", out)
			}
			back, err := decodeRecord(Record{TaskID: "t", Data: out})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, back.Trace); d != "" {
				t.Errorf("trace after a rewrite (-want +got):\n%s", d)
			}
		})
	}
	if _, err := decodeRecord(Record{TaskID: "t", Data: []byte(base + `,"trace":[]}`)}); !errors.Is(err, ErrBackend) {
		t.Errorf("a trace of the wrong shape: %v, want ErrBackend (corrupt)", err)
	}
}
