package taskstore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Status is a task's lifecycle state, as spelled on the wire.
type Status string

const (
	StatusWorking       Status = "working"
	StatusInputRequired Status = "input_required"
	StatusCompleted     Status = "completed"
	StatusFailed        Status = "failed"
	StatusCancelled     Status = "cancelled"
)

// Valid reports whether s is one of the five statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusWorking, StatusInputRequired, StatusCompleted, StatusFailed, StatusCancelled:
		return true
	}
	return false
}

// Terminal reports whether no transition leaves s.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// CanTransition reports whether a task may move from s to next. Terminal
// statuses allow nothing, and a status never transitions to itself.
func (s Status) CanTransition(next Status) bool {
	if !next.Valid() || s.Terminal() || s == next {
		return false
	}
	// working and input_required may go to each other and to any terminal status.
	return true
}

func checkTransition(from, to Status) error {
	if !to.Valid() {
		return fmt.Errorf("%w %q", ErrInvalidStatus, to)
	}
	if from == to {
		return fmt.Errorf("%w: task is already in %s state", ErrInvalidTransition, from)
	}
	if !from.CanTransition(to) {
		return fmt.Errorf("%w: cannot move from %s to %s", ErrInvalidTransition, from, to)
	}
	return nil
}

// Task is the MCP 2025-11-25 wire form of a task. It always serializes ttl
// (null when unlimited); timestamps are RFC 3339 in UTC with milliseconds.
type Task struct {
	TaskID        string
	Status        Status
	StatusMessage string
	CreatedAt     time.Time
	LastUpdatedAt time.Time
	// TTL is the task's lifetime from creation; nil means unlimited.
	TTL *time.Duration
	// PollInterval is the suggested polling interval; nil leaves it out.
	PollInterval *time.Duration
	// Meta is the task's _meta object.
	Meta map[string]json.RawMessage
}

// TimeFormat is how the wire shows timestamps: RFC 3339, UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

type wireTask struct {
	TaskID        string                     `json:"taskId"`
	Status        Status                     `json:"status"`
	StatusMessage string                     `json:"statusMessage,omitempty"`
	CreatedAt     string                     `json:"createdAt"`
	LastUpdatedAt string                     `json:"lastUpdatedAt"`
	TTL           *int64                     `json:"ttl"`
	PollInterval  *int64                     `json:"pollInterval,omitempty"`
	Meta          map[string]json.RawMessage `json:"_meta,omitempty"`
}

func durationMS(d *time.Duration) *int64 {
	if d == nil {
		return nil
	}
	ms := d.Milliseconds()
	return &ms
}

func msDuration(ms *int64) *time.Duration {
	if ms == nil {
		return nil
	}
	d := time.Duration(*ms) * time.Millisecond
	return &d
}

func (t Task) wire() wireTask {
	return wireTask{
		TaskID:        t.TaskID,
		Status:        t.Status,
		StatusMessage: t.StatusMessage,
		CreatedAt:     t.CreatedAt.UTC().Format(TimeFormat),
		LastUpdatedAt: t.LastUpdatedAt.UTC().Format(TimeFormat),
		TTL:           durationMS(t.TTL),
		PollInterval:  durationMS(t.PollInterval),
		Meta:          t.Meta,
	}
}

func (w *wireTask) task() (Task, error) {
	created, err := time.Parse(time.RFC3339Nano, w.CreatedAt)
	if err != nil {
		return Task{}, fmt.Errorf("createdAt: %w", err)
	}
	updated, err := time.Parse(time.RFC3339Nano, w.LastUpdatedAt)
	if err != nil {
		return Task{}, fmt.Errorf("lastUpdatedAt: %w", err)
	}
	return Task{
		TaskID:        w.TaskID,
		Status:        w.Status,
		StatusMessage: w.StatusMessage,
		CreatedAt:     created,
		LastUpdatedAt: updated,
		TTL:           msDuration(w.TTL),
		PollInterval:  msDuration(w.PollInterval),
		Meta:          w.Meta,
	}, nil
}

// MarshalJSON writes the spec's camelCase shape (with the record codec:
// keys of _meta sorted, nothing HTML-escaped).
func (t Task) MarshalJSON() ([]byte, error) {
	n := 160 + len(t.TaskID) + len(t.StatusMessage)
	for k, v := range t.Meta {
		n += len(k) + len(v) + 4
	}
	return appendTask(make([]byte, 0, n), &t), nil
}

// UnmarshalJSON reads the spec's shape.
func (t *Task) UnmarshalJSON(b []byte) error {
	var w wireTask
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var err error
	*t, err = w.task()
	return err
}

// RPCError is a JSON-RPC error kept as a task's outcome, so tasks/result can
// replay exactly what the original request would have answered.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *RPCError) Error() string { return fmt.Sprintf("jsonrpc error %d: %s", e.Code, e.Message) }

// TaskRecord is everything stored about a task. The Store writes it as a
// camelCase JSON document (task, ownerId, variables, result, error,
// inputRequests, inputResponses, requestMethod, expiresAt), the Rust original's layout plus
// optional fields (lease, rerun, trace), so older records still load.
type TaskRecord struct {
	// Task is the wire task as stored; WireTask adds the variables to _meta.
	Task    Task
	OwnerID string
	// Variables is the task's key-value state; tasks/get shows it in _meta.
	Variables map[string]json.RawMessage
	// Result is the outcome of the original request, or nil.
	Result json.RawMessage
	// Error is the JSON-RPC error the original request ended with, or nil.
	Error *RPCError
	// InputRequests are pending requests for client input (protocol
	// 2026-07-28): a JSON object of key -> server-to-client request.
	InputRequests json.RawMessage
	// InputResponses are answers to input requests that the client has
	// delivered (tasks/update) and the task's work has not yet taken.
	InputResponses json.RawMessage
	// RequestMethod is the method of the request that created the task.
	RequestMethod string
	// ExpiresAt is nil for a task that never expires.
	ExpiresAt *time.Time
	// Lease names the replica running the task and the attempt, or is nil
	// for a task no runner holds (driven directly through Store and Handle).
	Lease *Lease
	// Rerun is what another runner needs to run the task again, or nil
	// (see CreateRequest.Rerun).
	Rerun json.RawMessage
	// Trace is the W3C trace context of the request that created the task
	// ("trace":{"traceparent":…,"tracestate":…}), or nil. A release before
	// it keeps the field as one it does not know (Unknown) and writes it
	// back unchanged.
	Trace *TraceContext
	// Unknown holds the top-level fields of the stored document that this
	// release does not know (written by a newer one): they are kept and
	// written back on every rewrite, so replicas of mixed versions sharing
	// a store lose nothing of each other's records.
	Unknown map[string]json.RawMessage
	// Version is the backend's version of the stored document.
	Version uint64
}

// Lease is the claim of one runner (a replica) on a task it runs. Attempt
// counts the runs: 1 for the first, +1 for each takeover.
type Lease struct {
	Runner  string `json:"runner"`
	Attempt int    `json:"attempt"`
}

// Active reports whether the task is working or input_required.
func (r *TaskRecord) Active() bool { return !r.Task.Status.Terminal() }

// backendRecord is the Record a backend stores for r: Active and Runner
// follow the document, and a finished task leaves the runner index.
func (r *TaskRecord) backendRecord(data []byte) Record {
	br := Record{Owner: r.OwnerID, TaskID: r.Task.TaskID, Data: data, Active: r.Active(), Status: r.Task.Status}
	if r.ExpiresAt != nil {
		br.ExpiresAt = *r.ExpiresAt
	}
	if br.Active && r.Lease != nil {
		br.Runner = r.Lease.Runner
	}
	return br
}

// AttemptKey is the _meta key that shows a task's attempt once another
// runner took it over (2 and up), so a client can see that it resumed.
const AttemptKey = "io.mcptasks.task/attempt"

// WireTask is the task as tasks/get shows it: variables merged into _meta,
// variables winning on a conflicting key, and the attempt (AttemptKey)
// from the second on.
func (r *TaskRecord) WireTask() Task {
	t := r.Task
	resumed := r.Lease != nil && r.Lease.Attempt > 1
	if len(r.Variables) > 0 || resumed {
		meta := make(map[string]json.RawMessage, len(t.Meta)+len(r.Variables)+1)
		for k, v := range t.Meta {
			meta[k] = v
		}
		for k, v := range r.Variables {
			meta[k] = v
		}
		if resumed {
			meta[AttemptKey] = strconv.AppendInt(nil, int64(r.Lease.Attempt), 10)
		}
		t.Meta = meta
	}
	return t
}
