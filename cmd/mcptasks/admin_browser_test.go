package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The admin page in a real browser: Debian's chromium, headless, driven
// from Go with chromedp (which starts the browser it is given, and never
// downloads one). scripts/chromium_up.sh installs it and prints
// MCPTASKS_TEST_CHROMIUM. The screenshots the test takes are kept in
// $MCPTASKS_ARTIFACTS (default testdata/artifacts, which git ignores).

const browserAdminToken = "browser-admin-token-0123456789"

// browserUsers are the users of the browser tests, each with its token.
var browserUsers = []string{"alice", "bob", "carol", "dave"}

func browserToken(user string) string { return "browser-" + user + "-token" }

// browserServeArgs are serve's flags for the browser tests.
func browserServeArgs() []string {
	args := []string{"--admin-token", browserAdminToken}
	for _, u := range browserUsers {
		args = append(args, "--token", u+":"+browserToken(u))
	}
	return args
}

// TestAdminPageInBrowser: one serve in process, on memory://.
func TestAdminPageInBrowser(t *testing.T) {
	b := newBrowser(t)
	u, before, _, _ := startServeLines(t, browserServeArgs()...)
	testAdminInBrowser(t, b, []adminTarget{{mcp: u, admin: adminURL(t, before)}})
}

// adminTarget is one replica: its MCP endpoint and its admin page.
type adminTarget struct{ mcp, admin string }

// browser is a headless Chromium tab, and where its screenshots go.
type browser struct {
	ctx       context.Context
	artifacts string
}

// newBrowser starts a headless Chromium for t: MCPTASKS_TEST_CHROMIUM, else
// chromium on PATH. Without one the test is skipped, or fails under
// MCPTASKS_TEST_REQUIRE=1.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	bin := os.Getenv("MCPTASKS_TEST_CHROMIUM")
	if bin == "" {
		bin, _ = exec.LookPath("chromium")
	}
	if bin == "" {
		if os.Getenv("MCPTASKS_TEST_REQUIRE") == "1" {
			t.Fatal("no Chromium: MCPTASKS_TEST_CHROMIUM is not set and chromium is not on PATH (scripts/chromium_up.sh installs it)")
		}
		t.Skip("no Chromium: run scripts/chromium_up.sh")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("MCPTASKS_TEST_CHROMIUM: %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1400, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", bin, err)
	}
	dir := os.Getenv("MCPTASKS_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &browser{ctx: ctx, artifacts: dir}
}

// authorize sends header with every request of the tab.
func (b *browser) authorize(t *testing.T, header string) {
	t.Helper()
	err := chromedp.Do(b.ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": header}})
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
}

func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// load runs steps that end in a page load (a navigation, a form's
// submission) and waits for it.
func (b *browser) load(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	res, err := chromedp.RunResponse(b.ctx, steps...)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if res.Status != 200 {
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%s: HTTP %d: %s", what, res.Status, body)
	}
	b.checkInert(t, what)
}

func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func eval[T any](t *testing.T, b *browser, js string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// rows returns the task ids of the page's task table, in order.
func (b *browser) rows(t *testing.T) []string {
	t.Helper()
	return eval[[]string](t, b, `Array.from(document.querySelectorAll("tr.task")).map(r => r.dataset.task)`)
}

// checkInert fails when the page holds an element or a global that only a
// payload would have made.
func (b *browser) checkInert(t *testing.T, where string) {
	t.Helper()
	if got := eval[string](t, b, `document.querySelectorAll("img, svg, iframe, object, embed").length + " " + typeof window.pwned`); got != "0 undefined" {
		t.Errorf("%s: injected elements and window.pwned: %s", where, got)
	}
}

// screenshot saves the page as t's artifact name.png.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	file := filepath.Join(b.artifacts, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", file)
}

// Payloads in what users control: a report's topic (it lands in the task's
// variables) and a tool error's text (its result).
const (
	topicPayload = `<img src=x onerror="window.pwned=1">`
	errorPayload = `</pre><svg onload="window.pwned=2"></svg><script>window.pwned=3</script>`
)

// browserTask is a task the browser test made.
type browserTask struct {
	user, tool, id string
	on             int // the replica it runs on
}

// startBrowserTasks starts the test's tasks across users and replicas:
// alice's slow report (progress in its variables), bob's and carol's long
// computations, and dave's failed call.
func startBrowserTasks(t *testing.T, replicas []adminTarget) []browserTask {
	t.Helper()
	specs := []struct {
		user, tool string
		args       map[string]any
	}{
		{"alice", "slow_report", map[string]any{"topic": topicPayload, "steps": 100, "stepSeconds": 0.2}},
		{"bob", "slow_compute", map[string]any{"seconds": 600}},
		{"carol", "slow_compute", map[string]any{"seconds": 600}},
		{"dave", "fail", map[string]any{"message": errorPayload}},
	}
	var out []browserTask
	for i, s := range specs {
		on := i * len(replicas) / len(specs) // the first half on the first replica
		_, res := modernCall(t, replicas[on].mcp, browserToken(s.user), "tools/call", map[string]any{"name": s.tool, "arguments": s.args}, s.tool)
		if res["error"] != nil {
			t.Fatalf("%s's %s: %s", s.user, s.tool, res["error"])
		}
		out = append(out, browserTask{user: s.user, tool: s.tool, id: field[string](t, res["result"], "taskId"), on: on})
	}
	return out
}

// mcpStatus is the task's status through tasks/get of its user on replica r.
func mcpStatus(t *testing.T, r adminTarget, task browserTask) string {
	t.Helper()
	_, res := modernCall(t, r.mcp, browserToken(task.user), "tasks/get", map[string]any{"taskId": task.id}, task.id)
	if res["result"] == nil {
		t.Fatalf("tasks/get %s: %s", task.id, res["error"])
	}
	return field[string](t, res["result"], "status")
}

// waitStatus waits until tasks/get on r says status (a failed tool call
// ends at once, but after its tools/call answered).
func waitStatus(t *testing.T, r adminTarget, task browserTask, status string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := mcpStatus(t, r, task)
		if got == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's task %s is %s, want %s", task.user, task.id, got, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testAdminInBrowser drives replicas[0]'s admin page: it shows the tasks
// of every user and replica, its filters select them, a cancel from the
// page (one from the task's page, two at once from the list) ends them
// cancelled in the store, as the users see them through tasks/get on
// another replica.
func testAdminInBrowser(t *testing.T, b *browser, replicas []adminTarget) {
	tasks := startBrowserTasks(t, replicas)
	alice, bob, carol, dave := tasks[0], tasks[1], tasks[2], tasks[3]
	last := replicas[len(replicas)-1]
	// Stored failed; 2026-07-28 shows a task whose tool reported an error
	// as completed (its result has isError).
	waitStatus(t, last, dave, "completed")
	admin := replicas[0].admin
	b.authorize(t, "Bearer "+browserAdminToken)

	// The overview: counts, and each replica with its running tasks.
	b.load(t, "overview", chromedp.Navigate(admin))
	b.do(t, "pause the refresh", chromedp.Click(chromedp.ID("autorefresh")))
	if got := eval[bool](t, b, `document.getElementById("autorefresh").checked`); got {
		t.Errorf("the refresh box is still ticked")
	}
	counts := eval[string](t, b, `["working","input_required","completed","failed","cancelled"].map(s => document.querySelector("td[data-status=" + s + "]").textContent).join(" ")`)
	if counts != "3 0 0 1 0" {
		t.Errorf("counts working, input_required, completed, failed, cancelled: %s, want 3 0 0 1 0", counts)
	}
	runners := eval[[]string](t, b, `Array.from(document.querySelectorAll("tr.replica")).map(r => r.dataset.runner + " " + r.textContent.replace(/\s+/g, " "))`)
	if len(runners) != len(replicas) || !strings.Contains(runners[0], "(this replica)") {
		t.Errorf("replicas %q, want %d, this one first", runners, len(replicas))
	}
	for _, task := range tasks[:3] {
		if !strings.Contains(strings.Join(runners, "\n"), task.id) {
			t.Errorf("no replica shows %s's running task %s: %q", task.user, task.id, runners)
		}
	}
	if feed := b.text(t, "#feed"); feed != "up" {
		t.Errorf("feed %q, want up", feed)
	}
	b.screenshot(t, "overview")

	// The list: every user's task, from every replica.
	b.load(t, "the task list", chromedp.Click(chromedp.ID("nav-tasks")))
	want := []string{alice.id, bob.id, carol.id, dave.id}
	if got := b.rows(t); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("listed %v, want %v (oldest first)", got, want)
	}
	owners := eval[string](t, b, `Array.from(document.querySelectorAll("td.owner")).map(td => td.textContent).join(" ")`)
	if owners != "alice bob carol dave" {
		t.Errorf("owners %q", owners)
	}
	b.screenshot(t, "tasks")

	// Filters, through the form.
	for _, f := range []struct {
		field, value string
		want         []string
	}{
		{"status", "failed", []string{dave.id}},
		{"owner", "alice", []string{alice.id}},
		{"tool", "slow_compute", []string{bob.id, carol.id}},
	} {
		b.load(t, "the task list", chromedp.Navigate(admin+"tasks"))
		b.do(t, "fill the filter", chromedp.SetValue(chromedp.CSS(fmt.Sprintf("[name=%s]", f.field)), f.value))
		b.load(t, "filter "+f.field, chromedp.Click(chromedp.ID("apply")))
		if got := b.rows(t); strings.Join(got, " ") != strings.Join(f.want, " ") {
			t.Errorf("%s=%s listed %v, want %v", f.field, f.value, got, f.want)
		}
		if f.field == "status" {
			b.screenshot(t, "filter-failed")
		}
	}
	// A replica's link lists its tasks.
	b.load(t, "overview", chromedp.Navigate(admin))
	b.load(t, "a replica's tasks", chromedp.Click(chromedp.CSS(`tr.replica:last-child td a`)))
	var onLast []string
	for _, task := range tasks {
		if task.on == len(replicas)-1 {
			onLast = append(onLast, task.id)
		}
	}
	if got := b.rows(t); strings.Join(got, " ") != strings.Join(onLast, " ") {
		t.Errorf("the last replica's tasks: %v, want %v", got, onLast)
	}

	// dave's failed task shows the tool's error text as text.
	b.load(t, "the task list", chromedp.Navigate(admin+"tasks?status=failed"))
	b.load(t, "dave's task", chromedp.Click(chromedp.CSS(`tr.task a`)))
	if got := b.text(t, "#result"); !strings.Contains(got, `<svg onload=\"window.pwned=2\">`) {
		t.Errorf("dave's result does not show the payload as text: %q", got)
	}

	// alice's report: its progress bar, then a cancel from its page.
	b.load(t, "the task list", chromedp.Navigate(admin+"tasks?owner=alice"))
	b.load(t, "alice's task", chromedp.Click(chromedp.CSS(`tr.task a`)))
	for i := 0; ; i++ {
		if eval[bool](t, b, `document.querySelector("#progress progress") !== null`) {
			break
		}
		if i == 100 {
			t.Fatal("alice's task page shows no progress bar after 10 s")
		}
		time.Sleep(100 * time.Millisecond)
		b.load(t, "alice's task", chromedp.Reload())
	}
	if got := eval[string](t, b, `document.querySelector("#progress progress").max + " " + (document.querySelector("#progress progress").value > 0)`); got != "100 true" {
		t.Errorf("progress bar max and value > 0: %s", got)
	}
	// As JSON text: the payload's quotes escaped.
	if vars := b.text(t, "#variables"); !strings.Contains(vars, `finding 1 about <img src=x onerror=\"window.pwned=1\">`) {
		t.Errorf("the variables do not show the topic as text: %q", vars)
	}
	b.screenshot(t, "task")
	b.load(t, "cancel alice's task", chromedp.Click(chromedp.ID("cancel")))
	if got := b.text(t, "#results"); !strings.Contains(got, alice.id) || !strings.Contains(got, "cancelled") {
		t.Errorf("the cancel's answer: %q", got)
	}
	if s := mcpStatus(t, last, alice); s != "cancelled" {
		t.Errorf("alice's task after the cancel, through tasks/get: %s", s)
	}

	// bob's and carol's, selected in the list and cancelled at once.
	b.load(t, "working tasks", chromedp.Navigate(admin+"tasks?status=working"))
	if got := b.rows(t); strings.Join(got, " ") != bob.id+" "+carol.id {
		t.Fatalf("working tasks %v", got)
	}
	b.do(t, "select all", chromedp.Click(chromedp.ID("selectall")))
	b.screenshot(t, "selected")
	b.load(t, "cancel the selected", chromedp.Click(chromedp.ID("cancel-selected")))
	if got := eval[string](t, b, `Array.from(document.querySelectorAll("tr.result")).map(r => Array.from(r.cells).map(c => c.textContent.trim()).join(" ")).join("; ")`); got != fmt.Sprintf("%s cancelled cancelled; %s cancelled cancelled", bob.id, carol.id) {
		t.Errorf("the cancel's answer: %q", got)
	}
	b.screenshot(t, "cancelled")
	for _, task := range []browserTask{bob, carol} {
		if s := mcpStatus(t, replicas[task.on], task); s != "cancelled" {
			t.Errorf("%s's task after the cancel, through tasks/get on its replica: %s", task.user, s)
		}
	}

	b.load(t, "overview", chromedp.Navigate(admin))
	counts = eval[string](t, b, `["working","input_required","completed","failed","cancelled"].map(s => document.querySelector("td[data-status=" + s + "]").textContent).join(" ")`)
	if counts != "0 0 0 1 3" {
		t.Errorf("counts after the cancels: %s, want 0 0 0 1 3", counts)
	}
	b.screenshot(t, "overview-after")

	// The JSON the page offers agrees.
	code, body := adminDo(t, "GET", admin+"tasks?status=cancelled", "bearer "+browserAdminToken, nil, nil)
	var list struct{ Tasks []struct{ TaskID string } }
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Tasks) != 3 {
		t.Errorf("GET tasks?status=cancelled as JSON: %d %s", code, body)
	}
}
