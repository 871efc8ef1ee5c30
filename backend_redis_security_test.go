//go:build redis

package mcptasks

import (
	"testing"

	"github.com/mcptasks/mcptasks/taskstore"
	"github.com/mcptasks/mcptasks/taskstore/storetest"
)

// FuzzRedisOwnerIsolation: no fuzzed owner string reaches another's task
// on a real Redis (standalone; one key prefix per fuzzing process).
//
//	go test -tags redis -run '^$' -fuzz FuzzRedisOwnerIsolation -fuzztime 20s .
func FuzzRedisOwnerIsolation(f *testing.F) {
	newBackend := newRedisFactory(redisTestURL(f, envRedisURL))
	// Opened here: the fuzz function itself may not use f.
	s := taskstore.New(newBackend(f), storetest.IsolationConfig())
	storetest.FuzzOwnerIsolation(f, func(testing.TB) *taskstore.Store { return s }, true)
}
