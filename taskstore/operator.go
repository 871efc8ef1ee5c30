package taskstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mcptasks/mcptasks/internal/taskid"
)

// The operator's view of a store: the tasks of every owner, by status, in
// creation order, and how many tasks each status has. It belongs to the
// Runtime (the plumbing of replicas), never to the Store that applications
// and tool handlers use, and it needs a backend that implements
// StatusIndex. Owner isolation of every other call is unchanged.

// ToolVariable is the task variable in which taskrouter records the name
// of the tool a task runs, as a JSON string (tasks/get shows it in _meta,
// as every variable).
const ToolVariable = "io.mcptasks.task/tool"

// Tool is the name of the tool the task runs (its ToolVariable), or "".
func (r *TaskRecord) Tool() string {
	raw, ok := r.Variables[ToolVariable]
	if !ok {
		return ""
	}
	var tool string
	if json.Unmarshal(raw, &tool) != nil {
		return ""
	}
	return tool
}

// ListFilter selects the tasks ListAllOwners returns; each zero field
// selects everything.
type ListFilter struct {
	// Status is the one status listed, or "" for every status.
	Status Status
	// Owner, Tool and Runner match exactly: the task's owner (any bytes,
	// compared, never parsed), the tool it runs (ToolVariable) and the
	// replica whose lease it holds or, for a finished task, last held.
	Owner, Tool, Runner string
	// CreatedAfter and CreatedBefore bound the task's createdAt, both
	// strictly. Task ids carry their creation time, so these also bound
	// the part of the index a listing reads (see ListAllOwners).
	CreatedAfter, CreatedBefore time.Time
}

// Listing bounds.
const (
	// ListScanPerTask and MaxListScan bound the index entries one
	// ListAllOwners call reads: ListScanPerTask per task asked for, at
	// most MaxListScan.
	ListScanPerTask = 10
	MaxListScan     = 5000
	// MaxToolFilterLen is the longest Tool a ListFilter may name, in bytes.
	MaxToolFilterLen = 1024
	// maxIDLead is how far past CreatedBefore a listing reads: a task id's
	// time is its createdAt, in nanoseconds, or later when ids made within
	// one process had to stay increasing (many in one nanosecond, or after
	// the clock stepped back).
	maxIDLead = time.Minute
)

// ListAllOwners returns a page of the live tasks of every owner that match
// f, in creation order (oldest first; ties, one task id under two owners,
// by owner). cursor is "" for the first page, else the NextCursor of an
// earlier page with the same filter (another filter's cursor gives
// ErrInvalidCursor); limit is 1 to MaxStatusPage, 0 takes
// Config.DefaultPageSize (others give ErrInvalidPageSize).
//
// The listing reads the backend's index on (status, task id, owner): for
// every status at once it merges the five statuses' streams. Owner, Tool,
// Runner and the creation bounds are applied to what it reads, and one
// call reads at most limit×ListScanPerTask index entries (MaxListScan at
// most), so a selective filter may return a short or even empty page with
// a NextCursor: keep paging until NextCursor is "". CreatedAfter starts the
// read at that time; CreatedBefore ends it a minute past that time (a task
// whose id ran more than a minute ahead of its createdAt, possible only
// after the clock stepped back that far, is then missed).
//
// Paging is consistent under writes: a page starts strictly after the
// cursor's position in creation order, so no task is listed twice, and a
// task that exists unchanged while paging is listed once; a task created
// or changed meanwhile may or may not be. Without a StatusIndex in the
// backend it fails with ErrUnsupported.
func (rt *Runtime) ListAllOwners(ctx context.Context, f ListFilter, cursor string, limit int) (*Page, error) {
	si, ok := rt.s.b.(StatusIndex)
	if !ok {
		return nil, errNoStatusIndex
	}
	if limit == 0 {
		limit = rt.s.cfg.DefaultPageSize
	}
	if limit < 1 || limit > MaxStatusPage {
		return nil, fmt.Errorf("%w: %d, must be 1..%d", ErrInvalidPageSize, limit, MaxStatusPage)
	}
	if err := rt.s.checkFilter(f); err != nil {
		return nil, err
	}
	tag := f.tag()
	var start Key
	if cursor != "" {
		var err error
		if start, err = decodeListCursor(tag, cursor); err != nil {
			return nil, err
		}
	}
	if seek, ok := f.seek(); ok && cmpKey(start, seek) < 0 {
		start = seek
	}
	l := listing{rt: rt, si: si, f: f, limit: limit, budget: min(limit*ListScanPerTask, MaxListScan), stop: f.stop()}
	for _, s := range allStatuses {
		if f.Status == "" || f.Status == s {
			l.streams = append(l.streams, &statusStream{status: s, after: start, more: true})
		}
	}
	page, last, done, err := l.run(ctx)
	if err != nil {
		return nil, err
	}
	if !done {
		if last == (Key{}) {
			last = start // nothing read (empty pages of a stale index): try again from here
		}
		page.NextCursor = encodeListCursor(tag, last)
	}
	return page, nil
}

var allStatuses = [...]Status{StatusWorking, StatusInputRequired, StatusCompleted, StatusFailed, StatusCancelled}

var errNoStatusIndex = fmt.Errorf("%w: the backend does not implement StatusIndex (listing and counting tasks across owners)", ErrUnsupported)

// CountByStatus returns how many live tasks each of the five statuses
// has, across owners, without a scan (see StatusIndex.CountByStatus: on
// backends whose server expires records on its own, the counts include
// expired tasks until their repair). Without a StatusIndex in the backend
// it fails with ErrUnsupported.
func (rt *Runtime) CountByStatus(ctx context.Context) (map[Status]int64, error) {
	si, ok := rt.s.b.(StatusIndex)
	if !ok {
		return nil, errNoStatusIndex
	}
	start := rt.s.start()
	c, err := si.CountByStatus(ctx)
	rt.s.observe("count_by_status", start, err)
	if err != nil {
		return nil, err
	}
	out := make(map[Status]int64, len(allStatuses))
	for _, s := range allStatuses {
		out[s] = max(c[s], 0)
	}
	return out, nil
}

func (s *Store) checkFilter(f ListFilter) error {
	if f.Status != "" && !f.Status.Valid() {
		return fmt.Errorf("%w %q", ErrInvalidStatus, f.Status)
	}
	if exceeds(len(f.Owner), s.cfg.MaxOwnerLen) {
		return fmt.Errorf("%w: owner filter longer than %d bytes", ErrInvalidOwner, s.cfg.MaxOwnerLen)
	}
	if len(f.Tool) > MaxToolFilterLen {
		return fmt.Errorf("%w: tool filter longer than %d bytes", ErrInvalidArgument, MaxToolFilterLen)
	}
	if f.Runner != "" {
		if err := checkRunner(f.Runner); err != nil {
			return err
		}
	}
	if !f.CreatedAfter.IsZero() && !f.CreatedBefore.IsZero() && !f.CreatedAfter.Before(f.CreatedBefore) {
		return fmt.Errorf("%w: CreatedAfter must be before CreatedBefore", ErrInvalidArgument)
	}
	return nil
}

// matches reports whether a decoded task passes the filter (its status
// was chosen by the stream it came from).
func (f *ListFilter) matches(r *TaskRecord) bool {
	return (f.Owner == "" || r.OwnerID == f.Owner) &&
		(f.Runner == "" || r.Lease != nil && r.Lease.Runner == f.Runner) &&
		(f.Tool == "" || r.Tool() == f.Tool) &&
		(f.CreatedAfter.IsZero() || r.Task.CreatedAt.After(f.CreatedAfter)) &&
		(f.CreatedBefore.IsZero() || r.Task.CreatedAt.Before(f.CreatedBefore))
}

// idTime is the prefix of the task ids made at t (16 hex digits of its
// Unix nanoseconds), or false when ids cannot carry t.
func idTime(t time.Time) (string, bool) {
	if t.Before(time.Unix(0, 1)) || t.After(time.Unix(0, 1<<63-1)) {
		return "", false
	}
	return fmt.Sprintf("%016x", t.UnixNano()), true
}

// seek is the index position a CreatedAfter filter starts after: every id
// made at CreatedAfter or earlier sorts at or before it, and a task's id
// time is never before its createdAt.
func (f *ListFilter) seek() (Key, bool) {
	if f.CreatedAfter.IsZero() {
		return Key{}, false
	}
	p, ok := idTime(f.CreatedAfter)
	if !ok {
		return Key{}, false
	}
	return Key{TaskID: p + "-" + strings.Repeat("f", taskid.Len-17)}, true
}

// stop is the id prefix at which a CreatedBefore filter stops reading, or "".
func (f *ListFilter) stop() string {
	if f.CreatedBefore.IsZero() {
		return ""
	}
	p, _ := idTime(f.CreatedBefore.Add(maxIDLead))
	return p
}

// tag identifies the filter inside its cursors.
func (f *ListFilter) tag() []byte {
	var b []byte
	for _, s := range []string{string(f.Status), f.Owner, f.Tool, f.Runner} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, t := range []time.Time{f.CreatedAfter, f.CreatedBefore} {
		b = binary.AppendVarint(b, t.Unix())
		b = binary.AppendVarint(b, int64(t.Nanosecond()))
	}
	h := sha256.Sum256(b)
	return h[:listTagLen]
}

// A listing cursor is base64url (unpadded) of: a kind byte, the filter's
// tag, and for kind 'k' the key to continue after (task id, then the
// owner's bytes to the end); kind 's' continues from the start.
const listTagLen = 8

func encodeListCursor(tag []byte, k Key) string {
	b := make([]byte, 0, 1+listTagLen+len(k.TaskID)+len(k.Owner))
	if k == (Key{}) {
		b = append(append(b, 's'), tag...)
	} else {
		b = append(append(append(append(b, 'k'), tag...), k.TaskID...), k.Owner...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeListCursor(tag []byte, cursor string) (Key, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
	// The decoder skips \r and \n: only the one spelling handed out is a cursor.
	if err != nil || len(b) < 1+listTagLen || base64.RawURLEncoding.EncodeToString(b) != cursor {
		return Key{}, fmt.Errorf("%w: not a cursor of ListAllOwners", ErrInvalidCursor)
	}
	if string(b[1:1+listTagLen]) != string(tag) {
		return Key{}, fmt.Errorf("%w: the cursor belongs to another filter", ErrInvalidCursor)
	}
	rest := b[1+listTagLen:]
	switch {
	case b[0] == 's' && len(rest) == 0:
		return Key{}, nil
	case b[0] == 'k' && len(rest) >= taskid.Len && taskid.Valid(string(rest[:taskid.Len])):
		return Key{TaskID: string(rest[:taskid.Len]), Owner: string(rest[taskid.Len:])}, nil
	}
	return Key{}, fmt.Errorf("%w: not a cursor of ListAllOwners", ErrInvalidCursor)
}

// cmpKey orders keys as StatusIndex lists them: task id, then owner.
func cmpKey(a, b Key) int {
	if c := strings.Compare(a.TaskID, b.TaskID); c != 0 {
		return c
	}
	return strings.Compare(a.Owner, b.Owner)
}

// statusStream is one status's index, read in pages from after.
type statusStream struct {
	status Status
	buf    []Record
	after  Key  // the last key read into buf, or where reading starts
	more   bool // the index may hold records after `after`
}

// listing is one ListAllOwners call: it merges its streams in key order,
// reading at most budget index entries.
type listing struct {
	rt      *Runtime
	si      StatusIndex
	f       ListFilter
	limit   int
	budget  int
	stop    string // task ids at or past it end the listing; "" none
	streams []*statusStream
}

// maxEmptyRounds bounds the rounds of one listing in which every stream
// that may hold more answered an empty page (an index that can be stale).
const maxEmptyRounds = 3

// run returns the page, the last key it read (zero when none), and
// whether nothing is left to read.
func (l *listing) run(ctx context.Context) (*Page, Key, bool, error) {
	page := &Page{Tasks: []*TaskRecord{}}
	var last Key
	read, empty := 0, 0
	for len(page.Tasks) < l.limit && read < l.budget {
		next, err := l.next(ctx, l.budget-read, l.limit-len(page.Tasks))
		if err != nil {
			return nil, Key{}, false, err
		}
		if next == nil {
			if l.exhausted() {
				return page, last, true, nil
			}
			if empty++; empty == maxEmptyRounds {
				break
			}
			continue
		}
		if l.stop != "" && next.TaskID >= l.stop {
			return page, last, true, nil
		}
		read++
		k := keyOf(*next)
		if last != (Key{}) && cmpKey(k, last) <= 0 {
			// Behind the position already read: a task that changed
			// status between two streams' reads (read twice, or moved
			// into a stream behind the others).
			continue
		}
		last = k
		rec, err := decodeRecord(*next)
		if err != nil {
			return nil, Key{}, false, err
		}
		if l.f.matches(rec) {
			page.Tasks = append(page.Tasks, rec)
		}
	}
	return page, last, l.exhausted(), nil
}

// exhausted reports whether every stream is read to its end.
func (l *listing) exhausted() bool {
	for _, st := range l.streams {
		if len(st.buf) > 0 || st.more {
			return false
		}
	}
	return true
}

// next takes the record with the lowest key among the streams' heads,
// reading a page into every stream whose buffer ran dry, or returns nil
// when no stream has a record buffered after that.
func (l *listing) next(ctx context.Context, budget, need int) (*Record, error) {
	var best *statusStream
	for _, st := range l.streams {
		if len(st.buf) == 0 && st.more {
			if err := l.fill(ctx, st, budget, need); err != nil {
				return nil, err
			}
		}
		if len(st.buf) > 0 && (best == nil || cmpKey(keyOf(st.buf[0]), keyOf(best.buf[0])) < 0) {
			best = st
		}
	}
	if best == nil {
		return nil, nil
	}
	r := &best.buf[0]
	best.buf = best.buf[1:]
	return r, nil
}

func keyOf(r Record) Key { return Key{Owner: r.Owner, TaskID: r.TaskID} }

// fill reads st's next page: as many records as the page still needs when
// only the status selects, else as many as the budget allows.
func (l *listing) fill(ctx context.Context, st *statusStream, budget, need int) error {
	n := min(budget, MaxStatusPage)
	if l.f.Owner == "" && l.f.Tool == "" && l.f.Runner == "" && l.f.CreatedAfter.IsZero() && l.f.CreatedBefore.IsZero() {
		n = min(n, need)
	}
	start := l.rt.s.start()
	recs, more, err := l.si.ListByStatus(ctx, st.status, st.after, max(n, 1))
	l.rt.s.observe("list_by_status", start, err)
	if err != nil {
		return err
	}
	st.buf, st.more = recs, more
	if len(recs) > 0 {
		st.after = keyOf(recs[len(recs)-1])
	}
	return nil
}
