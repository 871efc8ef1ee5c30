package taskstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The record corpus in testdata/records holds documents exactly as the
// Store wrote them at commit "taskstore: record corpus written by the
// encoding/json v1 codec" (the codec before the current one). Every
// release must load them and rewrite them without changing a field or a
// value (TestCorpusLoads, TestCorpusRewrite). It is never regenerated:
// TestWriteCorpus writes a later codec's corpus into a new directory.
const corpusDir = "testdata/records"

// captureBackend keeps the last document written per task, in memory.
type captureBackend struct {
	mu   sync.Mutex
	recs map[string]Record
}

func (c *captureBackend) Create(_ context.Context, rec Record, _ Limits) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.recs[rec.TaskID]; ok {
		return ErrAlreadyExists
	}
	rec.Data = slices.Clone(rec.Data)
	rec.Version = 1
	c.recs[rec.TaskID] = rec
	return nil
}

func (c *captureBackend) Get(_ context.Context, _, id string) (Record, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.recs[id]
	if !ok {
		return Record{}, ErrNotFound
	}
	r.Data = slices.Clone(r.Data)
	return r, nil
}

func (c *captureBackend) Update(_ context.Context, rec Record, expected uint64) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, data := rec.TaskID, rec.Data
	r, ok := c.recs[id]
	if !ok {
		return 0, ErrNotFound
	}
	if r.Version != expected {
		return 0, ErrVersionConflict
	}
	r.Data = slices.Clone(data)
	r.Version++
	c.recs[id] = r
	return r.Version, nil
}

func (c *captureBackend) Delete(context.Context, string, string) (bool, error) { return false, nil }
func (c *captureBackend) List(context.Context, string, string, int) ([]Record, bool, error) {
	return nil, false, nil
}
func (c *captureBackend) DeleteExpired(context.Context) (int, error) { return 0, nil }
func (c *captureBackend) MaxRecordSize() int                         { return 0 }
func (c *captureBackend) Close() error                               { return nil }
func (c *captureBackend) Heartbeat(context.Context, string) error    { return nil }
func (c *captureBackend) Runners(context.Context) ([]RunnerBeat, error) {
	return nil, nil
}
func (c *captureBackend) RemoveRunner(context.Context, string) error { return nil }
func (c *captureBackend) RunnerTasks(context.Context, string, int) ([]Record, error) {
	return nil, nil
}

// corpusRecords drives a Store through the task lives the corpus keeps and
// returns each task's final stored document by name.
func corpusRecords(t *testing.T) map[string][]byte {
	ctx := t.Context()
	cb := &captureBackend{recs: map[string]Record{}}
	s := New(cb, Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	tool := map[string]json.RawMessage{"io.mcptasks/tool": raw(`"search"`)}
	out := map[string][]byte{}
	keep := func(name string, rec *TaskRecord) {
		br, err := cb.Get(ctx, rec.OwnerID, rec.Task.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = br.Data
	}
	must := func(rec *TaskRecord, err error) *TaskRecord {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	ttl := 90 * time.Minute
	poll := 2 * time.Second

	// A tools/call task just created by the router: its tool name as a variable.
	rec := must(s.Create(ctx, "alice", CreateRequest{RequestMethod: "tools/call", TTL: &ttl, Variables: tool}))
	keep("toolcall_working", rec)

	// A tools/call task with arguments, progress and a result, completed.
	rec = must(s.Create(ctx, "user-7f3a9c@example.com", CreateRequest{
		RequestMethod: "tools/call", PollInterval: &poll, Variables: tool,
		Meta: map[string]json.RawMessage{"progressToken": raw(`"p-1"`), "io.example/trace": raw(`{"id":"4bf92f3577b34da6a3ce929d0e0e4736","sampled":true}`)},
	}))
	must(s.SetVariables(ctx, rec.OwnerID, rec.Task.TaskID, map[string]json.RawMessage{
		"arguments": raw(`{"query":"go json v2","limit":10,"filters":{"lang":["go","rust"],"since":"2025-01-01"},"exact":false,"score":0.75}`),
		"progress":  raw(`{"done":7,"total":10}`),
	}))
	rec = must(s.CompleteWithResult(ctx, rec.OwnerID, rec.Task.TaskID, StatusCompleted, "",
		raw(`{"content":[{"type":"text","text":"Found 3 results for \"go json v2\":\n1. encoding/json/v2\n2. jsontext\n3. go-json-experiment"}],`+
			`"structuredContent":{"results":[{"title":"encoding/json/v2","url":"https://pkg.go.dev/encoding/json/v2","rank":1},{"title":"jsontext","url":"https://pkg.go.dev/encoding/json/jsontext","rank":2}],"total":3,"elapsedMs":12.5e0},"isError":false}`)))
	keep("toolcall_completed", rec)

	// Large variables: many keys and one long value.
	rec = must(s.Create(ctx, "bob", CreateRequest{RequestMethod: "tools/call", Variables: tool}))
	big := map[string]json.RawMessage{}
	for i := range 200 {
		big["row_"+strings.Repeat("k", i%7)+string(rune('a'+i%26))+strconv.Itoa(i)] =
			raw(`{"i":` + strconv.Itoa(i) + `,"name":"item ` + strconv.Itoa(i) + `","tags":["a","b","c"],"weight":` + strconv.Itoa(i*37%1000) + `.25}`)
	}
	big["blob"] = raw(`"` + strings.Repeat("0123456789abcdef", 4096) + `"`)
	must(s.SetVariables(ctx, rec.OwnerID, rec.Task.TaskID, big))
	keep("large_variables", rec)

	// Unicode and HTML characters: v1 escapes <, > and & (and U+2028/9).
	rec = must(s.Create(ctx, "Zoë Ünïcødé 日本語", CreateRequest{RequestMethod: "tools/call", Variables: tool,
		StatusMessage: "Lädt <b>\"Daten\"</b> & mehr… 🎉 \u2028 ok"}))
	must(s.SetVariables(ctx, rec.OwnerID, rec.Task.TaskID, map[string]json.RawMessage{
		"html":    raw(`"<script>alert('x') && 1 < 2</script>"`),
		"unicode": raw(`{"jp":"こんにちは","emoji":"👩‍💻🚀","escaped":"\u00e9\ud83d\ude00","ctl":"tab\there\u0001","sep":"a\u2028b"}`),
		"ключ":    raw(`"значение"`),
	}))
	rec = must(s.CompleteWithResult(ctx, rec.OwnerID, rec.Task.TaskID, StatusFailed, "Fehler: <ungültig> & \"kaputt\"",
		raw(`{"content":[{"type":"text","text":"<p>Ungültige Eingabe &amp; mehr</p> — ✓"}],"isError":true}`)))
	keep("unicode_html", rec)

	// Invalid UTF-8 inside a string: encoding/json v1 accepts it in a
	// variable value and stores the bytes as they came.
	rec = must(s.Create(ctx, "carol", CreateRequest{RequestMethod: "tools/call", Variables: tool}))
	must(s.SetVariables(ctx, rec.OwnerID, rec.Task.TaskID, map[string]json.RawMessage{
		"latin1": raw("\"caf\xe9 na\xefve\""),
		"broken": raw("{\"k\":\"\xff\xfe\xfd\",\"half\":\"\xe2\x82\"}"),
	}))
	keep("invalid_utf8", rec)

	// Failed with a JSON-RPC error that carries data.
	rec = must(s.Create(ctx, "alice", CreateRequest{RequestMethod: "tools/call", Variables: tool}))
	rec = must(s.FailWithError(ctx, rec.OwnerID, rec.Task.TaskID, &RPCError{Code: -32602, Message: "unknown tool \"serch\"",
		Data: raw(`{"tool":"serch","suggestions":["search"]}`)}))
	keep("rpc_error", rec)

	// Waiting for input (protocol 2026-07-28), one request answered.
	rec = must(s.Create(ctx, "dave", CreateRequest{RequestMethod: "tools/call", Variables: tool}))
	must(NewRuntime(s).RequestInput(ctx, rec.OwnerID, rec.Task.TaskID, map[string]json.RawMessage{
		"confirm": raw(`{"method":"elicitation/create","params":{"message":"Delete 3 files?","requestedSchema":{"type":"object","properties":{"ok":{"type":"boolean"}}}}}`),
		"name":    raw(`{"method":"elicitation/create","params":{"message":"Your name?","requestedSchema":{"type":"object","properties":{"name":{"type":"string"}}}}}`),
	}, "Waiting for confirmation"))
	if _, err := NewRuntime(s).SubmitInput(ctx, rec.OwnerID, rec.Task.TaskID, map[string]json.RawMessage{
		"name": raw(`{"action":"accept","content":{"name":"Dave"}}`),
	}); err != nil {
		t.Fatal(err)
	}
	keep("input_required", rec)

	// A task that never expires (ttl and expiresAt null), cancelled.
	unlimited := New(cb, Config{MaxActiveTasks: -1, MaxStoredTasks: -1, DefaultTTL: -1})
	rec = must(unlimited.Create(ctx, "local-service", CreateRequest{RequestMethod: "sampling/createMessage"}))
	rec = must(unlimited.Cancel(ctx, rec.OwnerID, rec.Task.TaskID))
	keep("unlimited_cancelled", rec)
	return out
}

// TestWriteCorpus drives the corpus's task lives through today's Store and
// checks that each document it stores reads back. Asked to, it also keeps
// them as a new corpus: before the stored format changes, write the
// current codec's documents, then load them from a test of their own the
// way TestCorpusLoads loads the v1 corpus:
//
//	MCPTASKS_WRITE_CORPUS=records-v2 go test -run TestWriteCorpus ./taskstore
//
// writes testdata/records-v2/*.json. The name must be a new directory
// under testdata: an existing one (testdata/records above all, the corpus
// the codec is judged by) is refused, and no file is ever overwritten.
func TestWriteCorpus(t *testing.T) {
	docs := corpusRecords(t)
	names := make([]string, 0, len(docs))
	for name, data := range docs {
		if _, err := decodeRecord(Record{TaskID: name, Data: data, Version: 1}); err != nil {
			t.Errorf("%s: the Store wrote a document it cannot read: %v", name, err)
		}
		names = append(names, name+".json")
	}
	if d := cmp.Diff(sortedNames(loadCorpus(t)), slices.Sorted(slices.Values(names))); d != "" {
		t.Errorf("the task lives differ from the v1 corpus's (-v1 +now):\n%s", d)
	}
	name := os.Getenv("MCPTASKS_WRITE_CORPUS")
	if name == "" {
		return
	}
	dir, err := newCorpusDir(name)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range docs {
		f, err := os.OpenFile(filepath.Join(dir, name+".json"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, err = f.Write(data)
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d documents to %s", len(docs), dir)
}

// newCorpusDir makes testdata/name, which must not exist yet.
func newCorpusDir(name string) (string, error) {
	if name == "1" || !filepath.IsLocal(name) || strings.ContainsAny(name, `/\`) {
		return "", fmt.Errorf("MCPTASKS_WRITE_CORPUS=%q: want the name of a new directory under testdata, such as records-v2", name)
	}
	dir := filepath.Join(filepath.Dir(corpusDir), name)
	if dir == filepath.Clean(corpusDir) {
		return "", fmt.Errorf("%s is the v1 corpus; it is never rewritten", dir)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("a new corpus needs a new directory: %w", err)
	}
	return dir, nil
}

// loadCorpus reads every corpus document, by file name.
func loadCorpus(t testing.TB) map[string][]byte {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in %s: %v", corpusDir, err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}
