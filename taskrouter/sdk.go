package taskrouter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter/internal/edge"
	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
	"github.com/mcptasks/mcptasks/taskrouter/internal/rev20251125"
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
	method, params := rev20251125.View{}.Notification(rec, nil)
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
		ctx = context.WithValue(ctx, carrierKey{}, edge.Take(req))
		obs := &r.opts.Observer
		if obs.Operation == nil && obs.Request == nil {
			return r.receive(ctx, method, req, next)
		}
		var end func(RequestEnd)
		var note *spanNote
		if obs.Request != nil {
			note = &spanNote{}
			ctx, end = obs.Request(context.WithValue(ctx, spanNoteKey{}, note), requestStart(ctx, method, req))
		}
		start := time.Now()
		res, err := r.receive(ctx, method, req, next)
		if obs.Operation != nil {
			obs.operation(ctx, method, req, time.Since(start), res, err)
		}
		if end != nil {
			end(RequestEnd{TaskID: note.taskID, Status: note.status, TaskTrace: note.trace, ErrorType: errorType(ctx, res, err)})
		}
		return res, err
	}
}

// receive is the receiving middleware, once the request's carrier is in ctx.
func (r *Router) receive(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	if revisionOf(ctx) == protocol.Rev20260728 {
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
		return rev20251125.View{}.Initialized(res), nil
	case "tools/list":
		res, err := next(ctx, method, req)
		if err != nil {
			return nil, err
		}
		return rev20251125.View{}.ToolsListed(res, r.tools.supportMap()), nil
	case "tools/call":
		return r.toolsCall(ctx, method, req, next)
	case "tasks/get", "tasks/result", "tasks/list", "tasks/cancel":
		owner := r.owner(ctx, req)
		r.sessions.NoteRequest(req, normOwner(owner))
		return next(context.WithValue(ctx, ownerKey{}, owner), method, req)
	}
	return next(ctx, method, req)
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
			r.opts.Observer.refused(RefusedWaits)
			return nil, toWire(r.log, err)
		}
		defer release()
		return r.streams.Serve(ctx, method, req, next, owner, asked)
	case "tasks/result", "tasks/list":
		return nil, rev20260728.NotInExtension(method)
	}
	return next(ctx, method, req)
}

// sending holds a task handler's requests to the client in the task's
// record (input.go), drops progress notifications of a task that has ended
// and marks the others with the related-task key.
func (r *Router) sending(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method == "notifications/subscriptions/acknowledged" {
			return r.streams.OnAck(ctx, method, req, next)
		}
		if rn := runFrom(ctx); rn != nil && asksClient(method) {
			return r.ask(ctx, rn, method, req)
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
