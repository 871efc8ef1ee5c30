package taskstore

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
)

// Handle is what a tool handler holds for the task it runs: the task's id
// and owner, and methods that read and change it. Every read goes to the
// store, so a handle sees changes made by other replicas.
type Handle struct {
	s     *Store
	owner string
	id    string
	lease *Lease
	known *knownState // shared by the copies WithLease makes
	// inputWait is how AwaitInput waits (nil: it polls).
	inputWait InputWait
}

// knownState is the record a handle last read or wrote (a private copy),
// which its next mutation starts from: one compare-and-swap when nobody
// else wrote the task in between, a re-read only after a conflict or a
// refusal on that copy. Reads never use it.
type knownState struct {
	mu   sync.Mutex
	last *TaskRecord
}

// Handle returns the handle of an existing task. It does not check that
// the task exists; its methods do.
func (s *Store) Handle(owner, taskID string) *Handle {
	return &Handle{s: s, owner: owner, id: taskID, known: &knownState{}}
}

// HandleFor returns the handle of rec's task that starts from rec (as
// Create returned it), so that its first mutation needs no read.
func (s *Store) HandleFor(rec *TaskRecord) *Handle {
	h := s.Handle(rec.OwnerID, rec.Task.TaskID)
	h.remember(rec)
	return h
}

// remember keeps a copy of rec unless the handle already holds a newer one.
func (h *Handle) remember(rec *TaskRecord) { h.keep(rec, true) }

// keep is remember; without copy it keeps rec itself, which only a record
// nobody else holds may be (a mutation's result the method does not return).
func (h *Handle) keep(rec *TaskRecord, copy bool) {
	if rec == nil {
		return
	}
	k := h.known
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.last == nil || rec.Version >= k.last.Version {
		if copy {
			rec = rec.clone()
		}
		k.last = rec
	}
}

// write is what the handle's next mutation may assume: the record it last
// read or wrote, and its lease.
func (h *Handle) write() write {
	k := h.known
	k.mu.Lock()
	defer k.mu.Unlock()
	return write{known: k.last, fence: h.lease}
}

// wrote remembers a copy of what a mutation wrote, for a method that
// returns the record; after a failure it forgets the known record (it may
// be why the mutation failed).
func (h *Handle) wrote(rec *TaskRecord, err error) (*TaskRecord, error) {
	if err != nil {
		h.forget()
		return nil, err
	}
	h.keep(rec, true)
	return rec, nil
}

// done is wrote for a method that returns only the error: the record is
// kept as it is, no copy.
func (h *Handle) done(rec *TaskRecord, err error) error {
	if err != nil {
		h.forget()
		return err
	}
	h.keep(rec, false)
	return nil
}

func (h *Handle) forget() {
	h.known.mu.Lock()
	h.known.last = nil
	h.known.mu.Unlock()
}

// clone copies r deeply enough for a mutation to change the copy: the
// fields it replaces are values or whole new pointers, and the variables
// map is copied.
func (r *TaskRecord) clone() *TaskRecord {
	c := *r
	c.Variables = maps.Clone(r.Variables)
	return &c
}

// WithLease returns a copy of h whose writes are fenced by l: each one
// fails with ErrLeaseLost unless the task still carries exactly l.
func (h *Handle) WithLease(l Lease) *Handle {
	c := *h
	c.lease = &l
	return &c
}

// Attempt is the run of the task this handle belongs to: 1 for the first,
// +1 for each takeover by another replica; 0 for a handle without a lease.
func (h *Handle) Attempt() int {
	if h.lease == nil {
		return 0
	}
	return h.lease.Attempt
}

// ID is the task id.
func (h *Handle) ID() string { return h.id }

// Owner is the task's owner.
func (h *Handle) Owner() string { return h.owner }

// Get reads the task.
func (h *Handle) Get(ctx context.Context) (*TaskRecord, error) {
	rec, err := h.s.Get(ctx, h.owner, h.id)
	if err == nil {
		h.remember(rec)
	}
	return rec, err
}

// Variable reads the variable name of the task behind h as a T (string,
// int, float64, bool, a struct, any). ok is false when the variable is
// absent or does not decode as a T: a type mismatch reads as absent, not as
// an error. err reports only failures to read the task.
func Variable[T any](ctx context.Context, h *Handle, name string) (v T, ok bool, err error) {
	rec, err := h.Get(ctx)
	if err != nil {
		return v, false, err
	}
	raw, found := rec.Variables[name]
	if !found {
		return v, false, nil
	}
	if json.Unmarshal(raw, &v) != nil {
		var zero T
		return zero, false, nil
	}
	return v, true, nil
}

// SetVariables merges vars into the task's variables; a nil value deletes
// its key.
func (h *Handle) SetVariables(ctx context.Context, vars map[string]any) error {
	raw := make(map[string]json.RawMessage, len(vars))
	for k, v := range vars {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("%w: variable %q: %v", ErrInvalidJSON, truncate(k), err)
		}
		raw[k] = b
	}
	return h.done(h.s.setVariables(ctx, h.owner, h.id, h.write(), raw))
}

// DeleteVariables removes the named variables.
func (h *Handle) DeleteVariables(ctx context.Context, names ...string) error {
	raw := make(map[string]json.RawMessage, len(names))
	for _, n := range names {
		raw[n] = json.RawMessage("null")
	}
	return h.done(h.s.setVariables(ctx, h.owner, h.id, h.write(), raw))
}

// Complete stores result (marshalled to JSON) and marks the task completed.
func (h *Handle) Complete(ctx context.Context, result any) error {
	b, err := json.Marshal(result)
	if err != nil {
		return fmt.Errorf("%w: result: %v", ErrInvalidJSON, err)
	}
	return h.done(h.s.completeWithResult(ctx, h.owner, h.id, h.write(), StatusCompleted, "", b))
}

// Fail marks the task failed with message.
func (h *Handle) Fail(ctx context.Context, message string) error {
	return h.done(h.s.updateStatus(ctx, h.owner, h.id, h.write(), StatusFailed, message))
}

// RequireInput marks the task input_required with message.
func (h *Handle) RequireInput(ctx context.Context, message string) error {
	return h.done(h.s.updateStatus(ctx, h.owner, h.id, h.write(), StatusInputRequired, message))
}

// Resume moves an input_required task back to working.
func (h *Handle) Resume(ctx context.Context) error {
	return h.done(h.s.updateStatus(ctx, h.owner, h.id, h.write(), StatusWorking, ""))
}

// Cancel marks the task cancelled.
func (h *Handle) Cancel(ctx context.Context) error {
	return h.done(h.s.updateStatus(ctx, h.owner, h.id, h.write(), StatusCancelled, cancelledMessage))
}

// Finish stores result (JSON) and moves the task to status in one write;
// the runner of a task ends it this way.
func (h *Handle) Finish(ctx context.Context, status Status, message string, result json.RawMessage) (*TaskRecord, error) {
	return h.wrote(h.s.completeWithResult(ctx, h.owner, h.id, h.write(), status, message, result))
}

// FailWithError ends the task as failed with a JSON-RPC error as its outcome.
func (h *Handle) FailWithError(ctx context.Context, rpcErr *RPCError) (*TaskRecord, error) {
	return h.wrote(h.s.failWithError(ctx, h.owner, h.id, h.write(), rpcErr))
}
