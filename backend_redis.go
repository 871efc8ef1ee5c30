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

	"github.com/mcptasks/mcptasks/internal/taskid"
	"github.com/mcptasks/mcptasks/taskstore"
)

func init() {
	Register("redis", openRedis)
	Register("rediss", openRedis)
	Register("redis+cluster", openRedis)
	Register("redis+sentinel", openRedis)
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
	redisDefaultSentinelPort    = "26379"
	// redisFailoverAddr is the address go-redis gives a Sentinel failover
	// client, which has no fixed one.
	redisFailoverAddr = "FailoverClient"
	// redisMaxRecord is Redis's default proto-max-bulk-len: the server
	// refuses larger arguments. It is a guard, not an advertised limit (see
	// MaxRecordSize).
	redisMaxRecord = 512 << 20
	// redisPruneBatch bounds how many expired index entries one create or
	// list removes, so one call never does unbounded work.
	redisPruneBatch = 100
	// redisStatusCountPrune bounds how many expired records' status index
	// entries one CountByStatus drops before it counts.
	redisStatusCountPrune = 1000
	// redisRepairBatch is how many status index entries DeleteExpired
	// checks per round trip.
	redisRepairBatch = 500
)

// openRedis opens
//
//	redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?OPTIONS]
//	rediss://…                                      (TLS)
//	redis+cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…][?OPTIONS]
//	redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/MASTER[/DB][?OPTIONS]
//
// A redis+sentinel URL names the Sentinels (default port 26379) and the
// master they watch; USER and PASSWORD are those of the data nodes (the
// master and its replicas), as in redis://. The store follows the master
// through a go-redis failover client: every new connection asks a Sentinel
// where the master is.
//
// Options (unknown ones are errors):
//
//	db               database number (not on a cluster; or the URL path)
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
//	sentinel_user, sentinel_password  redis+sentinel only: the Sentinels'
//	                 own user and password (default: none)
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
	sentinelUser := q.String("sentinel_user", "")
	sentinelPass := q.String("sentinel_password", "")
	if err := q.done(); err != nil {
		return nil, err
	}
	cluster := u.Scheme == "redis+cluster"
	sentinel := u.Scheme == "redis+sentinel"
	given := u.Query()

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
	if given.Has("wait_timeout") && waitReplicas == 0 {
		return nil, errors.New(`option "wait_timeout" needs "wait_replicas"`)
	}
	if waitTimeout == 0 {
		waitTimeout = -1 // wait_timeout=0: refused by check (a zero RedisOptions.WaitTimeout is the default)
	}
	if !cluster && (given.Has("cluster_reload_on_failure") || given.Has("cluster_reload_interval")) {
		return nil, errors.New("cluster_reload_on_failure and cluster_reload_interval apply to redis+cluster:// only")
	}
	if reloadInterval == 0 {
		return nil, errors.New(`option "cluster_reload_interval" must be positive`)
	}
	if !sentinel && (given.Has("sentinel_user") || given.Has("sentinel_password")) {
		return nil, errors.New("sentinel_user and sentinel_password apply to redis+sentinel:// only")
	}
	if sentinelUser != "" && sentinelPass == "" {
		return nil, errors.New(`option "sentinel_user" needs "sentinel_password"`)
	}

	path, master := strings.TrimPrefix(u.Path, "/"), ""
	if sentinel {
		// /MASTER[/DB]
		master, path, _ = strings.Cut(path, "/")
		if master == "" {
			return nil, errors.New("redis+sentinel:// needs the master's name as the URL path, such as redis+sentinel://localhost:26379/mymaster")
		}
	}
	db := 0
	switch p := path; {
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
	defaultPort := redisDefaultPort
	if sentinel {
		defaultPort = redisDefaultSentinelPort
	}
	var addrs []string
	for _, h := range strings.Split(u.Host, ",") {
		if h == "" {
			return nil, errors.New("empty host in the URL's host list")
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, defaultPort)
		}
		addrs = append(addrs, h)
	}
	if !cluster && !sentinel && len(addrs) > 1 {
		return nil, fmt.Errorf("%s:// takes one host; use redis+cluster:// for a cluster, redis+sentinel:// for Sentinels", u.Scheme)
	}

	user, pass := "", ""
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}
	var tlsConf *tls.Config
	if useTLS {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, InsecureSkipVerify: skipVerify}
		// A cluster's nodes and a Sentinel setup's servers are each
		// verified against their own host (tls.Dial does that when
		// ServerName is empty; see NewClient below for the cluster).
		if serverName == "" && !cluster && !sentinel {
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

	if stall == 0 {
		stall = -1 // stall_timeout=0: off (a zero RedisOptions.StallTimeout is the default)
	}
	if reloadOnFailure == 0 {
		reloadOnFailure = -1
	}
	opts := RedisOptions{Prefix: prefix, StallTimeout: stall, WaitReplicas: waitReplicas, WaitTimeout: waitTimeout,
		ClusterReloadOnFailure: reloadOnFailure}
	if err := opts.check(readTimeout); err != nil {
		return nil, err
	}
	nodeOpts := opts.nodeOptions()
	if sentinel {
		nodeOpts.name = fmt.Sprintf("master %q (Sentinel)", master)
	}

	// ContextTimeoutEnabled makes every call obey its context's deadline
	// (not only ReadTimeout), which is what keeps calls from hanging on a
	// server that stopped answering. Every server's client gets the hook of
	// the stall guard when it is made, before any call.
	var client redis.UniversalClient
	maint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	switch {
	case sentinel:
		// One client for whichever server is the master: its dialer asks
		// the Sentinels, and it drops its connections to the old master
		// when they announce a new one. The Sentinels get the same TLS
		// settings and timeouts.
		c := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: master, SentinelAddrs: addrs, SentinelUsername: sentinelUser, SentinelPassword: sentinelPass,
			Username: user, Password: pass, DB: db, TLSConfig: tlsConf,
			PoolSize: poolSize, MaxRetries: maxRetries, DialerRetries: 1,
			DialTimeout: dialTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout,
			ContextTimeoutEnabled: true, DisableIdentity: true, OnConnect: redisCheckRole,
		})
		redisAddHook(c, nodeOpts)
		client = c
	case cluster:
		client = redis.NewClusterClient(&redis.ClusterOptions{
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
	default:
		c := redis.NewClient(&redis.Options{
			Addr: addrs[0], Username: user, Password: pass, DB: db, TLSConfig: tlsConf,
			PoolSize: poolSize, MaxRetries: maxRetries, DialerRetries: 1,
			DialTimeout: dialTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout,
			ContextTimeoutEnabled: true, DisableIdentity: true, MaintNotificationsConfig: maint,
		})
		redisAddHook(c, nodeOpts)
		client = c
	}

	pctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	b, err := newRedisBackend(pctx, client, opts, nodeOpts)
	if err != nil {
		client.Close()
		who := ""
		if user != "" {
			who = fmt.Sprintf(" as user %q", user)
		}
		hint, where := "", "at "+strings.Join(addrs, ",")
		switch {
		case sentinel && errors.Is(err, redis.Nil):
			// GET-MASTER-ADDR-BY-NAME of a name no Sentinel monitors.
			hint = fmt.Sprintf(" (no Sentinel there knows a master named %q)", master)
		case errors.Is(err, io.EOF) && !useTLS:
			hint = " (a TLS port? use rediss:// or tls=true)"
		}
		if sentinel {
			where = fmt.Sprintf("master %q through the Sentinels at %s", master, strings.Join(addrs, ","))
		}
		return nil, fmt.Errorf("%w: cannot connect to Redis %s%s: %w%s", taskstore.ErrBackend, where, who, err, hint)
	}
	b.ownsClient = true
	return b, nil
}

// redisCheckRole refuses a new connection of a Sentinel failover client to
// a server that is not the master, as Redis's guidelines for Sentinel
// clients ask: a Sentinel that has not yet heard of a failover gives the
// old master's address, which may by then be a replica (restarted, or
// demoted), and go-redis would switch the client to it: reads would see
// a replica's data (empty while it syncs) and writes fail as READONLY. The
// dial fails instead, and the next one asks a Sentinel again. go-redis runs
// the same hook on its connections to the Sentinels, which answer
// "sentinel". One round trip per new connection, none per call.
func redisCheckRole(ctx context.Context, cn *redis.Conn) error {
	role, err := cn.Do(ctx, "ROLE").Slice()
	if err != nil {
		return err
	}
	if len(role) > 0 && (role[0] == "master" || role[0] == "sentinel") {
		return nil
	}
	return fmt.Errorf("the server a Sentinel named as the master is not (ROLE: %v); a failover is under way", role)
}

func (o *RedisOptions) check(readTimeout time.Duration) error {
	if o.Prefix == "" {
		o.Prefix = redisDefaultPrefix
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = redisDefaultStall
	}
	if o.WaitTimeout == 0 {
		o.WaitTimeout = redisDefaultWaitTimeout
	}
	if o.ClusterReloadOnFailure == 0 {
		o.ClusterReloadOnFailure = redisDefaultReloadOnFailure
	}
	switch {
	case strings.ContainsAny(o.Prefix, "{}"):
		return errors.New(`option "prefix" must not contain { or }: they would change the cluster hash tag`)
	case o.WaitReplicas < 0:
		return errors.New(`option "wait_replicas" must not be negative`)
	case o.WaitReplicas > 0 && (o.WaitTimeout < 0 || readTimeout > 0 && o.WaitTimeout >= readTimeout):
		return fmt.Errorf(`option "wait_timeout" must be positive and below read_timeout (%v): the reply to WAIT comes after it`, readTimeout)
	}
	return nil
}

// nodeOptions are the settings of the hooks on each server's client.
func (o RedisOptions) nodeOptions() *redisNodeOptions {
	return &redisNodeOptions{waitReplicas: o.WaitReplicas, waitTimeout: o.WaitTimeout, stall: max(o.StallTimeout, 0)}
}

// NewRedisBackend returns a backend over a client the caller made: a
// *redis.Client (one server, or a Sentinel failover client) or a
// *redis.ClusterClient. Like Open it pings every server (every master of a
// cluster) and loads the scripts there, within ctx.
//
// The client stays the caller's: Close ends the backend's own work (its
// calls, Subscribe, the stall guard's probes) but does not close the
// client; close it yourself after the backend.
//
// What the backend adds to the client, for the client's lifetime (go-redis
// cannot remove a hook):
//   - a hook (AddHook) on each server's client (on a cluster, on each node's
//     client, those to come too, through OnNewNode): the stall guard and,
//     with WaitReplicas, the WAIT after each write. It acts on the backend's
//     own calls only; the client's other calls pass through it untouched,
//     except that when a server has left a call of the backend unanswered
//     for StallTimeout, with no reply to anything meanwhile, the guard
//     ends the calls waiting on that server's connections, whoever made
//     them (the connections are shared). After Close it passes everything
//     through.
//   - on a cluster, reloads of the slot map (ReloadState) after calls of
//     the backend that got no answer, at most once per
//     ClusterReloadOnFailure.
//
// So the client may serve the rest of the program meanwhile. Calls obey
// their context's deadline only when the client has ContextTimeoutEnabled
// (Open sets it); otherwise its ReadTimeout bounds them.
func NewRedisBackend(ctx context.Context, client redis.UniversalClient, opts RedisOptions) (taskstore.Backend, error) {
	var readTimeout time.Duration
	switch c := client.(type) {
	case *redis.Client:
		readTimeout = c.Options().ReadTimeout
	case *redis.ClusterClient:
		readTimeout = c.Options().ReadTimeout
	default:
		// A Ring's shards, for one: the change feed needs every owner's
		// writes to publish where subscribers listen.
		return nil, fmt.Errorf("mcptasks: NewRedisBackend takes a *redis.Client or a *redis.ClusterClient, not %T", client)
	}
	if err := opts.check(readTimeout); err != nil {
		return nil, err
	}
	nodeOpts := opts.nodeOptions()
	nodeOpts.shared, nodeOpts.hooked = true, map[*redis.Client]bool{}
	if c, ok := client.(*redis.Client); ok && c.Options().Addr == redisFailoverAddr {
		nodeOpts.name = "the Sentinel master"
	}
	if cc, ok := client.(*redis.ClusterClient); ok {
		// Nodes made from now on get the hook as they are made; those
		// that exist, when ping meets them.
		cc.OnNewNode(nodeOpts.hook)
	} else {
		nodeOpts.hook(client.(*redis.Client))
	}
	b, err := newRedisBackend(ctx, client, opts, nodeOpts)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot connect to Redis: %w", taskstore.ErrBackend, err)
	}
	return b, nil
}

// newRedisBackend makes the backend over client, whose servers' clients
// get nodeOpts' hook, and pings them. On failure it leaves the client open.
func newRedisBackend(ctx context.Context, client redis.UniversalClient, opts RedisOptions, nodeOpts *redisNodeOptions) (*redisBackend, error) {
	stop, cancel := context.WithCancel(context.Background())
	nodeOpts.done = stop.Done()
	b := &redisBackend{client: client, prefix: opts.Prefix, nodeOpts: nodeOpts, cancel: cancel}
	if cc, ok := client.(*redis.ClusterClient); ok {
		b.cluster = true
		b.reloader = &redisReloader{gap: max(opts.ClusterReloadOnFailure, 0)}
		b.reloader.client.Store(cc)
		nodeOpts.failed = b.reloader.trigger
	}
	b.feed.listen, b.feed.stop, b.feed.what = b.listen, stop, "redis subscribe"
	err := b.ping(nodeOpts.mark(ctx))
	nodeOpts.settle()
	if err != nil {
		b.Close()
		return nil, err
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
func (b *redisBackend) ping(ctx context.Context) error {
	check := func(ctx context.Context, c *redis.Client) error {
		if b.nodeOpts.shared {
			b.nodeOpts.hook(c) // a node the client made before it had the hook
		}
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
	if b.cluster {
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
//	P{O}:t:ID   string "VERSION:EXPIRY:ACTIVE:RUNNER:DATA", EXPIRY in Unix
//	            ms (rounded up; empty: never), ACTIVE 1 or 0 then the
//	            status code (backend_redis_status.go), RUNNER the
//	            runner id in base64url (empty: none), DATA the record byte
//	            for byte. PEXPIREAT at the expiry, so the server hides and
//	            purges it on its own. (A string, not a hash: a list page
//	            reads all its records with one MGET, about half the server
//	            time of one HMGET per record.)
//	P{O}:ids    sorted set of the owner's task ids, all scores 0: lexical
//	            order is id order is creation order.
//	P{O}:exp    sorted set of the ids that expire, scored by expiry (ms).
//	P{O}:act    sorted set of the owner's active ids, scored by expiry (ms,
//	            +inf for never): the active quota counts its live members.
//	P{r:R}:run  sorted set of "O ID" of the records written with runner R
//	            (R = base64url(runner)): the runner index, a hint.
//	P{runners}  hash runner -> heartbeat counter.
//	P{status:index}, P{status:index}:expiry  the status index, across
//	            owners (see backend_redis_status.go).
//
// Consistency: every method on one owner is one round trip, atomic on the
// server: a Lua script (EVALSHA) touching one owner's keys only, so one
// cluster slot, or for Get a single GET. Expiry is judged by the server's
// clock: an expired record is invisible at once to every call, whether or
// not Redis has purged it yet. Creates and lists drop up to
// redisPruneBatch expired index entries per call (lists also drop any dead
// entry they meet); the index sets carry a PEXPIREAT at their latest
// member's expiry (none while a member never expires), so an owner who
// stops calling leaves nothing behind. Invariant: every id in P{O}:exp is
// in P{O}:ids, so live count = |ids| - |expired in exp|.
//
// The runner index lives in the runner's slot, not the owner's, so on a
// cluster it cannot be written by the owner's script: an entry is added
// (ZADD) before the record that names the runner is written, so every
// record held by R is in R's index, and entries of records that moved on
// are dropped when RunnerTasks meets them. On a single server the update
// script writes the index itself, in the same round trip: it adds the
// entry of the record's new runner and removes the one of the runner it
// leaves, so a sweep of a dead runner reads each of its tasks once.
//
// Every write script publishes "O ID VERSION" (the version it wrote, 0
// for a delete) on the channel P:changes, which Subscribe listens to
// (plain pub/sub: on a cluster the message is broadcast to every node).
// See redisParseChange for messages of earlier releases.
type redisBackend struct {
	client     redis.UniversalClient
	ownsClient bool // opened by URL: Close closes it
	cluster    bool
	prefix     string
	nodeOpts   *redisNodeOptions
	reloader   *redisReloader // cluster only
	feed       changeHub
	cancel     context.CancelFunc // ends the feed's and the hooks' work at Close

	closeGuard
	closeOnce sync.Once
	closeErr  error
}

// Interface guards
var (
	_ taskstore.Backend      = (*redisBackend)(nil)
	_ taskstore.Notifier     = (*redisBackend)(nil)
	_ taskstore.BatchGetter  = (*redisBackend)(nil)
	_ taskstore.BatchUpdater = (*redisBackend)(nil)
	_ taskstore.StatusIndex  = (*redisBackend)(nil)
)

func redisB64(s string) string {
	enc := base64.RawURLEncoding.EncodeToString([]byte(s))
	if enc == "" {
		enc = "=" // "{}" would not be a hash tag
	}
	return enc
}

// ownerBase is P{O}, the start of every key of owner.
func (b *redisBackend) ownerBase(owner string) string {
	return b.prefix + "{" + redisB64(owner) + "}"
}

func (b *redisBackend) keys(owner, id string) (rec, ids, exp, act string) {
	base := b.ownerBase(owner)
	return base + ":t:" + id, base + ":ids", base + ":exp", base + ":act"
}

// recKey is P{O}:t:ID, the key of one record, built in one allocation:
// a read needs no other key.
func (b *redisBackend) recKey(owner, id string) string {
	n := base64.RawURLEncoding.EncodedLen(len(owner))
	var k strings.Builder
	k.Grow(len(b.prefix) + max(n, 1) + len("{}:t:") + len(id))
	k.WriteString(b.prefix)
	k.WriteByte('{')
	var buf [96]byte
	switch {
	case n == 0:
		k.WriteByte('=') // as redisB64
	case n <= len(buf):
		base64.RawURLEncoding.Encode(buf[:n], []byte(owner))
		k.Write(buf[:n])
	default:
		k.WriteString(redisB64(owner))
	}
	k.WriteString("}:t:")
	k.WriteString(id)
	return k.String()
}

func (b *redisBackend) runnerKey(runner string) string {
	return b.prefix + "{r:" + redisB64(runner) + "}:run"
}

func (b *redisBackend) runnersKey() string  { return b.prefix + "{runners}" }
func (b *redisBackend) changesChan() string { return b.prefix + "changes" }

// enter starts a call: it fails fast once ctx is done or the backend is
// closed, and marks ctx as the backend's. On a client given to
// NewRedisBackend the hooks act on marked calls only, so every call of the
// backend passes its context through here.
func (b *redisBackend) enter(ctx context.Context) (context.Context, error) {
	if err := b.begin(ctx); err != nil {
		return ctx, err
	}
	return b.nodeOpts.mark(ctx), nil
}

// fail maps a failed call by the rule of backendErr; a write that too few
// replicas confirmed, while ctx lasts, says so first.
func (b *redisBackend) fail(ctx context.Context, op string, err error) error {
	if nd := (*redisNotDurableError)(nil); ctx.Err() == nil && errors.As(err, &nd) {
		// ErrNotDurable is an ErrBackend.
		if nd.cause != nil {
			return fmt.Errorf("%w: redis %s: %s: %w", taskstore.ErrNotDurable, op, nd.detail, nd.cause)
		}
		return fmt.Errorf("%w: redis %s: %s", taskstore.ErrNotDurable, op, nd.detail)
	}
	return backendErr(ctx, "redis "+op, err)
}

// runMember is the runner index entry of a record: "O ID".
func (b *redisBackend) runMember(owner, id string) string { return redisB64(owner) + " " + id }

// changeMsg is the change feed's message of a write of version (0: a
// delete): "O ID VERSION". (The update script appends the version itself.)
func (b *redisBackend) changeMsg(owner, id string, version uint64) string {
	return b.runMember(owner, id) + " " + strconv.FormatUint(version, 10)
}

// redisParseMember reads a runMember; ok is false for anything else.
func redisParseMember(m string) (k taskstore.Key, ok bool) {
	o, id, ok := strings.Cut(m, " ")
	if !ok {
		return k, false
	}
	if o != "=" {
		ob, err := base64.RawURLEncoding.DecodeString(o)
		if err != nil {
			return k, false
		}
		k.Owner = string(ob)
	}
	k.TaskID = id
	return k, true
}

// redisParseChange reads a change feed message, "O ID VERSION"; ok is
// false for anything else. Task ids hold no space, so a message with one
// space is "O ID", what releases before the version was published send:
// replicas of two releases share a store during a rolling deploy, so it
// is read as a change of unknown version, 0, which no writer takes for
// its own write (it wrote at least 1), so watchers re-read. (The other
// way round is not possible: an earlier release reads "ID VERSION" as the
// task id, which no watch has, so until it stops it is not woken by the
// writes of this one; its waits end on their own deadlines and its runs
// see a cancel at their next write. Publishing both forms would cost
// every write a second PUBLISH, broadcast to every node of a cluster.)
func redisParseChange(m string) (c taskstore.Change, ok bool) {
	member, ver, versioned := m, "", false
	if i := strings.LastIndexByte(m, ' '); i >= 0 && strings.IndexByte(m, ' ') < i {
		member, ver, versioned = m[:i], m[i+1:], true
	}
	k, ok := redisParseMember(member)
	if !ok {
		return c, false
	}
	return withVersion(taskstore.Change{Owner: k.Owner, TaskID: k.TaskID}, ver, versioned)
}

// indexRunner prepares the runner index entry of a write: on a single
// server it returns the key for the script to ZADD to; on a cluster it
// adds the entry itself first (another slot) and returns no key.
func (b *redisBackend) indexRunner(ctx context.Context, rec taskstore.Record) (keys []string, member string, err error) {
	if rec.Runner == "" {
		return nil, "", nil
	}
	key, member := b.runnerKey(rec.Runner), b.runMember(rec.Owner, rec.TaskID)
	if !b.cluster {
		return []string{key}, member, nil
	}
	if err := b.client.ZAdd(ctx, key, redis.Z{Member: member}).Err(); err != nil {
		return nil, "", b.fail(ctx, "index runner", err)
	}
	return nil, "", nil
}

func redisFlag(active bool) string {
	if active {
		return "1"
	}
	return "0"
}

func redisRunnerField(runner string) string {
	if runner == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(runner))
}

func (b *redisBackend) Create(ctx context.Context, rec taskstore.Record, lim taskstore.Limits) error {
	ctx, err := b.enter(ctx)
	if err != nil {
		return err
	}
	if err := redisCheckSize(rec); err != nil {
		return err
	}
	code, err := redisStatusCode(rec.Status)
	if err != nil {
		return err
	}
	runKeys, member, err := b.indexRunner(ctx, rec)
	if err != nil {
		return err
	}
	keys, args := b.createCall(rec, lim, code, runKeys, member)
	var res any
	if b.cluster {
		// The status index is in another slot: the record's entry and
		// expiry go there in the same round trip (another node, in
		// parallel), not in the script. Of two creates of one key (one
		// fails) the later expiry stays (GT), so an entry is never
		// dropped before its record expires.
		km, expMS := redisStatusKM(rec.Owner, rec.TaskID), args[2].(string)
		res, err = b.runWith(ctx, func(pipe redis.Pipeliner) {
			pipe.ZAdd(ctx, b.statusKey(), redis.Z{Member: code + " " + km})
			if expMS == "" {
				pipe.ZRem(ctx, b.statusExpKey(), km)
			} else {
				ms, _ := strconv.ParseInt(expMS, 10, 64)
				pipe.ZAddGT(ctx, b.statusExpKey(), redis.Z{Score: float64(ms), Member: km})
			}
		}, redisCreate, keys, args)
	} else {
		res, err = redisCreate.Run(ctx, b.client, keys, args...).Result()
	}
	if err != nil {
		return b.fail(ctx, "create", err)
	}
	switch res {
	case int64(0):
		return nil
	case int64(1):
		return taskstore.ErrAlreadyExists
	case int64(2):
		return taskstore.ErrQuotaExceeded
	case int64(3):
		return taskstore.ErrStorageFull
	}
	return fmt.Errorf("%w: redis create: unexpected reply %v", taskstore.ErrBackend, res)
}

// createCall is the create script's keys and arguments for rec (see
// redis_lua/create.lua), status code given; on a cluster without the
// status index keys (another slot).
func (b *redisBackend) createCall(rec taskstore.Record, lim taskstore.Limits, code string, runKeys []string, runMember string) (keys []string, args []any) {
	recKey, ids, exp, act := b.keys(rec.Owner, rec.TaskID)
	expMS, pxat := redisExpiry(rec.ExpiresAt)
	statusKey, statusExp := b.statusKey(), b.statusExpKey()
	if b.cluster {
		statusKey, statusExp = "", ""
	}
	args = []any{rec.TaskID, redisValue(1, expMS, rec.Active, code, redisRunnerField(rec.Runner), rec.Data), expMS, pxat,
		max(lim.MaxActive, 0), max(lim.MaxStored, 0), redisFlag(rec.Active),
		b.changesChan(), b.changeMsg(rec.Owner, rec.TaskID, 1), runMember, code, redisStatusKM(rec.Owner, rec.TaskID),
		statusKey, statusExp}
	return append([]string{recKey, ids, exp, act}, runKeys...), args
}

// redisValue is the stored form of a record: "VERSION:EXPIRY:ACTIVE:RUNNER:DATA",
// ACTIVE the active flag then the status code (see redisStatusCode), the
// runner already in base64url (see redisRunnerField).
func redisValue(version uint64, expMS string, active bool, code, r string, data []byte) []byte {
	value := make([]byte, 0, len(data)+len(expMS)+len(r)+25)
	value = strconv.AppendUint(value, version, 10)
	value = append(append(append(value, ':'), expMS...), ':')
	value = append(append(append(value, redisFlag(active)...), code...), ':')
	value = append(append(value, r...), ':')
	return append(value, data...)
}

// redisExpiry gives the E field (expiry in Unix ms, rounded up) and the
// PEXPIREAT time (one ms less, see redis_lua/prelude.lua) of an expiry, both ""
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
	ctx, err := b.enter(ctx)
	if err != nil {
		return taskstore.Record{}, err
	}
	val, err := b.client.Get(ctx, b.recKey(owner, id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return taskstore.Record{}, taskstore.ErrNotFound
	}
	if err != nil {
		return taskstore.Record{}, b.fail(ctx, "get", err)
	}
	return decodeRedisRecord(owner, id, val)
}

var (
	errRedisMalformed  = fmt.Errorf("%w: redis: stored task is malformed", taskstore.ErrBackend)
	errRedisIndexEntry = fmt.Errorf("%w: redis runner index: malformed entry", taskstore.ErrBackend)
)

// decodeRedisRecord parses a stored value, "VERSION:EXPIRY:ACTIVE:RUNNER:DATA",
// ACTIVE the flag and the status code, if any (a record an earlier release
// wrote has none: Status ""). Its error is built only on failure: it runs
// for every record read.
func decodeRedisRecord(owner, id string, val []byte) (taskstore.Record, error) {
	var f [4][]byte
	rest := val
	for i := range f {
		var ok bool
		if f[i], rest, ok = bytes.Cut(rest, []byte{':'}); !ok {
			return taskstore.Record{}, fmt.Errorf("%w: %s", errRedisMalformed, id)
		}
	}
	rec := taskstore.Record{Owner: owner, TaskID: id, Data: rest}
	if len(f[2]) > 0 {
		rec.Active = f[2][0] == '1'
		rec.Status = redisStatusOf(f[2][1:])
	}
	var err error
	if rec.Version, err = strconv.ParseUint(string(f[0]), 10, 64); err != nil {
		return taskstore.Record{}, fmt.Errorf("%w: %s", errRedisMalformed, id)
	}
	if len(f[1]) > 0 {
		ms, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil {
			return taskstore.Record{}, fmt.Errorf("%w: %s", errRedisMalformed, id)
		}
		rec.ExpiresAt = time.UnixMilli(ms)
	}
	if len(f[3]) > 0 {
		r, err := base64.RawURLEncoding.DecodeString(string(f[3]))
		if err != nil {
			return taskstore.Record{}, fmt.Errorf("%w: %s", errRedisMalformed, id)
		}
		rec.Runner = string(r)
	}
	return rec, nil
}

func (b *redisBackend) Update(ctx context.Context, rec taskstore.Record, expected uint64) (uint64, error) {
	ctx, err := b.enter(ctx)
	if err != nil {
		return 0, err
	}
	if err := redisCheckSize(rec); err != nil {
		return 0, err
	}
	keys, args, err := b.updateCall(rec, expected, false)
	if err != nil {
		return 0, err
	}
	if !b.cluster {
		res, err := redisUpdate.Run(ctx, b.client, keys, args...).Int64()
		if err != nil {
			return 0, b.fail(ctx, "update", err)
		}
		return redisUpdateReply(res)
	}
	// A cluster: the record's entry in the status index (another slot) is
	// added in the same round trip, whether or not its status changes
	// (the script alone knows), and the old one dropped after.
	member := args[10].(string) + " " + args[11].(string)
	res, err := b.runWith(ctx, func(pipe redis.Pipeliner) {
		pipe.ZAdd(ctx, b.statusKey(), redis.Z{Member: member})
	}, redisUpdate, keys, args)
	if err == nil && res == int64(-3) {
		// A new runner: its index (another slot) first.
		if _, _, err := b.indexRunner(ctx, rec); err != nil {
			return 0, err
		}
		args[9] = "1"
		res, err = redisUpdate.Run(ctx, b.client, keys, args...).Result()
	}
	if err != nil {
		return 0, b.fail(ctx, "update", err)
	}
	v, was, err := redisUpdateResult(res)
	if drop := redisLeftEntry(args, was, err); drop != nil {
		b.dropLeft(ctx, []any{drop})
	}
	return v, err
}

func redisCheckSize(rec taskstore.Record) error {
	if len(rec.Data) > redisMaxRecord {
		return fmt.Errorf("%w: %d bytes, Redis takes at most %d", taskstore.ErrRecordTooLarge, len(rec.Data), redisMaxRecord)
	}
	return nil
}

// updateCall is the update script's keys and arguments for rec at
// expected; indexed says that the entry of rec's runner is in its index
// already (see redis_lua/update.lua). args[10] is the status code and
// args[11] the status index entry's "ID OWNER".
func (b *redisBackend) updateCall(rec taskstore.Record, expected uint64, indexed bool) (keys []string, args []any, err error) {
	code, err := redisStatusCode(rec.Status)
	if err != nil {
		return nil, nil, err
	}
	recKey, _, _, act := b.keys(rec.Owner, rec.TaskID)
	keys = []string{recKey, act}
	expMS, _ := redisExpiry(rec.ExpiresAt)
	runner := redisRunnerField(rec.Runner)
	value := redisValue(expected+1, expMS, rec.Active, code, runner, rec.Data)
	member := b.runMember(rec.Owner, rec.TaskID)
	args = []any{value, strconv.FormatUint(expected, 10), redisFlag(rec.Active), runner,
		rec.TaskID, b.changesChan(), member, expMS, len(value) - len(rec.Data), redisFlag(indexed),
		code, redisStatusKM(rec.Owner, rec.TaskID), ""}
	if !b.cluster {
		args[12] = b.statusKey()
		if rec.Runner != "" {
			keys = append(keys, b.runnerKey(rec.Runner))
		}
		args = append(args, member, b.prefix+"{r:")
	}
	return keys, args, nil
}

// redisUpdateResult reads a reply of the update script: the new version,
// or the error Update gives, and on a cluster the status code the record
// had when the update changed it (nil when it did not).
func redisUpdateResult(res any) (uint64, *string, error) {
	switch r := res.(type) {
	case int64:
		v, err := redisUpdateReply(r)
		return v, nil, err
	case []any:
		if len(r) == 2 {
			v, ok1 := r[0].(int64)
			was, ok2 := r[1].(string)
			if ok1 && ok2 && v > 0 {
				return uint64(v), &was, nil
			}
		}
	}
	return 0, nil, fmt.Errorf("%w: redis update: unexpected reply %v", taskstore.ErrBackend, res)
}

// redisUpdateReply is what Update returns for a reply of the update
// script that ran to the end.
func redisUpdateReply(res int64) (uint64, error) {
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

// UpdateMany sends the update script once per update, all in one
// pipeline: on a single server one round trip; on a cluster go-redis
// sends each node the updates of its slots (a script touches one owner's
// keys, one slot) in one round trip, the nodes in parallel. Each result
// is what Update would have returned for that update, failures included:
// a node that fails fails only the updates it holds. The call's own error
// is only for a call refused before anything is sent (closed, or ctx
// already done).
//
// On a cluster the runner index lives in the runner's slot, which the
// script cannot write, so first, in one pipeline, one ZADD per runner the
// batch names adds the entries of all its updates (Update adds it only
// when the script finds the runner changed, at the cost of a second
// script run; a batch of claims would pay that for every update), then
// the scripts run knowing their entries are there. An update that keeps
// its runner re-adds an entry that is there (no change), and one that
// then fails leaves a stale entry, which RunnerTasks drops. So every
// record that names a runner is in its index, as after Update.
//
// A server that has lost its scripts (restarted, or a replica promoted
// before it had them) answers NOSCRIPT without running anything: those
// updates are sent again with EVAL, in one more pipeline.
func (b *redisBackend) UpdateMany(ctx context.Context, updates []taskstore.Update) ([]taskstore.UpdateResult, error) {
	ctx, err := b.enter(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]taskstore.UpdateResult, len(updates))
	send := make([]int, 0, len(updates))
	type call struct {
		keys []string
		args []any
	}
	calls := make([]call, len(updates))
	for i, u := range updates {
		if out[i].Err = redisCheckSize(u.Record); out[i].Err != nil {
			continue
		}
		// On a cluster the runner index entries are added first (see
		// indexRunners): the scripts run knowing them there.
		calls[i].keys, calls[i].args, out[i].Err = b.updateCall(u.Record, u.Expected, b.cluster)
		if out[i].Err == nil {
			send = append(send, i)
		}
	}
	if b.cluster {
		send = b.indexRunners(ctx, updates, send, out)
	}
	if len(send) == 0 {
		return out, nil
	}
	cmds := make([]*redis.Cmd, len(updates))
	pipe := b.client.Pipeline()
	var statusAdd *redis.IntCmd
	if b.cluster {
		// Every record's status index entry (another slot), in one ZADD
		// in the same round trip, as for Update.
		zs := make([]redis.Z, len(send))
		for j, i := range send {
			zs[j] = redis.Z{Member: calls[i].args[10].(string) + " " + calls[i].args[11].(string)}
		}
		statusAdd = pipe.ZAdd(ctx, b.statusKey(), zs...)
	}
	for _, i := range send {
		cmds[i] = redisUpdate.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
	}
	_, _ = pipe.Exec(ctx) // each command has its own outcome
	var again redis.Pipeliner
	for _, i := range send {
		if redis.HasErrorPrefix(cmds[i].Err(), "NOSCRIPT") {
			if again == nil {
				again = b.client.Pipeline()
			}
			cmds[i] = redisUpdate.Eval(ctx, again, calls[i].keys, calls[i].args...)
		}
	}
	if again != nil {
		_, _ = again.Exec(ctx)
	}
	var left []any // on a cluster, the entries the updates left behind
	for _, i := range send {
		res, err := cmds[i].Result()
		if err == nil && statusAdd != nil {
			err = statusAdd.Err()
		}
		if err != nil {
			out[i].Err = b.fail(ctx, "update", err)
			continue
		}
		var was *string
		out[i].Version, was, out[i].Err = redisUpdateResult(res)
		if drop := redisLeftEntry(calls[i].args, was, out[i].Err); drop != nil && b.cluster {
			left = append(left, drop)
		}
	}
	b.dropLeft(ctx, left)
	return out, nil
}

// indexRunners adds, on a cluster, the runner index entries of the
// updates in send that name a runner (one ZADD per runner, in one
// pipeline), and returns the updates to send: those without a runner and
// those whose entry was added. The others get the error Update would have
// given in out.
func (b *redisBackend) indexRunners(ctx context.Context, updates []taskstore.Update, send []int, out []taskstore.UpdateResult) []int {
	members := map[string][]redis.Z{}
	for _, i := range send {
		if r := updates[i].Record; r.Runner != "" {
			members[r.Runner] = append(members[r.Runner], redis.Z{Member: b.runMember(r.Owner, r.TaskID)})
		}
	}
	if len(members) == 0 {
		return send
	}
	pipe := b.client.Pipeline()
	cmds := make(map[string]*redis.IntCmd, len(members))
	for runner, zs := range members {
		cmds[runner] = pipe.ZAdd(ctx, b.runnerKey(runner), zs...)
	}
	_, _ = pipe.Exec(ctx)
	kept := send[:0]
	for _, i := range send {
		if r := updates[i].Record; r.Runner != "" {
			if err := cmds[r.Runner].Err(); err != nil {
				out[i].Err = b.fail(ctx, "index runner", err)
				continue
			}
		}
		kept = append(kept, i)
	}
	return kept
}

func (b *redisBackend) Delete(ctx context.Context, owner, id string) (bool, error) {
	ctx, err := b.enter(ctx)
	if err != nil {
		return false, err
	}
	recKey, ids, exp, act := b.keys(owner, id)
	km, statusKey, statusExp := redisStatusKM(owner, id), b.statusKey(), b.statusExpKey()
	if b.cluster {
		statusKey, statusExp = "", "" // another slot: dropped below
	}
	res, err := redisDelete.Run(ctx, b.client, []string{recKey, ids, exp, act}, id, b.changesChan(), b.changeMsg(owner, id, 0),
		statusKey, statusExp, km).Int()
	if err != nil {
		return false, b.fail(ctx, "delete", err)
	}
	if b.cluster {
		// After the record is gone, never before: an entry is dropped
		// only when its record is.
		err := redisStatusDrop.Run(ctx, b.client, []string{b.statusKey(), b.statusExpKey()}, km).Err()
		if err != nil {
			return false, b.fail(ctx, "delete status index entry", err)
		}
	}
	return res == 1, nil
}

func (b *redisBackend) List(ctx context.Context, owner, after string, limit int) ([]taskstore.Record, bool, error) {
	ctx, err := b.enter(ctx)
	if err != nil {
		return nil, false, err
	}
	if limit <= 0 {
		return nil, false, nil
	}
	base := b.ownerBase(owner)
	res, err := redisList.Run(redisNoWait(ctx), b.client, []string{base + ":ids", base + ":exp", base + ":act"}, base+":t:", after, limit).Slice()
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

func (b *redisBackend) Heartbeat(ctx context.Context, runner string) error {
	ctx, err := b.enter(ctx)
	if err != nil {
		return err
	}
	// A heartbeat needs no durability (wait_replicas): a lost beat is only a late one.
	if err := b.client.HIncrBy(redisNoWait(ctx), b.runnersKey(), runner, 1).Err(); err != nil {
		return b.fail(ctx, "heartbeat", err)
	}
	return nil
}

func (b *redisBackend) Runners(ctx context.Context) ([]taskstore.RunnerBeat, error) {
	ctx, err := b.enter(ctx)
	if err != nil {
		return nil, err
	}
	m, err := b.client.HGetAll(ctx, b.runnersKey()).Result()
	if err != nil {
		return nil, b.fail(ctx, "runners", err)
	}
	out := make([]taskstore.RunnerBeat, 0, len(m))
	for r, v := range m {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: redis runners: malformed counter", taskstore.ErrBackend)
		}
		out = append(out, taskstore.RunnerBeat{Runner: r, Beat: n})
	}
	return out, nil
}

func (b *redisBackend) RemoveRunner(ctx context.Context, runner string) error {
	ctx, err := b.enter(ctx)
	if err != nil {
		return err
	}
	if err := b.client.HDel(ctx, b.runnersKey(), runner).Err(); err != nil {
		return b.fail(ctx, "remove runner", err)
	}
	return nil
}

// RunnerTasks reads the runner's index in batches and each entry's record
// (one pipelined round trip per batch: the records live in their owners'
// slots), returns the live ones still held by runner and drops the others
// from the index, but for those whose record is missing and may still
// land (see redisPendingFor).
func (b *redisBackend) RunnerTasks(ctx context.Context, runner string, limit int) ([]taskstore.Record, error) {
	ctx, err := b.enter(ctx)
	if err != nil {
		return nil, err
	}
	key := b.runnerKey(runner)
	var out []taskstore.Record
	for offset := int64(0); len(out) < limit; {
		batch := int64(min(limit-len(out), 500))
		members, err := b.client.ZRange(ctx, key, offset, offset+batch-1).Result()
		if err != nil {
			return nil, b.fail(ctx, "runner tasks", err)
		}
		if len(members) == 0 {
			break
		}
		entries := make([]taskstore.Key, len(members))
		cmds := make([]*redis.StringCmd, len(members))
		pipe := b.client.Pipeline()
		rctx := redisNoWait(ctx) // reads
		for i, m := range members {
			k, ok := redisParseMember(m)
			if !ok {
				return nil, errRedisIndexEntry
			}
			entries[i] = k
			cmds[i] = pipe.Get(rctx, b.recKey(k.Owner, k.TaskID))
		}
		if _, err := pipe.Exec(rctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, b.fail(ctx, "runner tasks", err)
		}
		var stale []any
		for i, c := range cmds {
			val, err := c.Bytes()
			if err == nil {
				rec, derr := decodeRedisRecord(entries[i].Owner, entries[i].TaskID, val)
				if derr != nil {
					return nil, derr
				}
				if rec.Runner == runner && len(out) < limit {
					out = append(out, rec)
					continue
				}
			} else if !errors.Is(err, redis.Nil) {
				return nil, b.fail(ctx, "runner tasks", err)
			}
			if err != nil && !b.pending(entries[i].TaskID) || err == nil && redisRecordMovedOn(val, runner) {
				stale = append(stale, members[i])
			}
		}
		offset += int64(len(members) - len(stale))
		if len(stale) > 0 {
			if err := b.client.ZRem(ctx, key, stale...).Err(); err != nil {
				return nil, b.fail(ctx, "runner tasks", err)
			}
			back, err := b.heldAgain(ctx, runner, stale)
			if err != nil {
				return nil, err
			}
			offset += int64(len(back)) // in the index again, at their places
			out = append(out, back[:min(len(back), limit-len(out))]...)
		}
		if int64(len(members)) < batch {
			break
		}
	}
	return out, nil
}

// redisPendingFor is how long after its task id's time an index entry
// whose record is missing is kept on a cluster: there a write sends the
// runner index entry a round trip before its record and the status entry
// beside it, to other nodes, so the record may land after the entry —
// seconds after, when a stall or a partition held the write. Dropping
// the entry then would leave the record unindexed for good. Older, the
// entry is stale (its create failed, or its record was deleted or
// expired) and dropped.
const redisPendingFor = 2 * time.Minute

// pending reports whether an index entry of task id whose record is
// missing may still see its record land (see redisPendingFor).
func (b *redisBackend) pending(id string) bool {
	if !b.cluster {
		return false // entries and records are written in one script
	}
	t, ok := taskid.Time(id)
	return ok && time.Since(t) < redisPendingFor
}

// heldAgain reads the records of index entries RunnerTasks just removed
// and puts back those that runner holds again: one that moved back to it
// between RunnerTasks' read and the removal lost the entry its update
// wrote, and an update that keeps a runner writes none. Any later move to
// runner writes its own.
func (b *redisBackend) heldAgain(ctx context.Context, runner string, removed []any) ([]taskstore.Record, error) {
	keys := make([]taskstore.Key, len(removed))
	for i, m := range removed {
		k, ok := redisParseMember(m.(string))
		if !ok {
			return nil, errRedisIndexEntry
		}
		keys[i] = k
	}
	recs, err := b.GetMany(ctx, keys)
	if err != nil {
		return nil, err
	}
	var back []taskstore.Record
	var members []redis.Z
	for _, r := range recs {
		if r.Runner == runner {
			back = append(back, r)
			members = append(members, redis.Z{Member: b.runMember(r.Owner, r.TaskID)})
		}
	}
	if len(members) > 0 {
		if err := b.client.ZAdd(ctx, b.runnerKey(runner), members...).Err(); err != nil {
			return nil, b.fail(ctx, "runner tasks", err)
		}
	}
	return back, nil
}

// GetMany is one pipeline of GETs (on a cluster, one per node holding
// some of the keys).
func (b *redisBackend) GetMany(ctx context.Context, keys []taskstore.Key) ([]taskstore.Record, error) {
	ctx, err := b.enter(ctx)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, nil
	}
	pipe := b.client.Pipeline()
	rctx := redisNoWait(ctx) // reads
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		recKey, _, _, _ := b.keys(k.Owner, k.TaskID)
		cmds[i] = pipe.Get(rctx, recKey)
	}
	if _, err := pipe.Exec(rctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, b.fail(ctx, "get many", err)
	}
	out := make([]taskstore.Record, 0, len(keys))
	for i, c := range cmds {
		val, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, b.fail(ctx, "get many", err)
		}
		rec, err := decodeRedisRecord(keys[i].Owner, keys[i].TaskID, val)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// redisRecordMovedOn reports whether a stored record no longer names
// runner, so its index entry can go.
func redisRecordMovedOn(val []byte, runner string) bool {
	parts := bytes.SplitN(val, []byte{':'}, 5)
	return len(parts) < 5 || string(parts[3]) != redisRunnerField(runner)
}

// Subscribe delivers every change made by any process, until ctx ends,
// the backend is closed or the subscribed connection is lost (then the
// caller subscribes again and gets a Resync). One subscribed connection per
// backend, opened by the first Subscribe, serves every subscriber.
func (b *redisBackend) Subscribe(ctx context.Context, fn func(taskstore.Change)) error {
	if err := b.begin(ctx); err != nil {
		return err
	}
	return b.feed.subscribe(ctx, fn)
}

// listen runs the subscribed connection until it fails or ctx ends.
func (b *redisBackend) listen(ctx context.Context) error {
	ps := b.client.Subscribe(ctx)
	defer ps.Close()
	// Receive blocks in a read that ctx does not interrupt: closing does.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	if err := ps.Subscribe(ctx, b.changesChan()); err != nil {
		return err
	}
	// The first reply confirms the subscription: from here on nothing is missed.
	if _, err := ps.Receive(ctx); err != nil {
		return err
	}
	b.feed.up()
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			return err
		}
		m, ok := msg.(*redis.Message)
		if !ok {
			continue // pings and subscription replies
		}
		if c, ok := redisParseChange(m.Payload); ok {
			b.feed.push(c)
		}
	}
}

// DeleteExpired is not needed for correctness (expired records are
// invisible and Redis purges them, and idle indexes expire with their last
// member). It scans for the prefix's expiry indexes (every master of a
// cluster; cost proportional to the keyspace) and drops their expired
// entries, returning how many expired tasks it cleared out of them. Then
// it repairs the status index (repairStatusIndex: cost proportional to
// the records indexed), so that its counts are exact after it on a quiet
// store, a cluster's too.
func (b *redisBackend) DeleteExpired(ctx context.Context) (int, error) {
	ctx, err := b.enter(ctx)
	if err != nil {
		return 0, err
	}
	var mu sync.Mutex
	total := 0
	sweep := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, redisGlobEscape(b.prefix)+"{*}:exp", 1000).Iterator()
		for it.Next(ctx) {
			exp := it.Val()
			base := strings.TrimSuffix(exp, ":exp")
			n, err := redisSweep.Run(redisNoWait(ctx), c, []string{base + ":ids", exp, base + ":act"}).Int()
			if err != nil {
				return err
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}
		return it.Err()
	}
	switch c := b.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, sweep)
	case *redis.Client:
		err = sweep(ctx, c)
	}
	if err == nil {
		err = b.repairStatusIndex(redisNoWait(ctx))
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

// Close ends subscriptions and, when the backend made the client itself,
// closes it; later calls fail with ErrBackend.
func (b *redisBackend) Close() error {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		b.feed.close() // before the wait: no listener starts after it
		if b.reloader != nil {
			b.reloader.closed.Store(true)
		}
		b.cancel()
		b.feed.wg.Wait()
		if b.ownsClient {
			b.closeErr = b.client.Close()
		}
	})
	return b.closeErr
}
