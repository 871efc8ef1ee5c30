// Package taskstore is the domain of mcptasks: MCP tasks, their status
// machine, limits and owner rules, kept in any Backend. One record serves
// both protocol revisions that have tasks (2025-11-25 and the 2026-07-28
// tasks extension): it keeps what happened (result, JSON-RPC error, pending
// input requests and responses), and taskrouter's views decide what each
// revision shows.
//
// A Store holds every rule; a Backend is a plain versioned key-value store.
// Every mutation is read, check, modify, compare-and-swap. When the swap
// loses a race the Store re-reads and re-checks on the fresh record, so
// changes that commute (two variable merges, a result then a status) all
// land, and a change that no longer applies (a status change after another
// writer finished the task) fails with the error the fresh state calls for.
//
// Owner isolation: every call names an owner, and a task of another owner
// answers exactly like a missing task (ErrNotFound).
//
// Expiry: a task whose TTL (counted from creation) has passed is gone on
// every backend: every operation answers ErrNotFound, List skips it and it
// does not count toward the owner's quota.
//
// The domain speaks protocol in three places, on purpose: a record's Task
// is kept in the MCP 2025-11-25 wire form (as the Rust original stored it,
// so stored records stay readable), a task's outcome may be the JSON-RPC
// error its request ended with (RPCError: what happened, which each
// revision then shows its own way), and RPCCode maps this package's errors
// to JSON-RPC codes beside the errors it maps, so a new error gets its code
// where it is declared. Everything else about the wire is taskrouter's.
//
// Runtime is the side of a Store that a task runtime (taskrouter) uses:
// leases, the tasks of replicas that stopped, the input exchange, the
// change feed. Applications and tool handlers use the Store and a Handle.
package taskstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcptasks/mcptasks/internal/backoff"
	"github.com/mcptasks/mcptasks/internal/taskid"
)

// Store is the task store. It is safe for concurrent use, and several
// Stores (in several processes) may share one backend.
type Store struct {
	b       Backend
	cfg     Config
	limiter *createLimiter
}

// New returns a Store over b. Zero fields of cfg take their defaults; when
// b has a record size limit, the variable and result limits default to
// values that fit inside it.
func New(b Backend, cfg Config) *Store {
	cfg = cfg.withDefaults(b.MaxRecordSize())
	return &Store{b: b, cfg: cfg, limiter: newCreateLimiter(cfg.CreatesPerSecond, cfg.CreateBurst)}
}

// Config returns the Store's effective configuration.
func (s *Store) Config() Config { return s.cfg }

// Close closes the backend.
func (s *Store) Close() error { return s.b.Close() }

// CreateRequest describes a new task.
type CreateRequest struct {
	// RequestMethod is the method of the request the task runs, such as "tools/call".
	RequestMethod string
	// TTL is the requested lifetime; nil takes Config.DefaultTTL. Above
	// Config.MaxTTL is an error.
	TTL *time.Duration
	// PollInterval is the suggested polling interval; nil takes Config.PollInterval.
	PollInterval *time.Duration
	// Meta becomes the task's _meta.
	Meta map[string]json.RawMessage
	// Variables are the task's initial variables (JSON null values are dropped).
	Variables map[string]json.RawMessage
	// StatusMessage is the initial status message.
	StatusMessage string
	// Runner, when set, is the id of the replica that will run the task:
	// the task is created holding that runner's lease (attempt 1).
	Runner string
	// Rerun is what another runner needs to run the task again after its
	// runner stopped (a JSON value the router defines: the tool, its
	// arguments, the identity). It is kept outside the client-visible
	// variables, and bounded like them: a Rerun that does not fit
	// MaxVariablesSize or MaxDepth is refused now, not at takeover.
	Rerun json.RawMessage
	// Trace is the W3C trace context of the request that creates the task,
	// kept in the record (see TraceContext); build it with NewTraceContext,
	// which drops what is malformed. Nil: none.
	Trace *TraceContext
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// Create makes a new task in status working. It fails with
// ErrQuotaExceeded when the owner already has Config.MaxActiveTasks active
// tasks, and with ErrStorageFull when it keeps Config.MaxStoredTasks live
// tasks; the checks are atomic in the backend, so concurrent creates never
// overshoot.
func (s *Store) Create(ctx context.Context, owner string, req CreateRequest) (*TaskRecord, error) {
	owner, err := s.cfg.checkOwner(owner)
	if err != nil {
		return nil, err
	}
	if req.RequestMethod == "" || exceeds(len(req.RequestMethod), 256) {
		return nil, ErrInvalidRequestName
	}
	if err := s.checkMessage(req.StatusMessage); err != nil {
		return nil, err
	}
	ttl, err := s.ttl(req.TTL)
	if err != nil {
		return nil, err
	}
	poll := s.cfg.PollInterval
	if req.PollInterval != nil {
		if *req.PollInterval <= 0 {
			return nil, fmt.Errorf("%w: pollInterval must be positive", ErrInvalidArgument)
		}
		poll = *req.PollInterval
	}
	t := now()
	if !s.limiter.allow(owner, t) {
		return nil, ErrRateLimited
	}
	rec := &TaskRecord{
		Task: Task{
			TaskID:        taskid.New(t),
			Status:        StatusWorking,
			StatusMessage: req.StatusMessage,
			CreatedAt:     t,
			LastUpdatedAt: t,
			TTL:           ttl,
			PollInterval:  &poll,
		},
		OwnerID:       owner,
		Variables:     map[string]json.RawMessage{},
		RequestMethod: req.RequestMethod,
	}
	if req.Runner != "" {
		if err := checkRunner(req.Runner); err != nil {
			return nil, err
		}
		rec.Lease = &Lease{Runner: req.Runner, Attempt: 1}
	}
	if req.Rerun != nil {
		if exceeds(len(req.Rerun), s.cfg.MaxVariablesSize) {
			return nil, fmt.Errorf("%w: what a re-run needs (the arguments) is %d bytes, limit %d", ErrVariablesTooLarge, len(req.Rerun), s.cfg.MaxVariablesSize)
		}
		if err := checkValue(req.Rerun, s.cfg.MaxDepth, -1); err != nil {
			return nil, fmt.Errorf("re-run arguments: %w", err)
		}
		rec.Rerun = req.Rerun
	}
	if req.Trace != nil {
		if !req.Trace.valid() {
			return nil, ErrInvalidTraceContext
		}
		tc := *req.Trace
		rec.Trace = &tc
	}
	if len(req.Meta) > 0 {
		if err := s.checkMap(req.Meta, s.cfg.MaxVariablesSize, ErrVariablesTooLarge); err != nil {
			return nil, fmt.Errorf("_meta: %w", err)
		}
		rec.Task.Meta = req.Meta
	}
	if err := s.mergeVariables(rec, req.Variables); err != nil {
		return nil, err
	}
	if ttl != nil {
		exp := t.Add(*ttl)
		rec.ExpiresAt = &exp
	}
	data, err := s.encode(rec)
	if err != nil {
		return nil, err
	}
	br := rec.backendRecord(data)
	lim := Limits{MaxActive: max(s.cfg.MaxActiveTasks, 0), MaxStored: max(s.cfg.MaxStoredTasks, 0)}
	if selftestBreakQuota {
		lim.MaxActive = 0 // the robustness test's self-test: see selftest_on.go
	}
	start := s.start()
	err = s.b.Create(ctx, br, lim)
	s.observe("create", start, err)
	if err != nil {
		return nil, err
	}
	rec.Version = 1
	return rec, nil
}

func (s *Store) ttl(req *time.Duration) (*time.Duration, error) {
	if req == nil {
		if s.cfg.DefaultTTL < 0 {
			return nil, nil
		}
		d := s.cfg.DefaultTTL
		return &d, nil
	}
	d := req.Truncate(time.Millisecond)
	if d <= 0 {
		return nil, fmt.Errorf("%w: ttl must be at least 1ms", ErrInvalidArgument)
	}
	if s.cfg.MaxTTL > 0 && d > s.cfg.MaxTTL {
		return nil, fmt.Errorf("%w: %v requested, maximum %v", ErrTTLTooLong, d, s.cfg.MaxTTL)
	}
	return &d, nil
}

func (s *Store) checkMessage(msg string) error {
	if exceeds(len(msg), s.cfg.MaxStringLen) {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLong, len(msg), s.cfg.MaxStringLen)
	}
	return nil
}

// checkMap validates each value of m and the size of m serialized as the
// record codec stores it.
func (s *Store) checkMap(m map[string]json.RawMessage, maxSize int, tooLarge error) error {
	for k, v := range m {
		if exceeds(len(k), s.cfg.MaxStringLen) {
			return fmt.Errorf("%w: key of %d bytes, limit %d", ErrStringTooLong, len(k), s.cfg.MaxStringLen)
		}
		if err := checkValue(v, s.cfg.MaxDepth, s.cfg.MaxStringLen); err != nil {
			return fmt.Errorf("%q: %w", truncate(k), err)
		}
	}
	if maxSize >= 0 {
		if n := objectSize(m); n > maxSize {
			return fmt.Errorf("%w: %d bytes, limit %d", tooLarge, n, maxSize)
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// mergeVariables applies vars to rec: a JSON null deletes the key, any
// other value sets it. The merged result must fit the limits.
func (s *Store) mergeVariables(rec *TaskRecord, vars map[string]json.RawMessage) error {
	if len(vars) == 0 {
		return nil
	}
	// Validate only the incoming values; stored ones were validated on the way in.
	for k, v := range vars {
		if v == nil {
			return fmt.Errorf("%q: %w", truncate(k), ErrInvalidJSON)
		}
	}
	if err := s.checkMap(vars, -1, nil); err != nil {
		return err
	}
	merged := make(map[string]json.RawMessage, len(rec.Variables)+len(vars))
	for k, v := range rec.Variables {
		merged[k] = v
	}
	for k, v := range vars {
		if string(bytes.TrimSpace(v)) == "null" {
			delete(merged, k)
			continue
		}
		merged[k] = v
	}
	if n := objectSize(merged); exceeds(n, s.cfg.MaxVariablesSize) {
		return fmt.Errorf("%w: %d bytes after merge, limit %d", ErrVariablesTooLarge, n, s.cfg.MaxVariablesSize)
	}
	rec.Variables = merged
	return nil
}

func (s *Store) checkResult(result json.RawMessage) error {
	if result == nil {
		return fmt.Errorf("%w: result is empty", ErrInvalidJSON)
	}
	if exceeds(len(result), s.cfg.MaxResultSize) {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrResultTooLarge, len(result), s.cfg.MaxResultSize)
	}
	// Results may hold long text, so only nesting is limited.
	return checkValue(result, s.cfg.MaxDepth, -1)
}

func (s *Store) encode(rec *TaskRecord) ([]byte, error) {
	data, err := encodeRecord(rec)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidJSON, err)
	}
	if m := s.b.MaxRecordSize(); m > 0 && len(data) > m {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrRecordTooLarge, len(data), m)
	}
	return data, nil
}

// Get returns the task, or ErrNotFound.
func (s *Store) Get(ctx context.Context, owner, taskID string) (*TaskRecord, error) {
	owner, err := s.cfg.checkOwner(owner)
	if err != nil {
		return nil, err
	}
	if !taskid.Valid(taskID) {
		return nil, ErrNotFound
	}
	br, err := s.get(ctx, owner, taskID)
	if err != nil {
		return nil, err
	}
	return decodeRecord(br)
}

// write is what a mutation may assume, given by its caller: the record it
// may start from (a Handle's last read or write), and the lease that fences
// it (a leased Handle's). The zero write assumes nothing.
type write struct {
	known *TaskRecord
	fence *Lease
}

// mutate is the one write path for existing tasks: read, apply fn, stamp
// lastUpdatedAt, compare-and-swap; on a lost race, again on fresh data.
// fn changes the record by replacing its fields (a new variables map, a
// new *RPCError), never by writing into the maps and values they point
// to: the record may share them with the Handle's known copy.
//
// With w.known the first attempt starts from that record, without a read,
// so an uncontended mutation is one compare-and-swap. fn's verdict on that
// copy is not trusted (another writer may have moved the task since): when
// fn refuses, or the swap finds another version, it is judged again on a
// fresh read, as without a known record. With w.fence every attempt first
// checks that the record still carries that lease (ErrLeaseLost).
func (s *Store) mutate(ctx context.Context, owner, taskID string, w write, fn func(*TaskRecord) error) (*TaskRecord, error) {
	owner, err := s.cfg.checkOwner(owner)
	if err != nil {
		return nil, err
	}
	if !taskid.Valid(taskID) {
		return nil, ErrNotFound
	}
	known := w.known
	if known != nil && (known.OwnerID != owner || known.Task.TaskID != taskID || known.Version == 0) {
		known = nil
	}
	for attempt := 0; ; attempt++ {
		var rec *TaskRecord
		if known != nil {
			c := *known // fn replaces fields, never writes into their maps or pointees
			rec = &c
		} else {
			br, err := s.get(ctx, owner, taskID)
			if err != nil {
				return nil, err
			}
			if rec, err = decodeRecord(br); err != nil {
				return nil, err
			}
		}
		err := checkFence(w.fence, rec)
		if err == nil {
			err = fn(rec)
		}
		if err != nil {
			if known != nil {
				known, attempt = nil, attempt-1
				continue
			}
			return nil, err
		}
		if t := now(); t.After(rec.Task.LastUpdatedAt) {
			rec.Task.LastUpdatedAt = t
		}
		data, err := s.encode(rec)
		if err != nil {
			return nil, err
		}
		nb := rec.backendRecord(data)
		nb.Owner, nb.TaskID = owner, taskID
		v, err := s.update(ctx, nb, rec.Version)
		if err == nil {
			rec.Version = v
			return rec, nil
		}
		if !errors.Is(err, ErrVersionConflict) {
			return nil, err
		}
		if known != nil { // the known record was stale: read, no backoff
			known, attempt = nil, attempt-1
			continue
		}
		if attempt >= s.cfg.MaxRetries {
			return nil, fmt.Errorf("%w: gave up after %d attempts", ErrConcurrentModification, attempt+1)
		}
		if err := backoff.Sleep(ctx, attempt, 50*time.Microsecond, 7); err != nil {
			return nil, err
		}
	}
}

// mutateMany is mutate for many records, each starting from the known
// record given (read by the caller): prepare returns each one's change
// (or why there is none). The compare-and-swaps go to the backend in
// batches of up to 1000 (BatchUpdater) where it has them, else one Update
// each; a record that fn refuses on the known copy, or whose swap finds
// another version, goes through mutate alone, from a fresh read.
func (s *Store) mutateMany(ctx context.Context, known []*TaskRecord, prepare func(*TaskRecord) (func(*TaskRecord) error, error)) []Written {
	out := make([]Written, len(known))
	fns := make([]func(*TaskRecord) error, len(known))
	var retry []int // through mutate alone
	var batch []int // indexes of ups
	var ups []Update
	var recs []*TaskRecord
	for i, k := range known {
		fn, err := prepare(k)
		if err != nil {
			out[i].Err = err
			continue
		}
		fns[i] = fn
		c := *k
		rec := &c
		if fn(rec) != nil {
			retry = append(retry, i)
			continue
		}
		if t := now(); t.After(rec.Task.LastUpdatedAt) {
			rec.Task.LastUpdatedAt = t
		}
		data, err := s.encode(rec)
		if err != nil {
			out[i].Err = err
			continue
		}
		nb := rec.backendRecord(data)
		nb.Owner, nb.TaskID = k.OwnerID, k.Task.TaskID
		batch, ups, recs = append(batch, i), append(ups, Update{Record: nb, Expected: k.Version}), append(recs, rec)
	}
	results := s.updateMany(ctx, ups)
	for j, i := range batch {
		switch err := results[j].Err; {
		case err == nil:
			recs[j].Version = results[j].Version
			out[i].Record = recs[j]
		case errors.Is(err, ErrVersionConflict):
			retry = append(retry, i)
		default:
			out[i].Err = err
		}
	}
	for _, i := range retry {
		out[i].Record, out[i].Err = s.mutate(ctx, known[i].OwnerID, known[i].Task.TaskID, write{}, fns[i])
	}
	return out
}

// updateMany applies ups through the backend's BatchUpdater, 1000 at a
// time, or one Update each.
func (s *Store) updateMany(ctx context.Context, ups []Update) []UpdateResult {
	out := make([]UpdateResult, len(ups))
	bu, ok := s.b.(BatchUpdater)
	if !ok {
		for i, u := range ups {
			out[i].Version, out[i].Err = s.update(ctx, u.Record, u.Expected)
		}
		return out
	}
	for start := 0; start < len(ups); start += 1000 {
		chunk := ups[start:min(start+1000, len(ups))]
		t := s.start()
		res, err := bu.UpdateMany(ctx, chunk)
		s.observe("update_many", t, err)
		if err == nil && len(res) != len(chunk) {
			err = fmt.Errorf("%w: UpdateMany returned %d results for %d updates", ErrBackend, len(res), len(chunk))
		}
		for i := range chunk {
			if err != nil {
				out[start+i].Err = err
			} else {
				out[start+i] = res[i]
			}
		}
	}
	return out
}

func (s *Store) transition(rec *TaskRecord, to Status, message string) error {
	if err := s.checkMessage(message); err != nil {
		return err
	}
	if err := checkTransition(rec.Task.Status, to); err != nil {
		return err
	}
	rec.Task.Status = to
	rec.Task.StatusMessage = message
	return nil
}

// UpdateStatus moves the task to status and replaces its status message
// ("" clears it).
func (s *Store) UpdateStatus(ctx context.Context, owner, taskID string, status Status, message string) (*TaskRecord, error) {
	return s.updateStatus(ctx, owner, taskID, write{}, status, message)
}

func (s *Store) updateStatus(ctx context.Context, owner, taskID string, w write, status Status, message string) (*TaskRecord, error) {
	return s.mutate(ctx, owner, taskID, w, func(r *TaskRecord) error {
		return s.transition(r, status, message)
	})
}

// SetVariables merges vars into the task's variables: a JSON null deletes
// the key, any other value sets it. A terminal task's variables can still
// change.
func (s *Store) SetVariables(ctx context.Context, owner, taskID string, vars map[string]json.RawMessage) (*TaskRecord, error) {
	return s.setVariables(ctx, owner, taskID, write{}, vars)
}

func (s *Store) setVariables(ctx context.Context, owner, taskID string, w write, vars map[string]json.RawMessage) (*TaskRecord, error) {
	return s.mutate(ctx, owner, taskID, w, func(r *TaskRecord) error {
		return s.mergeVariables(r, vars)
	})
}

// SetResult stores the task's result without changing its status. A
// terminal task's outcome is fixed: setting it gives ErrInvalidTransition.
func (s *Store) SetResult(ctx context.Context, owner, taskID string, result json.RawMessage) (*TaskRecord, error) {
	if err := s.checkResult(result); err != nil {
		return nil, err
	}
	return s.mutate(ctx, owner, taskID, write{}, func(r *TaskRecord) error {
		if r.Task.Status.Terminal() {
			return fmt.Errorf("%w: task is already %s", ErrInvalidTransition, r.Task.Status)
		}
		r.Result = result
		return nil
	})
}

// CompleteWithResult stores the result and moves the task to status in one
// atomic write.
func (s *Store) CompleteWithResult(ctx context.Context, owner, taskID string, status Status, message string, result json.RawMessage) (*TaskRecord, error) {
	return s.completeWithResult(ctx, owner, taskID, write{}, status, message, result)
}

func (s *Store) completeWithResult(ctx context.Context, owner, taskID string, w write, status Status, message string, result json.RawMessage) (*TaskRecord, error) {
	if err := s.checkResult(result); err != nil {
		return nil, err
	}
	return s.mutate(ctx, owner, taskID, w, func(r *TaskRecord) error {
		if err := s.transition(r, status, message); err != nil {
			return err
		}
		r.Result = result
		return nil
	})
}

// FailWithError ends the task as failed with a JSON-RPC error as its
// outcome, which tasks/result replays.
func (s *Store) FailWithError(ctx context.Context, owner, taskID string, rpcErr *RPCError) (*TaskRecord, error) {
	return s.failWithError(ctx, owner, taskID, write{}, rpcErr)
}

func (s *Store) failWithError(ctx context.Context, owner, taskID string, w write, rpcErr *RPCError) (*TaskRecord, error) {
	if rpcErr == nil {
		return nil, fmt.Errorf("%w: nil error", ErrInvalidArgument)
	}
	if err := s.checkMessage(rpcErr.Message); err != nil {
		return nil, err
	}
	if rpcErr.Data != nil {
		if err := s.checkResult(rpcErr.Data); err != nil {
			return nil, err
		}
	}
	return s.mutate(ctx, owner, taskID, w, func(r *TaskRecord) error {
		if err := s.transition(r, StatusFailed, rpcErr.Message); err != nil {
			return err
		}
		r.Error = rpcErr
		return nil
	})
}

// GetResult returns the task once it is terminal and has an outcome (a
// result or an error); before that it answers ErrNotReady.
func (s *Store) GetResult(ctx context.Context, owner, taskID string) (*TaskRecord, error) {
	rec, err := s.Get(ctx, owner, taskID)
	if err != nil {
		return nil, err
	}
	if !rec.Task.Status.Terminal() || (rec.Result == nil && rec.Error == nil) {
		return nil, fmt.Errorf("%w: task is %s", ErrNotReady, rec.Task.Status)
	}
	return rec, nil
}

// Cancel moves the task to cancelled. Cancelling a terminal task gives
// ErrInvalidTransition.
func (s *Store) Cancel(ctx context.Context, owner, taskID string) (*TaskRecord, error) {
	return s.UpdateStatus(ctx, owner, taskID, StatusCancelled, cancelledMessage)
}

const cancelledMessage = "The task was cancelled by request."

// Page is one page of List, or of Runtime.ListAllOwners.
type Page struct {
	Tasks []*TaskRecord
	// NextCursor is "" on the last page. A page of ListAllOwners may be
	// short, even empty, and still have a NextCursor.
	NextCursor string
}

// List returns a page of the owner's live tasks, newest first. cursor is
// "" for the first page, else a NextCursor from an earlier page of the same
// owner; limit 0 takes Config.DefaultPageSize. Tasks created while paging
// sort before the cursor, so paging never repeats or skips a task.
func (s *Store) List(ctx context.Context, owner, cursor string, limit int) (*Page, error) {
	owner, err := s.cfg.checkOwner(owner)
	if err != nil {
		return nil, err
	}
	if limit == 0 {
		limit = s.cfg.DefaultPageSize
	}
	if limit < 0 || exceeds(limit, s.cfg.MaxPageSize) {
		return nil, fmt.Errorf("%w: %d, must be 1..%d", ErrInvalidPageSize, limit, s.cfg.MaxPageSize)
	}
	after := ""
	if cursor != "" {
		if after, err = decodeCursor(owner, cursor); err != nil {
			return nil, err
		}
	}
	start := s.start()
	recs, more, err := s.b.List(ctx, owner, after, limit)
	s.observe("list", start, err)
	if err != nil {
		return nil, err
	}
	page := &Page{Tasks: make([]*TaskRecord, 0, len(recs))}
	boxes := make([]recordBox, len(recs)) // one allocation for the page's records
	for i, br := range recs {
		rec, err := decodeRecordInto(br, &boxes[i])
		if err != nil {
			return nil, err
		}
		page.Tasks = append(page.Tasks, rec)
	}
	if more && len(recs) > 0 {
		page.NextCursor = encodeCursor(owner, recs[len(recs)-1].TaskID)
	}
	return page, nil
}

// A cursor is the last task id of a page plus a short hash of the owner,
// so a cursor handed to another owner is refused rather than reinterpreted.
const ownerTagLen = 8

func ownerTag(owner string) []byte {
	h := sha256.Sum256([]byte(owner))
	return h[:ownerTagLen]
}

func encodeCursor(owner, taskID string) string {
	b := append(ownerTag(owner), taskID...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(owner, cursor string) (string, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
	// The decoder skips \r and \n anywhere: only the one spelling we
	// hand out is a cursor.
	if err != nil || len(b) != ownerTagLen+taskid.Len || base64.RawURLEncoding.EncodeToString(b) != cursor {
		return "", ErrInvalidCursor
	}
	if string(b[:ownerTagLen]) != string(ownerTag(owner)) {
		return "", ErrInvalidCursor
	}
	id := string(b[ownerTagLen:])
	if !taskid.Valid(id) {
		return "", ErrInvalidCursor
	}
	return id, nil
}

// CleanupExpired asks the backend to remove expired tasks and returns how
// many it removed. Expired tasks are invisible whether or not this runs.
func (s *Store) CleanupExpired(ctx context.Context) (int, error) {
	start := s.start()
	n, err := s.b.DeleteExpired(ctx)
	s.observe("delete_expired", start, err)
	return n, err
}

// start is when a backend call starts, when calls are observed
// (Config.ObserveBackend); observe reports the call.
func (s *Store) start() time.Time {
	if s.cfg.ObserveBackend == nil {
		return time.Time{}
	}
	return time.Now()
}

func (s *Store) observe(op string, start time.Time, err error) {
	if s.cfg.ObserveBackend != nil {
		s.cfg.ObserveBackend(op, time.Since(start), err)
	}
}

// get and update are the backend's Get and Update, observed.
func (s *Store) get(ctx context.Context, owner, taskID string) (Record, error) {
	start := s.start()
	br, err := s.b.Get(ctx, owner, taskID)
	s.observe("get", start, err)
	return br, err
}

func (s *Store) update(ctx context.Context, rec Record, expected uint64) (uint64, error) {
	start := s.start()
	v, err := s.b.Update(ctx, rec, expected)
	s.observe("update", start, err)
	return v, err
}
