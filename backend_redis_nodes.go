//go:build redis

package mcptasks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcptasks/mcptasks/taskstore"
)

// This file is what the Redis backend adds to go-redis on every server it
// talks to (each node of a cluster has its own): one hook that
//
//   - follows every command that may write with WAIT on the same connection
//     when wait_replicas is set, so that a write is acknowledged only once
//     that many replicas have it;
//   - treats a server that has left a call unanswered for stall_timeout,
//     with no reply to any other call meanwhile (a frozen host, a
//     partition), as stalled: the calls waiting on it fail at once (their
//     connections' deadlines are cut short), new ones fail without being
//     sent, and one background PING at a time finds out when it answers
//     again. So a stalled node costs only the calls to its slots, each at
//     most stall_timeout, instead of every caller waiting out its deadline;
//   - asks the cluster client to reload the slot map after a call failed
//     without an answer (a dead master sends no MOVED; without this the
//     store would keep calling its address until the periodic reload).
//
// Every command goes through it, including those of writes added later:
// a command waits unless it is a known read (redisReadOnly) or its context
// says it need not (redisNoWait), so a new write is durable by default.

// redisNodeOptions are the settings shared by the hooks of all nodes.
type redisNodeOptions struct {
	waitReplicas int           // 0: no WAIT
	waitTimeout  time.Duration // WAIT's timeout
	stall        time.Duration // 0: no stall guard
	// name, if set, names the server in errors instead of the client's
	// address: a Sentinel failover client's is a placeholder
	// ("FailoverClient"), as it follows whichever server is the master.
	name string
	// failed is called after a call that got no answer or was refused
	// by the stall guard; nil for a standalone server.
	failed func()
	done   <-chan struct{} // closed by Close: probes stop
	// shared: the client is the caller's (NewRedisBackend), so the hooks
	// act only on calls whose context mark carries these options.
	shared bool

	mu     sync.Mutex
	hooked map[*redis.Client]bool // until settle: nodes met twice are hooked once
}

// redisOwnKey marks the context of a call of the backend whose options it holds.
type redisOwnKey struct{}

// mark is ctx as a call of the backend, for hooks on a shared client.
func (o *redisNodeOptions) mark(ctx context.Context) context.Context {
	if !o.shared {
		return ctx
	}
	return context.WithValue(ctx, redisOwnKey{}, o)
}

// hook adds the hook to a server's client of a shared client: once, even
// when a cluster's node is met both as it is made and by ping.
func (o *redisNodeOptions) hook(c *redis.Client) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.hooked == nil || !o.hooked[c] {
		redisAddHook(c, o)
	}
	if o.hooked != nil {
		o.hooked[c] = true
	}
}

// settle ends hook's bookkeeping: from now on only new nodes are met.
func (o *redisNodeOptions) settle() {
	o.mu.Lock()
	o.hooked = nil
	o.mu.Unlock()
}

// redisNodeHook is the hook of one server's connection pool.
type redisNodeHook struct {
	addr   string
	opts   *redisNodeOptions
	client *redis.Client // set right after the client is made, before any call

	mu        sync.Mutex
	seq       uint64
	inflight  map[uint64]redisInflight
	lastReply time.Time // the server's latest reply to any call
	conns     map[net.Conn]struct{}
	// stalled: a call went past its due time with no reply from the
	// server since it was sent, and the server has not answered since.
	stalled      bool
	stalledSince time.Time // when the oldest unanswered call was sent
	probing      bool
}

type redisInflight struct{ start, due time.Time }

// redisAddHook hooks c; c's address (or opts.name) names the server in errors.
func redisAddHook(c *redis.Client, opts *redisNodeOptions) {
	addr := c.Options().Addr
	if opts.name != "" {
		addr = opts.name
	}
	h := &redisNodeHook{addr: addr, opts: opts, client: c, inflight: map[uint64]redisInflight{}, conns: map[net.Conn]struct{}{}}
	c.AddHook(h)
}

// errRedisStalled is the cause of the calls the stall guard ends or refuses.
var errRedisStalled = errors.New("the server has stopped answering")

// redisProbeKey marks the context of the guard's own PING, which the
// guard lets through.
type redisProbeKey struct{}

// DialHook keeps every connection of the pool, so that the guard can cut
// short the calls waiting on a stalled server.
func (h *redisNodeHook) DialHook(next redis.DialHook) redis.DialHook {
	if h.opts.stall <= 0 {
		return next
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		t := &redisTrackedConn{Conn: c, h: h}
		var tracked net.Conn = t
		if sc, ok := c.(syscall.Conn); ok {
			// go-redis checks idle connections through their file
			// descriptor; keep that possible.
			tracked = &redisTrackedSyscallConn{t, sc}
		}
		h.mu.Lock()
		h.conns[tracked] = struct{}{}
		t.self = tracked
		h.mu.Unlock()
		return tracked, nil
	}
}

// redisTrackedConn is a pool connection the hook knows of until closed.
type redisTrackedConn struct {
	net.Conn
	h    *redisNodeHook
	self net.Conn // the value in h.conns
}

func (c *redisTrackedConn) Close() error {
	c.h.mu.Lock()
	delete(c.h.conns, c.self)
	c.h.mu.Unlock()
	return c.Conn.Close()
}

type redisTrackedSyscallConn struct {
	*redisTrackedConn
	sc syscall.Conn
}

func (c *redisTrackedSyscallConn) SyscallConn() (syscall.RawConn, error) { return c.sc.SyscallConn() }

// foreign reports a call on a shared client that is not the backend's.
func (h *redisNodeHook) foreign(ctx context.Context) bool {
	return h.opts.shared && ctx.Value(redisOwnKey{}) != h.opts
}

func (h *redisNodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.foreign(ctx) {
			return next(ctx, cmd)
		}
		if h.opts.waitReplicas > 0 && redisMayWrite(cmd) && ctx.Value(redisNoWaitKey{}) == nil {
			// The command and its WAIT, on one connection, in order; the
			// pipeline hook below guards the server.
			pipe := h.client.Pipeline()
			_ = pipe.Process(ctx, cmd)
			wait := redis.NewIntCmd(ctx, "wait", h.opts.waitReplicas, h.opts.waitTimeout.Milliseconds())
			_ = pipe.Process(ctx, wait)
			_, _ = pipe.Exec(ctx)
			return h.durable(cmd, wait)
		}
		id, err := h.begin(ctx, 0)
		if err != nil {
			return err
		}
		err = next(ctx, cmd)
		h.end(id, redisAnswered(err))
		return err
	}
}

func (h *redisNodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.foreign(ctx) {
			return next(ctx, cmds)
		}
		var wait *redis.IntCmd
		extra := time.Duration(0)
		if h.opts.waitReplicas > 0 && ctx.Value(redisNoWaitKey{}) == nil {
			hasWait, writes := false, false
			for _, c := range cmds {
				hasWait = hasWait || c.Name() == "wait"
				writes = writes || redisMayWrite(c)
			}
			switch {
			case hasWait: // made by the process hook, which checks it
				extra = h.opts.waitTimeout
			case writes:
				// A pipeline the hook did not make (go-redis's own, such
				// as ASKING + command during a slot migration): WAIT at
				// its end.
				wait = redis.NewIntCmd(ctx, "wait", h.opts.waitReplicas, h.opts.waitTimeout.Milliseconds())
				cmds = append(cmds[:len(cmds):len(cmds)], wait)
				extra = h.opts.waitTimeout
			}
		}
		id, err := h.begin(ctx, extra)
		if err != nil {
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		err = next(ctx, cmds)
		answered := false
		for _, c := range cmds {
			answered = answered || redisAnswered(c.Err())
		}
		h.end(id, answered)
		if wait != nil {
			cmds = cmds[:len(cmds)-1]
			for _, c := range cmds {
				if redisMayWrite(c) {
					if derr := h.durable(c, wait); derr != c.Err() {
						c.SetErr(derr)
						err = derr
					}
				}
			}
		}
		return err
	}
}

// durable is cmd's outcome once its WAIT has answered: cmd's own error if
// it failed (it did not write, or may not have: the caller sees why), else
// an ErrNotDurable if fewer replicas than asked confirmed it.
func (h *redisNodeHook) durable(cmd redis.Cmder, wait *redis.IntCmd) error {
	if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	n, err := wait.Result()
	if err != nil {
		return &redisNotDurableError{detail: h.addr + ": WAIT after the write failed: it may have applied, and may be on no replica", cause: err}
	}
	if int(n) < h.opts.waitReplicas {
		return &redisNotDurableError{detail: fmt.Sprintf("%s: %d of the %d replicas asked for (wait_replicas) confirmed the write within %v: it may have applied, and may be lost in a failover",
			h.addr, n, h.opts.waitReplicas, h.opts.waitTimeout)}
	}
	return cmd.Err()
}

// redisNotDurableError is a write that too few replicas confirmed; it is
// a taskstore.ErrNotDurable. The backend names the operation in front of
// detail (redisBackend.fail).
type redisNotDurableError struct {
	detail string
	cause  error // WAIT's own failure, if any
}

func (e *redisNotDurableError) Error() string {
	if e.cause != nil {
		return taskstore.ErrNotDurable.Error() + ": " + e.detail + ": " + e.cause.Error()
	}
	return taskstore.ErrNotDurable.Error() + ": " + e.detail
}

func (e *redisNotDurableError) Unwrap() []error {
	if e.cause == nil {
		return []error{taskstore.ErrNotDurable}
	}
	return []error{taskstore.ErrNotDurable, e.cause}
}

// begin registers a call that may take extra beyond stall_timeout (a
// WAIT), or refuses it if the server is stalled. id 0: not registered.
func (h *redisNodeHook) begin(ctx context.Context, extra time.Duration) (uint64, error) {
	if h.opts.stall <= 0 || ctx.Value(redisProbeKey{}) != nil {
		return 0, nil
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	// A call can be overdue with no reply since it was sent only when no
	// reply came for stall_timeout (its due is at least that after its
	// start): while the server answers, the calls in flight are not read.
	if !h.stalled && now.Sub(h.lastReply) > h.opts.stall {
		for _, c := range h.inflight {
			if now.After(c.due) && h.lastReply.Before(c.start) {
				h.stallLocked(c.start)
				break
			}
		}
	}
	if h.stalled {
		if h.opts.failed != nil {
			h.opts.failed()
		}
		return 0, h.stallErr(now)
	}
	h.seq++
	h.inflight[h.seq] = redisInflight{start: now, due: now.Add(h.opts.stall + extra)}
	return h.seq, nil
}

func (h *redisNodeHook) stallErr(now time.Time) error {
	return fmt.Errorf("redis %s: %w: no reply for %v (stall_timeout %v); not sending until it answers a PING",
		h.addr, errRedisStalled, now.Sub(h.stalledSince).Round(time.Millisecond), h.opts.stall)
}

// stallLocked marks the server stalled since a call sent at since: the
// calls waiting on it end now (their connections' deadlines pass; go-redis
// then drops those connections), and a probe starts.
func (h *redisNodeHook) stallLocked(since time.Time) {
	h.stalled, h.stalledSince = true, since
	for c := range h.conns {
		_ = c.SetDeadline(time.Now())
	}
	if !h.probing {
		h.probing = true
		go h.probe()
	}
}

// probe PINGs the stalled server, one PING at a time, each allowed
// stall_timeout, until it answers or the backend closes.
func (h *redisNodeHook) probe() {
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-h.opts.done:
			h.mu.Lock()
			h.probing = false
			h.mu.Unlock()
			return
		case <-pause.C:
		}
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), redisProbeKey{}, true), h.opts.stall)
		err := h.client.Ping(ctx).Err()
		cancel()
		closed := errors.Is(err, redis.ErrClosed)
		if closed || redisAnswered(err) {
			h.mu.Lock()
			h.probing = false
			if !closed {
				h.stalled, h.lastReply = false, time.Now()
			}
			h.mu.Unlock()
			return
		}
		pause.Reset(h.opts.stall / 4)
	}
}

// end records how a call begun with begin ended.
func (h *redisNodeHook) end(id uint64, answered bool) {
	if !answered && h.opts.failed != nil {
		h.opts.failed()
	}
	if id == 0 {
		return
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.inflight[id]
	delete(h.inflight, id)
	switch {
	case answered:
		h.lastReply, h.stalled = now, false
	case !h.stalled && now.After(c.due) && h.lastReply.Before(c.start):
		h.stallLocked(c.start)
	}
}

// redisAnswered reports whether a call's outcome came from the server:
// success, or an error reply (which includes redis.Nil, MOVED, NOSCRIPT).
func redisAnswered(err error) bool {
	var rerr redis.Error
	return err == nil || errors.As(err, &rerr)
}

// redisReadOnly are the commands that never write the dataset (or are
// connection and server administration): everything else is followed by
// WAIT when wait_replicas is set. Unknown commands count as writes.
var redisReadOnly = map[string]bool{}

func init() {
	for _, name := range strings.Fields(`get mget getrange strlen exists type ttl pttl expiretime pexpiretime
		hget hmget hgetall hlen hexists hkeys hvals zrange zrangebyscore zrangebylex zrevrange zrevrangebyscore
		zrevrangebylex zcard zcount zlexcount zscore zmscore zrank zrevrank smembers scard sismember smismember
		lrange llen lindex scan hscan sscan zscan keys randomkey dbsize ping echo info time role lastsave
		cluster command script config client hello auth select readonly readwrite memory object slowlog latency
		evalsha_ro eval_ro fcall_ro wait waitaof publish spublish pubsub quit`) {
		redisReadOnly[name] = true
	}
}

func redisMayWrite(cmd redis.Cmder) bool { return !redisReadOnly[cmd.Name()] }

// redisNoWaitKey marks a context whose commands need no WAIT.
type redisNoWaitKey struct{}

// redisNoWait is ctx for a call whose only writes are housekeeping that a
// failover may lose without harm (the list page and the expiry sweep drop
// expired index entries; a lost drop is redone by a later call), so that
// reads keep working, and cost no WAIT, while replicas are behind or gone.
func redisNoWait(ctx context.Context) context.Context {
	return context.WithValue(ctx, redisNoWaitKey{}, true)
}

// redisReloader reloads a cluster's slot map after failed calls, at most
// once per gap: a dead master sends no MOVED, so without it the client would
// keep using the dead address until its periodic reload.
type redisReloader struct {
	gap    time.Duration
	client atomic.Pointer[redis.ClusterClient]
	closed atomic.Bool
	last   atomic.Int64 // time of the latest reload, ns since epoch; 0: none
	count  atomic.Int64 // reloads requested (tests read it)
}

// trigger asks for a reload unless one was asked for less than gap ago.
func (r *redisReloader) trigger() {
	c := r.client.Load()
	if r.gap <= 0 || c == nil || r.closed.Load() {
		return
	}
	now := time.Now().UnixNano()
	last := r.last.Load()
	if last != 0 && now-last < int64(r.gap) {
		return
	}
	if r.last.CompareAndSwap(last, now) {
		r.count.Add(1)
		c.ReloadState(context.Background()) // in the background; go-redis coalesces reloads
	}
}
