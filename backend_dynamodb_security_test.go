//go:build dynamodb

package mcptasks

import (
	"testing"

	"github.com/mcptasks/mcptasks/taskstore"
	"github.com/mcptasks/mcptasks/taskstore/storetest"
)

// FuzzDynamoDBLocalOwnerIsolation: no fuzzed owner string reaches another's
// task on DynamoDB Local (one table per fuzzing process).
//
//	go test -tags dynamodb -run '^$' -fuzz FuzzDynamoDBLocalOwnerIsolation -fuzztime 20s .
func FuzzDynamoDBLocalOwnerIsolation(f *testing.F) {
	// Opened here: the fuzz function itself may not use f.
	s := taskstore.New(newLocalBackend(f), storetest.IsolationConfig())
	storetest.FuzzOwnerIsolation(f, func(testing.TB) *taskstore.Store { return s }, true)
}
