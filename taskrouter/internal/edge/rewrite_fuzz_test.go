package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mcptasks/mcptasks/internal/jsonwalk"
	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
)

var rewriteSeeds = []string{
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sleep","arguments":{},"task":{"ttl":1000}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"io.mcptasks/task":{"ttl":1}}}}`,
	`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"task":null}},{"jsonrpc":"2.0","method":"ping"}]`,
	`{"method":"tools/call","params":{"_meta":7,"task":{}}}`,
	`{"method":"tools\u002fcall","params":{"ta\u0073k":{"ttl":5}}}`,
	`[`, `null`, `[]`, ` [ 1 , {"method":"tools/call","params":{"task":1}} ] `, `{"method":"tools/call","params":[1,2]}`,
	`{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"taskId":"x","_meta":{"io.mcptasks/edge":{"protocol":"2026-07-28"}}}}`,
	`{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"taskId":"x","_meta":{"IO.MCPTASKS/edge":{},"io.mcptasks/edge":1}}}`,
	`{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"taskId":"x","_meta":{"a":1},"_meta":{"io.mcptasks/edge":{"protocol":"2026-07-28"}}}}`,
	`{"jsonrpc":"2.0","id":3,"method":"subscriptions/listen","params":{"notifications":{"taskIds":["x"]},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`,
	`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"e","arguments":{"t":"<&>\u2028"},"task":{}}}`,
	`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"e","_meta":null,"task":{"ttl":"5"}}}`,
	`{"jsonrpc":"2.0","id":6,"method":"ping"}`,
	`{"jsonrpc":"2.0","id":7,"method":"tasks/get","params":null}`,
}

// FuzzRewriteBody feeds arbitrary HTTP bodies to the inbound rewriter, at
// either protocol.Revision, and judges what it forwards with the SDK's decoder and
// exact-key maps:
//   - malformed input is refused exactly when it is not JSON;
//   - the forwarded bytes decode to the received message minus every
//     private io.mcptasks/ _meta key (on every method), minus the moved
//     params.task, plus the one carrier with what the edge decided;
//   - a message with nothing to change is forwarded byte for byte;
//   - the SDK reads the same method and id from both.
func FuzzRewriteBody(f *testing.F) {
	for _, s := range rewriteSeeds {
		f.Add([]byte(s), false, true)
	}
	f.Fuzz(func(t *testing.T, body []byte, header20260728, upgrade bool) {
		rev := protocol.Rev20251125
		if header20260728 {
			rev = protocol.Rev20260728
		}
		checkRewrite(t, body, rev, upgrade)
	})
}

// FuzzRewrite20260728 is the inbound path of protocol 2026-07-28 requests:
// decided by the header, or by the _meta protocol version of a single
// message, and over stdio (rewriteParams on the params alone).
func FuzzRewrite20260728(f *testing.F) {
	for _, s := range rewriteSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkRewrite(t, body, protocol.Rev20260728, false)
		checkRewrite(t, body, protocol.Rev20251125, true)
		// stdio: the SDK has decoded the message; params are rewritten alone.
		msg, err := jsonrpc.DecodeMessage(body)
		req, ok := msg.(*jsonrpc.Request)
		if err != nil || !ok {
			return
		}
		params := bytes.TrimSpace(req.Params)
		var pm *jsonwalk.Field
		if len(params) > 0 {
			pm = &jsonwalk.Field{End: len(params)}
		}
		out, r, err := rewriteParams(params, pm, req.Method, decision{upgrade: true, marks: marksX})
		if err != nil {
			return
		}
		got := params
		if out != nil {
			got = out
		}
		var in map[string]any // nil: params absent
		if len(params) > 0 && json.Unmarshal(params, &in) != nil {
			if out != nil && r.rev == protocol.Rev20251125 {
				t.Fatalf("non-object params %s rewritten to %s", params, got)
			}
			return
		}
		want := expectParams(in, req.Method, r.rev)
		if len(got) == 0 { // absent, and left absent
			if want != nil {
				t.Fatalf("absent params of %s left absent, want %v", req.Method, want)
			}
			return
		}
		var have map[string]any
		if err := json.Unmarshal(got, &have); err != nil {
			t.Fatalf("stdio params %s became invalid %s", params, got)
		}
		if d := cmp.Diff(want, have); d != "" {
			t.Fatalf("stdio params %s -> %s (-want +got):\n%s", params, got, d)
		}
	})
}

func checkRewrite(t *testing.T, body []byte, rev protocol.Revision, upgrade bool) {
	t.Helper()
	out, reqs, err := rewriteBody(body, decision{rev: rev, upgrade: upgrade, marks: marksX})
	if err != nil {
		if !errors.Is(err, errRejected) {
			t.Fatalf("%q: error %v does not wrap errRejected", body, err)
		}
		if errors.Is(err, errMalformed) && json.Valid(body) {
			t.Fatalf("%q is JSON, refused as malformed: %v", body, err)
		}
		return
	}
	if !json.Valid(body) {
		t.Fatalf("%q is not JSON, accepted", body)
	}
	got := out
	if !json.Valid(got) {
		t.Fatalf("%q rewritten into invalid JSON %q", body, got)
	}
	var inMsgs, outMsgs []json.RawMessage
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '[' {
		json.Unmarshal(body, &inMsgs)
		json.Unmarshal(got, &outMsgs)
	} else {
		inMsgs, outMsgs = []json.RawMessage{body}, []json.RawMessage{got}
	}
	if len(inMsgs) != len(outMsgs) || len(reqs) != len(inMsgs) {
		t.Fatalf("%d messages became %d (%d requests seen)", len(inMsgs), len(outMsgs), len(reqs))
	}
	changed := false
	for i := range inMsgs {
		var in, o any
		json.Unmarshal(inMsgs[i], &in)
		json.Unmarshal(outMsgs[i], &o)
		want := in
		if m, ok := in.(map[string]any); ok {
			method, _ := m["method"].(string)
			if reqs[i].method != method && !isString(m["method"]) && reqs[i].method != "" {
				t.Fatalf("method %q seen as %q", m["method"], reqs[i].method)
			}
			want = expectMessage(m, method, reqs[i].rev)
			if wantRev := expectRevision(m, rev, upgrade && len(inMsgs) == 1 && !isBatch(body)); reqs[i].rev != wantRev {
				t.Fatalf("%s: protocol.Revision %v, want %v", inMsgs[i], reqs[i].rev, wantRev)
			}
		}
		if d := cmp.Diff(want, o); d != "" {
			t.Fatalf("%s forwarded as %s (-want +got):\n%s", inMsgs[i], outMsgs[i], d)
		}
		if !cmp.Equal(in, want) {
			changed = true
		}
		// The SDK's decoder reads the same method and id.
		mi, erri := jsonrpc.DecodeMessage(inMsgs[i])
		mo, erro := jsonrpc.DecodeMessage(outMsgs[i])
		if (erri == nil) != (erro == nil) {
			t.Fatalf("SDK decodes %s: %v, but %s: %v", inMsgs[i], erri, outMsgs[i], erro)
		}
		if ri, ok := mi.(*jsonrpc.Request); ok {
			ro := mo.(*jsonrpc.Request)
			if ri.Method != ro.Method || ri.ID != ro.ID {
				t.Fatalf("SDK reads %q/%v, then %q/%v", ri.Method, ri.ID, ro.Method, ro.ID)
			}
		}
	}
	if !changed && !bytes.Equal(body, got) {
		t.Fatalf("nothing to change in %q, but forwarded %q", body, got)
	}
}

// marksX is the fuzz targets' marked tools: the seeds' "x".
func marksX(tool string) bool { return tool == "x" }

func isString(v any) bool { _, ok := v.(string); return ok }

func isBatch(b []byte) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 0 && t[0] == '['
}

func expectRevision(msg map[string]any, rev protocol.Revision, upgrade bool) protocol.Revision {
	if rev == protocol.Rev20260728 || !upgrade {
		return rev
	}
	p, _ := msg["params"].(map[string]any)
	meta, _ := p["_meta"].(map[string]any)
	if v, ok := meta[protocol.VersionKey].(string); ok && protocol.ParseRevision(v) == protocol.Rev20260728 {
		return protocol.Rev20260728
	}
	return rev
}

// expectMessage is what the rewriter must forward for msg.
func expectMessage(msg map[string]any, method string, rev protocol.Revision) map[string]any {
	p, present := msg["params"]
	if present && p != nil {
		if _, ok := p.(map[string]any); !ok {
			return msg
		}
	}
	pm, _ := p.(map[string]any)
	want := expectParams(pm, method, rev)
	if want == nil {
		return msg
	}
	out := map[string]any{}
	for k, v := range msg {
		out[k] = v
	}
	out["params"] = want
	return out
}

// expectParams is what the rewriter must forward for params (nil: absent
// or null, and nothing to add).
func expectParams(params map[string]any, method string, rev protocol.Revision) map[string]any {
	carrier := map[string]any{}
	var out map[string]any
	if params != nil {
		out = map[string]any{}
		for k, v := range params {
			out[k] = v
		}
	}
	switch {
	case rev == protocol.Rev20260728:
		carrier["protocol"] = protocol.Name20260728
		delete(out, "task")
		if n, ok := params["notifications"].(map[string]any); ok && method == "subscriptions/listen" {
			if ids, ok := n["taskIds"]; ok && ids != nil {
				carrier["listen"] = ids
			}
		}
	case method == "tools/call":
		if task, ok := params["task"]; ok {
			delete(out, "task")
			if task != nil {
				carrier["task"] = task
			}
		}
	}
	meta, _ := params["_meta"].(map[string]any)
	if meta != nil {
		m := map[string]any{}
		for k, v := range meta {
			if !strings.HasPrefix(strings.ToLower(k), privateMetaPrefix) {
				m[k] = v
			}
		}
		meta = m
	}
	if name, _ := params["name"].(string); len(carrier) > 0 || method == "tools/call" && marksX(name) {
		if meta == nil {
			meta = map[string]any{}
		}
		meta[carrierKey] = carrier
	}
	if meta != nil {
		if out == nil {
			out = map[string]any{}
		}
		out["_meta"] = meta
	}
	return out
}

// FuzzRewriteOutbound: only this router's stand-ins (holding its marker)
// are rewritten, always into valid JSON-RPC.
func FuzzRewriteOutbound(f *testing.F) {
	const marker = "io.mcptasks/status-00"
	f.Add([]byte(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"` + marker + `","_meta":{"` + marker + `":{"method":"notifications/tasks/status","params":{"taskId":"a"}}}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{"notifications":{"x":1},"_meta":{"` + marker + `":{"method":"notifications/subscriptions/acknowledged","params":{"notifications":{"taskIds":["a"]}}},"k":2}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1}}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		out, ok := rewriteOutbound(msg, marker)
		if !ok {
			return
		}
		m, err := jsonrpc.DecodeMessage(out)
		if err != nil {
			t.Fatalf("%s rewritten to %s, which the SDK refuses: %v", msg, out, err)
		}
		if req, ok := m.(*jsonrpc.Request); !ok || req.IsCall() {
			t.Fatalf("%s rewritten to %s, not a notification", msg, out)
		}
		if bytes.Contains(out, []byte(`"`+marker+`"`)) && !bytes.Contains(msg, []byte(`"progressToken":"`+marker)) {
			t.Fatalf("marker key left in %s", out)
		}
	})
}

// manyKeys is a tools/call whose params hold n members (and, with dup, the
// first one again at the end).
func manyKeys(n int, dup bool) []byte {
	b := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"task":{},"_meta":{"io.mcptasks/edge":1}`)
	for i := range n {
		b = fmt.Appendf(b, `,"k%d":0`, i)
	}
	if dup {
		b = append(b, `,"k0":1`...)
	}
	return append(b, "}}"...)
}

// TestRewriteManyKeys rewrites a body of nearly the SDK's default size
// limit (4 MiB) made of 300,000 keys: the duplicate check is linear (it
// was quadratic: about 18 s of CPU, before authentication, for a 1 MB
// body), and a duplicate at the very end is still refused.
func TestRewriteManyKeys(t *testing.T) {
	body := manyKeys(300_000, false)
	out, _, err := rewriteBody(body, decision{})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte(`"io.mcptasks/edge":1`)) || !bytes.Contains(out, []byte(`"io.mcptasks/edge":{"task":{}}`)) {
		t.Fatalf("private key not replaced by the carrier: %.200s", out)
	}
	if _, _, err := rewriteBody(manyKeys(300_000, true), decision{}); err == nil || !strings.Contains(err.Error(), `duplicate name "k0"`) {
		t.Fatalf("duplicate at the end: %v", err)
	}
}

// BenchmarkRewriteManyKeys reports the cost per key of 100,000 keys as a
// ratio to the cost per key of 100: about 1 when the rewriter is linear.
func BenchmarkRewriteManyKeys(b *testing.B) {
	small, large := manyKeys(100, false), manyKeys(100_000, false)
	var took [2]time.Duration
	for range b.N {
		for i, body := range [][]byte{small, large} {
			t0 := time.Now()
			if _, _, err := rewriteBody(body, decision{}); err != nil {
				b.Fatal(err)
			}
			took[i] += time.Since(t0)
		}
	}
	b.ReportMetric(float64(took[1])/1000/float64(took[0]), "perkey-100k/perkey-100")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRewriteBody rewrites the bodies of a task round trip: a
// task-augmented tools/call and a tasks/result with its edge token.
func BenchmarkRewriteBody(b *testing.B) {
	call := []byte(`{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"arguments":{"text":"hi"},"name":"echo","task":{"ttl":60000}}}`)
	result := []byte(`{"jsonrpc":"2.0","id":13,"method":"tasks/result","params":{"taskId":"18ed21c845ec8440-2281dad88414a60bc02d1b43f3d0d66f"}}`)
	for _, c := range []struct {
		name string
		body []byte
		d    decision
	}{{"tools-call", call, decision{}}, {"tasks-result", result, decision{token: func() string { return "1k" }}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, _, err := rewriteBody(c.body, c.d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
