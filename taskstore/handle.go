package taskstore

import (
	"context"
	"encoding/json"
	"fmt"
)

// Handle is what a tool handler holds for the task it runs: the task's id
// and owner, and methods that read and change it. Every read goes to the
// store, so a handle sees changes made by other replicas.
type Handle struct {
	s     *Store
	owner string
	id    string
	lease *Lease
}

// Handle returns the handle of an existing task. It does not check that
// the task exists; its methods do.
func (s *Store) Handle(owner, taskID string) *Handle {
	return &Handle{s: s, owner: owner, id: taskID}
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

// fenced returns ctx carrying h's lease, which the Store's write path checks.
func (h *Handle) fenced(ctx context.Context) context.Context {
	if h.lease == nil {
		return ctx
	}
	return context.WithValue(ctx, fenceKey{}, *h.lease)
}

// ID is the task id.
func (h *Handle) ID() string { return h.id }

// Owner is the task's owner.
func (h *Handle) Owner() string { return h.owner }

// Get reads the task.
func (h *Handle) Get(ctx context.Context) (*TaskRecord, error) {
	return h.s.Get(ctx, h.owner, h.id)
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
	_, err := h.s.SetVariables(h.fenced(ctx), h.owner, h.id, raw)
	return err
}

// DeleteVariables removes the named variables.
func (h *Handle) DeleteVariables(ctx context.Context, names ...string) error {
	raw := make(map[string]json.RawMessage, len(names))
	for _, n := range names {
		raw[n] = json.RawMessage("null")
	}
	_, err := h.s.SetVariables(h.fenced(ctx), h.owner, h.id, raw)
	return err
}

// Complete stores result (marshalled to JSON) and marks the task completed.
func (h *Handle) Complete(ctx context.Context, result any) error {
	b, err := json.Marshal(result)
	if err != nil {
		return fmt.Errorf("%w: result: %v", ErrInvalidJSON, err)
	}
	_, err = h.s.CompleteWithResult(h.fenced(ctx), h.owner, h.id, StatusCompleted, "", b)
	return err
}

// Fail marks the task failed with message.
func (h *Handle) Fail(ctx context.Context, message string) error {
	_, err := h.s.UpdateStatus(h.fenced(ctx), h.owner, h.id, StatusFailed, message)
	return err
}

// RequireInput marks the task input_required with message.
func (h *Handle) RequireInput(ctx context.Context, message string) error {
	_, err := h.s.UpdateStatus(h.fenced(ctx), h.owner, h.id, StatusInputRequired, message)
	return err
}

// Resume moves an input_required task back to working.
func (h *Handle) Resume(ctx context.Context) error {
	_, err := h.s.UpdateStatus(h.fenced(ctx), h.owner, h.id, StatusWorking, "")
	return err
}

// Cancel marks the task cancelled.
func (h *Handle) Cancel(ctx context.Context) error {
	_, err := h.s.Cancel(h.fenced(ctx), h.owner, h.id)
	return err
}

// Finish stores result (JSON) and moves the task to status in one write;
// the runner of a task ends it this way.
func (h *Handle) Finish(ctx context.Context, status Status, message string, result json.RawMessage) (*TaskRecord, error) {
	return h.s.CompleteWithResult(h.fenced(ctx), h.owner, h.id, status, message, result)
}

// FailWithError ends the task as failed with a JSON-RPC error as its outcome.
func (h *Handle) FailWithError(ctx context.Context, rpcErr *RPCError) (*TaskRecord, error) {
	return h.s.FailWithError(h.fenced(ctx), h.owner, h.id, rpcErr)
}
