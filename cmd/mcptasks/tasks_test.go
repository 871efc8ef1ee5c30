package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

// The operator's commands in process, over a memory backend the test and
// the command share: clitest://NAME opens the backend a test registered
// under NAME, with its StatusIndex; clitest://NAME?plain=1 opens it
// without, as a backend that cannot list across owners.

var (
	sharedMu       sync.Mutex
	sharedBackends = map[string]taskstore.Backend{}
)

func init() {
	mcptasks.Register("clitest", func(_ context.Context, u *url.URL) (taskstore.Backend, error) {
		sharedMu.Lock()
		b, ok := sharedBackends[u.Host]
		sharedMu.Unlock()
		if !ok {
			return nil, errors.New("no shared backend of that name")
		}
		if u.Query().Get("plain") != "" {
			return sharedBackend{b}, nil
		}
		return sharedIndexed{sharedBackend{b}, b.(taskstore.StatusIndex)}, nil
	})
}

// sharedBackend leaves the backend open when the command closes its store.
type sharedBackend struct{ taskstore.Backend }

func (sharedBackend) Close() error { return nil }

type sharedIndexed struct {
	sharedBackend
	taskstore.StatusIndex
}

// sharedStore registers a fresh memory backend and returns its URL and a
// Store over it without quotas.
func sharedStore(t *testing.T) (string, *taskstore.Store) {
	t.Helper()
	name := "s" + randomHex(6)
	b := mcptasks.NewMemoryBackend(0)
	sharedMu.Lock()
	sharedBackends[name] = b
	sharedMu.Unlock()
	t.Cleanup(func() {
		sharedMu.Lock()
		delete(sharedBackends, name)
		sharedMu.Unlock()
		b.Close()
	})
	return "clitest://" + name, taskstore.New(sharedBackend{b}, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1, AllowAnonymous: true})
}

// cli runs the command in process.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb strings.Builder
	code = run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// newTask creates a task of owner running tool on runner ("" none).
func newTask(t *testing.T, s *taskstore.Store, owner, tool, runner, message string) *taskstore.TaskRecord {
	t.Helper()
	req := taskstore.CreateRequest{RequestMethod: "tools/call", Runner: runner, StatusMessage: message}
	if tool != "" {
		req.Variables = map[string]json.RawMessage{taskstore.ToolVariable: json.RawMessage(fmt.Sprintf("%q", tool))}
	}
	rec, err := s.Create(t.Context(), owner, req)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// Owners that must reach the terminal escaped: an ANSI colour, a bidi
// override, a newline, a space.
const (
	ownerANSI  = "m\x1b[31mallory\u202e"
	ownerSpace = "carol smith\nx"
)

// fixture makes tasks of four owners in every status and returns them in
// creation order.
func fixture(t *testing.T, s *taskstore.Store) []*taskstore.TaskRecord {
	t.Helper()
	ctx := t.Context()
	var recs []*taskstore.TaskRecord
	add := func(r *taskstore.TaskRecord, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	a1 := newTask(t, s, "alice", "sleep", "r1", "step 1 of 3")
	add(a1, nil)
	b1 := newTask(t, s, "bob", "slow_report", "r2", "")
	add(s.CompleteWithResult(ctx, "bob", b1.Task.TaskID, taskstore.StatusCompleted, "", json.RawMessage(`{"content":[{"type":"text","text":"done"}]}`)))
	m1 := newTask(t, s, ownerANSI, "sleep", "r1", "\x1b[2Jcleared<script>")
	add(m1, nil)
	c1 := newTask(t, s, ownerSpace, "fail", "r2", "")
	add(s.FailWithError(ctx, ownerSpace, c1.Task.TaskID, &taskstore.RPCError{Code: -32603, Message: "it broke"}))
	a2 := newTask(t, s, "alice", "ask_user", "r2", "")
	add(taskstore.NewRuntime(s).RequestInput(ctx, "alice", a2.Task.TaskID,
		map[string]json.RawMessage{"q1": json.RawMessage(`{"method":"elicitation/create","params":{}}`)}, "waiting for the user"))
	l1 := newTask(t, s, "local", "", "", strings.Repeat("long message ", 20))
	add(l1, nil)
	b2 := newTask(t, s, "bob", "sleep", "r1", "")
	add(s.Cancel(ctx, "bob", b2.Task.TaskID))
	return recs
}

func ids(recs []*taskstore.TaskRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Task.TaskID
	}
	return out
}

// listedIDs returns the task ids of a list table, in order.
func listedIDs(table string) []string {
	var out []string
	for line := range strings.Lines(table) {
		if f := strings.Fields(line); len(f) > 0 && len(f[0]) == 49 {
			out = append(out, f[0])
		}
	}
	return out
}

func TestTasksList(t *testing.T) {
	u, s := sharedStore(t)
	recs := fixture(t, s)
	pick := func(keep func(*taskstore.TaskRecord) bool) []string {
		var out []*taskstore.TaskRecord
		for _, r := range recs {
			if keep(r) {
				out = append(out, r)
			}
		}
		return ids(out)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"all", nil, ids(recs)},
		{"status", []string{"--status", "completed"}, pick(func(r *taskstore.TaskRecord) bool { return r.Task.Status == taskstore.StatusCompleted })},
		{"owner", []string{"--owner", "bob"}, pick(func(r *taskstore.TaskRecord) bool { return r.OwnerID == "bob" })},
		{"owner with escapes", []string{"--owner", ownerANSI}, pick(func(r *taskstore.TaskRecord) bool { return r.OwnerID == ownerANSI })},
		{"tool", []string{"--tool", "sleep"}, pick(func(r *taskstore.TaskRecord) bool { return r.Tool() == "sleep" })},
		{"runner", []string{"--runner", "r2"}, pick(func(r *taskstore.TaskRecord) bool { return r.Lease != nil && r.Lease.Runner == "r2" })},
		{"status and runner", []string{"--status", "working", "--runner", "r1"}, pick(func(r *taskstore.TaskRecord) bool {
			return r.Task.Status == taskstore.StatusWorking && r.Lease != nil && r.Lease.Runner == "r1"
		})},
		{"none", []string{"--owner", "nobody"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errb := cli(t, append([]string{"tasks", "list", "--store", u, "--width", "0"}, tc.args...)...)
			if code != 0 || errb != "" {
				t.Fatalf("exit %d, stderr %q", code, errb)
			}
			if diff := cmp.Diff(tc.want, listedIDs(out)); diff != "" {
				t.Errorf("tasks listed (-want +got):\n%s\n%s", diff, out)
			}
			if len(tc.want) == 0 && out != "no tasks match\n" {
				t.Errorf("empty listing printed %q", out)
			}
		})
	}

	t.Run("escaped", func(t *testing.T) {
		_, out, _ := cli(t, "tasks", "list", "--store", u, "--width", "0")
		if strings.ContainsAny(out, "\x1b\u202e") || strings.Contains(out, "smith\nx") {
			t.Errorf("raw control characters reached the output:\n%q", out)
		}
		for _, want := range []string{`"m\x1b[31mallory\u202e"`, `"carol smith\nx"`, `\x1b[2Jcleared<script>`, "r1/1", "local", "input_required", "ask_user"} {
			if !strings.Contains(out, want) {
				t.Errorf("table lacks %s:\n%s", want, out)
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		code, out, _ := cli(t, "tasks", "list", "--store", u, "--json")
		if code != 0 || strings.ContainsAny(out, "\x1b\u202e") || strings.Count(out, "\n") != 1 {
			t.Fatalf("exit %d, output %q", code, out)
		}
		var got struct {
			Tasks      []taskJSON `json:"tasks"`
			NextCursor *string    `json:"nextCursor"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if got.NextCursor != nil {
			t.Errorf("a complete listing printed a cursor %q", *got.NextCursor)
		}
		var want []taskJSON
		for _, r := range recs {
			want = append(want, toJSON(r))
		}
		// Records compare in full: exact owners, variables, results, errors, input.
		if diff := cmp.Diff(want, got.Tasks, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("JSON records (-want +got):\n%s", diff)
		}
	})

	t.Run("pages", func(t *testing.T) {
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			args := []string{"tasks", "list", "--store", u, "--limit", "2", "--width", "0"}
			if cursor != "" {
				args = append(args, "--cursor", cursor)
			}
			code, out, errb := cli(t, args...)
			if code != 0 || pages > len(recs) {
				t.Fatalf("exit %d, stderr %q, page %d", code, errb, pages)
			}
			page := listedIDs(out)
			if len(page) > 2 {
				t.Fatalf("page of %d with --limit 2", len(page))
			}
			got = append(got, page...)
			_, c, ok := strings.Cut(out, "more tasks may match: --cursor ")
			if !ok {
				break
			}
			cursor = strings.TrimSpace(c)
		}
		if diff := cmp.Diff(ids(recs), got); diff != "" {
			t.Errorf("paged listing (-want +got):\n%s", diff)
		}
	})

	t.Run("cut to width", func(t *testing.T) {
		code, out, errb := cli(t, "tasks", "list", "--store", u, "--width", "150")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb)
		}
		for line := range strings.Lines(out) {
			if n := utf8.RuneCountInString(strings.TrimSuffix(line, "\n")); n > 150 {
				t.Errorf("line of %d columns: %q", n, line)
			}
		}
		if !strings.Contains(out, "long messag…") {
			t.Errorf("the long message is not cut with …:\n%s", out)
		}
		if !strings.Contains(errb, "cut to fit 150 columns") || !strings.Contains(errb, "--width 0 or --json") {
			t.Errorf("the cut is not reported: stderr %q", errb)
		}
		if diff := cmp.Diff(ids(recs), listedIDs(out)); diff != "" {
			t.Errorf("task ids must never be cut (-want +got):\n%s", diff)
		}
	})
}

func TestTasksGet(t *testing.T) {
	u, s := sharedStore(t)
	recs := fixture(t, s)
	input, failed, done := recs[4], recs[3], recs[1]
	for _, tc := range []struct {
		name  string
		rec   *taskstore.TaskRecord
		wants []string
	}{
		{"input", input, []string{"status     input_required", "message    waiting for the user", "tool       ask_user",
			"lease      runner r2, attempt 1", `input      waiting for 1: q1 (elicitation/create)`, `io.mcptasks.task/tool: "ask_user"`, "result     none yet"}},
		{"failed", failed, []string{`owner      "carol smith\nx"`, "error      -32603 it broke", "status     failed"}},
		{"completed", done, []string{`result     {"content":[{"type":"text","text":"done"}]}`, "input      none waiting", "expires    20"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Flags after the task id work too.
			code, out, errb := cli(t, "tasks", "get", "--store", u, tc.rec.Task.TaskID, "--owner", tc.rec.OwnerID)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errb)
			}
			for _, want := range append(tc.wants, "task       "+tc.rec.Task.TaskID) {
				if !strings.Contains(out, want) {
					t.Errorf("lacks %q:\n%s", want, out)
				}
			}
			code, out, _ = cli(t, "tasks", "get", "--store", u, "--owner", tc.rec.OwnerID, "--json", tc.rec.Task.TaskID)
			var got taskJSON
			if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
				t.Fatalf("exit %d, %v: %q", code, err, out)
			}
			if diff := cmp.Diff(toJSON(tc.rec), got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("--json (-want +got):\n%s", diff)
			}
		})
	}
	// Another owner's task is not found, as for that owner.
	code, _, errb := cli(t, "tasks", "get", "--store", u, "--owner", "bob", input.Task.TaskID)
	if code != 1 || !strings.Contains(errb, "task not found") {
		t.Errorf("another owner's task: exit %d, %q", code, errb)
	}
}

func TestTasksCancel(t *testing.T) {
	u, s := sharedStore(t)
	ctx := t.Context()
	status := func(r *taskstore.TaskRecord) taskstore.Status {
		t.Helper()
		got, err := s.Get(ctx, r.OwnerID, r.Task.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Task.Status
	}

	t.Run("by id", func(t *testing.T) {
		working := newTask(t, s, "dave", "sleep", "r1", "")
		ended := newTask(t, s, "dave", "sleep", "r1", "")
		if _, err := s.CompleteWithResult(ctx, "dave", ended.Task.TaskID, taskstore.StatusCompleted, "", json.RawMessage(`{}`)); err != nil {
			t.Fatal(err)
		}
		missing := "0000000000000000-00000000000000000000000000000000"
		code, out, errb := cli(t, "tasks", "cancel", "--store", u, "--owner", "dave", working.Task.TaskID, ended.Task.TaskID, missing)
		if code != 1 || !strings.Contains(errb, "1 of 3 tasks not found or not cancelled") {
			t.Errorf("exit %d, stderr %q", code, errb)
		}
		for _, want := range []string{"cancelled      " + working.Task.TaskID + "  dave  tool sleep, runner r1/1",
			"already ended  " + ended.Task.TaskID + "  dave  completed", "not found      " + missing + "  dave",
			"cancelled 1, already ended 1, not found 1, failed 0"} {
			if !strings.Contains(out, want) {
				t.Errorf("lacks %q:\n%s", want, out)
			}
		}
		if st := status(working); st != taskstore.StatusCancelled {
			t.Errorf("the cancelled task is %s", st)
		}
		// The owner matters: the same id under another owner is not found.
		if code, out, _ := cli(t, "tasks", "cancel", "--store", u, "--owner", "erin", ended.Task.TaskID); code != 1 || !strings.HasPrefix(out, "not found") {
			t.Errorf("another owner's task: exit %d, %q", code, out)
		}
	})

	t.Run("bulk", func(t *testing.T) {
		var sleeping, others []*taskstore.TaskRecord
		for i := range 5 {
			sleeping = append(sleeping, newTask(t, s, fmt.Sprintf("o%d", i), "bulk_sleep", "r9", ""))
			others = append(others, newTask(t, s, fmt.Sprintf("o%d", i), "bulk_other", "r9", ""))
		}
		rt := taskstore.NewRuntime(s)
		if _, err := rt.RequestInput(ctx, "o0", sleeping[0].Task.TaskID, map[string]json.RawMessage{"k": json.RawMessage(`{"method":"sampling/createMessage"}`)}, ""); err != nil {
			t.Fatal(err)
		}
		// Dry run: every selected task reported, none changed.
		code, out, errb := cli(t, "tasks", "cancel", "--store", u, "--tool", "bulk_sleep", "--older-than", "0s", "--dry-run")
		if code != 0 || strings.Count(out, "would cancel   ") != 5 || !strings.Contains(out, "would cancel 5, already ended 0") {
			t.Fatalf("dry run: exit %d, stderr %q:\n%s", code, errb, out)
		}
		for _, r := range append(slices.Clone(sleeping), others...) {
			if st := status(r); st.Terminal() {
				t.Fatalf("the dry run ended a task: %s", st)
			}
		}
		// Nothing is older than an hour.
		if code, out, _ := cli(t, "tasks", "cancel", "--store", u, "--tool", "bulk_sleep", "--older-than", "1h"); code != 0 || out != "cancelled 0, already ended 0, not found 0, failed 0\n" {
			t.Errorf("--older-than 1h: exit %d, %q", code, out)
		}
		// Only input_required: the one task waiting.
		code, out, _ = cli(t, "tasks", "cancel", "--store", u, "--tool", "bulk_sleep", "--status", "input_required")
		if code != 0 || !strings.Contains(out, "cancelled      "+sleeping[0].Task.TaskID+"  o0  was input_required") || !strings.Contains(out, "cancelled 1,") {
			t.Errorf("--status input_required: exit %d:\n%s", code, out)
		}
		code, out, _ = cli(t, "tasks", "cancel", "--store", u, "--tool", "bulk_sleep")
		if code != 0 || !strings.Contains(out, "cancelled 4, already ended 0") {
			t.Errorf("bulk cancel: exit %d:\n%s", code, out)
		}
		for _, r := range sleeping {
			if st := status(r); st != taskstore.StatusCancelled {
				t.Errorf("selected task is %s", st)
			}
		}
		for _, r := range others {
			if st := status(r); st != taskstore.StatusWorking {
				t.Errorf("a task the filter did not select is %s", st)
			}
		}
	})
}

// TestOperatorErrors: bad filters and limits are refused with the allowed
// values; a store that cannot list, or whose backend is not compiled in,
// says so.
func TestOperatorErrors(t *testing.T) {
	u, s := sharedStore(t)
	rec := newTask(t, s, "alice", "sleep", "r1", "")
	plain := u + "?plain=1"
	newTask(t, s, "alice", "sleep", "r1", "")
	_, out, _ := cli(t, "tasks", "list", "--store", u, "--limit", "1")
	_, otherCursor, _ := strings.Cut(out, "--cursor ")
	otherCursor = strings.TrimSpace(otherCursor)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"tasks"}, 2, "expected: list, get or cancel"},
		{[]string{"tasks", "drop"}, 2, "expected: list, get or cancel"},
		{[]string{"tasks", "list"}, 2, "--store is required"},
		{[]string{"tasks", "list", "--store", u, "--status", "stuck"}, 2, `--status "stuck": want one of working, input_required, completed, failed, cancelled`},
		{[]string{"tasks", "list", "--store", u, "--limit", "0"}, 2, "--limit 0: want 1 to 1000"},
		{[]string{"tasks", "list", "--store", u, "--limit", "1001"}, 2, "--limit 1001: want 1 to 1000"},
		{[]string{"tasks", "list", "--store", u, "--width", "-2"}, 2, "--width -2"},
		{[]string{"tasks", "list", "--store", u, "--tool", strings.Repeat("t", 1025)}, 2, "--tool: at most 1024 bytes"},
		{[]string{"tasks", "list", "--store", u, "--runner", strings.Repeat("r", 129)}, 2, "runner id must be 1..128 bytes"},
		{[]string{"tasks", "list", "--store", u, "--cursor", "garbage"}, 2, "--cursor: invalid argument: invalid cursor"},
		{[]string{"tasks", "list", "--store", u, "--status", "working", "--cursor", otherCursor}, 2, "belongs to another filter"},
		{[]string{"tasks", "list", "--store", u, "stray"}, 2, "1 unexpected argument"},
		{[]string{"tasks", "list", "--store", plain}, 1, "listing tasks across owners is not supported by this store: its backend (clitest://)"},
		{[]string{"tasks", "cancel", "--store", plain, "--status", "working"}, 1, "not supported by this store"},
		{[]string{"tasks", "list", "--store", "nosuch://x"}, 1, `unknown store scheme "nosuch"`},
		{[]string{"tasks", "get", "--store", u, rec.Task.TaskID}, 2, "--owner is required"},
		{[]string{"tasks", "get", "--store", u, "--owner", "alice"}, 2, "want one TASKID, got 0"},
		{[]string{"tasks", "get", "--store", u, "--owner", "alice", "a", "b"}, 2, "want one TASKID, got 2"},
		{[]string{"tasks", "get", "--store", u, "--owner", "alice", "nosuch"}, 1, "task not found"},
		{[]string{"tasks", "cancel", "--store", u}, 2, "give the TASKIDs to cancel"},
		{[]string{"tasks", "cancel", "--store", u, rec.Task.TaskID}, 2, "--owner is required with TASKIDs"},
		{[]string{"tasks", "cancel", "--store", u, "--owner", "alice", "--status", "working", rec.Task.TaskID}, 2, "TASKIDs or filters, not both"},
		{[]string{"tasks", "cancel", "--store", u, "--status", "completed"}, 2, "only active tasks can be cancelled: want working or input_required"},
		{[]string{"tasks", "cancel", "--store", u, "--older-than", "-1s"}, 2, "want a duration of 0 or more"},
		{[]string{"replicas"}, 2, "--store is required"},
		{[]string{"replicas", "--store", u, "--sample", "10ms"}, 2, "--sample 10ms: want 100ms to 1h"},
		{[]string{"replicas", "--store", u, "--lease-timeout", "0s"}, 2, "--lease-timeout 0s: want more than 0"},
	}
	// A scheme this build lacks says which tag brings it.
	for _, scheme := range []string{"redis", "dynamodb", "postgres"} {
		if !slices.Contains(mcptasks.Backends(), scheme) {
			cases = append(cases, struct {
				args []string
				code int
				want string
			}{[]string{"tasks", "list", "--store", scheme + "://x"}, 1, fmt.Sprintf("store scheme %q is not compiled in: build with -tags %s", scheme, scheme)})
		}
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errb := cli(t, tc.args...)
			if code != tc.code || !strings.Contains(errb, tc.want) {
				t.Errorf("exit %d (want %d), stdout %q, stderr %q; want %q", code, tc.code, out, errb, tc.want)
			}
			checkErrorLines(t, tc.args[0], errb)
			if tc.code == 2 && !strings.Contains(errb, "mcptasks help "+tc.args[0]) {
				t.Errorf("a usage error should say where help is: %q", errb)
			}
		})
	}
	// Help goes to stdout.
	for _, args := range [][]string{{"help", "tasks"}, {"tasks", "-h"}, {"tasks", "list", "-h"}, {"tasks", "get", "--help"}, {"tasks", "cancel", "-h"}, {"help", "replicas"}} {
		if code, out, errb := cli(t, args...); code != 0 || errb != "" || !strings.Contains(out, "usage: mcptasks ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errb)
		}
	}
}

// TestOperationsCLIExamples: every command line the CLI section of
// docs/operations.md shows is one the command accepts (run in process
// over an empty store: none is a usage error).
func TestOperationsCLIExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## CLI\n")
	if !ok {
		t.Fatal("docs/operations.md has no ## CLI section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	u, _ := sharedStore(t)
	n := 0
	for line := range strings.Lines(section) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "mcptasks ")
		if !ok {
			continue
		}
		n++
		args := strings.Fields(strings.ReplaceAll(rest, `"$STORE"`, u))
		t.Run(rest, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond) // ends replicas and --watch
			defer cancel()
			var out, errb strings.Builder
			if code := run(ctx, args, &out, &errb); code == exitUsage {
				t.Errorf("usage error: %s", errb.String())
			}
		})
	}
	if n < 10 {
		t.Errorf("the CLI section shows %d command lines", n)
	}
}
