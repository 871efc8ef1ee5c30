package taskrouter

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzRewriteBody feeds arbitrary HTTP bodies to the wrapper that moves
// tools/call's params.task into the private _meta key. It must never panic;
// whatever it changes is valid JSON; no tools/call it passes on still has
// params.task; no message it changes keeps a private key the client sent;
// and the one private key it passes on carries exactly the client's
// params.task.
func FuzzRewriteBody(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sleep","arguments":{},"task":{"ttl":1000}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"io.mcptasks/task":{"ttl":1}}}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"task":null}},{"jsonrpc":"2.0","method":"ping"}]`,
		`{"method":"tools/call","params":{"_meta":7,"task":{}}}`,
		`{"method":"tools\u002fcall","params":{"ta\u0073k":{"ttl":5}}}`,
		`[`, `null`, `{"method":"tools/call","params":[1,2]}`,
		`{"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"taskId":"x","_meta":{"io.mcptasks/modern":true}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"subscriptions/listen","params":{"_meta":{"io.mcptasks/listen-taskIds":["x"]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out := rewriteBody(body)
		if bytes.Equal(out, body) {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("rewrote %q into invalid JSON %q", body, out)
		}
		var inMsgs, outMsgs []json.RawMessage
		if bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")) {
			json.Unmarshal(body, &inMsgs)
			json.Unmarshal(out, &outMsgs)
		} else {
			inMsgs, outMsgs = []json.RawMessage{body}, []json.RawMessage{out}
		}
		if len(inMsgs) != len(outMsgs) {
			t.Fatalf("%d messages became %d", len(inMsgs), len(outMsgs))
		}
		for i := range outMsgs {
			// Exact keys, as the wrapper matches them (encoding/json struct
			// fields would match case-insensitively).
			var in, o map[string]json.RawMessage
			if json.Unmarshal(outMsgs[i], &o) != nil {
				continue
			}
			var method string
			json.Unmarshal(o["method"], &method)
			if method != "tools/call" {
				var p map[string]json.RawMessage
				var meta map[string]json.RawMessage
				json.Unmarshal(o["params"], &p)
				json.Unmarshal(p["_meta"], &meta)
				for k := range meta {
					if strings.HasPrefix(k, privateMetaPrefix) && !bytes.Equal(outMsgs[i], inMsgs[i]) {
						t.Fatalf("private key %q passed on in %s", k, outMsgs[i])
					}
				}
				continue
			}
			json.Unmarshal(inMsgs[i], &in)
			var inParams, outParams, outMeta map[string]json.RawMessage
			json.Unmarshal(in["params"], &inParams)
			json.Unmarshal(o["params"], &outParams)
			if _, ok := outParams["task"]; ok {
				t.Fatalf("params.task passed on: %s", outMsgs[i])
			}
			json.Unmarshal(outParams["_meta"], &outMeta)
			got, has := outMeta[taskMetaKey]
			if want := inParams["task"]; has && !jsonEqual(got, want) {
				t.Fatalf("private key carries %s, the client's params.task was %s", got, want)
			}
		}
	})
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
