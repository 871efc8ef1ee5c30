//go:build postgres

package mcptasks

import (
	"bytes"
	"context"
	"time"

	"github.com/mcptasks/mcptasks/internal/rawfloor"
)

// Interface guards
var _ rawfloor.Floorer = (*postgresBackend)(nil)

// pgFloorOwner is the owner of the floor's rows: not valid UTF-8, so no
// Store owner (the Store refuses such owners) can see or count them.
const pgFloorOwner = "\xff floor"

// RawFloor: a row of the task table the size of a task, under
// pgFloorOwner, read with a primary-key SELECT — what a get costs without
// the backend. It expires in ten minutes (the sweeper deletes it).
func (b *postgresBackend) RawFloor(ctx context.Context, key string, size int) (func(context.Context) error, func(context.Context) error, error) {
	owner, id := []byte(pgFloorOwner), []byte(key)
	_, err := b.pool.Exec(ctx, `INSERT INTO `+b.qualified()+` (owner, task_id, version, expires_at, data) VALUES ($1, $2, 1, $3, $4)`,
		owner, id, time.Now().Add(10*time.Minute), bytes.Repeat([]byte("x"), size))
	if err != nil {
		return nil, nil, b.fail(ctx, "floor", err)
	}
	sql := `SELECT version, data FROM ` + b.qualified() + ` WHERE owner = $1 AND task_id = $2`
	read := func(ctx context.Context) error {
		var v int64
		var data []byte
		return b.pool.QueryRow(ctx, sql, owner, id).Scan(&v, &data)
	}
	cleanup := func(ctx context.Context) error {
		_, err := b.pool.Exec(ctx, `DELETE FROM `+b.qualified()+` WHERE owner = $1 AND task_id = $2`, owner, id)
		return err
	}
	return read, cleanup, nil
}
