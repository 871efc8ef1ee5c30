//go:build redis

package mcptasks

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcptasks/mcptasks/internal/rawfloor"
)

// Interface guards
var (
	_ rawfloor.Floorer      = (*redisBackend)(nil)
	_ rawfloor.BatchFloorer = (*redisBackend)(nil)
)

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

// RawBatchFloor: n string keys P{floor:KEY:I}, each its own hash tag, so
// that on a cluster they spread over the nodes as owners' records do (no
// owner's or runner's key: ":" is not base64url, and runner tags start
// "r:"), written with one pipeline of n SETs (go-redis sends each node its
// share in one round trip, the nodes in parallel).
func (b *redisBackend) RawBatchFloor(ctx context.Context, key string, n, size int) (func(context.Context) error, func(context.Context) error, error) {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = b.prefix + "{floor:" + key + ":" + strconv.Itoa(i) + "}"
	}
	value := bytes.Repeat([]byte("x"), size)
	each := func(ctx context.Context, op func(p redis.Pipeliner, k string)) error {
		pipe := b.client.Pipeline()
		for _, k := range keys {
			op(pipe, k)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	write := func(ctx context.Context) error {
		return each(ctx, func(p redis.Pipeliner, k string) { p.Set(ctx, k, value, 10*time.Minute) })
	}
	// DEL per key: a cluster refuses one DEL of keys in several slots.
	cleanup := func(ctx context.Context) error {
		return each(ctx, func(p redis.Pipeliner, k string) { p.Del(ctx, k) })
	}
	if err := write(ctx); err != nil {
		return nil, nil, b.fail(ctx, "floor", err)
	}
	return write, cleanup, nil
}
