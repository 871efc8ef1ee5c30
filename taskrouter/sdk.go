package taskrouter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter/internal/edge"
	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
	"github.com/mcptasks/mcptasks/taskrouter/internal/rev20260728"
	"github.com/mcptasks/mcptasks/taskstore"
)

// This file plugs the Router into a go-sdk server through the extension
// points the SDK has (v1.8.0): receiving middleware (which may answer with
// a result of another type than the typed one, so capabilities.tasks and
// each tool's execution reach the wire), custom methods for tasks/*, and
// sending middleware (progress notifications of tasks). The SDK drops the
// task field of tools/call while decoding, so HTTPHandler and Transport
// decide what the request is at the edge and write it into the carrier,
// which the receiving middleware takes out once (edge.Take).

// ExtensionID names the tasks extension of protocol 2026-07-28.
const ExtensionID = protocol.ExtensionID

// CodeMissingRequiredClientCapability is the JSON-RPC error a 2026-07-28
// request gets when it needs a capability (here: the tasks extension) its
// client did not declare.
const CodeMissingRequiredClientCapability = protocol.CodeMissingRequiredClientCapability

type carrierKey struct{}

// carrierOf returns what the transport edge decided about the request that
// ctx belongs to.
func carrierOf(ctx context.Context) edge.Carrier {
	c, _ := ctx.Value(carrierKey{}).(edge.Carrier)
	return c
}

func revisionOf(ctx context.Context) protocol.Revision { return carrierOf(ctx).Revision() }

func normOwner(o string) string {
	if strings.TrimSpace(o) == "" {
		return taskstore.AnonymousOwner
	}
	return o
}

// notifyStatus sends rec's 2025-11-25 status notification to its owner's
// sessions on this replica that can receive it (stdio, or HTTP with a
// standalone stream), and to no one else (2026-07-28 clients get theirs
// on listen streams).
func (r *Router) notifyStatus(rec *taskstore.TaskRecord) {
	sessions := r.sessions.Of(normOwner(rec.OwnerID))
	if len(sessions) == 0 {
		return
	}
	method, params := view20251125{}.Notification(rec, nil)
	for _, ss := range sessions {
		// Best effort: notifications are optional and the session may be gone.
		_ = r.edge.StandIn(context.Background(), ss, method, params)
	}
}

// owner resolves the task owner of req: the authenticated user when there
// is one, else Options.Owner.
func (r *Router) owner(ctx context.Context, req mcp.Request) string {
	if extra := req.GetExtra(); extra != nil && extra.TokenInfo != nil && extra.TokenInfo.UserID != "" {
		return extra.TokenInfo.UserID
	}
	if r.opts.Owner != nil {
		return r.opts.Owner(ctx, req)
	}
	return ""
}

// Install makes server task-capable: it registers the tasks/* methods, and
// adds middleware that advertises the tasks capability (2025-11-25) or
// extension (2026-07-28) and each tool's execution.taskSupport, runs
// task-augmented tools/call as tasks, and enforces the taskSupport rules.
// Serve the server through HTTPHandler or Transport, which deliver what the
// SDK drops. Call Install once per server, after its tools have been added
// and the Router told of them (SetTaskSupport, SetResumable, SetPreflight):
// a name the server has no tool of is an error here, not a call that fails
// later. Add any middleware that must see requests first before Install.
func (r *Router) Install(server *mcp.Server) error {
	if err := r.tools.check(server); err != nil {
		return err
	}
	if err := errors.Join(
		mcp.AddReceivingCustomMethod(server, "tasks/get", r.handleGet),
		mcp.AddReceivingCustomMethod(server, "tasks/result", r.handleResult),
		mcp.AddReceivingCustomMethod(server, "tasks/list", r.handleList),
		mcp.AddReceivingCustomMethod(server, "tasks/cancel", r.handleCancel),
		mcp.AddReceivingCustomMethod(server, "tasks/update", r.handleUpdate),
	); err != nil {
		return err
	}
	server.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		r.takeover.setNext(server, next)
		return r.receiving(next)
	})
	server.AddSendingMiddleware(r.sending)
	r.sessions.AddServer(server)
	return nil
}

// toWire is the one conversion of errors to what the SDK sends: store
// errors get their code from taskstore.RPCCode; a backend failure is logged
// and answered as a bare internal error (its text names infrastructure);
// context errors pass through unchanged.
func toWire(log *slog.Logger, err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var e *taskstore.RPCError
	if !errors.As(err, &e) {
		e = &taskstore.RPCError{Code: taskstore.RPCCode(err), Message: err.Error()}
		switch {
		case errors.Is(err, taskstore.ErrAnonymousOwner):
			e.Message = "tasks need an identified caller: the server authenticates none here " +
				"(serve it behind auth.RequireBearerToken, or set taskrouter.Options.Owner, " +
				"or taskstore.Config.AllowAnonymous to share one anonymous owner)"
		case errors.Is(err, taskstore.ErrBackend):
			log.Error("task store failed", "error", err)
			e.Message = "internal error"
		}
	}
	if e.Code == protocol.CodeMethodNotFound {
		return &protocol.MethodNotFound{Msg: e.Message}
	}
	return &jsonrpc.Error{Code: int64(e.Code), Message: e.Message, Data: e.Data}
}

func rpcError(code int, format string, args ...any) *taskstore.RPCError {
	return &taskstore.RPCError{Code: code, Message: fmt.Sprintf(format, args...)}
}

func methodNotFound(format string, args ...any) error {
	return protocol.NewMethodNotFound(format, args...)
}

func (r *Router) receiving(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		e := edge.Take(req)
		ctx = context.WithValue(ctx, carrierKey{}, e)
		if e.Revision() == protocol.Rev20260728 {
			return r.receiving20260728(ctx, method, req, next)
		}
		switch method {
		case "server/discover":
			// The 2026-07-28 handshake, arriving other than through
			// HTTPHandler's 2026-07-28 route: the SDK's stateful HTTP handler
			// rejects 2026-07-28 requests after answering this one, so refuse
			// it: clients probe with it and then fall back to initialize.
			return nil, methodNotFound(`"server/discover" is not supported: use initialize (protocol 2025-11-25)`)
		case "initialize":
			res, err := next(ctx, method, req)
			if err != nil {
				return nil, err
			}
			return view20251125{}.Initialized(res), nil
		case "tools/list":
			res, err := next(ctx, method, req)
			if err != nil {
				return nil, err
			}
			return view20251125{}.ToolsListed(res, r.tools.supportMap()), nil
		case "tools/call":
			return r.toolsCall(ctx, method, req, next)
		case "tasks/get", "tasks/result", "tasks/list", "tasks/cancel":
			owner := r.owner(ctx, req)
			r.sessions.NoteRequest(req, normOwner(owner))
			return next(context.WithValue(ctx, ownerKey{}, owner), method, req)
		}
		return next(ctx, method, req)
	}
}

// receiving20260728 is the receiving middleware for 2026-07-28 requests.
func (r *Router) receiving20260728(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	switch method {
	case "server/discover":
		res, err := next(ctx, method, req)
		if err != nil {
			return nil, err
		}
		return rev20260728.Discover(res), nil
	case "tools/call":
		return r.toolsCall20260728(ctx, method, req, next)
	case "tasks/get", "tasks/update", "tasks/cancel":
		if !rev20260728.Declares(req) {
			return nil, rev20260728.MissingCapability(method)
		}
		return next(context.WithValue(ctx, ownerKey{}, r.owner(ctx, req)), method, req)
	case "subscriptions/listen":
		asked := carrierOf(ctx).Listen
		if asked == nil {
			return next(ctx, method, req) // no taskIds: the SDK's alone
		}
		if !rev20260728.Declares(req) {
			return nil, rev20260728.MissingCapability("task status notifications")
		}
		owner := r.owner(ctx, req)
		release, err := r.hub.HoldWait(normOwner(owner), "close one, or poll with tasks/get")
		if err != nil {
			return nil, toWire(r.log, err)
		}
		defer release()
		return r.streams.Serve(ctx, method, req, next, owner, asked)
	case "tasks/result", "tasks/list":
		return nil, rev20260728.NotInExtension(method)
	}
	return next(ctx, method, req)
}

// sending drops progress notifications of a task that has ended and marks
// the others with the related-task key.
func (r *Router) sending(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method == "notifications/subscriptions/acknowledged" {
			return r.streams.OnAck(ctx, method, req, next)
		}
		if rn := runFrom(ctx); rn != nil && method == "notifications/progress" {
			if rn.finished.Load() {
				return nil, nil
			}
			if p, ok := req.GetParams().(*mcp.ProgressNotificationParams); ok && p != nil {
				if p.Meta == nil {
					p.Meta = mcp.Meta{}
				}
				p.Meta[RelatedTaskKey] = map[string]string{"taskId": rn.id}
			}
		}
		return next(ctx, method, req)
	}
}

// ---- tools/call ----

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
	return r.startTool(ctx, StartRequest{Owner: owner, Method: method, Tool: name, TTL: ttl, PollInterval: poll}, next, req)
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
				return edge.SetPath(b, []string{"resultType"}, json.RawMessage(rt))
			})
		}
	}
	return r.startTool(ctx, StartRequest{Owner: owner, Method: method, Tool: name}, next, req)
}

// startTool starts a task that runs the tool call req through next (the
// SDK's handler) in the background, with the owner in the run's context,
// and answers with the revision's view of the created task.
func (r *Router) startTool(ctx context.Context, sr StartRequest, next mcp.MethodHandler, req mcp.Request) (mcp.Result, error) {
	owner, method := sr.Owner, sr.Method
	rerun, err := r.tools.rerunFor(sr.Tool, req)
	if err != nil {
		return nil, toWire(r.log, err)
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

// ---- tasks/* ----

// taskIDParams are the params of tasks/get, tasks/result, tasks/cancel and
// tasks/update. Fields are kept raw so that a value of the wrong JSON type
// gets a message of this package, not the decoder's Go type names.
type taskIDParams struct {
	mcp.ParamsBase
	TaskID         json.RawMessage `json:"taskId"`
	Cursor         json.RawMessage `json:"cursor"`
	InputResponses json.RawMessage `json:"inputResponses"`
}

// str reads the string parameter name (raw); a missing one is "".
func str(name string, raw json.RawMessage) (string, error) {
	var s string
	if raw == nil || string(raw) == "null" || json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	return "", rpcError(taskstore.CodeInvalidParams, "params.%s must be a string, not %s", name, jsonKind(raw))
}

// task reads params.taskId and the record it names, of the caller.
func (r *Router) task(ctx context.Context, p *taskIDParams) (string, *taskstore.TaskRecord, error) {
	if p == nil {
		p = &taskIDParams{}
	}
	id, err := str("taskId", p.TaskID)
	if err != nil {
		return "", nil, err
	}
	rec, err := r.store.Get(ctx, ownerOf(ctx), id)
	return id, rec, err
}

func (r *Router) handleGet(ctx context.Context, _ *mcp.ServerSession, p *taskIDParams) (*wireResult, error) {
	_, rec, err := r.task(ctx, p)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	return &wireResult{v: viewOf(revisionOf(ctx)).Get(rec)}, nil
}

// handleCancel marks the task cancelled in the store before answering,
// then stops its work if it runs on this replica.
func (r *Router) handleCancel(ctx context.Context, _ *mcp.ServerSession, p *taskIDParams) (*wireResult, error) {
	if p == nil {
		p = &taskIDParams{}
	}
	id, err := str("taskId", p.TaskID)
	var rec *taskstore.TaskRecord
	if err == nil {
		rec, err = r.store.Cancel(ctx, ownerOf(ctx), id)
	}
	terminal := errors.Is(err, taskstore.ErrInvalidTransition)
	if terminal {
		_, rec, err = r.task(ctx, p)
	}
	if err != nil {
		return nil, toWire(r.log, err)
	}
	if !terminal {
		r.log.Info("task cancelled", "task", id, "owner", logOwner(rec.OwnerID))
		r.runner.cancel(id)
		r.notifyStatus(rec)
	}
	v, err := viewOf(revisionOf(ctx)).Cancelled(rec, terminal)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	return &wireResult{v: v}, nil
}

func (r *Router) handleList(ctx context.Context, _ *mcp.ServerSession, p *taskIDParams) (*wireResult, error) {
	if p == nil {
		p = &taskIDParams{}
	}
	cursor, err := str("cursor", p.Cursor)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	page, err := r.store.List(ctx, ownerOf(ctx), cursor, 0)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	list, err := viewOf(revisionOf(ctx)).List(page)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	return &wireResult{v: list}, nil
}

// handleResult blocks until the task is terminal, then replays its outcome.
// The wait ends with its request: when the client cancels it
// (notifications/cancelled), when its session ends (the SDK keeps a request
// alive after its HTTP connection closes, for stream resumption), and,
// through HTTPHandler, when its HTTP request ends (a client that comes back
// calls tasks/result again).
func (r *Router) handleResult(ctx context.Context, _ *mcp.ServerSession, p *taskIDParams) (*wireResult, error) {
	if hctx := r.edge.Request(carrierOf(ctx)); hctx != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(hctx, cancel)()
	}
	id, err := str("taskId", p.TaskID)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	rec, err := r.runner.await(ctx, ownerOf(ctx), id)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	if infoOn(r.log) {
		r.log.Info("task result retrieved", "task", id, "owner", logOwner(rec.OwnerID), "status", rec.Task.Status)
	}
	res, err := viewOf(revisionOf(ctx)).Result(rec)
	if err != nil {
		return nil, toWire(r.log, err)
	}
	return &wireResult{v: res}, nil
}

// handleUpdate is tasks/update (2026-07-28): it delivers input responses;
// responses to keys that are not pending are ignored, and so is an update
// of a terminal task.
func (r *Router) handleUpdate(ctx context.Context, _ *mcp.ServerSession, p *taskIDParams) (*wireResult, error) {
	if revisionOf(ctx) != protocol.Rev20260728 {
		return nil, methodNotFound(`"tasks/update" belongs to the %s extension (protocol 2026-07-28)`, ExtensionID)
	}
	var responses map[string]json.RawMessage
	if p == nil || json.Unmarshal(p.InputResponses, &responses) != nil || responses == nil {
		raw := json.RawMessage(nil)
		if p != nil {
			raw = p.InputResponses
		}
		return nil, toWire(r.log, rpcError(taskstore.CodeInvalidParams, "params.inputResponses must be an object, not %s", jsonKind(raw)))
	}
	id, err := str("taskId", p.TaskID)
	if err == nil {
		_, err = r.rt.SubmitInput(ctx, ownerOf(ctx), id, responses)
	}
	if err != nil {
		return nil, toWire(r.log, err)
	}
	r.hub.Changed(id, nil)
	return &wireResult{v: rev20260728.Ack}, nil
}

// ---- results with fields the SDK's types do not have ----

// patched wraps what next answered so that patch applies to its JSON.
func patched(res mcp.Result, err error) func(func([]byte) ([]byte, error)) (mcp.Result, error) {
	return func(patch func([]byte) ([]byte, error)) (mcp.Result, error) {
		if err != nil || res == nil {
			return res, err
		}
		return &patchedResult{Result: res, patch: patch}, nil
	}
}
