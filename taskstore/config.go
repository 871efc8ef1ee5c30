package taskstore

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Config holds the Store's limits and defaults. A zero field takes its
// default (see DefaultConfig); a negative size or count means "no limit";
// a negative DefaultTTL makes tasks unlimited unless a TTL is requested.
type Config struct {
	// MaxVariablesSize caps a task's variables after a merge, counted as
	// the record stores them (one JSON object, values as they were given).
	MaxVariablesSize int
	// MaxResultSize caps a task's result, serialized.
	MaxResultSize int
	// MaxDepth caps the nesting of a variable value or result (root = 0,
	// each array or object level adds 1).
	MaxDepth int
	// MaxStringLen caps each string in a variable value (keys included) and
	// the status message, counted in encoded bytes.
	MaxStringLen int
	// MaxOwnerLen caps the owner string, in bytes.
	MaxOwnerLen int
	// MaxActiveTasks caps an owner's active (working or input_required)
	// tasks: the spec's cap on concurrent tasks per requestor.
	MaxActiveTasks int
	// MaxStoredTasks caps an owner's live (unexpired) tasks of any status,
	// so that finished tasks kept until their TTL cannot fill the store.
	MaxStoredTasks int
	// DefaultTTL applies when a create asks for none.
	DefaultTTL time.Duration
	// MaxTTL rejects (never clamps) a requested TTL above it.
	MaxTTL time.Duration
	// PollInterval is suggested to clients when a create asks for none.
	PollInterval time.Duration
	// AllowAnonymous accepts the anonymous owners "" and "local".
	AllowAnonymous bool
	// MaxRetries bounds how often a mutation re-reads and retries after
	// losing a compare-and-swap race before giving up with
	// ErrConcurrentModification.
	MaxRetries int
	// CreatesPerSecond, when positive, limits how fast one owner may create
	// tasks through this Store, allowing bursts of CreateBurst (default 1);
	// over it Create fails with ErrRateLimited. Off by default. The limit is
	// per Store: N replicas admit up to N times the rate.
	CreatesPerSecond float64
	CreateBurst      int
	// DefaultPageSize and MaxPageSize govern List.
	DefaultPageSize int
	MaxPageSize     int
	// ObserveBackend, when set, is called after each call the Store (and
	// its Runtime) makes to the backend, with the call's name, how long it
	// took and its error (nil on success; ErrNotFound, ErrVersionConflict
	// and the quota errors are answers, not failures). The names are
	// create, get, update, update_many, list, delete_expired, heartbeat,
	// runners, remove_runner, runner_tasks, get_many, list_by_status and
	// count_by_status. It runs on the caller's goroutine and must be
	// quick. Nil times nothing.
	ObserveBackend func(op string, d time.Duration, err error)
}

// Defaults, as in the Rust original where it had one.
const (
	DefaultMaxVariablesSize = 1 << 20
	DefaultMaxResultSize    = 1 << 20
	DefaultMaxDepth         = 10
	DefaultMaxStringLen     = 64 << 10
	DefaultMaxOwnerLen      = 512
	DefaultMaxActiveTasks   = 100
	DefaultMaxStoredTasks   = 1000
	DefaultTTL              = time.Hour
	DefaultMaxTTL           = 24 * time.Hour
	DefaultPollInterval     = 500 * time.Millisecond
	DefaultMaxRetries       = 32
	DefaultPageSize         = 50
	DefaultMaxPageSize      = 1000
)

// AnonymousOwner is the owner of requests that carry no identity.
const AnonymousOwner = "local"

// DefaultConfig returns the defaults every zero Config field takes.
func DefaultConfig() Config {
	return Config{
		MaxVariablesSize: DefaultMaxVariablesSize,
		MaxResultSize:    DefaultMaxResultSize,
		MaxDepth:         DefaultMaxDepth,
		MaxStringLen:     DefaultMaxStringLen,
		MaxOwnerLen:      DefaultMaxOwnerLen,
		MaxActiveTasks:   DefaultMaxActiveTasks,
		MaxStoredTasks:   DefaultMaxStoredTasks,
		DefaultTTL:       DefaultTTL,
		MaxTTL:           DefaultMaxTTL,
		PollInterval:     DefaultPollInterval,
		MaxRetries:       DefaultMaxRetries,
		DefaultPageSize:  DefaultPageSize,
		MaxPageSize:      DefaultMaxPageSize,
	}
}

// withDefaults fills zero fields. A backend with a record size limit gets
// variable and result defaults that fit inside it together.
func (c Config) withDefaults(maxRecord int) Config {
	d := DefaultConfig()
	if maxRecord > 0 {
		// Leave room for the task's other fields and JSON escaping.
		d.MaxVariablesSize = min(d.MaxVariablesSize, maxRecord*4/10)
		d.MaxResultSize = min(d.MaxResultSize, maxRecord*4/10)
		d.MaxStringLen = min(d.MaxStringLen, d.MaxVariablesSize)
	}
	fill := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	fill(&c.MaxVariablesSize, d.MaxVariablesSize)
	fill(&c.MaxResultSize, d.MaxResultSize)
	fill(&c.MaxDepth, d.MaxDepth)
	fill(&c.MaxStringLen, d.MaxStringLen)
	fill(&c.MaxOwnerLen, d.MaxOwnerLen)
	fill(&c.MaxActiveTasks, d.MaxActiveTasks)
	fill(&c.MaxStoredTasks, d.MaxStoredTasks)
	fill(&c.MaxRetries, d.MaxRetries)
	fill(&c.DefaultPageSize, d.DefaultPageSize)
	fill(&c.MaxPageSize, d.MaxPageSize)
	if c.DefaultTTL == 0 {
		c.DefaultTTL = d.DefaultTTL
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = d.MaxTTL
	}
	if c.PollInterval <= 0 {
		c.PollInterval = d.PollInterval
	}
	return c
}

// exceeds reports whether v is above limit, where a negative limit means none.
func exceeds(v, limit int) bool { return limit >= 0 && v > limit }

// checkOwner validates an owner and maps the anonymous spellings to
// AnonymousOwner. Error texts never include the owner.
func (c *Config) checkOwner(owner string) (string, error) {
	if strings.TrimSpace(owner) == "" || owner == AnonymousOwner {
		if !c.AllowAnonymous {
			return "", ErrAnonymousOwner
		}
		return AnonymousOwner, nil
	}
	if exceeds(len(owner), c.MaxOwnerLen) {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrInvalidOwner, c.MaxOwnerLen)
	}
	if !utf8.ValidString(owner) {
		return "", fmt.Errorf("%w: not valid UTF-8", ErrInvalidOwner)
	}
	return owner, nil
}
