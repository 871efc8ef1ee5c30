package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// Takeover of resumable tasks. Such a task keeps, outside the
// client-visible variables, what a re-run needs (a Rerun). When its runner
// dies, the replica that finds the orphan claims it (a compare-and-swap on
// the lease: exactly one claimer per attempt) and its Host runs the tool
// again, with the same task id and a handle whose variables are the
// checkpoints the earlier attempts wrote. After the last attempt the task
// fails as any orphan does.

// ReleasedSuffix marks the runner id a shutting-down replica hands its
// resumable tasks to; other replicas treat it as dead at once. A runner id
// therefore never contains '#'.
const ReleasedSuffix = "#released"

// releaseCallTimeout bounds each store call of Release (inside its ctx),
// as the router bounds each store call of a run.
const releaseCallTimeout = 10 * time.Second

// Rerun is what another replica needs to run a resumable task again, as
// stored in taskstore.TaskRecord.Rerun.
type Rerun struct {
	Tool        string          `json:"tool"`
	Arguments   json.RawMessage `json:"arguments,omitempty"`
	User        string          `json:"user,omitempty"`
	Scopes      []string        `json:"scopes,omitempty"`
	MaxAttempts int             `json:"maxAttempts"`
	// Client is what a re-run declares of the original client: the
	// capabilities its requests to the client need (the router's JSON).
	Client json.RawMessage `json:"client,omitempty"`
}

// ParseRerun reads a record's Rerun; nil when the task is not resumable.
func ParseRerun(rec *taskstore.TaskRecord) *Rerun {
	if len(rec.Rerun) == 0 {
		return nil
	}
	var info Rerun
	if json.Unmarshal(rec.Rerun, &info) != nil || info.Tool == "" {
		return nil
	}
	return &info
}

// takeOver claims an orphaned resumable task for this replica and has the
// host run it again; it reports false when the task is not this replica's
// to resume (not resumable, no attempts left, or the host cannot run it),
// so the caller ends it instead.
func (k *Keeper) takeOver(ctx context.Context, rec *taskstore.TaskRecord) bool {
	info := ParseRerun(rec)
	if info == nil || rec.Lease.Attempt >= info.MaxAttempts {
		return false
	}
	if k.host.Closing() {
		return true // leave it to a replica that stays
	}
	if err := k.host.CanResume(ctx); err != nil {
		k.log.Warn("cannot resume task here", "task", rec.Task.TaskID, "error", err)
		return false
	}
	cctx, cancel := k.call(ctx)
	claimed, err := k.rt.Claim(cctx, rec.OwnerID, rec.Task.TaskID, *rec.Lease, k.cfg.Runner)
	cancel()
	if err != nil {
		if !errors.Is(err, taskstore.ErrLeaseLost) && !errors.Is(err, taskstore.ErrNotFound) {
			k.log.Warn("claiming orphaned task failed", "task", rec.Task.TaskID, "error", err)
		}
		return true
	}
	k.log.Warn("task taken over", "task", rec.Task.TaskID, "owner", k.cfg.LogOwner(rec.OwnerID), "from", rec.Lease.Runner, "attempt", claimed.Lease.Attempt, "of", info.MaxAttempts)
	if err := k.host.Resume(ctx, claimed, info); err != nil {
		k.log.Warn("resuming task failed", "task", rec.Task.TaskID, "error", err)
	}
	return true
}

// orphanMessage says why an orphan ended.
func orphanMessage(rec *taskstore.TaskRecord) string {
	if info := ParseRerun(rec); info != nil && rec.Lease.Attempt >= info.MaxAttempts {
		return fmt.Sprintf("%s (attempt %d of %d; none left)", OrphanedMessage, rec.Lease.Attempt, info.MaxAttempts)
	}
	return OrphanedMessage
}

// released reports whether runner is an id a shutting-down replica handed
// its tasks to.
func released(runner string) bool { return strings.HasSuffix(runner, ReleasedSuffix) }

// Release stops this replica's resumable runs, waits for their handlers
// (until ctx is done), and hands their tasks to this runner's released id.
// It returns how many it could not hand off (still held by this runner).
func (k *Keeper) Release(ctx context.Context) (kept int) {
	var runs []LocalRun
	for _, rn := range k.host.Runs() {
		if rn.Resumable {
			runs = append(runs, rn)
		}
	}
	if len(runs) == 0 {
		return 0
	}
	for _, rn := range runs {
		rn.Stop() // finished first: the cancelled handler's outcome is not stored
	}
	to := k.cfg.Runner + ReleasedSuffix
	// The released id is registered first: a task handed to an id nobody
	// lists would never be found.
	hctx, cancel := context.WithTimeout(ctx, releaseCallTimeout)
	err := k.rt.Heartbeat(hctx, to)
	cancel()
	if err != nil {
		k.log.Error("releasing resumable tasks failed; they are taken over after the lease timeout", "error", err)
		return len(runs)
	}
	for _, rn := range runs {
		select {
		case <-rn.Exited:
		case <-ctx.Done():
		}
		hctx, cancel := context.WithTimeout(ctx, releaseCallTimeout)
		_, err := k.rt.Handoff(hctx, rn.Owner, rn.ID, rn.Lease, to)
		cancel()
		switch {
		case err == nil:
			k.log.Info("task released for takeover", "task", rn.ID, "owner", k.cfg.LogOwner(rn.Owner), "attempt", rn.Lease.Attempt)
		case errors.Is(err, taskstore.ErrLeaseLost), errors.Is(err, taskstore.ErrNotFound):
		default:
			k.log.Error("releasing task failed", "task", rn.ID, "error", err)
			kept++
		}
	}
	return kept
}
