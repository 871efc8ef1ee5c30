package mcptasks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"

	"github.com/mcptasks/mcptasks/taskstore"
)

// ErrNoFloor is RawFloor's answer for a backend without a server (memory)
// or one that does not know how to measure its floor.
var ErrNoFloor = errors.New("mcptasks: this backend has no raw floor")

// rawFloorer is implemented by backends whose server has a cheapest read:
// one plain round trip for a value of a given size, no record semantics.
type rawFloorer interface {
	rawFloor(ctx context.Context, key string, size int) (read func(context.Context) error, cleanup func(context.Context) error, err error)
}

// RawFloor stores a value of size bytes on b's server, outside every
// owner's keys, and returns the plainest read of it that the server's own
// client does (Redis: GET; DynamoDB: a consistent GetItem): the physical
// floor of one round trip, which benchmarks divide the Store's operations
// by. cleanup removes the value (it also expires on its own within ten
// minutes where the server supports it).
func RawFloor(ctx context.Context, b taskstore.Backend, size int) (read func(context.Context) error, cleanup func(context.Context) error, err error) {
	f, ok := b.(rawFloorer)
	if !ok {
		return nil, nil, ErrNoFloor
	}
	var id [8]byte
	rand.Read(id[:])
	return f.rawFloor(ctx, hex.EncodeToString(id[:]), size)
}
