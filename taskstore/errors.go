package taskstore

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error the Store or a Backend returns wraps one of
// these (a validation error wraps ErrInvalidArgument and its own sentinel
// below), or is a context error; test with errors.Is. No error text ever
// names an owner.
var (
	// ErrNotFound: no live task with that id for that owner. A task of
	// another owner, an expired task and a malformed id all answer this.
	ErrNotFound = errors.New("task not found")
	// ErrAlreadyExists: a create hit an existing live record (backend level).
	ErrAlreadyExists = errors.New("task already exists")
	// ErrVersionConflict: a compare-and-swap lost to another writer (backend level).
	ErrVersionConflict = errors.New("version conflict")
	// ErrInvalidTransition: the status change is not allowed from the current status.
	ErrInvalidTransition = errors.New("invalid status transition")
	// ErrNotReady: the task has no result yet.
	ErrNotReady = errors.New("task result not ready")
	// ErrInvalidArgument is the parent of every validation error below.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrConcurrentModification: the retries of a mutation all lost races.
	ErrConcurrentModification = errors.New("concurrent modification")
	// ErrQuotaExceeded: the owner already has the maximum number of active
	// (working or input_required) tasks.
	ErrQuotaExceeded = errors.New("active task quota exceeded: wait for a running task to finish, or cancel one")
	// ErrStorageFull: the owner already keeps the maximum number of stored
	// tasks, finished ones included, until their TTL ends.
	ErrStorageFull = errors.New("stored task limit reached: finished tasks are kept until their ttl ends; request a shorter ttl")
	// ErrLeaseLost: the task is no longer run by this runner (another
	// replica took it over, or it was ended as orphaned), so the write was
	// refused.
	ErrLeaseLost = errors.New("task lease lost")
	// ErrRateLimited: the owner is creating tasks faster than Config.CreatesPerSecond.
	ErrRateLimited = errors.New("task creation rate limit exceeded")
	// ErrRecordTooLarge: the serialized task exceeds what the backend can store.
	ErrRecordTooLarge = errors.New("task record too large for backend")
	// ErrBackend wraps failures of the storage server (network, protocol).
	ErrBackend = errors.New("storage backend error")
	// ErrUnsupported: the backend lacks an optional interface the call
	// needs (Runtime.ListAllOwners and CountByStatus need StatusIndex).
	ErrUnsupported = errors.New("not supported by this backend")
)

// ErrNotDurable: a write was not confirmed as durable as the backend was
// configured to make it (Redis wait_replicas: fewer replicas acknowledged it
// in time). The write may still have applied. It satisfies
// errors.Is(err, ErrBackend).
var ErrNotDurable = fmt.Errorf("%w: write not confirmed durable", ErrBackend)

// Validation errors; each satisfies errors.Is(err, ErrInvalidArgument).
var (
	ErrVariablesTooLarge  = fmt.Errorf("%w: variables too large", ErrInvalidArgument)
	ErrResultTooLarge     = fmt.Errorf("%w: result too large", ErrInvalidArgument)
	ErrTooDeep            = fmt.Errorf("%w: value nested too deeply", ErrInvalidArgument)
	ErrStringTooLong      = fmt.Errorf("%w: string too long", ErrInvalidArgument)
	ErrTTLTooLong         = fmt.Errorf("%w: ttl above maximum", ErrInvalidArgument)
	ErrInvalidOwner       = fmt.Errorf("%w: invalid owner", ErrInvalidArgument)
	ErrAnonymousOwner     = fmt.Errorf("%w: anonymous owner not allowed", ErrInvalidArgument)
	ErrInvalidCursor      = fmt.Errorf("%w: invalid cursor", ErrInvalidArgument)
	ErrInvalidStatus      = fmt.Errorf("%w: invalid status", ErrInvalidArgument)
	ErrInvalidJSON        = fmt.Errorf("%w: invalid JSON value", ErrInvalidArgument)
	ErrMessageTooLong     = fmt.Errorf("%w: status message too long", ErrInvalidArgument)
	ErrInvalidPageSize    = fmt.Errorf("%w: invalid page size", ErrInvalidArgument)
	ErrInvalidRequestName = fmt.Errorf("%w: invalid request method", ErrInvalidArgument)
	// ErrInvalidTraceContext: a CreateRequest's Trace is not what
	// NewTraceContext makes of its strings.
	ErrInvalidTraceContext = fmt.Errorf("%w: invalid trace context", ErrInvalidArgument)
)

// JSON-RPC error codes used by MCP.
const (
	CodeInvalidParams = -32602
	CodeInternalError = -32603
)

// RPCCode maps an error from this package to its JSON-RPC error code. It is
// the one place where that mapping lives: client mistakes (unknown task,
// bad transition, bad input, result not ready) are -32602; everything else,
// including quota, races and storage failures, is -32603.
func RPCCode(err error) int {
	switch {
	case errors.Is(err, ErrNotFound),
		errors.Is(err, ErrInvalidTransition),
		errors.Is(err, ErrNotReady),
		errors.Is(err, ErrInvalidArgument):
		return CodeInvalidParams
	default:
		return CodeInternalError
	}
}
