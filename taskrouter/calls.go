package taskrouter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/internal/jsonwalk"
	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
	"github.com/mcptasks/mcptasks/taskrouter/internal/rev20260728"
	"github.com/mcptasks/mcptasks/taskstore"
)

// tools/call: a task-augmented call (2025-11-25) or a call of a tool that
// supports tasks (2026-07-28) becomes a task that runs the SDK's handler.

// taskParams reads params.task of a 2025-11-25 augmented call: ttl and
// pollInterval (an extension of this package), in ms.
func taskParams(maxTTL time.Duration, raw json.RawMessage) (ttl, poll *time.Duration, err error) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return nil, nil, rpcError(taskstore.CodeInvalidParams, "params.task must be an object, not %s", jsonKind(raw))
	}
	if ttl, err = msParam("ttl", m["ttl"], maxTTL); err == nil {
		poll, err = msParam("pollInterval", m["pollInterval"], 0)
	}
	return ttl, poll, err
}

// msParam reads params.task.<name>, a number of milliseconds of at least 1
// and, when limit > 0, at most limit.
func msParam(name string, raw json.RawMessage, limit time.Duration) (*time.Duration, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	var ms float64
	if json.Unmarshal(raw, &ms) != nil {
		return nil, rpcError(taskstore.CodeInvalidParams, "params.task.%s must be a number of milliseconds, not %s", name, jsonKind(raw))
	}
	switch {
	case ms < 1:
		return nil, rpcError(taskstore.CodeInvalidParams, "params.task.%s must be at least 1 (milliseconds), got %v", name, ms)
	case limit > 0 && ms > float64(limit.Milliseconds()):
		return nil, rpcError(taskstore.CodeInvalidParams, "params.task.%s is %v ms, above the maximum of %d ms", name, ms, limit.Milliseconds())
	}
	d := time.Duration(min(ms, math.MaxInt64/float64(time.Millisecond))) * time.Millisecond
	return &d, nil
}

// jsonKind names the JSON type of raw, for error messages.
func jsonKind(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	switch {
	case s == "":
		return "missing"
	case s[0] == '"':
		return "a string"
	case s[0] == '{':
		return "an object"
	case s[0] == '[':
		return "an array"
	case s == "true" || s == "false":
		return "a boolean"
	case s == "null":
		return "null"
	}
	return "a number"
}

func (r *Router) toolsCall(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	cr, ok := req.(*mcp.CallToolRequest)
	if !ok || cr.Params == nil {
		return next(ctx, method, req)
	}
	name, task := cr.Params.Name, carrierOf(ctx).Task
	if !carrierOf(ctx).Passed && r.TaskSupport(name) != TaskForbidden {
		return nil, r.unwrapped(name) // the edge marks every call of such a tool
	}
	owner := r.owner(ctx, req)
	ctx = context.WithValue(ctx, ownerKey{}, owner)
	switch r.TaskSupport(name) {
	case TaskForbidden:
		if task != nil {
			return nil, methodNotFound("tool %q does not support task-augmented calls", name)
		}
	case TaskRequired:
		if task == nil {
			return nil, methodNotFound("tool %q must be called as a task (params.task)", name)
		}
	}
	if task == nil {
		return next(ctx, method, req)
	}
	r.sessions.NoteRequest(req, normOwner(owner))
	ttl, poll, err := taskParams(r.store.Config().MaxTTL, task)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	return r.startTool(ctx, StartRequest{Owner: owner, Method: method, Tool: name, TTL: ttl, PollInterval: poll, Trace: traceOf(req)}, next, req)
}

// unwrapped refuses a call of a task-supporting tool that reached the
// Router through no edge: the SDK dropped its params.task, so it would run
// as a plain call while initialize advertises tasks. It is a server
// mistake, logged once.
func (r *Router) unwrapped(tool string) error {
	const msg = "server misconfigured: this MCP server is not served through taskrouter's Router.HTTPHandler " +
		"or Router.Transport, so task requests cannot reach it"
	if r.unwrappedOnce.CompareAndSwap(false, true) {
		r.log.Error("tools/call of a task-supporting tool arrived without taskrouter's transport wrapper: "+
			"serve the server through Router.HTTPHandler (HTTP) or Router.Transport (stdio)", "tool", tool)
	}
	return rpcError(taskstore.CodeInternalError, "%s", msg)
}

// toolsCall20260728: the server decides which calls become tasks (those of
// task-supporting tools from clients that declare the extension).
func (r *Router) toolsCall20260728(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	cr, ok := req.(*mcp.CallToolRequest)
	if !ok || cr.Params == nil {
		return next(ctx, method, req)
	}
	name := cr.Params.Name
	owner := r.owner(ctx, req)
	ctx = context.WithValue(ctx, ownerKey{}, owner)
	support, declared := r.TaskSupport(name), rev20260728.Declares(req)
	switch {
	case support == TaskForbidden:
		return next(ctx, method, req)
	case !declared && support == TaskRequired:
		return nil, rev20260728.MissingCapability(fmt.Sprintf("tool %q", name))
	case !declared:
		return next(ctx, method, req) // optional: run it as a plain call
	}
	if pf := r.tools.preflightOf(name); pf != nil {
		res, err := pf(ctx, cr)
		if err != nil {
			return nil, err
		}
		if res != nil {
			rt := `"input_required"` // an SEP-2322 input-required round
			if res.InputRequests == nil {
				rt = `"complete"`
			}
			return patched(res, nil)(func(b []byte) ([]byte, error) {
				return jsonwalk.SetPath(b, []string{"resultType"}, json.RawMessage(rt))
			})
		}
	}
	return r.startTool(ctx, StartRequest{Owner: owner, Method: method, Tool: name, Trace: traceOf(req)}, next, req)
}

// startTool starts a task that runs the tool call req through next (the
// SDK's handler) in the background, with the owner in the run's context,
// and answers with the revision's view of the created task.
//
// On 2026-07-28 the go-sdk refuses a handler's requests to the client
// (Elicit…) before any middleware runs, so the run goes through the
// Router's in-memory session declaring the client's capabilities, as a
// re-run does (takeover.go): its requests wait in the task's record for
// tasks/update. The handler's request keeps its arguments and Extra.
func (r *Router) startTool(ctx context.Context, sr StartRequest, next mcp.MethodHandler, req mcp.Request) (mcp.Result, error) {
	owner, method := sr.Owner, sr.Method
	caps := requestCaps(revisionOf(ctx), req)
	rerun, err := r.tools.rerunFor(sr.Tool, req, caps)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	if cr, ok := req.(*mcp.CallToolRequest); ok && revisionOf(ctx) == protocol.Rev20260728 {
		ss, _, err := r.takeover.connect(ctx, caps.json())
		if err != nil {
			return nil, toWire(r.log, err)
		}
		own := *cr
		own.Session = ss
		req = &own
	}
	sr.Rerun = rerun
	sr.Values = func(c context.Context) context.Context {
		return context.WithValue(c, ownerKey{}, owner)
	}
	rec, err := r.Start(ctx, sr, func(runCtx context.Context) Outcome {
		return toolOutcome(next(runCtx, method, req))
	})
	if err != nil {
		return nil, toWire(r.log, err)
	}
	noteTask(ctx, "", rec)
	return &wireResult{v: viewOf(revisionOf(ctx)).Created(rec)}, nil
}

// toolOutcome turns what the SDK's tools/call answered into an Outcome.
func toolOutcome(res mcp.Result, err error) Outcome {
	if err != nil {
		var we *jsonrpc.Error
		if errors.As(err, &we) {
			return Outcome{Err: &taskstore.RPCError{Code: int(we.Code), Message: we.Message, Data: we.Data}}
		}
		// A plain error would reach the wire with code 0; store it as an
		// internal error, which is what it is.
		return Outcome{Err: rpcError(taskstore.CodeInternalError, "%s", err.Error())}
	}
	if res == nil {
		return Outcome{Err: rpcError(taskstore.CodeInternalError, "tool returned no result")}
	}
	b, err := json.Marshal(res)
	if err != nil {
		return Outcome{Err: rpcError(taskstore.CodeInternalError, "tool result does not marshal: %v", err)}
	}
	out := Outcome{Result: b}
	if ctr, ok := res.(*mcp.CallToolResult); ok && ctr.IsError {
		out.IsError, out.Message = true, "the tool reported an error"
		for _, c := range ctr.Content {
			if t, ok := c.(*mcp.TextContent); ok && t.Text != "" {
				out.Message = t.Text
				break
			}
		}
	}
	return out
}

// patched wraps what next answered so that patch applies to its JSON.
func patched(res mcp.Result, err error) func(func([]byte) ([]byte, error)) (mcp.Result, error) {
	return func(patch func([]byte) ([]byte, error)) (mcp.Result, error) {
		if err != nil || res == nil {
			return res, err
		}
		return &patchedResult{Result: res, patch: patch}, nil
	}
}
