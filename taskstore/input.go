package taskstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// The input flow of protocol 2026-07-28 (extension io.modelcontextprotocol/tasks):
// a task's work asks for client input (RequestInput), which makes the task
// input_required and shows the requests in tasks/get; the client answers
// with tasks/update (SubmitInput); once no request is pending the task is
// working again, and the work takes its answers (TakeInput). All three are
// single compare-and-swap writes, so they work across replicas.

func decodeObject(raw json.RawMessage) (map[string]json.RawMessage, error) {
	m, err := decodeRawObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidJSON, err)
	}
	return m, nil
}

// inputState decodes the task's pending input requests and the responses
// it has received, each a key -> value object.
func (r *TaskRecord) inputState() (pending, answered map[string]json.RawMessage, err error) {
	if pending, err = decodeObject(r.InputRequests); err != nil {
		return nil, nil, err
	}
	if answered, err = decodeObject(r.InputResponses); err != nil {
		return nil, nil, err
	}
	return pending, answered, nil
}

// RequestInput adds requests (key -> a server-to-client request such as
// {"method":"elicitation/create","params":{…}}) to the task's pending input
// requests and moves a working task to input_required with message. A key
// must not have been used before in the task's life (the spec's rule); a key
// already pending or answered is ErrInvalidArgument.
func (rt *Runtime) RequestInput(ctx context.Context, owner, taskID string, requests map[string]json.RawMessage, message string) (*TaskRecord, error) {
	return rt.s.requestInput(ctx, owner, taskID, write{}, requests, message)
}

func (s *Store) requestInput(ctx context.Context, owner, taskID string, w write, requests map[string]json.RawMessage, message string) (*TaskRecord, error) {
	if len(requests) == 0 {
		return nil, fmt.Errorf("%w: no input requests", ErrInvalidArgument)
	}
	if err := s.checkMap(requests, s.cfg.MaxVariablesSize, ErrVariablesTooLarge); err != nil {
		return nil, fmt.Errorf("inputRequests: %w", err)
	}
	return s.mutate(ctx, owner, taskID, w, func(r *TaskRecord) error {
		if r.Task.Status.Terminal() {
			return fmt.Errorf("%w: task is already %s", ErrInvalidTransition, r.Task.Status)
		}
		pending, answered, err := r.inputState()
		if err != nil {
			return err
		}
		for k, v := range requests {
			if _, dup := pending[k]; dup {
				return fmt.Errorf("%w: input request key %q is already pending", ErrInvalidArgument, truncate(k))
			}
			if _, dup := answered[k]; dup {
				return fmt.Errorf("%w: input request key %q was already answered", ErrInvalidArgument, truncate(k))
			}
			pending[k] = v
		}
		if r.InputRequests, err = encodeObject(pending); err != nil {
			return err
		}
		if r.Task.Status != StatusInputRequired {
			return s.transition(r, StatusInputRequired, message)
		}
		return nil
	})
}

// SubmitInput delivers responses (tasks/update). Responses to keys that are
// not pending (never issued, already answered, superseded) are ignored, as
// the spec asks; so is an update of a terminal task. When no request is left
// pending, an input_required task becomes working again. It returns the
// keys it accepted.
func (rt *Runtime) SubmitInput(ctx context.Context, owner, taskID string, responses map[string]json.RawMessage) ([]string, error) {
	s := rt.s
	if err := s.checkMap(responses, s.cfg.MaxVariablesSize, ErrVariablesTooLarge); err != nil {
		return nil, fmt.Errorf("inputResponses: %w", err)
	}
	var accepted []string
	_, err := s.mutate(ctx, owner, taskID, write{}, func(r *TaskRecord) error {
		accepted = accepted[:0]
		if r.Task.Status.Terminal() {
			return nil
		}
		pending, answered, err := r.inputState()
		if err != nil {
			return err
		}
		for k, v := range responses {
			if _, ok := pending[k]; !ok {
				continue
			}
			delete(pending, k)
			answered[k] = v
			accepted = append(accepted, k)
		}
		if r.InputRequests, err = encodeObject(pending); err != nil {
			return err
		}
		if r.InputResponses, err = encodeObject(answered); err != nil {
			return err
		}
		if len(pending) == 0 && r.Task.Status == StatusInputRequired {
			return s.transition(r, StatusWorking, "")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(accepted)
	return accepted, nil
}

// TakeInput removes and returns the delivered responses to keys, if every
// one of them has been answered; otherwise it changes nothing and returns
// ok false.
func (rt *Runtime) TakeInput(ctx context.Context, owner, taskID string, keys []string) (map[string]json.RawMessage, bool, error) {
	out, _, ok, err := rt.s.takeInput(ctx, owner, taskID, write{}, keys)
	return out, ok, err
}

// takeInput is TakeInput; when not every key is answered it also returns
// the record it read.
func (s *Store) takeInput(ctx context.Context, owner, taskID string, w write, keys []string) (map[string]json.RawMessage, *TaskRecord, bool, error) {
	var out map[string]json.RawMessage
	rec, err := s.Get(ctx, owner, taskID)
	if err != nil {
		return nil, nil, false, err
	}
	answered, err := decodeObject(rec.InputResponses)
	if err != nil {
		return nil, nil, false, err
	}
	for _, k := range keys {
		if _, ok := answered[k]; !ok {
			return nil, rec, false, nil
		}
	}
	_, err = s.mutate(ctx, owner, taskID, write{known: rec, fence: w.fence}, func(r *TaskRecord) error {
		answered, err := decodeObject(r.InputResponses)
		if err != nil {
			return err
		}
		out = make(map[string]json.RawMessage, len(keys))
		for _, k := range keys {
			v, ok := answered[k]
			if !ok {
				return fmt.Errorf("%w: input response %q vanished", ErrConcurrentModification, truncate(k))
			}
			out[k] = v
			delete(answered, k)
		}
		r.InputResponses, err = encodeObject(answered)
		return err
	})
	if err != nil {
		return nil, nil, false, err
	}
	return out, nil, true, nil
}

// InputWait is how AwaitInput waits for answers, given the record its
// request wrote: wait returns when the task may have changed since rec
// was read (or ctx is done), and stop releases what wait holds.
type InputWait func(asked *TaskRecord) (wait func(ctx context.Context, rec *TaskRecord) error, stop func())

// WithInputWait returns a copy of h whose AwaitInput waits with w instead
// of re-reading the task every poll interval: a runner that hears of
// changes (a change feed) passes its own.
func (h *Handle) WithInputWait(w InputWait) *Handle {
	c := *h
	c.inputWait = w
	return &c
}

// pollWait is AwaitInput's wait without WithInputWait: a read every poll
// interval (at most 250ms), so answers delivered to any replica reach it.
func (h *Handle) pollWait(*TaskRecord) (func(context.Context, *TaskRecord) error, func()) {
	poll := min(h.s.cfg.PollInterval, 250*time.Millisecond)
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	t := time.NewTicker(poll)
	return func(ctx context.Context, _ *TaskRecord) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}, t.Stop
}

// AwaitInput asks the client for input (RequestInput) and blocks until all
// of requests have been answered (tasks/update on 2026-07-28, or the
// client's answer to tasks/result on 2025-11-25), the task ends, or ctx is
// done. It returns the answers by the keys of requests. From the second
// attempt of a task on (Attempt), the stored keys carry the attempt
// ("key@2"), so an attempt never meets the answers of another.
func (h *Handle) AwaitInput(ctx context.Context, requests map[string]any, message string) (map[string]json.RawMessage, error) {
	raw := make(map[string]json.RawMessage, len(requests))
	keys := make([]string, 0, len(requests))
	stored := func(k string) string { return k }
	if a := h.Attempt(); a > 1 {
		stored = func(k string) string { return k + "@" + strconv.Itoa(a) }
	}
	for k, v := range requests {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: input request %q: %v", ErrInvalidJSON, truncate(k), err)
		}
		raw[stored(k)] = b
		keys = append(keys, stored(k))
	}
	asked, err := h.wrote(h.s.requestInput(ctx, h.owner, h.id, h.write(), raw, message))
	if err != nil {
		return nil, err
	}
	waitFor := h.inputWait
	if waitFor == nil {
		waitFor = h.pollWait
	}
	wait, stop := waitFor(asked)
	defer stop()
	for {
		out, rec, ok, err := h.s.takeInput(ctx, h.owner, h.id, write{fence: h.lease}, keys)
		if err != nil {
			return nil, err
		}
		if ok {
			answers := make(map[string]json.RawMessage, len(requests))
			for k := range requests {
				answers[k] = out[stored(k)]
			}
			return answers, nil
		}
		if rec.Task.Status.Terminal() {
			return nil, fmt.Errorf("%w: task ended while waiting for input (%s)", ErrInvalidTransition, rec.Task.Status)
		}
		if err := wait(ctx, rec); err != nil {
			return nil, err
		}
	}
}
