//go:build redis

package mcptasks

import (
	"bytes"
	"context"
	"time"

	"github.com/mcptasks/mcptasks/internal/rawfloor"
)

// Interface guards
var _ rawfloor.Floorer = (*redisBackend)(nil)

// RawFloor: a string key P{floor}:KEY (no owner's key: "floor" is not the
// unpadded base64url of any owner) read with GET.
func (b *redisBackend) RawFloor(ctx context.Context, key string, size int) (func(context.Context) error, func(context.Context) error, error) {
	k := b.prefix + "{floor}:" + key
	if err := b.client.Set(ctx, k, bytes.Repeat([]byte("x"), size), 10*time.Minute).Err(); err != nil {
		return nil, nil, b.fail(ctx, "floor", err)
	}
	read := func(ctx context.Context) error { return b.client.Get(ctx, k).Err() }
	cleanup := func(ctx context.Context) error { return b.client.Del(ctx, k).Err() }
	return read, cleanup, nil
}
