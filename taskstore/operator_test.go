package taskstore_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

// The operator API (Runtime.ListAllOwners, Runtime.CountByStatus) over the
// memory backend, the only one always compiled.

func newOperator(t *testing.T, cfg taskstore.Config) (*taskstore.Store, *taskstore.Runtime) {
	t.Helper()
	b := mcptasks.NewMemoryBackend(0)
	t.Cleanup(func() { b.Close() })
	cfg.MaxActiveTasks, cfg.MaxStoredTasks = -1, -1
	s := taskstore.New(b, cfg)
	return s, taskstore.NewRuntime(s)
}

type made struct {
	owner, id string
}

func mk(t *testing.T, s *taskstore.Store, owner string, req taskstore.CreateRequest) made {
	t.Helper()
	if req.RequestMethod == "" {
		req.RequestMethod = "tools/call"
	}
	r, err := s.Create(t.Context(), owner, req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return made{owner, r.Task.TaskID}
}

func withTool(tool string) taskstore.CreateRequest {
	raw, _ := json.Marshal(tool)
	return taskstore.CreateRequest{Variables: map[string]json.RawMessage{taskstore.ToolVariable: raw}}
}

// listEvery pages through ListAllOwners with f and limit, checking that
// pages are at most limit long and strictly in creation order across
// pages; it returns the tasks and how many calls it took.
func listEvery(t *testing.T, rt *taskstore.Runtime, f taskstore.ListFilter, limit int) ([]made, int) {
	t.Helper()
	var out []made
	cursor := ""
	for calls := 1; ; calls++ {
		if calls > 10_000 {
			t.Fatal("paging does not end")
		}
		p, err := rt.ListAllOwners(t.Context(), f, cursor, limit)
		if err != nil {
			t.Fatalf("ListAllOwners(%+v, page %d): %v", f, calls, err)
		}
		if len(p.Tasks) > limit {
			t.Fatalf("%d tasks on a page of %d", len(p.Tasks), limit)
		}
		for _, r := range p.Tasks {
			m := made{r.OwnerID, r.Task.TaskID}
			if n := len(out); n > 0 && (out[n-1].id > m.id || out[n-1].id == m.id && out[n-1].owner >= m.owner) {
				t.Fatalf("%q/%q listed after %q/%q: not creation order", m.id, m.owner, out[n-1].id, out[n-1].owner)
			}
			out = append(out, m)
		}
		if p.NextCursor == "" {
			return out, calls
		}
		cursor = p.NextCursor
	}
}

func TestListAllOwners(t *testing.T) {
	s, rt := newOperator(t, taskstore.Config{})
	ctx := t.Context()
	owners := []string{"alice", "a:b", "{a}", "a\x00b", "用户", "<script>", strings.Repeat("o", 512)}
	var all []made
	byStatus := map[taskstore.Status][]made{}
	for i := range 40 {
		m := mk(t, s, owners[i%len(owners)], taskstore.CreateRequest{})
		all = append(all, m)
		st := []taskstore.Status{taskstore.StatusWorking, taskstore.StatusInputRequired, taskstore.StatusCompleted,
			taskstore.StatusFailed, taskstore.StatusCancelled}[i%5]
		if st != taskstore.StatusWorking {
			if _, err := s.UpdateStatus(ctx, m.owner, m.id, st, ""); err != nil {
				t.Fatal(err)
			}
		}
		byStatus[st] = append(byStatus[st], m)
	}
	for _, limit := range []int{1, 3, 7, 1000} {
		got, _ := listEvery(t, rt, taskstore.ListFilter{}, limit)
		if diff := cmp.Diff(all, got, cmp.AllowUnexported(made{})); diff != "" {
			t.Fatalf("every status, pages of %d (-want +got):\n%s", limit, diff)
		}
		for st, want := range byStatus {
			got, _ := listEvery(t, rt, taskstore.ListFilter{Status: st}, limit)
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(made{})); diff != "" {
				t.Fatalf("%s, pages of %d (-want +got):\n%s", st, limit, diff)
			}
		}
	}
	// The records are whole: status from the document, owner as given.
	p, err := rt.ListAllOwners(ctx, taskstore.ListFilter{Status: taskstore.StatusFailed}, "", 1)
	if err != nil || len(p.Tasks) != 1 || p.Tasks[0].Task.Status != taskstore.StatusFailed || p.Tasks[0].OwnerID != byStatus[taskstore.StatusFailed][0].owner {
		t.Fatalf("first failed task: %+v, %v", p, err)
	}
	// limit 0 is the default page size.
	p, err = rt.ListAllOwners(ctx, taskstore.ListFilter{}, "", 0)
	if err != nil || len(p.Tasks) != 40 || p.NextCursor != "" {
		t.Fatalf("default page: %d tasks, cursor %q, %v", len(p.Tasks), p.NextCursor, err)
	}
	// Exactly a page left: no cursor.
	p, err = rt.ListAllOwners(ctx, taskstore.ListFilter{}, "", 40)
	if err != nil || len(p.Tasks) != 40 || p.NextCursor != "" {
		t.Fatalf("a page of exactly every task: %d tasks, cursor %q, %v", len(p.Tasks), p.NextCursor, err)
	}
}

func TestListAllOwnersFilters(t *testing.T) {
	s, rt := newOperator(t, taskstore.Config{})
	ctx := t.Context()
	var sleepA, node, odd, early, late []made
	for i := range 30 {
		owner := []string{"alice", "bob", "a\x00b"}[i%3]
		req := taskstore.CreateRequest{}
		switch i % 4 {
		case 0:
			req = withTool("sleep")
		case 1:
			req = withTool("sleepy")
		}
		if i%5 == 0 {
			req.Runner = "node-a"
		}
		m := mk(t, s, owner, req)
		if i%4 == 0 && owner == "alice" {
			sleepA = append(sleepA, m)
		}
		if i%5 == 0 {
			node = append(node, m)
			if i%10 == 0 { // a finished task keeps its last runner
				if _, err := s.Cancel(ctx, owner, m.id); err != nil {
					t.Fatal(err)
				}
			}
		}
		if owner == "a\x00b" {
			odd = append(odd, m)
		}
		if i < 15 {
			early = append(early, m)
		} else {
			late = append(late, m)
		}
		if i == 14 {
			time.Sleep(3 * time.Millisecond) // createdAt has milliseconds
		}
	}
	mid, err := s.Get(ctx, late[0].owner, late[0].id)
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.Get(ctx, early[14].owner, early[14].id)
	if err != nil {
		t.Fatal(err)
	}
	var sameMs []made // the late tasks created in the first late one's millisecond
	for _, m := range late {
		if r, err := s.Get(ctx, m.owner, m.id); err == nil && r.Task.CreatedAt.Equal(mid.Task.CreatedAt) {
			sameMs = append(sameMs, m)
		}
	}
	for _, tc := range []struct {
		name string
		f    taskstore.ListFilter
		want []made
	}{
		{"tool and owner", taskstore.ListFilter{Tool: "sleep", Owner: "alice"}, sleepA},
		{"runner", taskstore.ListFilter{Runner: "node-a"}, node},
		{"runner, working only", taskstore.ListFilter{Runner: "node-a", Status: taskstore.StatusWorking}, []made{node[1], node[3], node[5]}},
		{"odd owner", taskstore.ListFilter{Owner: "a\x00b"}, odd},
		{"an owner's prefix", taskstore.ListFilter{Owner: "a"}, nil},
		{"created before", taskstore.ListFilter{CreatedBefore: mid.Task.CreatedAt}, early},
		{"created after", taskstore.ListFilter{CreatedAfter: last.Task.CreatedAt}, late},
		{"created in a range", taskstore.ListFilter{CreatedAfter: last.Task.CreatedAt, CreatedBefore: mid.Task.CreatedAt.Add(time.Millisecond)}, sameMs},
		{"nothing before 1970", taskstore.ListFilter{CreatedBefore: time.Unix(-5, 0)}, nil},
		{"everything after 1970", taskstore.ListFilter{CreatedAfter: time.Unix(-5, 0), Owner: "a\x00b"}, odd},
		{"nothing after 2300", taskstore.ListFilter{CreatedAfter: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},
	} {
		for _, limit := range []int{1, 4, 100} {
			got, _ := listEvery(t, rt, tc.f, limit)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(made{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s, pages of %d (-want +got):\n%s", tc.name, limit, diff)
			}
		}
	}
}

// statusCounter wraps a backend, counting the records ListByStatus returns.
type statusCounter struct {
	taskstore.Backend
	si   taskstore.StatusIndex
	mu   sync.Mutex
	recs int
	// alias, when set, makes ListByStatus of alias[0] answer with the
	// records of alias[1]: an index that lists records twice.
	alias [2]taskstore.Status
}

func (c *statusCounter) ListByStatus(ctx context.Context, s taskstore.Status, after taskstore.Key, limit int) ([]taskstore.Record, bool, error) {
	if c.alias[0] != "" && s == c.alias[0] {
		s = c.alias[1]
	}
	recs, more, err := c.si.ListByStatus(ctx, s, after, limit)
	c.mu.Lock()
	c.recs += len(recs)
	c.mu.Unlock()
	return recs, more, err
}

func (c *statusCounter) CountByStatus(ctx context.Context) (map[taskstore.Status]int64, error) {
	return c.si.CountByStatus(ctx)
}

func newCounted(t *testing.T) (*taskstore.Store, *taskstore.Runtime, *statusCounter) {
	b := mcptasks.NewMemoryBackend(0)
	t.Cleanup(func() { b.Close() })
	c := &statusCounter{Backend: b, si: b.(taskstore.StatusIndex)}
	s := taskstore.New(c, taskstore.Config{MaxActiveTasks: -1, MaxStoredTasks: -1})
	return s, taskstore.NewRuntime(s), c
}

// TestListAllOwnersBoundedScan: a selective filter reads at most
// ListScanPerTask index entries per task asked for, returning short or
// empty pages with a cursor, and still finds every match exactly once.
func TestListAllOwnersBoundedScan(t *testing.T) {
	s, rt, c := newCounted(t)
	var want []made
	for i := range 300 {
		owner := "crowd"
		if i == 5 || i == 250 {
			owner = "needle"
		}
		m := mk(t, s, owner, taskstore.CreateRequest{})
		if owner == "needle" {
			want = append(want, m)
		}
	}
	f := taskstore.ListFilter{Owner: "needle", Status: taskstore.StatusWorking}
	p, err := rt.ListAllOwners(t.Context(), f, "", 1)
	if err != nil || len(p.Tasks) != 1 || p.NextCursor == "" {
		t.Fatalf("first page: %d tasks, cursor %q, %v", len(p.Tasks), p.NextCursor, err)
	}
	p, err = rt.ListAllOwners(t.Context(), f, p.NextCursor, 1)
	if err != nil || len(p.Tasks) != 0 || p.NextCursor == "" {
		t.Fatalf("second page: %d tasks, cursor %q, %v; want an empty page with a cursor", len(p.Tasks), p.NextCursor, err)
	}
	// Page by page: no call reads more than 10 entries, and paging ends
	// after about 300/10 calls.
	var got []made
	cursor, calls := "", 0
	for {
		calls++
		c.recs = 0
		p, err := rt.ListAllOwners(t.Context(), f, cursor, 1)
		if err != nil {
			t.Fatal(err)
		}
		if c.recs > taskstore.ListScanPerTask {
			t.Fatalf("call %d read %d index entries, budget %d", calls, c.recs, taskstore.ListScanPerTask)
		}
		for _, r := range p.Tasks {
			got = append(got, made{r.OwnerID, r.Task.TaskID})
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(made{})); diff != "" {
		t.Fatalf("needles (-want +got):\n%s", diff)
	}
	if calls < 30 || calls > 33 {
		t.Errorf("%d calls for 300 entries read 10 at a time", calls)
	}
	// Every status at once: five streams, each reading at most the budget.
	c.recs = 0
	p, err = rt.ListAllOwners(t.Context(), taskstore.ListFilter{Owner: "nobody"}, "", 5)
	if err != nil || len(p.Tasks) != 0 || p.NextCursor == "" {
		t.Fatalf("every status: %d tasks, cursor %q, %v", len(p.Tasks), p.NextCursor, err)
	}
	if c.recs > 5*50 {
		t.Errorf("one call read %d records, budget 50 per stream", c.recs)
	}
	// The page fills before the budget: no more read than the page needs.
	c.recs = 0
	p, err = rt.ListAllOwners(t.Context(), taskstore.ListFilter{Status: taskstore.StatusWorking}, "", 7)
	if err != nil || len(p.Tasks) != 7 || c.recs != 7 {
		t.Fatalf("an unfiltered page of 7: %d tasks, %d records read, %v", len(p.Tasks), c.recs, err)
	}
}

// TestListAllOwnersTwiceIndexed: a record an index returns under two
// statuses (it moved between two streams' reads) is listed once.
func TestListAllOwnersTwiceIndexed(t *testing.T) {
	s, rt, c := newCounted(t)
	c.alias = [2]taskstore.Status{taskstore.StatusCancelled, taskstore.StatusWorking}
	var want []made
	for range 12 {
		want = append(want, mk(t, s, "alice", taskstore.CreateRequest{}))
	}
	for _, limit := range []int{1, 5, 100} {
		got, _ := listEvery(t, rt, taskstore.ListFilter{}, limit)
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(made{})); diff != "" {
			t.Fatalf("pages of %d (-want +got):\n%s", limit, diff)
		}
	}
}

// TestListAllOwnersWhileChanging: tasks that change status between pages
// of every status are listed at most once; tasks that do not change are
// listed exactly once.
func TestListAllOwnersWhileChanging(t *testing.T) {
	s, rt := newOperator(t, taskstore.Config{})
	ctx := t.Context()
	var all []made
	for i := range 30 {
		all = append(all, mk(t, s, fmt.Sprint("o", i%4), taskstore.CreateRequest{}))
	}
	seen := map[made]int{}
	cursor := ""
	for page := 0; ; page++ {
		p, err := rt.ListAllOwners(ctx, taskstore.ListFilter{}, cursor, 4)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Tasks {
			seen[made{r.OwnerID, r.Task.TaskID}]++
		}
		// Move a task behind the cursor and one ahead of it.
		for _, i := range []int{page * 4, page*4 + 9} {
			if i%3 == 0 && i < len(all) {
				if _, err := s.UpdateStatus(ctx, all[i].owner, all[i].id, taskstore.StatusInputRequired, ""); err != nil && !errors.Is(err, taskstore.ErrInvalidTransition) {
					t.Fatal(err)
				}
			}
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	for _, m := range all {
		if seen[m] != 1 {
			t.Errorf("%s/%s listed %d times", m.owner, m.id, seen[m])
		}
	}
}

func TestListAllOwnersBadInput(t *testing.T) {
	s, rt := newOperator(t, taskstore.Config{})
	ctx := t.Context()
	for range 5 {
		mk(t, s, "alice", withTool("sleep"))
	}
	p, err := rt.ListAllOwners(ctx, taskstore.ListFilter{}, "", 2)
	if err != nil || p.NextCursor == "" {
		t.Fatalf("first page: %v, %v", p, err)
	}
	good := p.NextCursor
	ownPage, err := s.List(ctx, "alice", "", 2)
	if err != nil || ownPage.NextCursor == "" {
		t.Fatalf("Store.List: %v, %v", ownPage, err)
	}
	pt, err := rt.ListAllOwners(ctx, taskstore.ListFilter{Tool: "sleep"}, "", 2)
	if err != nil || pt.NextCursor == "" {
		t.Fatalf("tool page: %v, %v", pt, err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	flip := func(i int) string {
		b := []byte(string(raw))
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	for _, tc := range []struct {
		name   string
		f      taskstore.ListFilter
		cursor string
		limit  int
		want   error
	}{
		{"limit -1", taskstore.ListFilter{}, "", -1, taskstore.ErrInvalidPageSize},
		{"limit MaxStatusPage+1", taskstore.ListFilter{}, "", taskstore.MaxStatusPage + 1, taskstore.ErrInvalidPageSize},
		{"huge limit", taskstore.ListFilter{}, "", math.MaxInt, taskstore.ErrInvalidPageSize},
		{"smallest limit", taskstore.ListFilter{}, "", math.MinInt, taskstore.ErrInvalidPageSize},
		{"not base64", taskstore.ListFilter{}, "!!!", 2, taskstore.ErrInvalidCursor},
		{"padded", taskstore.ListFilter{}, good + "=", 2, taskstore.ErrInvalidCursor},
		{"with a newline", taskstore.ListFilter{}, good[:4] + "\n" + good[4:], 2, taskstore.ErrInvalidCursor},
		{"truncated", taskstore.ListFilter{}, good[:len(good)-3], 2, taskstore.ErrInvalidCursor},
		{"too short", taskstore.ListFilter{}, good[:8], 2, taskstore.ErrInvalidCursor},
		{"another kind", taskstore.ListFilter{}, flip(0), 2, taskstore.ErrInvalidCursor},
		{"a changed tag", taskstore.ListFilter{}, flip(3), 2, taskstore.ErrInvalidCursor},
		{"a changed id", taskstore.ListFilter{}, flip(1 + 8 + 16), 2, taskstore.ErrInvalidCursor}, // the id's dash
		{"another filter's cursor", taskstore.ListFilter{Status: taskstore.StatusWorking}, good, 2, taskstore.ErrInvalidCursor},
		{"a cursor for another filter", taskstore.ListFilter{}, pt.NextCursor, 2, taskstore.ErrInvalidCursor},
		{"a Store.List cursor", taskstore.ListFilter{}, ownPage.NextCursor, 2, taskstore.ErrInvalidCursor},
		{"a huge cursor", taskstore.ListFilter{}, strings.Repeat("A", 1<<20), 2, taskstore.ErrInvalidCursor},
		{"unknown status", taskstore.ListFilter{Status: "done"}, "", 2, taskstore.ErrInvalidStatus},
		{"long owner", taskstore.ListFilter{Owner: strings.Repeat("o", 513)}, "", 2, taskstore.ErrInvalidOwner},
		{"long tool", taskstore.ListFilter{Tool: strings.Repeat("t", taskstore.MaxToolFilterLen+1)}, "", 2, taskstore.ErrInvalidArgument},
		{"long runner", taskstore.ListFilter{Runner: strings.Repeat("r", 129)}, "", 2, taskstore.ErrInvalidArgument},
		{"runner not UTF-8", taskstore.ListFilter{Runner: "\xff"}, "", 2, taskstore.ErrInvalidArgument},
		{"empty time range", taskstore.ListFilter{CreatedAfter: time.Unix(10, 0), CreatedBefore: time.Unix(10, 0)}, "", 2, taskstore.ErrInvalidArgument},
	} {
		p, err := rt.ListAllOwners(ctx, tc.f, tc.cursor, tc.limit)
		if !errors.Is(err, tc.want) || p != nil {
			t.Errorf("%s: %v, %v; want %v", tc.name, p, err, tc.want)
		}
	}
	// The good cursor still works, and its page follows the first.
	p2, err := rt.ListAllOwners(ctx, taskstore.ListFilter{}, good, 2)
	if err != nil || len(p2.Tasks) != 2 || p2.Tasks[0].Task.TaskID <= p.Tasks[1].Task.TaskID {
		t.Fatalf("the second page: %v, %v", p2, err)
	}
	// MaxStatusPage is a valid limit.
	if p, err := rt.ListAllOwners(ctx, taskstore.ListFilter{}, "", taskstore.MaxStatusPage); err != nil || len(p.Tasks) != 5 {
		t.Fatalf("limit MaxStatusPage: %v, %v", p, err)
	}
}

func TestCountByStatus(t *testing.T) {
	var ops []string
	var mu sync.Mutex
	s, rt := newOperator(t, taskstore.Config{ObserveBackend: func(op string, _ time.Duration, _ error) {
		mu.Lock()
		ops = append(ops, op)
		mu.Unlock()
	}})
	ctx := t.Context()
	c, err := rt.CountByStatus(ctx)
	want := map[taskstore.Status]int64{taskstore.StatusWorking: 0, taskstore.StatusInputRequired: 0,
		taskstore.StatusCompleted: 0, taskstore.StatusFailed: 0, taskstore.StatusCancelled: 0}
	if diff := cmp.Diff(want, c); err != nil || diff != "" {
		t.Fatalf("an empty store (-want +got), %v:\n%s", err, diff)
	}
	for i := range 7 {
		m := mk(t, s, fmt.Sprint("o", i), taskstore.CreateRequest{})
		if i < 3 {
			if _, err := s.Cancel(ctx, m.owner, m.id); err != nil {
				t.Fatal(err)
			}
		}
	}
	want[taskstore.StatusWorking], want[taskstore.StatusCancelled] = 4, 3
	c, err = rt.CountByStatus(ctx)
	if diff := cmp.Diff(want, c); err != nil || diff != "" {
		t.Fatalf("counts (-want +got), %v:\n%s", err, diff)
	}
	if _, err := rt.ListAllOwners(ctx, taskstore.ListFilter{Status: taskstore.StatusWorking}, "", 10); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, op := range ops {
		if strings.Contains(op, "status") {
			got = append(got, op)
		}
	}
	if diff := cmp.Diff([]string{"count_by_status", "count_by_status", "list_by_status"}, got); diff != "" {
		t.Fatalf("observed calls (-want +got):\n%s", diff)
	}
}

// plainBackend hides every optional interface of the backend it wraps.
type plainBackend struct{ taskstore.Backend }

func TestOperatorUnsupported(t *testing.T) {
	b := mcptasks.NewMemoryBackend(0)
	t.Cleanup(func() { b.Close() })
	rt := taskstore.NewRuntime(taskstore.New(plainBackend{b}, taskstore.Config{}))
	if _, err := rt.ListAllOwners(t.Context(), taskstore.ListFilter{}, "", 10); !errors.Is(err, taskstore.ErrUnsupported) {
		t.Errorf("ListAllOwners without a StatusIndex: %v", err)
	}
	if _, err := rt.CountByStatus(t.Context()); !errors.Is(err, taskstore.ErrUnsupported) {
		t.Errorf("CountByStatus without a StatusIndex: %v", err)
	}
}

func TestOperatorCanceledContext(t *testing.T) {
	s, rt := newOperator(t, taskstore.Config{})
	mk(t, s, "alice", taskstore.CreateRequest{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := rt.ListAllOwners(ctx, taskstore.ListFilter{}, "", 10); !errors.Is(err, context.Canceled) {
		t.Errorf("ListAllOwners: %v", err)
	}
	if _, err := rt.CountByStatus(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("CountByStatus: %v", err)
	}
}

func TestTaskRecordTool(t *testing.T) {
	s, _ := newOperator(t, taskstore.Config{})
	for _, tc := range []struct {
		req  taskstore.CreateRequest
		want string
	}{
		{withTool("sleep"), "sleep"},
		{withTool("<b>é</b>"), "<b>é</b>"},
		{taskstore.CreateRequest{}, ""},
		{taskstore.CreateRequest{Variables: map[string]json.RawMessage{taskstore.ToolVariable: json.RawMessage(`42`)}}, ""},
	} {
		m := mk(t, s, "alice", tc.req)
		r, err := s.Get(t.Context(), m.owner, m.id)
		if err != nil || r.Tool() != tc.want {
			t.Errorf("Tool() = %q (%v), want %q", r.Tool(), err, tc.want)
		}
	}
}
