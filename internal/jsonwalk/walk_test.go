package jsonwalk

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"
)

// recordDoc and requestDoc are of the shapes the callers read: a stored
// task record, a JSON-RPC request.
const (
	recordDoc  = `{"task":{"taskId":"18ed186eadbcd9c0-6b6523bc28aab19ec02656bbfb037cd2","status":"working","createdAt":"2026-12-01T09:51:30.031Z","lastUpdatedAt":"2026-12-01T09:51:30.031Z","ttl":3600000},"ownerId":"alice","variables":{"io.mcptasks/tool":"search"},"result":null,"requestMethod":"tools/call","expiresAt":"2026-12-01T10:51:30.031Z"}`
	requestDoc = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sleep","arguments":{},"task":{"ttl":1000},"_meta":{"io.mcptasks/edge":{}}}}`
)

// walkCases are inputs at the edges of the grammar, and documents of the
// callers' shapes.
var walkCases = []string{
	``, ` `, `null`, `nul`, `nullx`, `true`, `false`, `tru`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `1e`, `1e+`,
	`1E-7`, `1.5e3`, `-12.0e+10`, `.5`, `+1`, `""`, `"`, `"\"`, `"\u00e9"`, `"\u00g9"`, `"\ud800"`, `"\x"`,
	`"a` + "\x01" + `"`, "\"caf\xe9\"", "\"\xff\"", `"\/"`, `[]`, `[`, `[1,]`, `[,1]`, `[1 2]`, `[1,2]`,
	`{}`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1,"a":2}`, `{1:2}`, `{"a":1}x`, ` {"a" : [ 1 , {} ] } `,
	"\t\n\r[]\n", `[]]`, `{"a":1}}`, "\"\u2028\"", `{"\u0061":1}`, "{\"k\xff\":1,\"\\ud800\":2}",
	`"0123456789abcdef0123456789abcdef\"0123456789abcdef"`,
	recordDoc, requestDoc,
	`[{"jsonrpc":"2.0","id":1,"method":"tools\u002fcall","params":{"ta\u0073k":null}},{"jsonrpc":"2.0","method":"ping"}]`,
}

// deepCases are at the nesting limit and one past it: TestWalkAgrees
// checks them, but they seed no fuzzing, which would spend its run
// mutating 20 KB of brackets.
var deepCases = []string{
	strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
	strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
	strings.Repeat(`{"":`, MaxDepth) + `0` + strings.Repeat("}", MaxDepth),
	strings.Repeat(`{"":`, MaxDepth+1) + `0` + strings.Repeat("}", MaxDepth+1),
}

// TestWalkAgrees runs the fuzz target's checks on the cases.
func TestWalkAgrees(t *testing.T) {
	for _, c := range append(walkCases, deepCases...) {
		checkWalk(t, []byte(c))
	}
}

// FuzzWalkAgrees: the Scanner accepts exactly what json.Valid and jsontext
// (invalid UTF-8 and duplicate names allowed) accept, and where it accepts,
// the members, names and values it reports rebuild what json.Unmarshal
// decodes.
func FuzzWalkAgrees(f *testing.F) {
	for _, c := range walkCases {
		f.Add([]byte(c))
	}
	f.Fuzz(checkWalk)
}

func checkWalk(t *testing.T, b []byte) {
	t.Helper()
	got := Valid(b)
	if v1 := json.Valid(b); got != v1 {
		t.Fatalf("Valid(%.200q) = %v, json.Valid = %v", b, got, v1)
	}
	if v2 := jsontext.Value(b).IsValid(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true)); got != v2 {
		t.Fatalf("Valid(%.200q) = %v, jsontext = %v", b, got, v2)
	}
	if off, err := Check(b); (err == nil) != got || off < 0 || off > len(b) {
		t.Fatalf("Check(%.200q) = %d, %v; Valid = %v", b, off, err, got)
	}
	if !got {
		return
	}
	want, err := decodeAny(b)
	if err != nil {
		t.Fatalf("json.Unmarshal(%.200q): %v", b, err)
	}
	s := New(b)
	have, err := rebuild(t, &s, 0)
	if err == nil {
		err = s.End()
	}
	if err != nil {
		t.Fatalf("walking %.200q: %v", b, err)
	}
	if !reflect.DeepEqual(want, have) { // cmp.Diff only then: it takes minutes on deep nesting
		t.Fatalf("walking %.200q (-json.Unmarshal +walk):\n%s", b, cmp.Diff(want, have))
	}
}

// rebuild reads the value at the cursor as json.Unmarshal would into an
// any, from what the Scanner reports: objects member by member (the last
// of a repeated name wins, as in v1), everything else from its raw bytes.
// Skip must pass each value to where reading it ends (checked on the
// first levels: on deep nesting it would take quadratic time).
func rebuild(t *testing.T, s *Scanner, depth int) (v any, err error) {
	s.SkipSpace()
	start := s.Pos()
	defer func() {
		if depth > 64 {
			return
		}
		k := New(s.Bytes())
		k.Seek(start)
		if serr := k.Skip(); err == nil && (serr != nil || k.Pos() != s.Pos()) {
			t.Fatalf("Skip from %d: %v at %d, the value ends at %d", start, serr, k.Pos(), s.Pos())
		}
	}()
	b := s.Bytes()
	switch s.Peek() {
	case '{':
		if err := s.Open(); err != nil {
			return nil, err
		}
		m := map[string]any{}
		for n := 0; ; n++ {
			name, ok, err := s.Member(n)
			if err != nil {
				return nil, err
			}
			if !ok {
				return m, nil
			}
			start, end := s.Name()
			quoted := b[start:end]
			var want string
			if err := json.Unmarshal(quoted, &want); err != nil || want != string(name) {
				t.Fatalf("name %q read as %q (json.Unmarshal: %q, %v)", quoted, name, want, err)
			}
			if m[string(name)], err = rebuild(t, s, depth+1); err != nil {
				return nil, err
			}
		}
	case '[':
		if err := s.Open(); err != nil {
			return nil, err
		}
		a := []any{}
		for n := 0; ; n++ {
			ok, err := s.Element(n)
			if err != nil {
				return nil, err
			}
			if !ok {
				return a, nil
			}
			v, err := rebuild(t, s, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
	default:
		if err := s.Value(); err != nil {
			return nil, err
		}
		return decodeAny(b[start:s.Pos()])
	}
}

// decodeAny is json.Unmarshal into an any, numbers kept as written (1e700
// is valid JSON, and no float64).
func decodeAny(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	return v, d.Decode(&v)
}

// TestLimits: a scan with limits notes the first string or nesting over
// them, in document order, and still tells invalid JSON first.
func TestLimits(t *testing.T) {
	for _, c := range []struct {
		in                  string
		maxDepth, maxString int
		over                Over
		overSet             bool
	}{
		{`{"abcde":[[["x"]]]}`, 2, 3, Over{N: 5, Limit: 3}, true},
		{`[[["abcdefgh"]]]`, 2, 3, Over{Depth: true, Limit: 2}, true},
		{`[[["abcdefgh"]]]`, -1, 3, Over{N: 8, Limit: 3}, true},
		{`[[["abc"]]]`, 3, 3, Over{}, false},
		{`"\n\n"`, -1, 3, Over{N: 4, Limit: 3}, true},
	} {
		s := NewLimited([]byte(c.in), c.maxDepth, c.maxString)
		if err := s.Value(); err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if o, ok := s.Over(); o != c.over || ok != c.overSet {
			t.Errorf("%s, depth %d, string %d: over %+v %v, want %+v %v", c.in, c.maxDepth, c.maxString, o, ok, c.over, c.overSet)
		}
	}
}

// BenchmarkValid is the walker on documents of the callers' shapes, with
// json.Valid for scale.
func BenchmarkValid(b *testing.B) {
	docs := map[string][]byte{"record": []byte(recordDoc), "request": []byte(requestDoc)}
	for _, name := range []string{"record", "request"} {
		doc := docs[name]
		b.Run(name+"/walk", func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if !Valid(doc) {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(name+"/json.Valid", func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				if !json.Valid(doc) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
