package taskrouter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter/internal/lease"
	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
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
// inside a server session, so the Router keeps in-memory sessions to its
// server (mcp.NewInMemoryTransports) for re-runs, the simplest way that
// needs nothing of the SDK beyond its public API. Their client declares
// the capabilities the original client declared for requests to it
// (elicitation, sampling, roots), so a re-run may ask the client again
// (input.go): the request waits in the task's record for the client's
// next tasks/result or tasks/update, on any replica. The handler's
// request carries the original arguments and, as Extra.TokenInfo, the
// user id and scopes of the original request (no expiry, no other token
// fields); it has no progress token, and progress or other notifications
// it sends go to that internal session and are dropped. Owner(ctx) is the
// task's owner as before.

// SetResumable makes tasks of tool resumable: when their replica stops,
// another one runs the handler again, up to maxAttempts runs in all
// (counting the first). maxAttempts < 2 makes the tool not resumable.
func (r *Router) SetResumable(tool string, maxAttempts int) { r.tools.setAttempts(tool, maxAttempts) }

// takeover holds the in-memory sessions re-runs go through: one per set
// of client capabilities the original clients declared (clientCaps, a
// handful of flags, so the sets are few), so that a re-run's handler asks
// the client (Elicit…) under the original client's capabilities.
type takeover struct {
	mu       sync.Mutex
	server   *mcp.Server
	next     mcp.MethodHandler // the handler inside the Router's middleware
	sessions map[string]*takeoverSession
}

type takeoverSession struct {
	server *mcp.ServerSession
	client *mcp.ClientSession
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

// connect returns the session of a client declaring caps (a Rerun's
// Client: clientCaps as JSON, or nothing).
func (t *takeover) connect(ctx context.Context, caps json.RawMessage) (*mcp.ServerSession, mcp.MethodHandler, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.server == nil {
		return nil, nil, errors.New("no MCP server installed: nothing can run the tool again")
	}
	key := string(caps)
	if ts := t.sessions[key]; ts != nil {
		return ts.server, t.next, nil
	}
	var cc clientCaps
	if len(caps) > 0 {
		if err := json.Unmarshal(caps, &cc); err != nil {
			return nil, nil, fmt.Errorf("the original client's capabilities: %w", err)
		}
	}
	ct, st := mcp.NewInMemoryTransports()
	ss, err := t.server.Connect(ctx, st, nil)
	if err != nil {
		return nil, nil, err
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "mcptasks-takeover", Version: "1"}, &mcp.ClientOptions{Capabilities: cc.declared()}).
		Connect(ctx, ct, &mcp.ClientSessionOptions{ProtocolVersion: protocol.Rev20251125.String()})
	if err != nil {
		ss.Close()
		return nil, nil, err
	}
	if t.sessions == nil {
		t.sessions = map[string]*takeoverSession{}
	}
	t.sessions[key] = &takeoverSession{server: ss, client: cs}
	return ss, t.next, nil
}

func (t *takeover) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, ts := range t.sessions {
		ts.client.Close()
		ts.server.Close()
		delete(t.sessions, key)
	}
}

// CanResume connects the in-memory session re-runs go through.
func (h leaseHost) CanResume(ctx context.Context) error {
	_, _, err := h.r.takeover.connect(ctx, nil)
	return err
}

// Resume runs the claimed task's tool again through the in-memory session.
func (h leaseHost) Resume(ctx context.Context, claimed *taskstore.TaskRecord, info *lease.Rerun) error {
	h.r.opts.Observer.takenOver() // claimed here, whether or not its run can start
	ss, next, err := h.r.takeover.connect(ctx, info.Client)
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
