//go:build postgres

package mcptasks

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/mcptasks/mcptasks/internal/rawfloor"
)

// Interface guards
var (
	_ rawfloor.Floorer      = (*postgresBackend)(nil)
	_ rawfloor.BatchFloorer = (*postgresBackend)(nil)
)

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

// RawBatchFloor: n rows of the task table the size of a task, under
// pgFloorOwner, all replaced by one UPDATE … FROM unnest of their ids and
// data — what a batch of n updates costs without the backend's condition,
// runner and active columns, lock order and notifications. They expire in
// ten minutes (the sweeper deletes them).
func (b *postgresBackend) RawBatchFloor(ctx context.Context, key string, n, size int) (func(context.Context) error, func(context.Context) error, error) {
	owner := []byte(pgFloorOwner)
	ids, data := make([][]byte, n), make([][]byte, n)
	for i := range n {
		ids[i], data[i] = []byte(key+"-"+strconv.Itoa(i)), bytes.Repeat([]byte("x"), size)
	}
	_, err := b.pool.Exec(ctx, `INSERT INTO `+b.qualified()+` (owner, task_id, version, expires_at, data)
SELECT $1, id, 1, $2, d FROM unnest($3::bytea[], $4::bytea[]) AS u(id, d)`, owner, time.Now().Add(10*time.Minute), ids, data)
	if err != nil {
		return nil, nil, b.fail(ctx, "floor", err)
	}
	sql := `UPDATE ` + b.qualified() + ` AS r SET version = r.version + 1, data = u.d
FROM unnest($2::bytea[], $3::bytea[]) AS u(id, d) WHERE r.owner = $1 AND r.task_id = u.id`
	write := func(ctx context.Context) error {
		tag, err := b.pool.Exec(ctx, sql, owner, ids, data)
		if err == nil && tag.RowsAffected() != int64(n) {
			err = fmt.Errorf("the floor's batch UPDATE changed %d rows of %d", tag.RowsAffected(), n)
		}
		return err
	}
	cleanup := func(ctx context.Context) error {
		_, err := b.pool.Exec(ctx, `DELETE FROM `+b.qualified()+` WHERE owner = $1 AND task_id = ANY($2::bytea[])`, owner, ids)
		return err
	}
	return write, cleanup, nil
}
