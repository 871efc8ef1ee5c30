package taskadmin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// refreshEvery is how often the overview, list and stuck pages reload
// themselves (the page's script; a checkbox pauses it).
const refreshEvery = 5

func (h *handler) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := time.Now()
	ov := Overview{Time: now.UTC(), ReadOnly: h.opts.ReadOnly, Replicas: []Replica{}}
	if counts, err := h.rt.CountByStatus(ctx); err != nil {
		ov.CountsError = err.Error()
	} else {
		ov.Counts = counts
	}
	feed, ages, ownAge := h.opts.Local.state(now, h.opts.LeaseTimeout)
	switch {
	case !h.hasFeed():
		ov.Feed = "none"
	case feed == feedUp:
		ov.Feed = "up"
	case feed == feedDown:
		ov.Feed = "down"
	default:
		ov.Feed = "unknown"
	}
	replicas, err := h.replicas(ctx, now, ages, ownAge, runningShown)
	if err != nil {
		ov.ReplicasError = err.Error()
	} else {
		ov.Replicas = replicas
	}
	if ctx.Err() != nil {
		return
	}
	h.respond(w, r, http.StatusOK, "overview", ov)
}

func (h *handler) hasFeed() bool {
	_, ok := h.rt.Backend().(taskstore.Notifier)
	return ok
}

// replicas reads the registered runners, their heartbeat ages and up to
// running of the tasks each holds (for the first maxReplicasRead; none
// when running is 0).
// ages are the Router's (nil when unknown), ownAge this replica's own.
func (h *handler) replicas(ctx context.Context, now time.Time, ages map[string]time.Duration, ownAge *time.Duration, running int) ([]Replica, error) {
	beats, err := h.rt.Runners(ctx)
	if err != nil {
		return nil, err
	}
	listed := make(map[string]bool, len(beats))
	out := make([]Replica, 0, len(beats))
	for _, b := range beats {
		listed[b.Runner] = true
		rp := Replica{Runner: b.Runner, Beat: b.Beat, This: b.Runner == h.opts.Runner && h.opts.Runner != "",
			Released: released(b.Runner), Running: []Task{}}
		age, known := h.beats.age(b.Runner, b.Beat, now)
		switch a, ok := ages[b.Runner]; {
		case ok:
			age, known = a, true
		case rp.This && ownAge != nil:
			age, known = *ownAge, true
		}
		if known {
			rp.HeartbeatAge = seconds(age)
			rp.Stopped = age >= h.opts.LeaseTimeout
		}
		out = append(out, rp)
	}
	h.beats.forget(func(r string) bool { return listed[r] })
	slices.SortFunc(out, func(a, b Replica) int {
		if a.This != b.This {
			if a.This {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Runner, b.Runner)
	})
	if running == 0 {
		return out, nil
	}
	for i := range out[:min(len(out), maxReplicasRead)] {
		recs, err := h.rt.RunnerTasks(ctx, out[i].Runner, running+1)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			out[i].RunningError = err.Error()
			continue
		}
		sortByCreation(recs)
		out[i].RunningMore = len(recs) > running
		out[i].Running = h.entries(recs[:min(len(recs), running)])
	}
	return out, nil
}

func sortByCreation(recs []*taskstore.TaskRecord) {
	slices.SortFunc(recs, func(a, b *taskstore.TaskRecord) int {
		if c := strings.Compare(a.Task.TaskID, b.Task.TaskID); c != 0 {
			return c
		}
		return strings.Compare(a.OwnerID, b.OwnerID)
	})
}

func (h *handler) tasks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, lf, err := h.parseFilter(q, time.Now())
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	cursor := q.Get("cursor")
	if len(cursor) > maxCursor {
		h.fail(w, r, http.StatusBadRequest, fmt.Sprintf("bad cursor: longer than %d bytes", maxCursor))
		return
	}
	page, err := h.rt.ListAllOwners(r.Context(), lf, cursor, f.Limit)
	if err != nil {
		if errors.Is(err, taskstore.ErrInvalidCursor) {
			h.fail(w, r, http.StatusBadRequest, "bad cursor: "+err.Error()+" (start again from the first page)")
			return
		}
		h.failStore(w, r, err)
		return
	}
	tl := TaskList{Filter: f, Tasks: h.entries(page.Tasks), NextCursor: page.NextCursor, ReadOnly: h.opts.ReadOnly}
	if page.NextCursor != "" {
		next := f.query()
		next.Set("cursor", page.NextCursor)
		tl.NextURL = "tasks?" + next.Encode()
	}
	h.respond(w, r, http.StatusOK, "tasks", tl)
}

// maxAge bounds the older and newer parameters (a hundred years).
const maxAge = 100 * 365 * 24 * time.Hour

// parseFilter reads /tasks' parameters. older and newer become absolute
// bounds (after and before) at now, so that the next page's link, which
// carries the bounds, continues the same listing.
func (h *handler) parseFilter(q url.Values, now time.Time) (Filter, taskstore.ListFilter, error) {
	f := Filter{Status: q.Get("status"), Tool: q.Get("tool"), Owner: q.Get("owner"), Runner: q.Get("runner"),
		Limit: min(taskstore.DefaultPageSize, h.opts.MaxPageSize)}
	lf := taskstore.ListFilter{Status: taskstore.Status(f.Status), Tool: f.Tool, Owner: f.Owner, Runner: f.Runner}
	if f.Status != "" && !lf.Status.Valid() {
		return f, lf, errors.New("bad status: want working, input_required, completed, failed or cancelled")
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > h.opts.MaxPageSize {
			return f, lf, fmt.Errorf("bad limit: want 1 to %d", h.opts.MaxPageSize)
		}
		f.Limit = n
	}
	bound := func(abs, rel string) (*time.Time, error) {
		as, rs := q.Get(abs), q.Get(rel)
		switch {
		case as != "" && rs != "":
			return nil, fmt.Errorf("bad filter: give %s or %s, not both", abs, rel)
		case as != "":
			t, err := time.Parse(time.RFC3339Nano, as)
			if err != nil {
				return nil, fmt.Errorf("bad %s: want an RFC 3339 time", abs)
			}
			return &t, nil
		case rs != "":
			d, err := time.ParseDuration(rs)
			if err != nil || d < 0 || d > maxAge {
				return nil, fmt.Errorf("bad %s: want a duration such as 90s or 2h", rel)
			}
			t := now.Add(-d).UTC()
			return &t, nil
		}
		return nil, nil
	}
	before, err := bound("before", "older")
	if err != nil {
		return f, lf, err
	}
	after, err := bound("after", "newer")
	if err != nil {
		return f, lf, err
	}
	if before != nil {
		lf.CreatedBefore, f.CreatedBefore = *before, before
		f.Older = q.Get("older")
	}
	if after != nil {
		lf.CreatedAfter, f.CreatedAfter = *after, after
		f.Newer = q.Get("newer")
	}
	if before != nil && after != nil && !after.Before(*before) {
		return f, lf, errors.New("bad filter: newer than and older than leave no time between them")
	}
	return f, lf, nil
}

// query is f as the parameters of its next page: the age bounds absolute.
func (f Filter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"status": f.Status, "tool": f.Tool, "owner": f.Owner, "runner": f.Runner} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.CreatedBefore != nil {
		q.Set("before", f.CreatedBefore.Format(time.RFC3339Nano))
	}
	if f.CreatedAfter != nil {
		q.Set("after", f.CreatedAfter.Format(time.RFC3339Nano))
	}
	q.Set("limit", strconv.Itoa(f.Limit))
	return q
}

func (h *handler) taskPage(w http.ResponseWriter, r *http.Request) {
	owner, id, err := h.refs.decode(r.PathValue("ref"))
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	rec, err := h.rt.Store().Get(r.Context(), owner, id)
	if err != nil {
		if errors.Is(err, taskstore.ErrNotFound) {
			h.fail(w, r, http.StatusNotFound, "task not found (it may have expired)")
			return
		}
		h.failStore(w, r, err)
		return
	}
	h.respond(w, r, http.StatusOK, "task", h.detail(rec))
}

// stuckCalls bounds the listing calls /stuck makes per list.
const stuckCalls = 5

func (h *handler) stuck(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := time.Now()
	cutoff := now.Add(-h.opts.StuckAfter)
	st := Stuck{StuckAfter: h.opts.StuckAfter.Seconds(), ReadOnly: h.opts.ReadOnly, Orphaned: []Task{}}
	var more bool
	var err error
	st.Working, more, err = h.collect(ctx, taskstore.ListFilter{Status: taskstore.StatusWorking, CreatedBefore: cutoff}, nil)
	if err != nil {
		h.failStore(w, r, err)
		return
	}
	if more {
		st.More = append(st.More, "working")
	}
	st.InputWaiting, more, err = h.collect(ctx, taskstore.ListFilter{Status: taskstore.StatusInputRequired, CreatedBefore: cutoff},
		func(rec *taskstore.TaskRecord) bool { return rec.Task.LastUpdatedAt.Before(cutoff) })
	if err != nil {
		h.failStore(w, r, err)
		return
	}
	if more {
		st.More = append(st.More, "inputWaiting")
	}
	_, ages, ownAge := h.opts.Local.state(now, h.opts.LeaseTimeout)
	replicas, err := h.replicas(ctx, now, ages, ownAge, 0)
	if err != nil {
		h.failStore(w, r, err)
		return
	}
	for _, rp := range replicas {
		if !rp.Stopped || len(st.Orphaned) >= h.opts.MaxPageSize {
			continue
		}
		recs, err := h.rt.RunnerTasks(ctx, rp.Runner, h.opts.MaxPageSize-len(st.Orphaned))
		if err != nil {
			h.failStore(w, r, err)
			return
		}
		sortByCreation(recs)
		st.Orphaned = append(st.Orphaned, h.entries(recs)...)
	}
	if len(st.Orphaned) >= h.opts.MaxPageSize {
		st.More = append(st.More, "orphaned")
	}
	h.respond(w, r, http.StatusOK, "stuck", st)
}

// collect lists up to MaxPageSize tasks that match lf and keep (nil keeps
// all), in at most stuckCalls listing calls; more reports that some may
// be left.
func (h *handler) collect(ctx context.Context, lf taskstore.ListFilter, keep func(*taskstore.TaskRecord) bool) ([]Task, bool, error) {
	out := []Task{}
	cursor := ""
	for range stuckCalls {
		page, err := h.rt.ListAllOwners(ctx, lf, cursor, h.opts.MaxPageSize)
		if err != nil {
			return nil, false, err
		}
		for _, rec := range page.Tasks {
			if keep != nil && !keep(rec) {
				continue
			}
			if len(out) == h.opts.MaxPageSize {
				return out, true, nil
			}
			out = append(out, h.entry(rec))
		}
		if cursor = page.NextCursor; cursor == "" {
			return out, false, nil
		}
	}
	return out, true, nil
}

func (h *handler) cancel(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, http.StatusBadRequest, "bad form: "+err.Error())
		return
	}
	refs := r.PostForm["ref"]
	switch {
	case len(refs) == 0:
		h.fail(w, r, http.StatusBadRequest, "no task selected: the form names none (ref)")
		return
	case len(refs) > MaxCancel:
		h.fail(w, r, http.StatusBadRequest, fmt.Sprintf("too many tasks: one request cancels at most %d", MaxCancel))
		return
	}
	ctx := r.Context()
	res := CancelResults{Results: make([]CancelResult, 0, len(refs))}
	for _, ref := range refs {
		cr := CancelResult{Ref: ref}
		owner, id, err := h.refs.decode(ref)
		if err != nil {
			cr.Ref = "" // not ours: not worth echoing
			cr.Error = err.Error()
			res.Results = append(res.Results, cr)
			continue
		}
		cr.TaskID = id
		rec, err := h.rt.Store().Cancel(ctx, owner, id)
		switch {
		case err == nil:
			cr.Status = rec.Task.Status
		case errors.Is(err, taskstore.ErrInvalidTransition):
			// Already ended: say how.
			if cur, gerr := h.rt.Store().Get(ctx, owner, id); gerr == nil {
				cr.Status = cur.Task.Status
			}
			cr.Error = "the task had already ended"
		case errors.Is(err, taskstore.ErrNotFound):
			cr.Error = "task not found (it may have expired)"
		default:
			if ctx.Err() != nil {
				return
			}
			cr.Error = err.Error()
		}
		res.Results = append(res.Results, cr)
	}
	h.respond(w, r, http.StatusOK, "cancelled", res)
}
