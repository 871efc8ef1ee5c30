package taskrouter

import (
	"context"
	"errors"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter/internal/lease"
	"github.com/mcptasks/mcptasks/taskstore"
)

// Takeover of resumable tools. A tool opts in with SetResumable. Its tasks
// keep, outside the client-visible variables, what a re-run needs: the
// tool, its arguments, the authenticated user and scopes the handler saw,
// and the number of attempts allowed (a lease.Rerun). The lease keeper
// claims such a task when its replica dies (or released it at shutdown);
// this file runs the handler again, with the same task id and a handle
// whose variables are the checkpoints the earlier attempts wrote;
// Handle.Attempt tells the handler which run it is.
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

// SetResumable makes tasks of tool resumable: when their replica stops,
// another one runs the handler again, up to maxAttempts runs in all
// (counting the first). maxAttempts < 2 makes the tool not resumable.
func (r *Router) SetResumable(tool string, maxAttempts int) { r.tools.setAttempts(tool, maxAttempts) }

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

// CanResume connects the in-memory session re-runs go through.
func (h leaseHost) CanResume(ctx context.Context) error {
	_, _, err := h.r.takeover.connect(ctx)
	return err
}

// Resume runs the claimed task's tool again through the in-memory session.
func (h leaseHost) Resume(ctx context.Context, claimed *taskstore.TaskRecord, info *lease.Rerun) error {
	ss, next, err := h.r.takeover.connect(ctx)
	if err != nil {
		return err
	}
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
	return h.r.runner.start(claimed, values, work)
}
