package edge

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The SSE rewriting does not depend on how the SDK splits its writes: the
// same events written whole, byte by byte, or in odd pieces come out the
// same, with every stand-in replaced.
func TestResponseWriterAnyWriteBoundaries(t *testing.T) {
	e := New(nil, nil)
	m := e.marker
	standIn := `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"` + m + `","_meta":{"` + m + `":{"method":"notifications/tasks/status","params":{"taskId":"t1","status":"completed"}}}}}`
	ack := `{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{"_meta":{"` + m + `":{"method":"notifications/subscriptions/acknowledged","params":{"notifications":{"taskIds":["t1"]}}}}}}`
	plain := `{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`
	events := "event: message\nid: 1\ndata: " + standIn + "\n\n" + "data: " + plain + "\n\n" + "data:" + ack + "\n\n"
	want := "event: message\nid: 1\ndata: " + `{"jsonrpc":"2.0","method":"notifications/tasks/status","params":{"taskId":"t1","status":"completed"}}` + "\n\n" +
		"data: " + plain + "\n\n" +
		"data: " + `{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{"notifications":{"taskIds":["t1"]}}}` + "\n\n"
	for _, size := range []int{len(events), 1, 2, 7, 64, 333} {
		rec := httptest.NewRecorder()
		rec.Header().Set("Content-Type", "text/event-stream")
		w := &responseWriter{ResponseWriter: rec, e: e}
		for p := events; len(p) > 0; {
			n := min(size, len(p))
			if k, err := w.Write([]byte(p[:n])); err != nil || k != n {
				t.Fatalf("Write: %d, %v", k, err)
			}
			p = p[n:]
		}
		w.finish(nil)
		if d := cmp.Diff(want, rec.Body.String()); d != "" {
			t.Errorf("writes of %d bytes (-want +got):\n%s", size, d)
		}
		if strings.Contains(rec.Body.String(), m) {
			t.Errorf("writes of %d bytes: the marker is left", size)
		}
	}
}
