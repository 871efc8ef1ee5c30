package taskstore

import (
	"context"
	"time"
)

// Backend is the storage contract every backend implements: a versioned
// key-value store of opaque records, keyed by (owner, task id), with paged
// per-owner listing. It holds no domain rules; the Store does.
//
// Every method is atomic on the server: a caller never observes a
// half-applied write, and two concurrent writers to one key cannot both
// succeed at the same version.
//
// Expiry: a record whose ExpiresAt has passed is gone. Get, Update, Delete
// and List treat it exactly like a missing record, and it does not count
// toward an owner's quota, whether or not the backend has physically
// removed it yet.
//
// Expiry is decided at millisecond precision by the backend's clock (for a
// server, the server's), so clock skew between a Store and its server moves
// expiry by that skew.
//
// Errors are the package's sentinel errors (test them with errors.Is);
// context errors are returned unchanged. A call that fails any other way
// (timeout, lost connection) may or may not have been applied. Every write
// is conditional, so nothing is ever applied twice; a caller that retries a
// create or update whose reply was lost may see ErrAlreadyExists or
// ErrVersionConflict for its own write.
type Backend interface {
	// Create stores a new record at version 1. It never overwrites: if a live
	// record exists at the key it returns ErrAlreadyExists. If maxPerOwner > 0
	// and the owner already has maxPerOwner live records it returns
	// ErrQuotaExceeded; the check and the write are one atomic step, so
	// concurrent creates never overshoot the quota.
	Create(ctx context.Context, rec Record, maxPerOwner int) error

	// Get returns the live record at the key, or ErrNotFound.
	Get(ctx context.Context, owner, taskID string) (Record, error)

	// Update replaces the data of a live record if its version is still
	// expected, and returns the new version (expected+1). ExpiresAt and
	// CreatedAt never change. A missing or expired record gives ErrNotFound;
	// a record at another version gives ErrVersionConflict.
	Update(ctx context.Context, owner, taskID string, data []byte, expected uint64) (uint64, error)

	// Delete removes the record and reports whether a live one existed.
	// Deleting a missing record is not an error.
	Delete(ctx context.Context, owner, taskID string) (bool, error)

	// List returns up to limit live records of owner, ordered by task id
	// descending (newest first), starting strictly after the task id `after`
	// ("" starts at the newest). more reports whether records may follow the
	// last one returned. The cost of a call is proportional to limit, not to
	// the number of records the owner has.
	List(ctx context.Context, owner, after string, limit int) (recs []Record, more bool, err error)

	// DeleteExpired removes expired records and returns how many it removed.
	// It is best effort: backends whose server purges on its own may return 0.
	DeleteExpired(ctx context.Context) (int, error)

	// MaxRecordSize is the largest Data the backend can store, in bytes, or 0
	// when it has no limit of its own. Writes above it give ErrRecordTooLarge.
	MaxRecordSize() int

	// Close releases the backend's resources and stops its goroutines. It is
	// idempotent; other calls after it fail.
	Close() error
}

// Record is one stored task as a backend sees it: an opaque document plus
// the few fields a backend needs for keys, ordering and expiry.
type Record struct {
	Owner  string
	TaskID string
	// Data is the JSON document; backends store it byte for byte.
	Data []byte
	// Version is assigned by the backend: 1 on create, +1 on every update.
	Version uint64
	// ExpiresAt is when the record stops existing; zero means never.
	ExpiresAt time.Time
}

// Expired reports whether the record has expired at now.
func (r Record) Expired(now time.Time) bool {
	return !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt)
}
