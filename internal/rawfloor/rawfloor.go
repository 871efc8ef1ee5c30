// Package rawfloor measures the physical floor of a backend's server for
// benchmarks (the command's bench mode, the backends' own benchmarks): the
// plainest read the server's own client does, which the Store's operations
// are divided by, and the plainest batch write, which batched updates are
// divided by.
package rawfloor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"

	"github.com/mcptasks/mcptasks/taskstore"
)

// ErrUnsupported is Open's answer for a backend without a server (memory)
// or one that does not know how to measure its floor.
var ErrUnsupported = errors.New("mcptasks: this backend has no raw floor")

// Floorer is implemented by backends whose server has a cheapest read: one
// plain round trip for a value of a given size, no record semantics.
type Floorer interface {
	RawFloor(ctx context.Context, key string, size int) (read func(context.Context) error, cleanup func(context.Context) error, err error)
}

// Open stores a value of size bytes on b's server, outside every owner's
// keys, and returns the plainest read of it that the server's own client
// does (Redis: GET; DynamoDB: a consistent GetItem; PostgreSQL: a
// primary-key SELECT). cleanup removes the value (it also expires on its
// own within ten minutes where the server supports it).
func Open(ctx context.Context, b taskstore.Backend, size int) (read func(context.Context) error, cleanup func(context.Context) error, err error) {
	f, ok := b.(Floorer)
	if !ok {
		return nil, nil, ErrUnsupported
	}
	var id [8]byte
	rand.Read(id[:])
	return f.RawFloor(ctx, hex.EncodeToString(id[:]), size)
}

// BatchFloorer is implemented by backends whose server has a cheapest
// batch write: n values of a given size, each replaced by its key, in as
// few requests as the server allows, no record semantics (no condition,
// no notification, no index but the key's). Batched record writes
// (taskstore.BatchUpdater) are divided by it.
type BatchFloorer interface {
	RawBatchFloor(ctx context.Context, key string, n, size int) (write func(context.Context) error, cleanup func(context.Context) error, err error)
}

// OpenBatch stores n values of size bytes on b's server, outside every
// owner's keys, and returns the plainest write that replaces all of them
// (PostgreSQL: one UPDATE … FROM unnest of the keys and values; Redis: a
// pipeline of n SETs, whose keys spread over a cluster's nodes as owners'
// records do). cleanup
// removes the values (they also expire on their own within ten minutes
// where the server supports it).
func OpenBatch(ctx context.Context, b taskstore.Backend, n, size int) (write func(context.Context) error, cleanup func(context.Context) error, err error) {
	f, ok := b.(BatchFloorer)
	if !ok {
		return nil, nil, ErrUnsupported
	}
	var id [8]byte
	rand.Read(id[:])
	return f.RawBatchFloor(ctx, hex.EncodeToString(id[:]), n, size)
}
