// Package mcptasks opens durable MCP task stores by URL.
//
// A backend registers itself for one or more URL schemes from its file's
// init function; build tags choose which backends a binary links:
//
//	memory://                          always compiled
//	redis://, rediss://, redis+cluster://, redis+sentinel://   go build -tags redis
//	dynamodb://TABLE                   go build -tags dynamodb
//	postgres://, postgresql://         go build -tags postgres
//
// Open returns a *taskstore.Store, which holds all task rules; see package
// taskstore.
//
// # Backends over a client you hold
//
// A program that already has a client gives it to the backend's constructor
// instead of a URL, and wraps the result with taskstore.New. The
// constructors take the client library's types, so each is compiled only
// with its backend's build tag, and go doc, which reads no tags, does not
// show them; here they are:
//
//	// go build -tags redis; redis is github.com/redis/go-redis/v9.
//	// client is a *redis.Client (one server, or Sentinel failover) or a
//	// *redis.ClusterClient; it pings every server and loads the scripts
//	// within ctx. Close leaves the client open.
//	func NewRedisBackend(ctx context.Context, client redis.UniversalClient, opts RedisOptions) (taskstore.Backend, error)
//
//	// go build -tags dynamodb; dynamodb is github.com/aws/aws-sdk-go-v2/service/dynamodb.
//	// NewDynamoDBBackend works over an existing table; CreateDynamoDBTable
//	// creates it with its runner index and TTL if missing (idempotent).
//	// Close leaves the client open.
//	func NewDynamoDBBackend(client *dynamodb.Client, table string, opts DynamoDBOptions) taskstore.Backend
//	func CreateDynamoDBTable(ctx context.Context, client *dynamodb.Client, table string) error
//
//	// go build -tags postgres; pgxpool is github.com/jackc/pgx/v5/pgxpool.
//	// It checks (with CreateTable: creates) the table first. Close stops
//	// the backend's sweeper and leaves the pool open.
//	func NewPostgresBackend(ctx context.Context, pool *pgxpool.Pool, opts PostgresOptions) (taskstore.Backend, error)
//
// Their options (RedisOptions, DynamoDBOptions, PostgresOptions), the
// DynamoDB constants and PostgresDDL need no client library, so they are
// declared in every build. docs/redis.md, docs/dynamodb.md and
// docs/postgres.md say more.
package mcptasks

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcptasks/mcptasks/taskstore"
)

// Opener opens a backend from a URL whose scheme it registered for. It must
// reject query options it does not know.
type Opener func(ctx context.Context, u *url.URL) (taskstore.Backend, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
)

// buildTags names the tag that compiles in each scheme not always present.
var buildTags = map[string]string{
	"redis":          "redis",
	"rediss":         "redis",
	"redis+cluster":  "redis",
	"redis+sentinel": "redis",
	"dynamodb":       "dynamodb",
	"postgres":       "postgres",
	"postgresql":     "postgres",
}

// Register makes a backend available under scheme. It panics if opener is
// nil or scheme is already registered, as database/sql's Register does.
func Register(scheme string, opener Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if opener == nil {
		panic("mcptasks: Register opener is nil")
	}
	if _, dup := registry[scheme]; dup {
		panic("mcptasks: Register called twice for scheme " + scheme)
	}
	registry[scheme] = opener
}

// Backends returns the registered schemes, sorted.
func Backends() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for s := range registry {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// OpenBackend opens the backend named by rawURL.
func OpenBackend(ctx context.Context, rawURL string) (taskstore.Backend, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url's own error quotes the URL, which may hold a password.
		return nil, errors.New("mcptasks: store URL does not parse")
	}
	registryMu.RLock()
	open, ok := registry[u.Scheme]
	registryMu.RUnlock()
	if !ok {
		if tag, known := buildTags[u.Scheme]; known {
			return nil, fmt.Errorf("mcptasks: store scheme %q is not compiled in: build with -tags %s", u.Scheme, tag)
		}
		return nil, fmt.Errorf("mcptasks: unknown store scheme %q (have %s)", u.Scheme, strings.Join(Backends(), ", "))
	}
	b, err := open(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("mcptasks: open %s store: %w", u.Scheme, err)
	}
	return b, nil
}

// Open opens the backend named by rawURL and returns a Store over it with
// cfg (zero fields take their defaults). Close the Store when done.
func Open(ctx context.Context, rawURL string, cfg taskstore.Config) (*taskstore.Store, error) {
	b, err := OpenBackend(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	return taskstore.New(b, cfg), nil
}

// query reads URL options strictly: each option at most once, of the right
// type, and none left unread (see done).
type query struct {
	vals  url.Values
	known []string // every option the opener asked for, for done's error
	errs  []error
}

func newQuery(u *url.URL) *query {
	vals, err := url.ParseQuery(u.RawQuery)
	q := &query{vals: vals}
	if err != nil {
		// url.Query would drop the bad pair silently (a ";", a bad escape).
		q.errs = append(q.errs, errors.New("the URL's query does not parse (a \";\" or a bad %-escape?)"))
	}
	for k, v := range q.vals {
		if len(v) > 1 {
			q.errs = append(q.errs, fmt.Errorf("option %q given %d times", k, len(v)))
		}
	}
	return q
}

// take removes and returns the option's value.
func (q *query) take(name string) (string, bool) {
	q.known = append(q.known, name)
	v, ok := q.vals[name]
	delete(q.vals, name)
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

func (q *query) String(name, def string) string {
	if v, ok := q.take(name); ok {
		return v
	}
	return def
}

func (q *query) Int(name string, def int) int {
	v, ok := q.take(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		q.errs = append(q.errs, fmt.Errorf("option %q: %q is not an integer", name, v))
	}
	return n
}

func (q *query) Bool(name string, def bool) bool {
	v, ok := q.take(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		q.errs = append(q.errs, fmt.Errorf("option %q: %q is not a boolean", name, v))
	}
	return b
}

func (q *query) Duration(name string, def time.Duration) time.Duration {
	v, ok := q.take(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		q.errs = append(q.errs, fmt.Errorf("option %q: %q is not a duration such as 5s", name, v))
	}
	return d
}

// done reports malformed options and any option no one read.
func (q *query) done() error {
	if len(q.vals) > 0 {
		slices.Sort(q.known)
		for k := range q.vals {
			q.errs = append(q.errs, fmt.Errorf("unknown option %q (have %s)", k, strings.Join(q.known, ", ")))
		}
	}
	slices.SortFunc(q.errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(q.errs...)
}
