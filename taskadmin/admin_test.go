package taskadmin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskadmin"
	"github.com/mcptasks/mcptasks/taskstore"
)

// fixture is a memory store with tasks of several owners, tools and
// runners, and an admin handler over it.
type fixture struct {
	t     *testing.T
	store *taskstore.Store
	rt    *taskstore.Runtime
	h     http.Handler
}

func newFixture(t *testing.T, opts taskadmin.Options) *fixture {
	t.Helper()
	store, err := mcptasks.Open(t.Context(), "memory://", taskstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rt := taskstore.NewRuntime(store)
	return &fixture{t: t, store: store, rt: rt, h: taskadmin.New(rt, opts)}
}

// create makes a task of owner running tool, held by runner ("" none).
func (f *fixture) create(owner, tool, runner string, vars map[string]any) *taskstore.TaskRecord {
	f.t.Helper()
	v := map[string]json.RawMessage{taskstore.ToolVariable: mustJSON(f.t, tool)}
	for k, x := range vars {
		v[k] = mustJSON(f.t, x)
	}
	rec, err := f.store.Create(f.t.Context(), owner, taskstore.CreateRequest{RequestMethod: "tools/call", Variables: v, Runner: runner})
	if err != nil {
		f.t.Fatal(err)
	}
	return rec
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// do serves one request and returns the response and its body.
func (f *fixture) do(req *http.Request) (*http.Response, string) {
	f.t.Helper()
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func (f *fixture) get(path string, asJSON bool) (*http.Response, string) {
	f.t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if asJSON {
		req.Header.Set("Accept", "application/json")
	} else {
		req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	}
	return f.do(req)
}

// getJSON GETs path as JSON into v, expecting 200.
func (f *fixture) getJSON(path string, v any) {
	f.t.Helper()
	res, body := f.get(path, true)
	if res.StatusCode != http.StatusOK {
		f.t.Fatalf("GET %s: %d %s", path, res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		f.t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		f.t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

// post POSTs a cancel form naming refs, as a same-origin browser would.
func (f *fixture) post(refs ...string) (*http.Response, string) {
	f.t.Helper()
	form := url.Values{"ref": refs}
	req := httptest.NewRequest("POST", "/cancel", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return f.do(req)
}

func ids(tasks []taskadmin.Task) []string {
	var out []string
	for _, t := range tasks {
		out = append(out, t.TaskID)
	}
	return out
}

func TestTaskListAcrossOwnersAndFilters(t *testing.T) {
	f := newFixture(t, taskadmin.Options{})
	a1 := f.create("alice", "sleep", "replica-1", nil)
	b1 := f.create("bob", "slow_report", "replica-2", nil)
	a2 := f.create("alice", "slow_report", "replica-1", nil)
	c1 := f.create("carol", "sleep", "", nil)
	if _, err := f.store.Cancel(t.Context(), "bob", b1.Task.TaskID); err != nil {
		t.Fatal(err)
	}
	all := []string{a1.Task.TaskID, b1.Task.TaskID, a2.Task.TaskID, c1.Task.TaskID}

	var tl taskadmin.TaskList
	f.getJSON("/tasks", &tl)
	if diff := cmp.Diff(all, ids(tl.Tasks)); diff != "" {
		t.Errorf("every owner's tasks, oldest first (-want +got):\n%s", diff)
	}
	if tl.NextCursor != "" {
		t.Errorf("one page holds them all, but NextCursor = %q", tl.NextCursor)
	}
	got := tl.Tasks[0]
	if got.Owner != "alice" || got.Tool != "sleep" || got.Status != taskstore.StatusWorking || got.Runner != "replica-1" || got.Attempt != 1 {
		t.Errorf("first task = %+v", got)
	}

	for _, c := range []struct {
		query string
		want  []string
	}{
		{"status=working", []string{a1.Task.TaskID, a2.Task.TaskID, c1.Task.TaskID}},
		{"status=cancelled", []string{b1.Task.TaskID}},
		{"tool=slow_report", []string{b1.Task.TaskID, a2.Task.TaskID}},
		{"owner=alice", []string{a1.Task.TaskID, a2.Task.TaskID}},
		{"runner=replica-1", []string{a1.Task.TaskID, a2.Task.TaskID}},
		{"owner=alice&tool=sleep", []string{a1.Task.TaskID}},
		{"owner=nobody", nil},
		{"newer=1h", all},
		{"older=1h", nil},
	} {
		var tl taskadmin.TaskList
		f.getJSON("/tasks?"+c.query, &tl)
		if diff := cmp.Diff(c.want, ids(tl.Tasks)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.query, diff)
		}
	}

	// Paging one task at a time lists each once, and the next page's link
	// keeps the filter (its age bound made absolute).
	for _, filter := range []string{"", "newer=1h&"} {
		var seen []string
		path := "/tasks?" + filter + "limit=1"
		for range 10 {
			var tl taskadmin.TaskList
			f.getJSON(path, &tl)
			seen = append(seen, ids(tl.Tasks)...)
			if tl.NextCursor == "" {
				break
			}
			q := url.Values{"cursor": {tl.NextCursor}, "limit": {"1"}}
			if tl.Filter.CreatedAfter != nil {
				q.Set("after", tl.Filter.CreatedAfter.Format(time.RFC3339Nano))
			}
			path = "/tasks?" + q.Encode()
		}
		if diff := cmp.Diff(all, seen); diff != "" {
			t.Errorf("paging %q (-want +got):\n%s", filter, diff)
		}
	}

	// The HTML page lists them too, with a next link that works.
	res, body := f.get("/tasks?limit=3", false)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /tasks as HTML: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, id := range all[:3] {
		if !strings.Contains(body, id) {
			t.Errorf("the HTML page does not show task %s", id)
		}
	}
	i := strings.Index(body, `href="tasks?`)
	if i < 0 {
		t.Fatalf("no next page link in:\n%s", body)
	}
	next := body[i+len(`href="`):]
	next = strings.ReplaceAll(next[:strings.IndexByte(next, '"')], "&amp;", "&")
	_, body = f.get("/"+next, false)
	if !strings.Contains(body, all[3]) || strings.Contains(body, all[0]) {
		t.Errorf("the next page (%s) does not continue the list", next)
	}
}

func TestOverview(t *testing.T) {
	var local taskadmin.Local
	f := newFixture(t, taskadmin.Options{Runner: "me", Local: &local, LeaseTimeout: 5 * time.Second})
	for _, r := range []string{"me", "live", "dead"} {
		if err := f.rt.Heartbeat(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	f.create("alice", "sleep", "me", nil)
	f.create("bob", "sleep", "dead", nil)
	done := f.create("bob", "fail", "live", nil)
	if _, err := f.store.FailWithError(t.Context(), "bob", done.Task.TaskID, &taskstore.RPCError{Code: -32603, Message: "boom"}); err != nil {
		t.Fatal(err)
	}
	local.Feed(true)
	local.Heartbeats(map[string]time.Duration{"live": 300 * time.Millisecond, "dead": time.Minute})

	var ov taskadmin.Overview
	f.getJSON("/", &ov)
	want := map[taskstore.Status]int64{"working": 2, "input_required": 0, "completed": 0, "failed": 1, "cancelled": 0}
	if diff := cmp.Diff(want, ov.Counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if ov.Feed != "up" {
		t.Errorf("feed %q, want up", ov.Feed)
	}
	var runners []string
	for _, r := range ov.Replicas {
		runners = append(runners, r.Runner)
	}
	if diff := cmp.Diff([]string{"me", "dead", "live"}, runners); diff != "" {
		t.Fatalf("replicas, this one first (-want +got):\n%s", diff)
	}
	me, dead, live := ov.Replicas[0], ov.Replicas[1], ov.Replicas[2]
	if !me.This || me.HeartbeatAge == nil || me.Stopped || len(me.Running) != 1 {
		t.Errorf("this replica: %+v", me)
	}
	if !dead.Stopped || dead.HeartbeatAge == nil || *dead.HeartbeatAge < 60 || len(dead.Running) != 1 {
		t.Errorf("the dead replica: %+v", dead)
	}
	if live.Stopped || live.HeartbeatAge == nil || *live.HeartbeatAge >= 5 || len(live.Running) != 0 {
		t.Errorf("the live replica (its task ended): %+v", live)
	}

	_, body := f.get("/", false)
	for _, s := range []string{`id="counts"`, "(this replica)", "stopped", `id="feed">up<`} {
		if !strings.Contains(body, s) {
			t.Errorf("the overview page lacks %q", s)
		}
	}

	// Without a Router's report, the page measures ages itself: unknown
	// at its first read.
	g := newFixture(t, taskadmin.Options{})
	if err := g.rt.Heartbeat(t.Context(), "other"); err != nil {
		t.Fatal(err)
	}
	var ov2 taskadmin.Overview
	g.getJSON("/", &ov2)
	if ov2.Feed != "unknown" || len(ov2.Replicas) != 1 || ov2.Replicas[0].HeartbeatAge != nil {
		t.Errorf("first read without a Router: %+v", ov2)
	}
	g.getJSON("/", &ov2)
	if ov2.Replicas[0].HeartbeatAge == nil {
		t.Errorf("second read: the age is still unknown")
	}
}

func TestTaskDetail(t *testing.T) {
	f := newFixture(t, taskadmin.Options{})
	rec := f.create("alice", "slow_report", "replica-1", map[string]any{
		taskstore.ProgressVariable: taskstore.Progress{Progress: 3, Total: 4, Message: "step 3 of 4"},
		"report.line.1":            "first finding",
	})
	if _, err := f.rt.RequestInput(t.Context(), "alice", rec.Task.TaskID,
		map[string]json.RawMessage{"confirm": json.RawMessage(`{"method":"elicitation/create","params":{"message":"Sure?"}}`)}, "waiting for you"); err != nil {
		t.Fatal(err)
	}
	var tl taskadmin.TaskList
	f.getJSON("/tasks", &tl)
	ref := tl.Tasks[0].Ref

	var d taskadmin.TaskDetail
	f.getJSON("/tasks/"+ref, &d)
	if d.Status != taskstore.StatusInputRequired || d.StatusMessage != "waiting for you" || d.Runner != "replica-1" || d.Attempt != 1 {
		t.Errorf("detail: %+v", d)
	}
	if d.Progress == nil || *d.Progress != (taskstore.Progress{Progress: 3, Total: 4, Message: "step 3 of 4"}) {
		t.Errorf("progress %+v", d.Progress)
	}
	if diff := cmp.Diff([]string{"confirm"}, d.InputKeys); diff != "" {
		t.Errorf("input keys (-want +got):\n%s", diff)
	}
	if string(d.Variables["report.line.1"]) != `"first finding"` || len(d.InputRequests) == 0 {
		t.Errorf("variables %v, input requests %s", d.Variables, d.InputRequests)
	}

	_, body := f.get("/tasks/"+ref, false)
	for _, s := range []string{`<progress value="3" max="4">75%</progress>`, "first finding", "elicitation/create", "replica-1, attempt 1", `id="cancel"`} {
		if !strings.Contains(body, s) {
			t.Errorf("the task page lacks %q", s)
		}
	}

	if _, err := f.store.CompleteWithResult(t.Context(), "alice", rec.Task.TaskID, taskstore.StatusCompleted, "", json.RawMessage(`{"content":[{"type":"text","text":"the report"}]}`)); err != nil {
		t.Fatal(err)
	}
	_, body = f.get("/tasks/"+ref, false)
	if !strings.Contains(body, "the report") || strings.Contains(body, `id="cancel"`) {
		t.Errorf("a completed task's page shows its result and no cancel button:\n%s", body)
	}

	for path, want := range map[string]int{
		"/tasks/nonsense":              http.StatusBadRequest,
		"/tasks/" + ref[:49] + ".Ym9i": http.StatusNotFound, // the id under owner "bob"
	} {
		if res, body := f.get(path, true); res.StatusCode != want {
			t.Errorf("GET %s: %d %s, want %d", path, res.StatusCode, body, want)
		}
	}
}

func TestRedact(t *testing.T) {
	f := newFixture(t, taskadmin.Options{Redact: true})
	rec := f.create("alice", "sleep", "", map[string]any{"secret": "hunter2",
		taskstore.ProgressVariable: taskstore.Progress{Progress: 1, Total: 2}})
	if _, err := f.store.FailWithError(t.Context(), "alice", rec.Task.TaskID, &taskstore.RPCError{Code: -32603, Message: "it broke", Data: json.RawMessage(`"hunter2"`)}); err != nil {
		t.Fatal(err)
	}
	var tl taskadmin.TaskList
	f.getJSON("/tasks", &tl)
	for _, asJSON := range []bool{true, false} {
		_, body := f.get("/tasks/"+tl.Tasks[0].Ref, asJSON)
		if strings.Contains(body, "hunter2") {
			t.Errorf("redacted (json %v), yet the page shows a variable or the error:\n%s", asJSON, body)
		}
		if !strings.Contains(body, "-32603") || !strings.Contains(body, "it broke") || !strings.Contains(body, "sleep") {
			t.Errorf("redacted (json %v): the error's code and message and the tool should stay:\n%s", asJSON, body)
		}
	}
	var d taskadmin.TaskDetail
	f.getJSON("/tasks/"+tl.Tasks[0].Ref, &d)
	if !d.Redacted || d.Variables != nil || d.Progress == nil {
		t.Errorf("redacted detail: %+v", d)
	}
}

func TestOwnerDigests(t *testing.T) {
	key := []byte("a key shared by the replicas")
	f := newFixture(t, taskadmin.Options{OwnerDigests: true, RefKey: key})
	owner := "session:0123456789abcdef-secret-session-id"
	rec := f.create(owner, "sleep", "r1", nil)
	if err := f.rt.Heartbeat(t.Context(), "r1"); err != nil {
		t.Fatal(err)
	}
	var tl taskadmin.TaskList
	f.getJSON("/tasks", &tl)
	if len(tl.Tasks) != 1 || tl.Tasks[0].Owner != taskadmin.OwnerDigest(owner) || !strings.HasPrefix(tl.Tasks[0].Owner, "session:sha256:") {
		t.Fatalf("tasks %+v", tl.Tasks)
	}
	ref := tl.Tasks[0].Ref
	for _, path := range []string{"/", "/tasks", "/tasks/" + ref, "/stuck"} {
		for _, asJSON := range []bool{true, false} {
			res, body := f.get(path, asJSON)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, res.StatusCode, body)
			}
			if strings.Contains(body, "secret-session-id") || strings.Contains(body, "c2VjcmV0LXNlc3Npb24taWQ") {
				t.Errorf("GET %s (json %v) shows the owner:\n%s", path, asJSON, body)
			}
		}
	}
	// Another handler with the same key opens the reference; one with
	// another key does not.
	same := taskadmin.New(f.rt, taskadmin.Options{OwnerDigests: true, RefKey: key})
	other := taskadmin.New(f.rt, taskadmin.Options{OwnerDigests: true})
	for h, want := range map[http.Handler]int{same: http.StatusOK, other: http.StatusBadRequest} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/tasks/"+ref, nil))
		if w.Code != want {
			t.Errorf("GET the reference on another handler: %d, want %d", w.Code, want)
		}
	}
	// The owner filter takes the owner as given.
	f.getJSON("/tasks?owner="+url.QueryEscape(owner), &tl)
	if len(tl.Tasks) != 1 {
		t.Errorf("owner filter: %d tasks", len(tl.Tasks))
	}
	// A cancel through the sealed reference cancels.
	res, body := f.post(ref)
	var cr taskadmin.CancelResults
	if res.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &cr) != nil || len(cr.Results) != 1 || cr.Results[0].Status != taskstore.StatusCancelled {
		t.Fatalf("cancel: %d %s", res.StatusCode, body)
	}
	got, err := f.store.Get(t.Context(), owner, rec.Task.TaskID)
	if err != nil || got.Task.Status != taskstore.StatusCancelled {
		t.Errorf("after the cancel: %v %v", got.Task.Status, err)
	}
}

func TestCancel(t *testing.T) {
	f := newFixture(t, taskadmin.Options{})
	a := f.create("alice", "sleep", "r1", nil)
	b := f.create("bob", "sleep", "r2", nil)
	c := f.create("carol", "sleep", "r2", nil)
	done := f.create("dave", "sleep", "", nil)
	if _, err := f.store.CompleteWithResult(t.Context(), "dave", done.Task.TaskID, taskstore.StatusCompleted, "", json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	var tl taskadmin.TaskList
	f.getJSON("/tasks", &tl)
	refs := map[string]string{}
	for _, t := range tl.Tasks {
		refs[t.TaskID] = t.Ref
	}

	// One, from the task's page form: the browser's HTML answer.
	form := url.Values{"ref": {refs[a.Task.TaskID]}}
	req := httptest.NewRequest("POST", "/cancel", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, body := f.do(req)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "cancelled") {
		t.Fatalf("cancel one: %d %s", res.StatusCode, body)
	}

	// Many at once, with one already ended and one not a reference.
	res, body = f.post(refs[b.Task.TaskID], refs[c.Task.TaskID], refs[done.Task.TaskID], "not-a-ref")
	var cr taskadmin.CancelResults
	if res.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &cr) != nil {
		t.Fatalf("cancel many: %d %s", res.StatusCode, body)
	}
	want := []taskadmin.CancelResult{
		{Ref: refs[b.Task.TaskID], TaskID: b.Task.TaskID, Status: taskstore.StatusCancelled},
		{Ref: refs[c.Task.TaskID], TaskID: c.Task.TaskID, Status: taskstore.StatusCancelled},
		{Ref: refs[done.Task.TaskID], TaskID: done.Task.TaskID, Status: taskstore.StatusCompleted, Error: "the task had already ended"},
		{Error: "not a task reference of this admin page"},
	}
	if diff := cmp.Diff(want, cr.Results); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	for owner, id := range map[string]string{"alice": a.Task.TaskID, "bob": b.Task.TaskID, "carol": c.Task.TaskID} {
		rec, err := f.store.Get(t.Context(), owner, id)
		if err != nil || rec.Task.Status != taskstore.StatusCancelled {
			t.Errorf("%s's task after the cancel: %v %v", owner, rec.Task.Status, err)
		}
	}

	// Bounds.
	if res, body := f.post(); res.StatusCode != http.StatusBadRequest {
		t.Errorf("no ref: %d %s", res.StatusCode, body)
	}
	many := slices.Repeat([]string{refs[a.Task.TaskID]}, taskadmin.MaxCancel+1)
	if res, body := f.post(many...); res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "at most 100") {
		t.Errorf("too many refs: %d %s", res.StatusCode, body)
	}
	big := httptest.NewRequest("POST", "/cancel", strings.NewReader("ref="+strings.Repeat("a", 100<<10)))
	big.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if res, body := f.do(big); res.StatusCode != http.StatusBadRequest {
		t.Errorf("a form of 100 KiB: %d %s", res.StatusCode, body)
	}
	if res, _ := f.get("/cancel", true); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /cancel: %d, want 405", res.StatusCode)
	}
}

func TestCrossOriginAndReadOnly(t *testing.T) {
	for _, readOnly := range []bool{false, true} {
		f := newFixture(t, taskadmin.Options{ReadOnly: readOnly})
		rec := f.create("alice", "sleep", "", nil)
		var tl taskadmin.TaskList
		f.getJSON("/tasks", &tl)
		ref := tl.Tasks[0].Ref
		for _, path := range []string{"/tasks", "/tasks/" + ref} {
			if _, body := f.get(path, false); readOnly == strings.Contains(body, `<form method="post"`) {
				t.Errorf("read-only %v: %s shows a cancel form: %v", readOnly, path, !readOnly)
			}
		}

		for name, set := range map[string]func(*http.Request){
			"Sec-Fetch-Site cross-site": func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") },
			"Origin of another host":    func(r *http.Request) { r.Header.Set("Origin", "http://attacker.invalid") },
			"same origin":               func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-origin") },
		} {
			req := httptest.NewRequest("POST", "http://admin.invalid/cancel", strings.NewReader(url.Values{"ref": {ref}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			set(req)
			res, body := f.do(req)
			allowed := name == "same origin" && !readOnly
			if allowed != (res.StatusCode == http.StatusOK) || !allowed && res.StatusCode != http.StatusForbidden {
				t.Errorf("read-only %v, %s: %d %s", readOnly, name, res.StatusCode, body)
			}
			if !allowed && !strings.Contains(body, map[bool]string{true: "read-only", false: "cross-origin"}[readOnly]) {
				t.Errorf("read-only %v, %s: the refusal does not say why: %s", readOnly, name, body)
			}
		}
		got, err := f.store.Get(t.Context(), "alice", rec.Task.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]taskstore.Status{false: taskstore.StatusCancelled, true: taskstore.StatusWorking}[readOnly]; got.Task.Status != want {
			t.Errorf("read-only %v: the task is %s, want %s", readOnly, got.Task.Status, want)
		}
	}
}

func TestBadRequestsAreBounded(t *testing.T) {
	f := newFixture(t, taskadmin.Options{MaxPageSize: 20})
	for range 3 {
		f.create("alice", "sleep", "", nil)
	}
	var tl taskadmin.TaskList
	f.getJSON("/tasks?limit=1&status=working", &tl)
	if tl.NextCursor == "" {
		t.Fatal("no cursor on a page of 1 of 3")
	}
	for _, c := range []struct {
		query string
		code  int
		says  string
	}{
		{"limit=21", 400, "bad limit: want 1 to 20"},
		{"limit=0", 400, "bad limit"},
		{"limit=x", 400, "bad limit"},
		{"status=stuck", 400, "bad status"},
		{"tool=" + strings.Repeat("t", taskstore.MaxToolFilterLen+1), 400, "tool filter longer than 1024 bytes"},
		{"owner=" + strings.Repeat("o", taskstore.DefaultMaxOwnerLen+1), 400, "owner filter longer than 512 bytes"},
		{"runner=" + strings.Repeat("r", 129), 400, "runner id must be 1..128 bytes"},
		{"older=yesterday", 400, "bad older"},
		{"newer=-1h", 400, "bad newer"},
		{"older=1h&before=2020-01-01T00:00:00Z", 400, "not both"},
		{"older=2h&newer=1h", 400, "no time between"},
		{"cursor=garbage", 400, "bad cursor"},
		{"cursor=" + url.QueryEscape(tl.NextCursor), 400, "the cursor belongs to another filter"},
		{"status=working&limit=1&cursor=" + url.QueryEscape(tl.NextCursor), 200, ""},
		{"cursor=" + strings.Repeat("c", 5000), 400, "bad cursor: longer than"},
		{"tool=" + strings.Repeat("t", 9000), 414, "query string longer than"},
	} {
		for _, asJSON := range []bool{true, false} {
			res, body := f.get("/tasks?"+c.query, asJSON)
			if res.StatusCode != c.code || !strings.Contains(body, c.says) {
				t.Errorf("%.60s (json %v): %d %.300s, want %d saying %q", c.query, asJSON, res.StatusCode, body, c.code, c.says)
			}
		}
	}
	// The store's own page bound caps the handler's.
	small, err := mcptasks.Open(t.Context(), "memory://", taskstore.Config{MaxPageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	g := &fixture{t: t, store: small, h: taskadmin.New(taskstore.NewRuntime(small), taskadmin.Options{MaxPageSize: 20})}
	if res, body := g.get("/tasks?limit=11", true); res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "want 1 to 10") {
		t.Errorf("limit 11 over a store of pages of 10: %d %s", res.StatusCode, body)
	}
	if res, _ := f.get("/nowhere", true); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nowhere: %d", res.StatusCode)
	}
}
