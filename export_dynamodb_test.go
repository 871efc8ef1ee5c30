//go:build dynamodb

package mcptasks

import (
	"context"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// Test seams of the DynamoDB backend. Set them before the backend is used
// concurrently; clock must be safe for concurrent use.

// setDynamoClock makes b judge expiry by clock instead of time.Now.
func setDynamoClock(b taskstore.Backend, clock func() time.Time) { b.(*dynamoBackend).clock = clock }

// setDynamoRepairHook makes b call hook at each step of a counter repair:
// "scan" before the recount, "write" between the recount and its
// compare-and-swap, "done" after the swap, before the create is retried.
func setDynamoRepairHook(b taskstore.Backend, hook func(ctx context.Context, step string)) {
	b.(*dynamoBackend).repairHook = hook
}
