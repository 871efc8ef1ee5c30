package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

func init() {
	register(command{
		Name:    "tasks",
		Summary: "tasks list|get|cancel --store URL: the tasks of every owner in a store: list and filter them, show one, cancel some",
		Run:     tasksMain,
	})
}

const tasksUsage = `usage: mcptasks tasks list   --store URL [--owner O] [--status S] [--tool T] [--runner R] [--limit N] [--cursor C] [--json]
       mcptasks tasks get    --store URL --owner O TASKID [--json]
       mcptasks tasks cancel --store URL --owner O TASKID... [--dry-run]
       mcptasks tasks cancel --store URL [--status S] [--older-than D] [--owner O] [--tool T] [--runner R] [--dry-run]

The operator's view of the store that serve's replicas share: the tasks of every
owner. Listing needs a store whose backend keeps an index of tasks by status
(taskstore.StatusIndex); get and cancel by id work on every store. A cancel goes
through the store's own Cancel, as the owner's tasks/cancel would: the replica
running the task sees it through its change feed or its polling and stops the
work. Owners, tools, runner ids and messages are shown escaped: a value with a
space or a character that is not printable is Go-quoted ("a\tb"; pass it back
with the shell's $'a\tb'). Run 'mcptasks tasks list -h' (get, cancel) for each
one's flags; docs/operations.md#cli has examples.`

const tasksListUsage = `usage: mcptasks tasks list --store URL [--owner O] [--status S] [--tool T] [--runner R] [--limit N] [--cursor C] [--json] [--width N]

Lists the live tasks of every owner, oldest first, with the filters given (each
matches exactly), a page of --limit tasks at a time: when more may match it
prints the --cursor of the next page. A filter other than --status is applied
to a bounded read of the store's index, so a selective one can take several
calls for one page. The table shows when each task was created and last updated
(as ages) and cuts long cells to the terminal's width, saying so; --json prints
one JSON object, {"tasks": [full records], "nextCursor": "…"}.`

const tasksGetUsage = `usage: mcptasks tasks get --store URL --owner O TASKID [--json]

Shows one task in full: status and message, tool, lease (the replica that runs
or last ran it, and the attempt), the input it waits for, its variables, and
its result or error. A task of another owner answers "not found", as for the
owner.`

const tasksCancelUsage = `usage: mcptasks tasks cancel --store URL --owner O TASKID... [--dry-run]
       mcptasks tasks cancel --store URL [--status S] [--older-than D] [--owner O] [--tool T] [--runner R] [--dry-run]

Cancels the tasks named (with their owner), or every active task the filters
select (at least one filter; --status working or input_required, default both;
--older-than 0s selects every active task), and reports each one: cancelled,
already ended (and how) or not found. With --dry-run it only reports what it
would do. A cancel is the store's normal one: the replica running the task
stops its work, and the owner sees the task cancelled.

exit status: 0 when every task named or selected was cancelled or had already
ended, 1 when some were not found or a cancel failed, 2 a usage error.`

func tasksMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("expected: list, get or cancel")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, tasksUsage)
		return nil
	case "list":
		return tasksList(ctx, args[1:], stdout, stderr)
	case "get":
		return tasksGet(ctx, args[1:], stdout)
	case "cancel":
		return tasksCancel(ctx, args[1:], stdout)
	}
	return usagef("expected: list, get or cancel")
}

// operatorConfig is the Store configuration of the operator's commands:
// they address tasks other processes made, so they refuse no owner those
// could have stored (the anonymous owner "local", any length).
var operatorConfig = taskstore.Config{AllowAnonymous: true, MaxOwnerLen: -1}

// openOperator opens the store at storeURL for an operator's command.
func openOperator(ctx context.Context, storeURL string) (*taskstore.Runtime, error) {
	if storeURL == "" {
		return nil, usagef("--store is required: the URL of the store the replicas use")
	}
	store, err := mcptasks.Open(ctx, storeURL, operatorConfig)
	if err != nil {
		return nil, err
	}
	return taskstore.NewRuntime(store), nil
}

// operatorErr explains an error of the operator's listing: a backend
// without the index, or a filter or cursor the store refused.
func operatorErr(err error, storeURL string) error {
	switch {
	case errors.Is(err, taskstore.ErrUnsupported):
		scheme := "?"
		if u, perr := url.Parse(storeURL); perr == nil {
			scheme = u.Scheme
		}
		return fmt.Errorf("listing tasks across owners is not supported by this store: its backend (%s://) keeps no index of tasks by status (taskstore.StatusIndex); 'tasks get' and 'tasks cancel --owner O TASKID' work without it", scheme)
	case errors.Is(err, taskstore.ErrInvalidCursor):
		return usageError{fmt.Errorf("--cursor: %w (a cursor continues only the listing that printed it, with the same filters)", err)}
	case errors.Is(err, taskstore.ErrInvalidArgument):
		return usageError{err}
	}
	return err
}

const statusValues = "working, input_required, completed, failed, cancelled"

// filterFlags are the filters list and cancel share.
type filterFlags struct {
	owner, status, tool, runner string
}

func (f *filterFlags) add(fs *flag.FlagSet, statusHelp string) {
	fs.StringVar(&f.owner, "owner", "", "only the tasks of this owner (exact bytes; the anonymous owner is local)")
	fs.StringVar(&f.status, "status", "", statusHelp)
	fs.StringVar(&f.tool, "tool", "", "only the tasks that run this tool")
	fs.StringVar(&f.runner, "runner", "", "only the tasks whose lease this replica holds or last held (a runner id, as 'mcptasks replicas' shows)")
}

func (f *filterFlags) filter() (taskstore.ListFilter, error) {
	s := taskstore.Status(f.status)
	if s != "" && !s.Valid() {
		return taskstore.ListFilter{}, usagef("--status %q: want one of %s", f.status, statusValues)
	}
	if len(f.tool) > taskstore.MaxToolFilterLen {
		return taskstore.ListFilter{}, usagef("--tool: at most %d bytes", taskstore.MaxToolFilterLen)
	}
	return taskstore.ListFilter{Status: s, Owner: f.owner, Tool: f.tool, Runner: f.runner}, nil
}

// maxListCalls bounds the store calls one page of 'tasks list' makes when
// a selective filter finds few tasks in each bounded read of the index.
const maxListCalls = 20

// listPage fills one page of up to limit tasks, following the store's
// cursors for at most maxListCalls calls; next is "" at the end.
func listPage(ctx context.Context, rt *taskstore.Runtime, f taskstore.ListFilter, cursor string, limit int) (tasks []*taskstore.TaskRecord, next string, err error) {
	for range maxListCalls {
		page, err := rt.ListAllOwners(ctx, f, cursor, limit-len(tasks))
		if err != nil {
			return nil, "", err
		}
		tasks, cursor = append(tasks, page.Tasks...), page.NextCursor
		if cursor == "" || len(tasks) >= limit {
			break
		}
	}
	return tasks, cursor, nil
}

func tasksList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tasks list", flag.ContinueOnError)
	storeURL := fs.String("store", "", "the store `URL` (as serve's --store)")
	var ff filterFlags
	ff.add(fs, "only the tasks in this status: "+statusValues)
	limit := fs.Int("limit", taskstore.DefaultPageSize, fmt.Sprintf("tasks per page, 1 to %d", taskstore.MaxStatusPage))
	cursor := fs.String("cursor", "", "start after the page that printed this cursor (with the same filters)")
	asJSON := fs.Bool("json", false, "print one JSON object with the full records and the next cursor")
	width := fs.Int("width", -1, "cut the table to this many columns (0: no limit; default: the terminal's width when printing to one, else no limit)")
	if err := parseFlags(fs, tasksListUsage, args, stdout); err != nil {
		return err
	}
	if *limit < 1 || *limit > taskstore.MaxStatusPage {
		return usagef("--limit %d: want 1 to %d", *limit, taskstore.MaxStatusPage)
	}
	if *width < -1 {
		return usagef("--width %d: want 0 (no limit) or more", *width)
	}
	f, err := ff.filter()
	if err != nil {
		return err
	}
	rt, err := openOperator(ctx, *storeURL)
	if err != nil {
		return err
	}
	defer rt.Store().Close()
	tasks, next, err := listPage(ctx, rt, f, *cursor, *limit)
	if err != nil {
		return operatorErr(err, *storeURL)
	}
	if *asJSON {
		out := struct {
			Tasks      []taskJSON `json:"tasks"`
			NextCursor string     `json:"nextCursor,omitempty"`
		}{Tasks: make([]taskJSON, 0, len(tasks)), NextCursor: next}
		for _, rec := range tasks {
			out.Tasks = append(out.Tasks, toJSON(rec))
		}
		return writeJSON(stdout, out)
	}
	if len(tasks) == 0 {
		if next == "" {
			fmt.Fprintln(stdout, "no tasks match")
		} else {
			fmt.Fprintf(stdout, "no tasks match in the part of the index read; more may: --cursor %s\n", next)
		}
		return nil
	}
	now := time.Now()
	t := table{
		header: []string{"TASK ID", "OWNER", "STATUS", "TOOL", "RUNNER/ATTEMPT", "CREATED", "UPDATED", "MESSAGE"},
		// The message gives way first, then runner, owner and tool; the
		// id, status and ages never do.
		shrink: []shrinkable{{7, 12}, {4, 14}, {1, 10}, {3, 8}},
	}
	for _, rec := range tasks {
		t.rows = append(t.rows, []string{rec.Task.TaskID, quoteIfNeeded(rec.OwnerID), string(rec.Task.Status),
			orDash(rec.Tool()), leaseText(rec.Lease), age(now, rec.Task.CreatedAt) + " ago",
			age(now, rec.Task.LastUpdatedAt) + " ago", escapeText(rec.Task.StatusMessage)})
	}
	w := outputWidth(stdout, *width)
	cut, err := t.write(stdout, w)
	if err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(stdout, "more tasks may match: --cursor %s\n", next)
	}
	if cut > 0 {
		fmt.Fprintf(stderr, "mcptasks tasks: %d cells cut to fit %d columns (they end in …): --width 0 or --json shows them in full\n", cut, w)
	}
	return nil
}

// orDash is s, quoted if needed, or "-" when empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return quoteIfNeeded(s)
}

func leaseText(l *taskstore.Lease) string {
	if l == nil {
		return "-"
	}
	return fmt.Sprintf("%s/%d", quoteIfNeeded(l.Runner), l.Attempt)
}

// taskJSON is a task record as --json prints it: everything stored.
type taskJSON struct {
	TaskID         string                     `json:"taskId"`
	Owner          string                     `json:"owner"`
	Status         taskstore.Status           `json:"status"`
	StatusMessage  string                     `json:"statusMessage,omitempty"`
	Tool           string                     `json:"tool,omitempty"`
	RequestMethod  string                     `json:"requestMethod,omitempty"`
	CreatedAt      time.Time                  `json:"createdAt"`
	LastUpdatedAt  time.Time                  `json:"lastUpdatedAt"`
	ExpiresAt      *time.Time                 `json:"expiresAt"` // null: never
	Lease          *taskstore.Lease           `json:"lease,omitempty"`
	Variables      map[string]json.RawMessage `json:"variables,omitempty"`
	Result         json.RawMessage            `json:"result,omitempty"`
	Error          *taskstore.RPCError        `json:"error,omitempty"`
	InputRequests  json.RawMessage            `json:"inputRequests,omitempty"`
	InputResponses json.RawMessage            `json:"inputResponses,omitempty"`
	Version        uint64                     `json:"version"`
}

func toJSON(r *taskstore.TaskRecord) taskJSON {
	return taskJSON{TaskID: r.Task.TaskID, Owner: r.OwnerID, Status: r.Task.Status, StatusMessage: r.Task.StatusMessage,
		Tool: r.Tool(), RequestMethod: r.RequestMethod, CreatedAt: r.Task.CreatedAt, LastUpdatedAt: r.Task.LastUpdatedAt,
		ExpiresAt: r.ExpiresAt, Lease: r.Lease, Variables: r.Variables, Result: r.Result, Error: r.Error,
		InputRequests: r.InputRequests, InputResponses: r.InputResponses, Version: r.Version}
}

func tasksGet(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("tasks get", flag.ContinueOnError)
	storeURL := fs.String("store", "", "the store `URL` (as serve's --store)")
	owner := fs.String("owner", "", "the task's owner (required; the anonymous owner is local)")
	asJSON := fs.Bool("json", false, "print the full record as one JSON object")
	pos, err := parseFlagsArgs(fs, tasksGetUsage, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one TASKID, got %d", len(pos))
	}
	if *owner == "" {
		return usagef("--owner is required: a task id names a task together with its owner ('tasks list' shows both)")
	}
	rt, err := openOperator(ctx, *storeURL)
	if err != nil {
		return err
	}
	defer rt.Store().Close()
	rec, err := rt.Store().Get(ctx, *owner, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, toJSON(rec))
	}
	return writeTask(stdout, rec, time.Now())
}

// writeTask prints one task in full, a field a line.
func writeTask(w io.Writer, rec *taskstore.TaskRecord, now time.Time) error {
	var b strings.Builder
	line := func(name, format string, a ...any) {
		fmt.Fprintf(&b, "%-10s "+format+"\n", append([]any{name}, a...)...)
	}
	stamp := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) + " (" + age(now, t) + " ago)" }
	line("task", "%s", rec.Task.TaskID)
	line("owner", "%s", quoteIfNeeded(rec.OwnerID))
	line("status", "%s", rec.Task.Status)
	line("message", "%s", escapeText(rec.Task.StatusMessage))
	line("tool", "%s", orDash(rec.Tool()))
	line("method", "%s", orDash(rec.RequestMethod))
	line("created", "%s", stamp(rec.Task.CreatedAt))
	line("updated", "%s", stamp(rec.Task.LastUpdatedAt))
	if rec.ExpiresAt == nil {
		line("expires", "never")
	} else {
		line("expires", "%s", rec.ExpiresAt.UTC().Format(time.RFC3339Nano))
	}
	if rec.Lease == nil {
		line("lease", "none (not run by a replica)")
	} else {
		line("lease", "runner %s, attempt %d", quoteIfNeeded(rec.Lease.Runner), rec.Lease.Attempt)
	}
	line("input", "%s", inputText(rec))
	names := make([]string, 0, len(rec.Variables))
	for k := range rec.Variables {
		names = append(names, k)
	}
	slices.Sort(names)
	line("variables", "%d", len(names))
	for _, k := range names {
		fmt.Fprintf(&b, "  %s: %s\n", quoteIfNeeded(k), compactJSON(rec.Variables[k]))
	}
	switch {
	case rec.Error != nil:
		line("error", "%d %s", rec.Error.Code, escapeText(rec.Error.Message))
		if len(rec.Error.Data) > 0 {
			line("  data", "%s", compactJSON(rec.Error.Data))
		}
	case rec.Result != nil:
		line("result", "%s", compactJSON(rec.Result))
	default:
		line("result", "none yet")
	}
	line("version", "%d", rec.Version)
	_, err := io.WriteString(w, b.String())
	return err
}

// inputText says which input requests the task waits for, and which
// answers it has not taken yet.
func inputText(rec *taskstore.TaskRecord) string {
	var reqs map[string]struct {
		Method string `json:"method"`
	}
	var resps map[string]json.RawMessage
	_ = json.Unmarshal(rec.InputRequests, &reqs)
	_ = json.Unmarshal(rec.InputResponses, &resps)
	if len(reqs) == 0 && len(resps) == 0 {
		return "none waiting"
	}
	var parts []string
	keys := make([]string, 0, len(reqs))
	for k := range reqs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s (%s)", quoteIfNeeded(k), orDash(reqs[k].Method)))
	}
	out := fmt.Sprintf("waiting for %d: %s", len(keys), strings.Join(parts, ", "))
	if len(keys) == 0 {
		out = "waiting for none"
	}
	if len(resps) > 0 {
		out += fmt.Sprintf("; %d answered, not yet taken", len(resps))
	}
	return out
}

// compactJSON is a stored JSON value on one line, escaped for a terminal.
func compactJSON(raw json.RawMessage) string {
	b, err := safeJSON(raw)
	if err != nil {
		return escapeText(string(raw))
	}
	return string(b)
}

// durationFlag is a duration flag that knows whether it was given.
type durationFlag struct {
	d   time.Duration
	set bool
}

func (f *durationFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return f.d.String()
}

func (f *durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return errors.New("want a duration of 0 or more, such as 90s or 2h")
	}
	f.d, f.set = d, true
	return nil
}

func tasksCancel(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("tasks cancel", flag.ContinueOnError)
	storeURL := fs.String("store", "", "the store `URL` (as serve's --store)")
	var ff filterFlags
	ff.add(fs, "with no TASKID: cancel only the tasks in this status, working or input_required (default both)")
	var olderThan durationFlag
	fs.Var(&olderThan, "older-than", "with no TASKID: cancel only the tasks created longer than this `duration` ago (0s: every one)")
	dry := fs.Bool("dry-run", false, "report what would be cancelled, and cancel nothing")
	ids, err := parseFlagsArgs(fs, tasksCancelUsage, args, stdout)
	if err != nil {
		return err
	}
	if len(ids) > 0 {
		if ff.owner == "" {
			return usagef("--owner is required with TASKIDs: a task id names a task together with its owner ('tasks list' shows both)")
		}
		if ff.status != "" || ff.tool != "" || ff.runner != "" || olderThan.set {
			return usagef("--status, --older-than, --tool and --runner select the tasks to cancel when no TASKID is given: give TASKIDs or filters, not both")
		}
	} else {
		if ff == (filterFlags{}) && !olderThan.set {
			return usagef("give the TASKIDs to cancel (with --owner), or filters that select them: --status, --older-than, --owner, --tool, --runner (--older-than 0s selects every active task)")
		}
		if s := taskstore.Status(ff.status); s != "" && s != taskstore.StatusWorking && s != taskstore.StatusInputRequired {
			return usagef("--status %q: only active tasks can be cancelled: want working or input_required", ff.status)
		}
	}
	f, err := ff.filter()
	if err != nil {
		return err
	}
	rt, err := openOperator(ctx, *storeURL)
	if err != nil {
		return err
	}
	defer rt.Store().Close()
	c := canceller{store: rt.Store(), w: stdout, dry: *dry, now: time.Now()}
	if len(ids) > 0 {
		for _, id := range ids {
			if err := c.cancel(ctx, ff.owner, id, nil); err != nil {
				return err
			}
		}
	} else {
		if olderThan.set {
			f.CreatedBefore = c.now.Add(-olderThan.d)
		}
		statuses := []taskstore.Status{taskstore.StatusWorking, taskstore.StatusInputRequired}
		if f.Status != "" {
			statuses = []taskstore.Status{f.Status}
		}
		for _, s := range statuses {
			f.Status = s
			if err := c.cancelAll(ctx, rt, f); err != nil {
				return operatorErr(err, *storeURL)
			}
		}
	}
	return c.summary()
}

// canceller cancels tasks one at a time and reports each on a line.
type canceller struct {
	store *taskstore.Store
	w     io.Writer
	dry   bool
	now   time.Time

	cancelled, ended, notFound, failed int
}

// cancelPage is how many tasks a bulk cancel reads from the index at once.
const cancelPage = 100

// cancelAll cancels every task f selects, a page at a time: each cancel
// moves its task out of f's status, and the listing goes on from the
// position it reached, so it ends.
func (c *canceller) cancelAll(ctx context.Context, rt *taskstore.Runtime, f taskstore.ListFilter) error {
	cursor := ""
	for {
		page, err := rt.ListAllOwners(ctx, f, cursor, cancelPage)
		if err != nil {
			return err
		}
		for _, rec := range page.Tasks {
			if err := c.cancel(ctx, rec.OwnerID, rec.Task.TaskID, rec); err != nil {
				return err
			}
		}
		if cursor = page.NextCursor; cursor == "" {
			return nil
		}
	}
}

// cancel cancels one task (listed is the record a listing read, or nil)
// and reports it; it returns only the error that ends the run: the
// context's.
func (c *canceller) cancel(ctx context.Context, owner, id string, listed *taskstore.TaskRecord) error {
	outcome, rec, err := c.try(ctx, owner, id, listed)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	detail := ""
	switch {
	case errors.Is(err, taskstore.ErrNotFound):
		c.notFound++
		outcome = "not found"
	case err != nil:
		c.failed++
		outcome, detail = "failed", escapeText(err.Error())
	case outcome == "already ended":
		c.ended++
		detail = string(rec.Task.Status) + " " + age(c.now, rec.Task.LastUpdatedAt) + " ago"
	default:
		c.cancelled++
		detail = c.detail(rec, listed != nil || c.dry)
	}
	line := fmt.Sprintf("%-13s  %s  %s  %s", outcome, quoteIfNeeded(id), quoteIfNeeded(owner), detail)
	_, werr := fmt.Fprintln(c.w, strings.TrimRight(line, " "))
	return werr
}

// try cancels one task, or with dry only reads it. It returns the outcome
// ("cancelled" or "would cancel" with the task as it was listed or read,
// "already ended" with its record) or the error: ErrNotFound, or why it
// failed.
func (c *canceller) try(ctx context.Context, owner, id string, listed *taskstore.TaskRecord) (string, *taskstore.TaskRecord, error) {
	if c.dry {
		rec := listed
		if rec == nil {
			var err error
			if rec, err = c.store.Get(ctx, owner, id); err != nil {
				return "", nil, err
			}
		}
		if rec.Task.Status.Terminal() {
			return "already ended", rec, nil
		}
		return "would cancel", rec, nil
	}
	rec, err := c.store.Cancel(ctx, owner, id)
	if err == nil {
		if listed != nil {
			rec = listed
		}
		return "cancelled", rec, nil
	}
	if !errors.Is(err, taskstore.ErrInvalidTransition) {
		return "", nil, err
	}
	if rec, err = c.store.Get(ctx, owner, id); err != nil {
		return "", nil, err
	}
	return "already ended", rec, nil
}

// detail describes a task cancelled (or to be): its status before when
// known, tool, lease and age.
func (c *canceller) detail(rec *taskstore.TaskRecord, status bool) string {
	var parts []string
	if status {
		parts = append(parts, "was "+string(rec.Task.Status))
	}
	if t := rec.Tool(); t != "" {
		parts = append(parts, "tool "+quoteIfNeeded(t))
	}
	if rec.Lease != nil {
		parts = append(parts, "runner "+leaseText(rec.Lease))
	}
	parts = append(parts, "created "+age(c.now, rec.Task.CreatedAt)+" ago")
	return strings.Join(parts, ", ")
}

// summary prints the counts and fails when a task was not found or a
// cancel failed.
func (c *canceller) summary() error {
	verb := "cancelled"
	if c.dry {
		verb = "would cancel"
	}
	fmt.Fprintf(c.w, "%s %d, already ended %d, not found %d, failed %d\n", verb, c.cancelled, c.ended, c.notFound, c.failed)
	if n := c.notFound + c.failed; n > 0 {
		return fmt.Errorf("%d of %d tasks not found or not cancelled", n, n+c.cancelled+c.ended)
	}
	return nil
}
