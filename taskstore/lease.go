package taskstore

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Runner leases: a task run by a replica (a runner) records that runner and
// the attempt in its document, atomically with its status. Each runner
// beats a counter of its own (Heartbeat), so keeping leases alive costs one
// write per runner per interval, not one per task. Another runner that sees
// a counter stand still long enough on its own clock ends or claims that
// runner's tasks (EndOrphan, Claim); every such write is a compare-and-swap
// that re-checks the lease, so exactly one replica acts on each task.
//
// A Handle bound to a lease (Handle.WithLease) is fenced: each of its writes
// re-checks, inside the same compare-and-swap, that the task still carries
// that lease, and fails with ErrLeaseLost otherwise. A replica that was
// paused while its task was taken over therefore cannot write to it again.

// maxRunnerLen caps a runner id, in bytes (the Backend contract promises it).
const maxRunnerLen = 128

func checkRunner(runner string) error {
	if runner == "" || len(runner) > maxRunnerLen || !utf8.ValidString(runner) {
		return fmt.Errorf("%w: runner id must be 1..%d bytes of UTF-8", ErrInvalidArgument, maxRunnerLen)
	}
	return nil
}

// checkFence refuses a write fenced by a lease (a leased Handle's) that
// rec no longer holds; a nil fence refuses nothing.
func checkFence(fence *Lease, rec *TaskRecord) error {
	if fence == nil {
		return nil
	}
	l := *fence
	if rec.Lease == nil || *rec.Lease != l {
		if selftestBreakFencing {
			return nil // the robustness test's self-test: see selftest_on.go
		}
		return fmt.Errorf("%w: attempt %d of runner %q no longer holds the task", ErrLeaseLost, l.Attempt, l.Runner)
	}
	return nil
}

// Heartbeat adds one to runner's beat counter; see Backend.Heartbeat.
func (rt *Runtime) Heartbeat(ctx context.Context, runner string) error {
	if err := checkRunner(runner); err != nil {
		return err
	}
	start := rt.s.start()
	err := rt.s.b.Heartbeat(ctx, runner)
	rt.s.observe("heartbeat", start, err)
	return err
}

// Runners lists every registered runner with its beat counter.
func (rt *Runtime) Runners(ctx context.Context) ([]RunnerBeat, error) {
	start := rt.s.start()
	beats, err := rt.s.b.Runners(ctx)
	rt.s.observe("runners", start, err)
	return beats, err
}

// RemoveRunner forgets runner's beat counter (after its tasks were ended or
// claimed).
func (rt *Runtime) RemoveRunner(ctx context.Context, runner string) error {
	if err := checkRunner(runner); err != nil {
		return err
	}
	start := rt.s.start()
	err := rt.s.b.RemoveRunner(ctx, runner)
	rt.s.observe("remove_runner", start, err)
	return err
}

// RunnerTasks returns up to limit active tasks whose lease runner holds,
// each checked against its document (the backend's index is a hint).
func (rt *Runtime) RunnerTasks(ctx context.Context, runner string, limit int) ([]*TaskRecord, error) {
	if err := checkRunner(runner); err != nil {
		return nil, err
	}
	if limit <= 0 || exceeds(limit, rt.s.cfg.MaxPageSize) {
		return nil, fmt.Errorf("%w: %d, must be 1..%d", ErrInvalidPageSize, limit, rt.s.cfg.MaxPageSize)
	}
	start := rt.s.start()
	brs, err := rt.s.b.RunnerTasks(ctx, runner, limit)
	rt.s.observe("runner_tasks", start, err)
	if err != nil {
		return nil, err
	}
	out := make([]*TaskRecord, 0, len(brs))
	for _, br := range brs {
		rec, err := decodeRecord(br)
		if err != nil {
			return nil, err
		}
		if rec.Active() && rec.Lease != nil && rec.Lease.Runner == runner {
			out = append(out, rec)
		}
	}
	return out, nil
}

// EndOrphan fails an active task still held by lease, with message as its
// status message and a -32603 error as its outcome. When the task has
// moved on (another lease, or it ended) it returns ErrLeaseLost and writes
// nothing, so of many replicas sweeping at once exactly one ends it.
func (rt *Runtime) EndOrphan(ctx context.Context, owner, taskID string, lease Lease, message string) (*TaskRecord, error) {
	if err := rt.s.checkMessage(message); err != nil {
		return nil, err
	}
	return rt.s.mutate(ctx, owner, taskID, write{}, endOrphan(lease, message))
}

func endOrphan(lease Lease, message string) func(*TaskRecord) error {
	return func(r *TaskRecord) error {
		if !r.Active() || r.Lease == nil || *r.Lease != lease {
			return fmt.Errorf("%w: task moved on", ErrLeaseLost)
		}
		r.Task.Status = StatusFailed
		r.Task.StatusMessage = message
		r.Error = &RPCError{Code: CodeInternalError, Message: message}
		return nil
	}
}

// Written is the outcome of one write of a batch: the record written, or
// the error the single write would have given.
type Written struct {
	Record *TaskRecord
	Err    error
}

// EndOrphans is EndOrphan for many tasks as RunnerTasks returned them,
// each held by the lease it was read with: each write starts from the
// record given, without a read, and they go to the backend in batches
// (BatchUpdater) where it has them. A record that changed since it was
// read is read again and judged alone, as EndOrphan would. message gives
// each task's status message.
func (rt *Runtime) EndOrphans(ctx context.Context, orphans []*TaskRecord, message func(*TaskRecord) string) []Written {
	return rt.s.mutateMany(ctx, orphans, func(known *TaskRecord) (func(*TaskRecord) error, error) {
		msg := message(known)
		if known.Lease == nil {
			return nil, fmt.Errorf("%w: task has no lease", ErrLeaseLost)
		}
		if err := rt.s.checkMessage(msg); err != nil {
			return nil, err
		}
		return endOrphan(*known.Lease, msg), nil
	})
}

// ClaimAll is Claim for many tasks as RunnerTasks returned them, each from
// the lease it was read with, to runner to: batched as EndOrphans.
func (rt *Runtime) ClaimAll(ctx context.Context, orphans []*TaskRecord, to string) []Written {
	if err := checkRunner(to); err != nil {
		out := make([]Written, len(orphans))
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	return rt.s.mutateMany(ctx, orphans, func(known *TaskRecord) (func(*TaskRecord) error, error) {
		if known.Lease == nil {
			return nil, fmt.Errorf("%w: task has no lease", ErrLeaseLost)
		}
		return rt.claim(*known.Lease, to), nil
	})
}

// Handoff moves an active task held by lease `from` to runner `to` at the
// same attempt: a replica shutting down hands its resumable tasks to a
// runner id that others claim at once (the run was stopped, not lost, so
// it uses no attempt of its own). ErrLeaseLost when the task moved on.
func (rt *Runtime) Handoff(ctx context.Context, owner, taskID string, from Lease, to string) (*TaskRecord, error) {
	if err := checkRunner(to); err != nil {
		return nil, err
	}
	return rt.s.mutate(ctx, owner, taskID, write{}, func(r *TaskRecord) error {
		if !r.Active() || r.Lease == nil || *r.Lease != from {
			return fmt.Errorf("%w: task moved on", ErrLeaseLost)
		}
		r.Lease = &Lease{Runner: to, Attempt: from.Attempt}
		return nil
	})
}

// Claim moves an active task held by lease `from` to runner `to`, as the
// next attempt. When the task has moved on it returns ErrLeaseLost and
// writes nothing, so each attempt is claimed exactly once. The dead
// attempt's input requests go with it: pending requests and answers not
// yet taken are dropped, and an input_required task is working again (the
// new attempt asks again if it needs to).
func (rt *Runtime) Claim(ctx context.Context, owner, taskID string, from Lease, to string) (*TaskRecord, error) {
	if err := checkRunner(to); err != nil {
		return nil, err
	}
	return rt.s.mutate(ctx, owner, taskID, write{}, rt.claim(from, to))
}

func (rt *Runtime) claim(from Lease, to string) func(*TaskRecord) error {
	return func(r *TaskRecord) error {
		if !r.Active() || r.Lease == nil || *r.Lease != from {
			return fmt.Errorf("%w: task moved on", ErrLeaseLost)
		}
		r.Lease = &Lease{Runner: to, Attempt: from.Attempt + 1}
		r.InputRequests, r.InputResponses = nil, nil
		if r.Task.Status == StatusInputRequired {
			return rt.s.transition(r, StatusWorking, "")
		}
		return nil
	}
}

// Versions returns the current version of each live task among keys;
// missing and expired tasks are left out. It reads no documents: through
// a BatchGetter in batches of up to 1000, else one Get per key.
func (rt *Runtime) Versions(ctx context.Context, keys []Key) (map[Key]uint64, error) {
	out := make(map[Key]uint64, len(keys))
	if bg, ok := rt.s.b.(BatchGetter); ok {
		for start := 0; start < len(keys); start += 1000 {
			t := rt.s.start()
			recs, err := bg.GetMany(ctx, keys[start:min(start+1000, len(keys))])
			rt.s.observe("get_many", t, err)
			if err != nil {
				return nil, err
			}
			for _, r := range recs {
				out[Key{r.Owner, r.TaskID}] = r.Version
			}
		}
		return out, nil
	}
	for _, k := range keys {
		r, err := rt.s.get(ctx, k.Owner, k.TaskID)
		switch {
		case err == nil:
			out[k] = r.Version
		case errors.Is(err, ErrNotFound):
		default:
			return nil, err
		}
	}
	return out, nil
}
