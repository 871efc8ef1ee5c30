package taskrouter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskstore"
)

// Takeover of resumable tools. A tool opts in with SetResumable. Its tasks
// keep, outside the client-visible variables, what a re-run needs: the
// tool, its arguments, the authenticated user and scopes the handler saw,
// and the number of attempts allowed. When the replica running such a
// task dies, the replica that finds the orphan claims it (a
// compare-and-swap on the lease: exactly one claimer per attempt) and runs
// the handler again, with the same task id and a handle whose variables
// are the checkpoints the earlier attempts wrote; Handle.Attempt tells the
// handler which run it is. After the last attempt the task fails as any
// orphan does.
//
// A re-run has no client session: the go-sdk can call a tool handler only
// inside a server session, so the Router keeps one in-memory session to
// its server (mcp.NewInMemoryTransports) for re-runs, the simplest way
// that needs nothing of the SDK beyond its public API. The handler's
// request carries the original arguments and, as Extra.TokenInfo, the
// user id and scopes of the original request (no expiry, no other token
// fields); it has no progress token, and progress or other notifications
// it sends go to that internal session and are dropped. Owner(ctx) is the
// task's owner as before.
//
// At shutdown a replica stops its resumable runs at once, waits for their
// handlers to return, and hands their tasks to a "released" runner id that
// every other replica claims at its next heartbeat, so a rolling deploy
// loses no resumable task and never runs one twice.

// releasedSuffix marks the runner id a shutting-down replica hands its
// resumable tasks to; other replicas treat it as dead at once.
const releasedSuffix = "#released"

// rerunInfo is the router's content of TaskRecord.Rerun.
type rerunInfo struct {
	Tool        string          `json:"tool"`
	Arguments   json.RawMessage `json:"arguments,omitempty"`
	User        string          `json:"user,omitempty"`
	Scopes      []string        `json:"scopes,omitempty"`
	MaxAttempts int             `json:"maxAttempts"`
}

// SetResumable makes tasks of tool resumable: when their replica stops,
// another one runs the handler again, up to maxAttempts runs in all
// (counting the first). maxAttempts < 2 makes the tool not resumable.
func (r *Router) SetResumable(tool string, maxAttempts int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.resumable == nil {
		r.resumable = map[string]int{}
	}
	if maxAttempts < 2 {
		delete(r.resumable, tool)
		return
	}
	r.resumable[tool] = maxAttempts
}

// rerunFor returns the Rerun of a tools/call of a resumable tool, or nil.
func (r *Router) rerunFor(sr StartRequest, req mcp.Request) (json.RawMessage, error) {
	r.mu.Lock()
	attempts := r.resumable[sr.Tool]
	r.mu.Unlock()
	cr, ok := req.(*mcp.CallToolRequest)
	if attempts == 0 || !ok || cr.Params == nil {
		return nil, nil
	}
	info := rerunInfo{Tool: sr.Tool, Arguments: cr.Params.Arguments, MaxAttempts: attempts}
	if extra := req.GetExtra(); extra != nil && extra.TokenInfo != nil {
		info.User, info.Scopes = extra.TokenInfo.UserID, extra.TokenInfo.Scopes
	}
	return json.Marshal(info)
}

// takeover is the one in-memory session re-runs go through.
type takeover struct {
	mu      sync.Mutex
	server  *mcp.Server
	next    mcp.MethodHandler // the handler inside the Router's middleware
	session *mcp.ServerSession
	client  *mcp.ClientSession
}

// setNext records the handler the Router's middleware wraps on server (the
// first server installed is the one re-runs use).
func (t *takeover) setNext(server *mcp.Server, next mcp.MethodHandler) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.server == nil || t.server == server {
		t.server, t.next = server, next
	}
}

func (t *takeover) connect(ctx context.Context) (*mcp.ServerSession, mcp.MethodHandler, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.server == nil {
		return nil, nil, errors.New("no MCP server installed: nothing can run the tool again")
	}
	if t.session == nil {
		ct, st := mcp.NewInMemoryTransports()
		ss, err := t.server.Connect(ctx, st, nil)
		if err != nil {
			return nil, nil, err
		}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "mcptasks-takeover", Version: "1"}, nil).Connect(ctx, ct, nil)
		if err != nil {
			ss.Close()
			return nil, nil, err
		}
		t.session, t.client = ss, cs
	}
	return t.session, t.next, nil
}

func (t *takeover) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.client != nil {
		t.client.Close()
		t.session.Close()
		t.client, t.session = nil, nil
	}
}

// parseRerun reads a record's Rerun; nil when the task is not resumable.
func parseRerun(rec *taskstore.TaskRecord) *rerunInfo {
	if len(rec.Rerun) == 0 {
		return nil
	}
	var info rerunInfo
	if json.Unmarshal(rec.Rerun, &info) != nil || info.Tool == "" {
		return nil
	}
	return &info
}

// takeOver claims an orphaned resumable task for this replica and runs it
// again; it reports false when the task is not this replica's to resume
// (not resumable, no attempts left), so the caller ends it instead.
func (k *leaseKeeper) takeOver(ctx context.Context, rec *taskstore.TaskRecord) bool {
	info := parseRerun(rec)
	if info == nil || rec.Lease.Attempt >= info.MaxAttempts {
		return false
	}
	r := k.r
	if r.runner.isClosing() {
		return true // leave it to a replica that stays
	}
	ss, next, err := r.takeover.connect(ctx)
	if err != nil {
		r.log.Warn("cannot resume task here", "task", rec.Task.TaskID, "error", err)
		return false
	}
	cctx, cancel := k.call(ctx)
	claimed, err := r.rt.Claim(cctx, rec.OwnerID, rec.Task.TaskID, *rec.Lease, k.id)
	cancel()
	if err != nil {
		if !errors.Is(err, taskstore.ErrLeaseLost) && !errors.Is(err, taskstore.ErrNotFound) {
			r.log.Warn("claiming orphaned task failed", "task", rec.Task.TaskID, "error", err)
		}
		return true
	}
	r.log.Warn("task taken over", "task", rec.Task.TaskID, "owner", logOwner(rec.OwnerID), "from", rec.Lease.Runner, "attempt", claimed.Lease.Attempt, "of", info.MaxAttempts)
	req := &mcp.CallToolRequest{
		Session: ss,
		Params:  &mcp.CallToolParamsRaw{Name: info.Tool, Arguments: info.Arguments},
		Extra:   &mcp.RequestExtra{},
	}
	if info.User != "" {
		req.Extra.TokenInfo = &auth.TokenInfo{UserID: info.User, Scopes: info.Scopes}
	}
	owner := claimed.OwnerID
	values := func(c context.Context) context.Context { return context.WithValue(c, ownerKey{}, owner) }
	work := func(runCtx context.Context) Outcome { return toolOutcome(next(runCtx, "tools/call", req)) }
	if err := r.run(claimed, values, work); err != nil {
		r.log.Warn("resuming task failed", "task", rec.Task.TaskID, "error", err)
	}
	return true
}

// orphanMessage says why an orphan ended.
func orphanMessage(rec *taskstore.TaskRecord) string {
	if info := parseRerun(rec); info != nil && rec.Lease.Attempt >= info.MaxAttempts {
		return fmt.Sprintf("%s (attempt %d of %d; none left)", OrphanedMessage, rec.Lease.Attempt, info.MaxAttempts)
	}
	return OrphanedMessage
}

// released reports whether runner is an id a shutting-down replica handed
// its tasks to.
func released(runner string) bool { return strings.HasSuffix(runner, releasedSuffix) }

// releaseResumable stops this replica's resumable runs, waits for their
// handlers, and hands their tasks to this runner's released id. It
// returns the runs it could not hand off (still held by this runner).
func (r *Router) releaseResumable(ctx context.Context) []*run {
	var runs []*run
	for _, rn := range r.localRuns() {
		if rn.resumable {
			runs = append(runs, rn)
		}
	}
	if len(runs) == 0 {
		return nil
	}
	for _, rn := range runs {
		rn.end("") // finished first: the cancelled handler's outcome is not stored
	}
	to := r.opts.Runner + releasedSuffix
	// The released id is registered first: a task handed to an id nobody
	// lists would never be found.
	hctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
	err := r.rt.Heartbeat(hctx, to)
	cancel()
	if err != nil {
		r.log.Error("releasing resumable tasks failed; they are taken over after the lease timeout", "error", err)
		return runs
	}
	var kept []*run
	for _, rn := range runs {
		select {
		case <-rn.exited:
		case <-ctx.Done():
		}
		hctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
		_, err := r.rt.Handoff(hctx, rn.owner, rn.id, rn.lease, to)
		cancel()
		switch {
		case err == nil:
			r.log.Info("task released for takeover", "task", rn.id, "owner", logOwner(rn.owner), "attempt", rn.lease.Attempt)
		case errors.Is(err, taskstore.ErrLeaseLost), errors.Is(err, taskstore.ErrNotFound):
		default:
			r.log.Error("releasing task failed", "task", rn.id, "error", err)
			kept = append(kept, rn)
		}
	}
	return kept
}
