//go:build redis

package mcptasks

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/mcptasks/mcptasks/taskstore"
)

func init() {
	Register("redis", openRedis)
	Register("rediss", openRedis)
	Register("redis+cluster", openRedis)
}

// Defaults of the redis URL options.
const (
	redisDefaultPrefix       = "mcptasks:"
	redisDefaultDialTimeout  = 5 * time.Second
	redisDefaultReadTimeout  = 3 * time.Second
	redisDefaultWriteTimeout = 3 * time.Second
	// A server that leaves a call unanswered this long (no reply to any
	// call meanwhile) takes no new calls until it answers: far above any
	// command of ours on a live server, far below the node timeout of a
	// cluster.
	redisDefaultStall = time.Second
	// Cluster slot map: reloaded after failed calls at most this often,
	// and periodically (go-redis's default) to follow changes that cause
	// no failures.
	redisDefaultReloadOnFailure = 500 * time.Millisecond
	redisDefaultReloadInterval  = time.Minute
	redisDefaultWaitTimeout     = time.Second
	redisDefaultPort            = "6379"
	// redisMaxRecord is Redis's default proto-max-bulk-len: the server
	// refuses larger arguments. It is a guard, not an advertised limit (see
	// MaxRecordSize).
	redisMaxRecord = 512 << 20
	// redisPruneBatch bounds how many expired index entries one create or
	// list removes, so one call never does unbounded work.
	redisPruneBatch = 100
)

// openRedis opens
//
//	redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?OPTIONS]
//	rediss://…                                      (TLS)
//	redis+cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…][?OPTIONS]
//
// Options (unknown ones are errors):
//
//	db               database number (standalone only; or the URL path)
//	prefix           key prefix, default "mcptasks:"; no braces
//	tls              use TLS (default: true for rediss://, else false)
//	tls_ca           PEM file of the CAs to trust instead of the system's
//	tls_server_name  name to verify certificates against (default: each server's host)
//	tls_skip_verify  do not verify the certificate (testing only)
//	tls_cert, tls_key  PEM files of a client certificate and its key (mutual TLS)
//	pool_size        connections per server (default: 10 per CPU)
//	max_retries      retries of a failed call (default 3; -1: none)
//	dial_timeout     default 5s; also bounds Open
//	read_timeout     default 3s
//	write_timeout    default 3s
//	stall_timeout    a server that has left a call unanswered this long
//	                 gets no new calls (they fail at once) until it
//	                 answers one; default 1s, 0: off
//	wait_replicas    N: follow every write with WAIT N on its connection;
//	                 fewer confirmations give ErrNotDurable (default 0)
//	wait_timeout     WAIT's timeout, default 1s; below read_timeout
//	cluster_reload_on_failure  reload the slot map after a call that got
//	                 no answer, at most once per this (default 500ms; 0: never)
//	cluster_reload_interval    reload the slot map this often (default 1m)
//
// Open pings every server (every master of a cluster) within
// dial_timeout, unless ctx ends sooner, so a wrong password or an
// unreachable server fails here, with a message that names the servers and
// the user but never the password.
func openRedis(ctx context.Context, u *url.URL) (taskstore.Backend, error) {
	q := newQuery(u)
	dbOpt := q.Int("db", -1)
	prefix := q.String("prefix", redisDefaultPrefix)
	useTLS := q.Bool("tls", u.Scheme == "rediss")
	skipVerify := q.Bool("tls_skip_verify", false)
	serverName := q.String("tls_server_name", "")
	caFile := q.String("tls_ca", "")
	poolSize := q.Int("pool_size", 0)
	maxRetries := q.Int("max_retries", 0)
	dialTimeout := q.Duration("dial_timeout", redisDefaultDialTimeout)
	readTimeout := q.Duration("read_timeout", redisDefaultReadTimeout)
	writeTimeout := q.Duration("write_timeout", redisDefaultWriteTimeout)
	certFile := q.String("tls_cert", "")
	keyFile := q.String("tls_key", "")
	stall := q.Duration("stall_timeout", redisDefaultStall)
	waitReplicas := q.Int("wait_replicas", 0)
	waitTimeout := q.Duration("wait_timeout", redisDefaultWaitTimeout)
	reloadOnFailure := q.Duration("cluster_reload_on_failure", redisDefaultReloadOnFailure)
	reloadInterval := q.Duration("cluster_reload_interval", redisDefaultReloadInterval)
	if err := q.done(); err != nil {
		return nil, err
	}
	cluster := u.Scheme == "redis+cluster"
	given := u.Query()

	if strings.ContainsAny(prefix, "{}") {
		return nil, errors.New(`option "prefix" must not contain { or }: they would change the cluster hash tag`)
	}
	if u.Scheme == "rediss" && !useTLS {
		return nil, errors.New("rediss:// always uses TLS; drop tls=false or use redis://")
	}
	if (skipVerify || serverName != "" || caFile != "") && !useTLS {
		return nil, errors.New("tls_ca, tls_skip_verify and tls_server_name need TLS (rediss:// or tls=true)")
	}
	if poolSize < 0 {
		return nil, errors.New(`option "pool_size" must not be negative`)
	}
	if maxRetries < -1 {
		return nil, errors.New(`option "max_retries" must be -1 (no retries) or more`)
	}
	if dialTimeout == 0 || readTimeout == 0 || writeTimeout == 0 {
		return nil, errors.New("timeouts must be positive")
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New(`options "tls_cert" and "tls_key" go together`)
	}
	if certFile != "" && !useTLS {
		return nil, errors.New("tls_cert and tls_key need TLS (rediss:// or tls=true)")
	}
	if waitReplicas < 0 {
		return nil, errors.New(`option "wait_replicas" must not be negative`)
	}
	if given.Has("wait_timeout") && waitReplicas == 0 {
		return nil, errors.New(`option "wait_timeout" needs "wait_replicas"`)
	}
	if waitReplicas > 0 && (waitTimeout == 0 || waitTimeout >= readTimeout) {
		return nil, fmt.Errorf(`option "wait_timeout" must be positive and below read_timeout (%v): the reply to WAIT comes after it`, readTimeout)
	}
	if !cluster && (given.Has("cluster_reload_on_failure") || given.Has("cluster_reload_interval")) {
		return nil, errors.New("cluster_reload_on_failure and cluster_reload_interval apply to redis+cluster:// only")
	}
	if reloadInterval == 0 {
		return nil, errors.New(`option "cluster_reload_interval" must be positive`)
	}

	db := 0
	switch p := strings.TrimPrefix(u.Path, "/"); {
	case p != "" && dbOpt >= 0:
		return nil, errors.New(`give the database either as the URL path or as option "db", not both`)
	case p != "":
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, errors.New("the URL path must be a database number, such as /0")
		}
		db = n
	case dbOpt >= 0:
		db = dbOpt
	}
	if cluster && db != 0 {
		return nil, errors.New("a Redis Cluster has only database 0")
	}

	if u.Host == "" {
		return nil, fmt.Errorf("%s:// needs a host, such as %s://localhost:6379", u.Scheme, u.Scheme)
	}
	var addrs []string
	for _, h := range strings.Split(u.Host, ",") {
		if h == "" {
			return nil, errors.New("empty host in the URL's host list")
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, redisDefaultPort)
		}
		addrs = append(addrs, h)
	}
	if !cluster && len(addrs) > 1 {
		return nil, fmt.Errorf("%s:// takes one host; use redis+cluster:// for a cluster", u.Scheme)
	}

	user, pass := "", ""
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}
	var tlsConf *tls.Config
	if useTLS {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, InsecureSkipVerify: skipVerify}
		if serverName == "" && !cluster {
			if host, _, err := net.SplitHostPort(addrs[0]); err == nil {
				tlsConf.ServerName = host
			}
		}
		if certFile != "" {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf(`options "tls_cert", "tls_key": %w`, err)
			}
			tlsConf.Certificates = []tls.Certificate{cert}
		}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return nil, fmt.Errorf("option \"tls_ca\": %w", err)
			}
			tlsConf.RootCAs = x509.NewCertPool()
			if !tlsConf.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("option \"tls_ca\": no PEM certificate in %s", caFile)
			}
		}
	}

	// ContextTimeoutEnabled makes every call obey its context's deadline
	// (not only ReadTimeout), which is what keeps calls from hanging on a
	// server that stopped answering.
	var client redis.UniversalClient
	maint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	// Every server's pool gets the hook of backend_redis_nodes.go.
	nodeOpts := &redisNodeOptions{waitReplicas: waitReplicas, waitTimeout: waitTimeout, stall: stall, done: make(chan struct{})}
	var reloader *redisReloader
	if cluster {
		reloader = &redisReloader{gap: reloadOnFailure}
		nodeOpts.failed = reloader.trigger
		cc := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: addrs, Username: user, Password: pass, TLSConfig: tlsConf,
			PoolSize: poolSize, MaxRetries: maxRetries, DialerRetries: 1,
			DialTimeout: dialTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout,
			ContextTimeoutEnabled: true, DisableIdentity: true, MaintNotificationsConfig: maint,
			ClusterStateReloadInterval: reloadInterval,
			NewClient: func(o *redis.Options) *redis.Client {
				// Verify each node's certificate against that node's own
				// host, unless tls_server_name says otherwise.
				if o.TLSConfig != nil && o.TLSConfig.ServerName == "" {
					if host, _, err := net.SplitHostPort(o.Addr); err == nil {
						o.TLSConfig = o.TLSConfig.Clone()
						o.TLSConfig.ServerName = host
					}
				}
				c := redis.NewClient(o)
				redisAddHook(c, nodeOpts)
				return c
			},
		})
		reloader.client.Store(cc)
		client = cc
	} else {
		c := redis.NewClient(&redis.Options{
			Addr: addrs[0], Username: user, Password: pass, DB: db, TLSConfig: tlsConf,
			PoolSize: poolSize, MaxRetries: maxRetries, DialerRetries: 1,
			DialTimeout: dialTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout,
			ContextTimeoutEnabled: true, DisableIdentity: true, MaintNotificationsConfig: maint,
		})
		redisAddHook(c, nodeOpts)
		client = c
	}
	b := &redisBackend{client: client, prefix: prefix, reloader: reloader, done: nodeOpts.done}

	pctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := b.ping(pctx, cluster); err != nil {
		b.Close()
		who := ""
		if user != "" {
			who = fmt.Sprintf(" as user %q", user)
		}
		hint := ""
		if errors.Is(err, io.EOF) && !useTLS {
			hint = " (a TLS port? use rediss:// or tls=true)"
		}
		return nil, fmt.Errorf("%w: cannot connect to Redis at %s%s: %w%s", taskstore.ErrBackend, strings.Join(addrs, ","), who, err, hint)
	}
	return b, nil
}

// ping checks every server (every master of a cluster) and loads the
// scripts there, so the first calls need no EVAL fallback. A cluster's
// replicas get the scripts too, when they answer (they are not required):
// a promoted replica then runs the first writes after a failover without
// a NOSCRIPT round, which with wait_replicas would also cost a WAIT. (Redis
// leaves out of CLUSTER SLOTS a replica that has not replicated a write
// yet, so on a brand-new cluster this finds none.)
func (b *redisBackend) ping(ctx context.Context, cluster bool) error {
	check := func(ctx context.Context, c *redis.Client) error {
		if err := c.Ping(ctx).Err(); err != nil {
			return err
		}
		for _, s := range redisScripts {
			if err := s.Load(ctx, c).Err(); err != nil {
				return err
			}
		}
		return nil
	}
	if cluster {
		cc := b.client.(*redis.ClusterClient)
		if err := cc.ForEachMaster(ctx, check); err != nil {
			return err
		}
		_ = cc.ForEachSlave(ctx, check)
		return nil
	}
	return check(ctx, b.client.(*redis.Client))
}

// redisBackend stores tasks in Redis or a Redis Cluster.
//
// Key layout, with P the key prefix and O = base64url(owner) ("=" for the
// empty owner), so that O never contains a brace and every key of one
// owner shares the cluster hash tag {O}:
//
//	P{O}:t:ID   string "VERSION:EXPIRY:DATA", EXPIRY in Unix ms (rounded up;
//	            empty: never), DATA the record byte for byte. PEXPIREAT at
//	            the expiry, so the server hides and purges it on its own.
//	            (A string, not a hash: a list page reads all its records
//	            with one MGET, about half the server time of one HMGET
//	            per record.)
//	P{O}:ids    sorted set of the owner's task ids, all scores 0: lexical
//	            order is id order is creation order.
//	P{O}:exp    sorted set of the ids that expire, scored by expiry (ms).
//
// Consistency: every method is one round trip, atomic on the server: a Lua
// script (EVALSHA) touching one owner's keys only, so one cluster slot, or
// for Get a single GET. Expiry is judged by the server's clock: an
// expired record is invisible at once to every call, whether or not Redis
// has purged it yet. Creates and
// lists drop up to redisPruneBatch expired index entries per call (lists
// also drop any dead entry they meet); the index sets carry a PEXPIREAT at
// their latest member's expiry (none while a member never expires), so an
// owner who stops calling leaves nothing behind. Invariant: every id in
// P{O}:exp is in P{O}:ids, so live count = |ids| - |expired in exp|.
type redisBackend struct {
	client    redis.UniversalClient
	prefix    string
	reloader  *redisReloader // cluster only
	done      chan struct{}  // closed by Close
	closeOnce sync.Once
	closeErr  error
}

// Interface guards
var _ taskstore.Backend = (*redisBackend)(nil)

// ownerBase is P{O}, the start of every key of owner.
func (b *redisBackend) ownerBase(owner string) string {
	enc := base64.RawURLEncoding.EncodeToString([]byte(owner))
	if enc == "" {
		enc = "=" // "{}" would not be a hash tag
	}
	return b.prefix + "{" + enc + "}"
}

func (b *redisBackend) keys(owner, id string) (rec, ids, exp string) {
	base := b.ownerBase(owner)
	return base + ":t:" + id, base + ":ids", base + ":exp"
}

// The scripts share a few helpers. Times are Unix milliseconds, as Redis
// keeps them: a record expiring at E ms is expired once now >= E, and its
// key carries PEXPIREAT E-1, which Redis applies as "gone once now > E-1":
// the same instant, so the scripts and the server's own expiry agree, and
// a plain GET, EXISTS or MGET never shows an expired record.
const redisLuaPrelude = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function prune(ids, exp, now, n)
  local old = redis.call('ZRANGEBYSCORE', exp, '-inf', string.format('%.0f', now), 'LIMIT', 0, n)
  if #old > 0 then
    redis.call('ZREM', ids, unpack(old))
    redis.call('ZREM', exp, unpack(old))
  end
  return #old
end
`

var (
	// KEYS: rec ids exp. ARGV: id value expiry_ms|"" pexpireat_ms|"" max.
	// Returns 0 created, 1 exists, 2 quota.
	redisCreate = redis.NewScript(redisLuaPrelude + `
local now = now_ms()
prune(KEYS[2], KEYS[3], now, ` + strconv.Itoa(redisPruneBatch) + `)
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
local max = tonumber(ARGV[5])
if max > 0 then
  local live = redis.call('ZCARD', KEYS[2]) - redis.call('ZCOUNT', KEYS[3], '-inf', string.format('%.0f', now))
  if live >= max then return 2 end
end
-- A record that expired before it was made is never stored.
if ARGV[3] ~= '' and tonumber(ARGV[3]) <= now then return 0 end
local new_ids = redis.call('EXISTS', KEYS[2]) == 0
redis.call('ZADD', KEYS[2], 0, ARGV[1])
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('PERSIST', KEYS[2])
  redis.call('PERSIST', KEYS[3])
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
-- The id index lives as long as its longest-lived member: GT never
-- shortens it, and leaves a permanent index (one holding a record that
-- never expires) alone. The expiry index goes with it, never before: the
-- quota count needs every expiry-indexed id to be in the id index.
if new_ids then redis.call('PEXPIREAT', KEYS[2], ARGV[4]) else redis.call('PEXPIREAT', KEYS[2], ARGV[4], 'GT') end
local ids_until = redis.call('PEXPIRETIME', KEYS[2])
if ids_until < 0 then redis.call('PERSIST', KEYS[3]) else redis.call('PEXPIREAT', KEYS[3], ids_until) end
return 0
`)

	// KEYS: rec. ARGV: data expected. Returns the new version, -1 not
	// found, -2 version conflict. Only the header is read; KEEPTTL keeps
	// the expiry.
	redisUpdate = redis.NewScript(`
local head = redis.call('GETRANGE', KEYS[1], 0, 63)
if head == '' then return -1 end
local v, e = string.match(head, '^(%d+):(%d*):')
if v ~= ARGV[2] then return -2 end
local nv = tonumber(v) + 1
redis.call('SET', KEYS[1], string.format('%d:%s:', nv, e) .. ARGV[1], 'KEEPTTL')
return nv
`)

	// KEYS: rec ids exp. ARGV: id. Returns 1 if a live record was deleted.
	redisDelete = redis.NewScript(`
local was = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return was
`)

	// KEYS: ids exp. ARGV: record key prefix, after|"", limit.
	// Returns {more, id, value, id, value, …}: ids from the index, values
	// with one MGET per batch. Record keys are built from the prefix: they
	// share the owner's hash tag, so the same slot.
	redisList = redis.NewScript(redisLuaPrelude + `
prune(KEYS[1], KEYS[2], now_ms(), ` + strconv.Itoa(redisPruneBatch) + `)
local limit = tonumber(ARGV[3])
local start = '+'
if ARGV[2] ~= '' then start = '(' .. ARGV[2] end
local out = {0}
local n = 0
while true do
  -- One more than needed, to learn whether more follow.
  local batch = math.min(limit - n, 1000) + 1
  local ids = redis.call('ZREVRANGEBYLEX', KEYS[1], start, '-', 'LIMIT', 0, batch)
  if #ids == 0 then return out end
  local keys = {}
  for i, id in ipairs(ids) do keys[i] = ARGV[1] .. id end
  local vals = redis.call('MGET', unpack(keys))
  for i, id in ipairs(ids) do
    if n == limit then
      out[1] = 1
      return out
    end
    if vals[i] then
      out[#out + 1] = id
      out[#out + 1] = vals[i]
      n = n + 1
    else
      -- Expired (or purged) but still indexed: drop the entry now.
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
    end
  end
  if #ids < batch then return out end
  start = '(' .. ids[#ids]
end
`)

	// KEYS: ids exp. Removes every expired entry; returns how many.
	redisSweep = redis.NewScript(redisLuaPrelude + `
return prune(KEYS[1], KEYS[2], now_ms(), 1e9)
`)

	redisScripts = []*redis.Script{redisCreate, redisUpdate, redisDelete, redisList, redisSweep}
)

// fail wraps a server or network error. A context error is returned as is;
// any other error while ctx is done also wraps ctx.Err().
func (b *redisBackend) fail(ctx context.Context, op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if nd := (*redisNotDurableError)(nil); errors.As(err, &nd) {
		// ErrNotDurable is an ErrBackend.
		if nd.cause != nil {
			return fmt.Errorf("%w: redis %s: %s: %w", taskstore.ErrNotDurable, op, nd.detail, nd.cause)
		}
		return fmt.Errorf("%w: redis %s: %s", taskstore.ErrNotDurable, op, nd.detail)
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w: redis %s: %w (%w)", taskstore.ErrBackend, op, err, cerr)
	}
	return fmt.Errorf("%w: redis %s: %w", taskstore.ErrBackend, op, err)
}

func (b *redisBackend) Create(ctx context.Context, rec taskstore.Record, maxPerOwner int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(rec.Data) > redisMaxRecord {
		return fmt.Errorf("%w: %d bytes, Redis takes at most %d", taskstore.ErrRecordTooLarge, len(rec.Data), redisMaxRecord)
	}
	recKey, ids, exp := b.keys(rec.Owner, rec.TaskID)
	expMS, pxat := redisExpiry(rec.ExpiresAt)
	res, err := redisCreate.Run(ctx, b.client, []string{recKey, ids, exp},
		rec.TaskID, redisNewValue(expMS, rec.Data), expMS, pxat, max(maxPerOwner, 0)).Int()
	if err != nil {
		return b.fail(ctx, "create", err)
	}
	switch res {
	case 0:
		return nil
	case 1:
		return taskstore.ErrAlreadyExists
	case 2:
		return taskstore.ErrQuotaExceeded
	}
	return fmt.Errorf("%w: redis create: unexpected reply %d", taskstore.ErrBackend, res)
}

// redisNewValue is the stored form of a new record: "1:EXPIRY:DATA".
func redisNewValue(expMS string, data []byte) []byte {
	value := make([]byte, 0, len(data)+len(expMS)+3)
	value = append(append(append(value, "1:"...), expMS...), ':')
	return append(value, data...)
}

// redisExpiry gives the E field (expiry in Unix ms, rounded up) and the
// PEXPIREAT time (one ms less, see redisLuaPrelude) of an expiry, both ""
// for none.
func redisExpiry(t time.Time) (expMS, pxat string) {
	if t.IsZero() {
		return "", ""
	}
	ms := (t.UnixNano() + 999_999) / 1_000_000
	return strconv.FormatInt(ms, 10), strconv.FormatInt(ms-1, 10)
}

// Get is one GET, no script: the record's PEXPIREAT makes Redis itself
// hide it from the instant it expires.
func (b *redisBackend) Get(ctx context.Context, owner, id string) (taskstore.Record, error) {
	if err := ctx.Err(); err != nil {
		return taskstore.Record{}, err
	}
	recKey, _, _ := b.keys(owner, id)
	val, err := b.client.Get(ctx, recKey).Bytes()
	if errors.Is(err, redis.Nil) {
		return taskstore.Record{}, taskstore.ErrNotFound
	}
	if err != nil {
		return taskstore.Record{}, b.fail(ctx, "get", err)
	}
	return decodeRedisRecord(owner, id, val)
}

// decodeRedisRecord parses a stored value, "VERSION:EXPIRY_MS:DATA".
func decodeRedisRecord(owner, id string, val []byte) (taskstore.Record, error) {
	bad := func() error { return fmt.Errorf("%w: redis: stored task %s is malformed", taskstore.ErrBackend, id) }
	v, rest, ok1 := bytes.Cut(val, []byte{':'})
	e, data, ok2 := bytes.Cut(rest, []byte{':'})
	if !ok1 || !ok2 {
		return taskstore.Record{}, bad()
	}
	rec := taskstore.Record{Owner: owner, TaskID: id, Data: data}
	var err error
	if rec.Version, err = strconv.ParseUint(string(v), 10, 64); err != nil {
		return taskstore.Record{}, bad()
	}
	if len(e) > 0 {
		ms, err := strconv.ParseInt(string(e), 10, 64)
		if err != nil {
			return taskstore.Record{}, bad()
		}
		rec.ExpiresAt = time.UnixMilli(ms)
	}
	return rec, nil
}

func (b *redisBackend) Update(ctx context.Context, owner, id string, data []byte, expected uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(data) > redisMaxRecord {
		return 0, fmt.Errorf("%w: %d bytes, Redis takes at most %d", taskstore.ErrRecordTooLarge, len(data), redisMaxRecord)
	}
	recKey, _, _ := b.keys(owner, id)
	res, err := redisUpdate.Run(ctx, b.client, []string{recKey}, data, strconv.FormatUint(expected, 10)).Int64()
	if err != nil {
		return 0, b.fail(ctx, "update", err)
	}
	switch {
	case res == -1:
		return 0, taskstore.ErrNotFound
	case res == -2:
		return 0, taskstore.ErrVersionConflict
	case res <= 0:
		return 0, fmt.Errorf("%w: redis update: unexpected reply %d", taskstore.ErrBackend, res)
	}
	return uint64(res), nil
}

func (b *redisBackend) Delete(ctx context.Context, owner, id string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	recKey, ids, exp := b.keys(owner, id)
	res, err := redisDelete.Run(ctx, b.client, []string{recKey, ids, exp}, id).Int()
	if err != nil {
		return false, b.fail(ctx, "delete", err)
	}
	return res == 1, nil
}

func (b *redisBackend) List(ctx context.Context, owner, after string, limit int) ([]taskstore.Record, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if limit <= 0 {
		return nil, false, nil
	}
	base := b.ownerBase(owner)
	res, err := redisList.Run(redisNoWait(ctx), b.client, []string{base + ":ids", base + ":exp"}, base+":t:", after, limit).Slice()
	if err != nil {
		return nil, false, b.fail(ctx, "list", err)
	}
	if len(res) == 0 || (len(res)-1)%2 != 0 {
		return nil, false, fmt.Errorf("%w: redis list: unexpected reply of %d values", taskstore.ErrBackend, len(res))
	}
	more, _ := res[0].(int64)
	recs := make([]taskstore.Record, 0, (len(res)-1)/2)
	for i := 1; i < len(res); i += 2 {
		id, ok1 := res[i].(string)
		val, ok2 := res[i+1].(string)
		if !ok1 || !ok2 {
			return nil, false, fmt.Errorf("%w: redis list: unexpected reply", taskstore.ErrBackend)
		}
		rec, err := decodeRedisRecord(owner, id, []byte(val))
		if err != nil {
			return nil, false, err
		}
		recs = append(recs, rec)
	}
	return recs, more == 1, nil
}

// DeleteExpired is not needed for correctness (expired records are
// invisible and Redis purges them, and idle indexes expire with their last
// member). It scans for the prefix's expiry indexes (every master of a
// cluster; cost proportional to the keyspace) and drops their expired
// entries, returning how many expired tasks it cleared out of them.
func (b *redisBackend) DeleteExpired(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var mu sync.Mutex
	total := 0
	sweep := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, redisGlobEscape(b.prefix)+"{*}:exp", 1000).Iterator()
		for it.Next(ctx) {
			exp := it.Val()
			ids := strings.TrimSuffix(exp, ":exp") + ":ids"
			n, err := redisSweep.Run(redisNoWait(ctx), c, []string{ids, exp}).Int()
			if err != nil {
				return err
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}
		return it.Err()
	}
	var err error
	switch c := b.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, sweep)
	case *redis.Client:
		err = sweep(ctx, c)
	}
	if err != nil {
		return total, b.fail(ctx, "delete expired", err)
	}
	return total, nil
}

// redisGlobEscape quotes the glob characters of s for SCAN MATCH.
func redisGlobEscape(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// MaxRecordSize is 0: Redis stores values up to 512 MiB, far above any
// task, so the Store's own limits apply. (Writes above 512 MiB still give
// ErrRecordTooLarge.)
func (b *redisBackend) MaxRecordSize() int { return 0 }

// Close closes the connection pool; later calls fail with ErrBackend.
func (b *redisBackend) Close() error {
	b.closeOnce.Do(func() {
		close(b.done)
		if b.reloader != nil {
			b.reloader.closed.Store(true)
		}
		b.closeErr = b.client.Close()
	})
	return b.closeErr
}
