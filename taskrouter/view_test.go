package taskrouter

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
	"github.com/mcptasks/mcptasks/taskstore"
)

// The views, table-tested: each stored record against each revision, to
// the JSON a client sees (compared as decoded JSON, so key order and
// spacing do not matter).

var (
	viewT0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	viewT1 = viewT0.Add(1500 * time.Millisecond)
)

func viewRecord(status taskstore.Status, edit func(*taskstore.TaskRecord)) *taskstore.TaskRecord {
	ttl, poll := time.Hour, 500*time.Millisecond
	r := &taskstore.TaskRecord{
		Task: taskstore.Task{TaskID: "t1", Status: status, CreatedAt: viewT0, LastUpdatedAt: viewT1,
			TTL: &ttl, PollInterval: &poll},
		OwnerID:   "alice",
		Variables: map[string]json.RawMessage{"progress": json.RawMessage(`0.5`)},
	}
	if edit != nil {
		edit(r)
	}
	return r
}

const (
	wireTask20251125 = `"taskId":"t1","createdAt":"2026-12-01T10:00:00.000Z","lastUpdatedAt":"2026-12-01T10:00:01.500Z","ttl":3600000,"pollInterval":500,"_meta":{"progress":0.5}`
	wireTask20260728 = `"taskId":"t1","createdAt":"2026-12-01T10:00:00.000Z","lastUpdatedAt":"2026-12-01T10:00:01.500Z","ttlMs":3600000,"pollIntervalMs":500,"_meta":{"progress":0.5}`
)

func marshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sameJSON compares two JSON texts as values.
func sameJSON(t *testing.T, what, want, got string) {
	t.Helper()
	var w, g any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad want %s: %v", what, want, err)
	}
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("%s: bad JSON %s: %v", what, got, err)
	}
	if d := cmp.Diff(w, g); d != "" {
		t.Errorf("%s (-want +got):\n%s\ngot %s", what, d, got)
	}
}

// wireErr is an answer's error as the SDK sends it.
func wireErr(t *testing.T, err error) string {
	t.Helper()
	var je *jsonrpc.Error
	var re *taskstore.RPCError
	switch {
	case errors.As(err, &je):
		return marshal(t, map[string]any{"code": je.Code, "message": je.Message})
	case errors.As(err, &re):
		return marshal(t, map[string]any{"code": re.Code, "message": re.Message})
	}
	t.Fatalf("not a wire error: %v", err)
	return ""
}

func TestViews(t *testing.T) {
	result := json.RawMessage(`{"content":[{"type":"text","text":"done"}]}`)
	rpcErr := &taskstore.RPCError{Code: -32602, Message: "bad arguments"}
	cases := []struct {
		name string
		rec  *taskstore.TaskRecord
		// want: view method -> revision -> JSON of the answer, or of its
		// error as {"code","message"} when the key ends in "!".
		get, cancel, result, notify [2]string
	}{{
		name: "working",
		rec:  viewRecord(taskstore.StatusWorking, nil),
		get: [2]string{`{` + wireTask20251125 + `,"status":"working"}`,
			`{"resultType":"complete",` + wireTask20260728 + `,"status":"working"}`},
		cancel: [2]string{`{` + wireTask20251125 + `,"status":"working"}`, `{"resultType":"complete"}`},
		notify: [2]string{`{` + wireTask20251125 + `,"status":"working"}`, `{` + wireTask20260728 + `,"status":"working"}`},
	}, {
		name: "input required",
		rec: viewRecord(taskstore.StatusInputRequired, func(r *taskstore.TaskRecord) {
			r.Task.StatusMessage = "need a name"
			r.InputRequests = json.RawMessage(`{"k1":{"method":"elicitation/create","params":{}}}`)
		}),
		get: [2]string{`{` + wireTask20251125 + `,"status":"input_required","statusMessage":"need a name"}`,
			`{"resultType":"complete",` + wireTask20260728 + `,"status":"input_required","statusMessage":"need a name","inputRequests":{"k1":{"method":"elicitation/create","params":{}}}}`},
		notify: [2]string{`{` + wireTask20251125 + `,"status":"input_required","statusMessage":"need a name"}`,
			`{` + wireTask20260728 + `,"status":"input_required","statusMessage":"need a name","inputRequests":{"k1":{"method":"elicitation/create","params":{}}}}`},
	}, {
		name: "completed with a result",
		rec:  viewRecord(taskstore.StatusCompleted, func(r *taskstore.TaskRecord) { r.Result = result }),
		get: [2]string{`{` + wireTask20251125 + `,"status":"completed"}`,
			`{"resultType":"complete",` + wireTask20260728 + `,"status":"completed","result":{"content":[{"type":"text","text":"done"}]}}`},
		cancel: [2]string{`{"code":-32602,"message":"Cannot cancel task: already in terminal status 'completed'"}!`, `{"resultType":"complete"}`},
		result: [2]string{`{"content":[{"type":"text","text":"done"}],"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"t1"}}}`,
			`{"code":-32601,"message":"\"tasks/result\" is not part of the io.modelcontextprotocol/tasks extension (protocol 2026-07-28): use tasks/get"}!`},
	}, {
		name: "failed with a tool error result",
		rec: viewRecord(taskstore.StatusFailed, func(r *taskstore.TaskRecord) {
			r.Task.StatusMessage = "disk full"
			r.Result = json.RawMessage(`{"content":[],"isError":true,"_meta":{"x":1}}`)
		}),
		// 2026-07-28: a tool result with isError completes the task.
		get: [2]string{`{` + wireTask20251125 + `,"status":"failed","statusMessage":"disk full"}`,
			`{"resultType":"complete",` + wireTask20260728 + `,"status":"completed","statusMessage":"disk full","result":{"content":[],"isError":true,"_meta":{"x":1}}}`},
		result: [2]string{`{"content":[],"isError":true,"_meta":{"x":1,"io.modelcontextprotocol/related-task":{"taskId":"t1"}}}`, ``},
	}, {
		name: "failed with a JSON-RPC error",
		rec: viewRecord(taskstore.StatusFailed, func(r *taskstore.TaskRecord) {
			r.Task.StatusMessage = "bad arguments"
			r.Error = rpcErr
		}),
		get: [2]string{`{` + wireTask20251125 + `,"status":"failed","statusMessage":"bad arguments"}`,
			`{"resultType":"complete",` + wireTask20260728 + `,"status":"failed","statusMessage":"bad arguments","error":{"code":-32602,"message":"bad arguments"}}`},
		result: [2]string{`{"code":-32602,"message":"bad arguments"}!`, ``},
	}, {
		name: "cancelled, no outcome",
		rec: viewRecord(taskstore.StatusCancelled, func(r *taskstore.TaskRecord) {
			r.Task.StatusMessage = "The task was cancelled by request."
			r.Task.TTL, r.Task.PollInterval, r.Variables = nil, nil, nil
		}),
		get: [2]string{`{"taskId":"t1","createdAt":"2026-12-01T10:00:00.000Z","lastUpdatedAt":"2026-12-01T10:00:01.500Z","ttl":null,"status":"cancelled","statusMessage":"The task was cancelled by request."}`,
			`{"resultType":"complete","taskId":"t1","createdAt":"2026-12-01T10:00:00.000Z","lastUpdatedAt":"2026-12-01T10:00:01.500Z","ttlMs":null,"status":"cancelled","statusMessage":"The task was cancelled by request."}`},
		result: [2]string{`{"code":-32603,"message":"The task was cancelled by request."}!`, ``},
	}}
	revs := []protocol.Revision{protocol.Rev20251125, protocol.Rev20260728}
	check := func(t *testing.T, what, want string, v any, err error) {
		t.Helper()
		if want == "" {
			return
		}
		if w, isErr := cutBang(want); isErr {
			if err == nil {
				t.Fatalf("%s: answered %s, want error %s", what, marshal(t, v), w)
			}
			sameJSON(t, what, w, wireErr(t, err))
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		sameJSON(t, what, want, marshal(t, &wireResult{v: v}))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for i, rev := range revs {
				v := viewOf(rev)
				check(t, rev.String()+" get", c.get[i], v.Get(c.rec), nil)
				res, err := v.Cancelled(c.rec, c.rec.Task.Status.Terminal())
				check(t, rev.String()+" cancel", c.cancel[i], res, err)
				res, err = v.Result(c.rec)
				check(t, rev.String()+" result", c.result[i], res, err)
				if c.notify[i] != "" {
					method, params := v.Notification(c.rec, nil)
					wantMethod := map[protocol.Revision]string{protocol.Rev20251125: "notifications/tasks/status", protocol.Rev20260728: "notifications/tasks"}[rev]
					if method != wantMethod {
						t.Errorf("%s notification method %q, want %q", rev, method, wantMethod)
					}
					check(t, rev.String()+" notification", c.notify[i], params, nil)
				}
			}
		})
	}
}

func cutBang(s string) (string, bool) {
	if len(s) > 0 && s[len(s)-1] == '!' {
		return s[:len(s)-1], true
	}
	return s, false
}

func TestViewsCreatedAndList(t *testing.T) {
	rec := viewRecord(taskstore.StatusWorking, nil)
	sameJSON(t, "2025-11-25 created", `{"task":{`+wireTask20251125+`,"status":"working"}}`, marshal(t, &wireResult{v: viewOf(protocol.Rev20251125).Created(rec)}))
	sameJSON(t, "2026-07-28 created", `{"resultType":"task",`+wireTask20260728+`,"status":"working"}`, marshal(t, &wireResult{v: viewOf(protocol.Rev20260728).Created(rec)}))

	page := &taskstore.Page{Tasks: []*taskstore.TaskRecord{rec}, NextCursor: "c2"}
	list, err := viewOf(protocol.Rev20251125).List(page)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "2025-11-25 list", `{"tasks":[{`+wireTask20251125+`,"status":"working"}],"nextCursor":"c2"}`, marshal(t, &wireResult{v: list}))
	last, err := viewOf(protocol.Rev20251125).List(&taskstore.Page{Tasks: []*taskstore.TaskRecord{}})
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "2025-11-25 last page", `{"tasks":[]}`, marshal(t, &wireResult{v: last}))
	if _, err := viewOf(protocol.Rev20260728).List(page); err == nil {
		t.Fatal("2026-07-28 has no tasks/list, want an error")
	}
}
