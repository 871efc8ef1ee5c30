package taskadmin_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskadmin"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Payloads a user (message, variables, result, input, owner) or a replica's
// configuration (runner id, tool name) could hold.
const (
	payloadScript = `<script>alert("pwned")</script>`
	payloadImg    = `"><img src=x onerror=alert(1)>`
	payloadSVG    = `</pre></td><svg onload=alert(1)>`
	payloadFrame  = `<iframe src="javascript:alert(1)"></iframe>`
	payloadAttr   = `' onmouseover='alert(1)`
	payloadStyle  = `</style><style>body{display:none}</style>`
)

var allPayloads = []string{payloadScript, payloadImg, payloadSVG, payloadFrame, payloadAttr, payloadStyle}

func TestHostilePayloadsRenderInert(t *testing.T) {
	for _, digests := range []bool{false, true} {
		f := newFixture(t, taskadmin.Options{OwnerDigests: digests, LeaseTimeout: time.Second})
		runner := `r"><script>alert(1)</script>`
		tool := `t` + payloadImg + payloadAttr
		owner := `o<b onmouseover=alert(1)>` + payloadScript
		if err := f.rt.Heartbeat(t.Context(), runner); err != nil {
			t.Fatal(err)
		}
		rec := f.create(owner, tool, runner, map[string]any{
			payloadScript:              payloadSVG,
			"nested":                   map[string]any{"deep": []string{payloadFrame, payloadStyle}},
			taskstore.ProgressVariable: map[string]any{"progress": 1, "total": 2, "message": payloadScript},
		})
		if _, err := f.rt.RequestInput(t.Context(), owner, rec.Task.TaskID, map[string]json.RawMessage{
			payloadAttr: mustJSON(t, map[string]any{"method": "elicitation/create", "params": map[string]any{"message": payloadSVG}}),
		}, strings.Join(allPayloads, " ")); err != nil {
			t.Fatal(err)
		}
		done := f.create(owner, tool, "", nil)
		if _, err := f.store.CompleteWithResult(t.Context(), owner, done.Task.TaskID, taskstore.StatusCompleted, payloadFrame,
			mustJSON(t, map[string]any{"content": []any{map[string]any{"type": "text", "text": payloadScript + payloadStyle}}})); err != nil {
			t.Fatal(err)
		}
		failed := f.create(owner, tool, "", nil)
		if _, err := f.store.FailWithError(t.Context(), owner, failed.Task.TaskID, &taskstore.RPCError{Code: -32603, Message: payloadImg, Data: mustJSON(t, payloadSVG)}); err != nil {
			t.Fatal(err)
		}

		var tl taskadmin.TaskList
		f.getJSON("/tasks", &tl)
		if len(tl.Tasks) != 3 {
			t.Fatalf("%d tasks listed, want 3", len(tl.Tasks))
		}
		paths := []string{"/", "/tasks", "/stuck", "/tasks?tool=" + urlQuery(tool), "/tasks?runner=" + urlQuery(runner)}
		for _, task := range tl.Tasks {
			paths = append(paths, "/tasks/"+task.Ref)
		}
		for _, path := range paths {
			res, body := f.get(path, false)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, res.StatusCode, body)
			}
			checkInertHTML(t, path, body)
			res, body = f.get(path, true)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s as JSON: %d %s", path, res.StatusCode, body)
			}
			if strings.ContainsAny(body, "<>") {
				t.Errorf("GET %s as JSON: < or > unescaped:\n%s", path, body)
			}
		}

		// The detail shows what the task holds, faithfully: the payloads
		// come back as the same strings through JSON, as text in HTML.
		var d taskadmin.TaskDetail
		f.getJSON("/tasks/"+tl.Tasks[0].Ref, &d)
		var v string
		if err := json.Unmarshal(d.Variables[payloadScript], &v); err != nil || v != payloadSVG {
			t.Errorf("variable %q = %s, want %q", payloadScript, d.Variables[payloadScript], payloadSVG)
		}
		if d.StatusMessage != strings.Join(allPayloads, " ") || d.Progress == nil || d.Progress.Message != payloadScript {
			t.Errorf("detail: message %q, progress %+v", d.StatusMessage, d.Progress)
		}
		if !digests && d.Owner != owner || digests && strings.Contains(d.Owner, "<") {
			t.Errorf("owner shown as %q", d.Owner)
		}
		if d.Tool != tool || d.Runner != runner {
			t.Errorf("tool %q, runner %q", d.Tool, d.Runner)
		}
		_, body := f.get("/tasks/"+tl.Tasks[0].Ref, false)
		if !strings.Contains(body, "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;") {
			t.Errorf("the task page does not show the script payload as text:\n%s", body)
		}

		// A cancel's answer echoes nothing it did not make.
		res, body := f.post(tl.Tasks[0].Ref, payloadScript)
		if res.StatusCode != http.StatusOK || strings.ContainsAny(body, "<>") {
			t.Errorf("cancel with a payload ref (JSON): %d %s", res.StatusCode, body)
		}
	}
}

func urlQuery(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", " ", "%20", `"`, "%22", "<", "%3C", ">", "%3E", "'", "%27").Replace(s)
}

// checkInertHTML fails when body holds markup a payload brought: it reads
// every tag (html/template's output is well formed, and escaped text holds
// no '<'), and allows only the elements and attributes the templates use,
// no event handler or style attribute, no javascript: URL, and the page's
// one script and style.
func checkInertHTML(t *testing.T, path, body string) {
	t.Helper()
	for _, p := range htmlProblems(body) {
		t.Errorf("GET %s: %s", path, p)
	}
}

func htmlProblems(body string) []string {
	var problems []string
	elements := map[string]bool{"html": true, "head": true, "meta": true, "title": true, "style": true, "body": true,
		"header": true, "strong": true, "nav": true, "a": true, "label": true, "input": true, "span": true, "main": true,
		"h1": true, "h2": true, "table": true, "thead": true, "tbody": true, "tr": true, "th": true, "td": true, "p": true,
		"form": true, "select": true, "option": true, "button": true, "progress": true, "pre": true, "br": true,
		"div": true, "script": true}
	attrs := map[string]bool{"lang": true, "charset": true, "name": true, "content": true, "data-refresh": true,
		"href": true, "id": true, "type": true, "checked": true, "class": true, "title": true, "value": true,
		"method": true, "action": true, "selected": true, "maxlength": true, "placeholder": true, "size": true,
		"max": true, "data-task": true, "data-runner": true, "data-status": true}
	count := map[string]int{}
	for rest := body; ; {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			break
		}
		rest = rest[i+1:]
		if strings.HasPrefix(rest, "/") || strings.HasPrefix(rest, "!") {
			continue
		}
		name, tag := tagOf(rest)
		if !elements[name] {
			problems = append(problems, fmt.Sprintf("element %q in the page", name))
		}
		count[name]++
		for _, a := range tag {
			if !attrs[a.name] {
				problems = append(problems, fmt.Sprintf("attribute %q on <%s>", a.name, name))
			}
			if (a.name == "href" || a.name == "action") && strings.Contains(strings.ToLower(a.value), "javascript:") {
				problems = append(problems, fmt.Sprintf("%s=%q", a.name, a.value))
			}
		}
		if name == "script" || name == "style" {
			end := strings.Index(rest, "</"+name+">")
			if end < 0 {
				return append(problems, fmt.Sprintf("<%s> not closed", name))
			}
			rest = rest[end:]
		}
	}
	if count["script"] != 1 || count["style"] != 1 {
		problems = append(problems, fmt.Sprintf("%d script and %d style elements, want the page's own one of each", count["script"], count["style"]))
	}
	return problems
}

// TestHTMLProblemsSeesPayloads: the check above fails on what it looks for.
func TestHTMLProblemsSeesPayloads(t *testing.T) {
	page := "<html><style>x</style><script>y</script><p>ok</p>"
	if p := htmlProblems(page); p != nil {
		t.Fatalf("a clean page: %v", p)
	}
	for _, bad := range []string{payloadScript, payloadImg, payloadSVG, payloadFrame, payloadStyle,
		`<a href="javascript:alert(1)">x</a>`, `<p onclick="x">`, `<p style="x">`} {
		if p := htmlProblems(page + bad); p == nil {
			t.Errorf("%s: no problem seen", bad)
		}
	}
}

type attr struct{ name, value string }

// tagOf reads a start tag's name and attributes from s (just after '<').
func tagOf(s string) (string, []attr) {
	n := strings.IndexFunc(s, func(r rune) bool { return r == ' ' || r == '>' || r == '/' || r == '\n' })
	name := strings.ToLower(s[:n])
	s = s[n:]
	var out []attr
	for {
		s = strings.TrimLeft(s, " \n/")
		if s == "" || s[0] == '>' {
			return name, out
		}
		k := strings.IndexFunc(s, func(r rune) bool { return r == '=' || r == ' ' || r == '>' })
		if k < 0 {
			return name, out
		}
		a := attr{name: strings.ToLower(s[:k])}
		s = s[k:]
		if s[0] == '=' {
			s = s[1:]
			if q := s[0]; q == '"' || q == '\'' {
				end := strings.IndexByte(s[1:], q)
				a.value, s = s[1:1+end], s[2+end:]
			} else {
				end := strings.IndexAny(s, " >")
				a.value, s = s[:end], s[end:]
			}
		}
		out = append(out, a)
	}
}

func TestContentSecurityPolicyAllowsOnlyThePagesOwnScriptAndStyle(t *testing.T) {
	f := newFixture(t, taskadmin.Options{})
	f.create("alice", "sleep", "", nil)
	for _, path := range []string{"/", "/tasks", "/stuck", "/tasks/bad-ref"} {
		res, body := f.get(path, false)
		csp := res.Header.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("GET %s: the policy %q lacks %q", path, csp, d)
			}
		}
		for _, el := range []struct{ open, close, directive string }{{"<script>", "</script>", "script-src"}, {"<style>", "</style>", "style-src"}} {
			i, j := strings.Index(body, el.open), strings.Index(body, el.close)
			if i < 0 || j < i {
				t.Fatalf("GET %s: no %s element", path, el.open)
			}
			sum := sha256.Sum256([]byte(body[i+len(el.open) : j]))
			want := el.directive + " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: the policy %q does not allow the page's %s (%s)", path, csp, el.open, want)
			}
		}
		if strings.Contains(body, " style=") {
			t.Errorf("GET %s: a style attribute, which the policy blocks", path)
		}
		for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin", "Cache-Control": "no-store"} {
			if got := res.Header.Get(h); got != want {
				t.Errorf("GET %s: %s %q, want %q", path, h, got, want)
			}
		}
	}
}

func TestStuck(t *testing.T) {
	var local taskadmin.Local
	store, err := mcptasks.Open(t.Context(), "memory://", taskstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rt := taskstore.NewRuntime(store)
	f := &fixture{t: t, store: store, rt: rt}
	for _, r := range []string{"live", "dead"} {
		if err := rt.Heartbeat(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	working := f.create("alice", "sleep", "live", nil)
	waiting := f.create("bob", "ask_user", "live", nil)
	if _, err := rt.RequestInput(t.Context(), "bob", waiting.Task.TaskID, map[string]json.RawMessage{"q": json.RawMessage(`{"method":"elicitation/create"}`)}, "asking"); err != nil {
		t.Fatal(err)
	}
	orphan := f.create("carol", "sleep", "dead", nil)
	local.Heartbeats(map[string]time.Duration{"live": 0, "dead": time.Hour})
	time.Sleep(20 * time.Millisecond) // so that the tasks are older than the short threshold below

	for _, c := range []struct {
		after                   time.Duration
		working, input, orphans []string
	}{
		{time.Hour, nil, nil, []string{orphan.Task.TaskID}},
		{10 * time.Millisecond, []string{working.Task.TaskID, orphan.Task.TaskID}, []string{waiting.Task.TaskID}, []string{orphan.Task.TaskID}},
	} {
		f.h = taskadmin.New(rt, taskadmin.Options{StuckAfter: c.after, Local: &local})
		var st taskadmin.Stuck
		f.getJSON("/stuck", &st)
		if st.StuckAfter != c.after.Seconds() || !equal(ids(st.Working), c.working) || !equal(ids(st.InputWaiting), c.input) || !equal(ids(st.Orphaned), c.orphans) {
			t.Errorf("stuck after %v: working %v, input %v, orphaned %v; want %v, %v, %v", c.after,
				ids(st.Working), ids(st.InputWaiting), ids(st.Orphaned), c.working, c.input, c.orphans)
		}
		_, body := f.get("/stuck", false)
		checkInertHTML(t, "/stuck", body)
		if !strings.Contains(body, orphan.Task.TaskID) {
			t.Errorf("the stuck page does not show the orphan")
		}
	}
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// hidden is a backend without its optional interfaces (no StatusIndex, no
// change feed).
type hidden struct{ taskstore.Backend }

func TestBackendWithoutStatusIndex(t *testing.T) {
	b, err := mcptasks.OpenBackend(t.Context(), "memory://")
	if err != nil {
		t.Fatal(err)
	}
	store := taskstore.New(hidden{b}, taskstore.Config{})
	defer store.Close()
	rt := taskstore.NewRuntime(store)
	if err := rt.Heartbeat(t.Context(), "r1"); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: store, rt: rt, h: taskadmin.New(rt, taskadmin.Options{})}
	f.create("alice", "sleep", "r1", nil)
	var ov taskadmin.Overview
	f.getJSON("/", &ov)
	if ov.Counts != nil || !strings.Contains(ov.CountsError, "StatusIndex") || ov.Feed != "none" || len(ov.Replicas) != 1 || len(ov.Replicas[0].Running) != 1 {
		t.Errorf("overview without a StatusIndex: %+v", ov)
	}
	for _, path := range []string{"/tasks", "/stuck"} {
		if res, body := f.get(path, true); res.StatusCode != http.StatusNotImplemented || !strings.Contains(body, "StatusIndex") {
			t.Errorf("GET %s: %d %s, want 501", path, res.StatusCode, body)
		}
	}
}
