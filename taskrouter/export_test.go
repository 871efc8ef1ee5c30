package taskrouter

import (
	"context"

	"github.com/mcptasks/mcptasks/taskstore"
)

// StopLeaseKeeper stops r's heartbeat and sweeps without touching its
// runs, as if the process had frozen for good: its lease goes stale.
func StopLeaseKeeper(r *Router) {
	r.bgCancel()
	r.bg.Wait()
}

// Await is what tasks/result waits with: until the task is terminal.
func Await(ctx context.Context, r *Router, owner, taskID string) (*taskstore.TaskRecord, error) {
	return r.runner.await(ctx, owner, taskID, nil)
}
