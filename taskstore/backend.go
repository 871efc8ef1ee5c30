package taskstore

import (
	"context"
	"time"
)

// Backend is the storage contract every backend implements: a versioned
// key-value store of opaque records, keyed by (owner, task id), with paged
// per-owner listing, per-owner quotas, and the few primitives runner leases
// need (a per-replica heartbeat and an index of records by runner).
//
// Every method is atomic on the server: a caller never observes a
// half-applied write, and two concurrent writers to one key cannot both
// succeed at the same version.
//
// Expiry: a record whose ExpiresAt has passed is gone. Get, Update, Delete,
// List and RunnerTasks treat it exactly like a missing record, and it does
// not count toward an owner's quotas, whether or not the backend has
// physically removed it yet.
//
// Expiry is decided at millisecond precision by the backend's clock (for a
// server whose conditions can read its own time, the server's; otherwise
// the calling process's, see each backend), so clock skew moves expiry by
// that skew.
//
// Keys: the Store passes a backend only task ids of the shape it makes (49
// bytes: 16 lowercase hex digits of a nanosecond timestamp, a dash, 32
// lowercase hex digits, so byte order is creation order) and runner ids of
// 1 to 128 bytes of UTF-8; a backend may rely on both.
//
// Errors are the package's sentinel errors (test them with errors.Is);
// context errors are returned unchanged. A call that fails any other way
// (timeout, lost connection) may or may not have been applied. Every write
// is conditional, so nothing is ever applied twice; a caller that retries a
// create or update whose reply was lost may see ErrAlreadyExists or
// ErrVersionConflict for its own write.
type Backend interface {
	// Create stores a new record at version 1. It never overwrites: if a live
	// record exists at the key it returns ErrAlreadyExists. When lim.MaxActive
	// > 0, rec is Active and the owner already has MaxActive live Active
	// records, it returns ErrQuotaExceeded; when lim.MaxStored > 0 and the
	// owner already has MaxStored live records of any kind, ErrStorageFull.
	// The checks and the write are one atomic step, so concurrent creates
	// never overshoot either bound.
	Create(ctx context.Context, rec Record, lim Limits) error

	// Get returns the live record at the key, or ErrNotFound.
	Get(ctx context.Context, owner, taskID string) (Record, error)

	// Update replaces Data, Active and Runner of the live record at
	// (rec.Owner, rec.TaskID) if its version is still expected, and returns
	// the new version (expected+1). ExpiresAt never changes. A missing or
	// expired record gives ErrNotFound; a record at another version gives
	// ErrVersionConflict. An update may turn a record Active even when the
	// owner is at its active quota (a task resuming is not a new task).
	Update(ctx context.Context, rec Record, expected uint64) (uint64, error)

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

	// Heartbeat adds one to the beat counter of runner (a replica's id),
	// registering it at 1 when absent. Liveness is judged by observers
	// seeing the counter move, on their own clocks: the counter carries no
	// time, so no two clocks are ever compared.
	Heartbeat(ctx context.Context, runner string) error

	// Runners returns every registered runner and its beat counter. Its cost
	// is proportional to the number of runners, not of records.
	Runners(ctx context.Context) ([]RunnerBeat, error)

	// RemoveRunner forgets runner's beat counter. It is idempotent; a later
	// Heartbeat registers the runner again.
	RemoveRunner(ctx context.Context, runner string) error

	// RunnerTasks returns up to limit live records that were written with
	// Runner == runner, in no particular order. It is a hint: an entry may
	// be stale (the record has since moved to another runner), so callers
	// re-check each record before acting on it. Its cost is proportional to
	// limit, never a scan of the store. Backends drop stale entries on
	// their own when records change, are deleted or expire.
	RunnerTasks(ctx context.Context, runner string, limit int) ([]Record, error)

	// MaxRecordSize is the largest Data the backend can store, in bytes, or 0
	// when it has no limit of its own. Writes above it give ErrRecordTooLarge.
	MaxRecordSize() int

	// Close releases the backend's resources and stops its goroutines. It is
	// idempotent; other calls after it fail.
	Close() error
}

// Limits are the per-owner bounds Backend.Create enforces atomically; zero
// means no bound.
type Limits struct {
	// MaxActive caps the owner's live Active records (working or
	// input_required tasks): the spec's cap on concurrent tasks.
	MaxActive int
	// MaxStored caps the owner's live records of any status, so that
	// storage stays bounded while finished tasks wait out their TTL.
	MaxStored int
}

// Record is one stored task as a backend sees it: an opaque document plus
// the few fields a backend needs for keys, ordering, expiry, quotas and the
// runner index. The Store derives Active and Runner from the document, so
// they always agree with it.
type Record struct {
	Owner  string
	TaskID string
	// Data is the JSON document; backends store it byte for byte. The
	// Data of a record a backend returns is the caller's: the backend
	// keeps no reference to it and never changes it (the Store hands out
	// records whose raw values are slices of it, without copying). A
	// backend keeps no reference to the Data it is passed either.
	Data []byte
	// Version is assigned by the backend: 1 on create, +1 on every update.
	Version uint64
	// ExpiresAt is when the record stops existing; zero means never.
	ExpiresAt time.Time
	// Active reports whether the task is working or input_required; the
	// active quota counts these.
	Active bool
	// Runner is the id of the replica holding the task's lease, or "".
	Runner string
	// Status is the task's status, derived from the document like Active.
	// A backend that implements StatusIndex stores it and returns it on
	// every read; any other backend may return it empty.
	Status Status
}

// Expired reports whether the record has expired at now.
func (r Record) Expired(now time.Time) bool {
	return !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt)
}

// RunnerBeat is a registered runner and its heartbeat counter.
type RunnerBeat struct {
	Runner string
	Beat   uint64
}

// Notifier is implemented by backends that can push changes to every
// process sharing the store (memory in process, Redis over pub/sub). With
// it, waiters wake when a task changes instead of polling; without it they
// poll at the task's pollInterval.
type Notifier interface {
	// Subscribe calls fn for every Create, Update and Delete applied by any
	// process, until ctx ends; it returns ctx's error then, or the error
	// that ended the feed. fn runs on one goroutine, in order, and must not
	// block. Delivery is best effort: whenever the feed is (re)established
	// fn first gets a Change with Resync set, meaning changes before it may
	// have been missed and watchers should re-read what they watch.
	Subscribe(ctx context.Context, fn func(Change)) error
}

// Change names a record that changed, or, with Resync, says that changes
// may have been missed.
type Change struct {
	Owner  string
	TaskID string
	// Version is the version the change wrote (1 for a create), or 0 for a
	// delete or when unknown (a message of an earlier release). A writer
	// that sees its own version come back knows the change is its own and
	// need not read the record again; 0 always means "read it".
	Version uint64
	Resync  bool
}

// BatchGetter is implemented by backends that read many records in fewer
// round trips than one Get each (DynamoDB: BatchGetItem, 100 keys a
// request; Redis: one pipeline). Replicas without a change feed poll the
// tasks they watch through it.
type BatchGetter interface {
	// GetMany returns the live records among keys, in any order; missing
	// and expired keys are left out. keys holds at most 1000 entries.
	GetMany(ctx context.Context, keys []Key) ([]Record, error)
}

// BatchUpdater is implemented by backends that apply many updates in
// fewer round trips than one Update each (Redis: a pipeline per node;
// PostgreSQL: one statement; DynamoDB: conditional writes in parallel).
// Replicas end and claim the tasks of a dead replica through it.
type BatchUpdater interface {
	// UpdateMany applies each update exactly as Update would, each its own
	// compare-and-swap on its Expected version: one failing does not stop
	// or undo the others, and the batch as a whole is not atomic. It
	// returns one result per update, in order: the new version, or the
	// error Update would have given (ErrNotFound, ErrVersionConflict, …).
	// The error it returns itself is for a batch that failed as a whole
	// (then any of the updates may or may not have been applied, as for a
	// failed Update). updates holds at most 1000 entries.
	UpdateMany(ctx context.Context, updates []Update) ([]UpdateResult, error)
}

// Update is one compare-and-swap of a batch: Record replaces the record
// at its key if that is still at version Expected.
type Update struct {
	Record   Record
	Expected uint64
}

// UpdateResult is the outcome of one Update of a batch.
type UpdateResult struct {
	Version uint64
	Err     error
}

// Key names one record.
type Key struct {
	Owner  string
	TaskID string
}

// MaxStatusPage is the largest limit StatusIndex.ListByStatus accepts.
const MaxStatusPage = 1000

// StatusIndex is implemented by backends that list and count records
// across owners by status: the operator's view of a store (Runtime's
// ListAllOwners and CountByStatus), never an owner's. Owner isolation of
// every other call is unchanged.
type StatusIndex interface {
	// ListByStatus returns up to limit live records of every owner whose
	// Status is status, in creation order (oldest first: ascending task id,
	// then owner), starting strictly after the key `after` (the zero Key
	// starts at the oldest). more reports whether records may follow the
	// last one returned. The cost of a call is proportional to limit, not
	// to the number of records stored: the backend keeps an index on
	// (status, task id, owner). limit is 1 to MaxStatusPage; other values
	// give ErrInvalidPageSize. On a backend whose index can be stale (Redis Cluster,
	// where it lives in another slot than the record) each entry is checked
	// against its record before it is returned, so a page may hold fewer
	// than limit records, even none, while more is true. Such a backend
	// drops the stale entries it passed, so a call again from the same key
	// gets further: a caller that got an empty page with more may repeat it.
	ListByStatus(ctx context.Context, status Status, after Key, limit int) (recs []Record, more bool, err error)

	// CountByStatus returns how many live records have each status,
	// without a scan of the store. Where the server deletes expired
	// records on its own (Redis expiry, DynamoDB TTL) the counts are
	// approximate: they include expired records until the backend's
	// DeleteExpired (or its own repair) accounts for them. Each backend's
	// docs say how far they can drift and how they are repaired.
	CountByStatus(ctx context.Context) (map[Status]int64, error)
}
