package taskrouter

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskstore"
)

// This file plugs the Router into a go-sdk server through the extension
// points the SDK has (v1.8.0): receiving middleware (which may answer with
// a result of another type than the typed one, so capabilities.tasks and
// each tool's execution reach the wire), custom methods for tasks/*, and
// sending middleware (progress notifications of tasks). The SDK drops the
// task field of tools/call while decoding, so HTTPHandler and Transport
// decide what the request is at the edge and write it into the carrier
// (edgeKey), which the receiving middleware takes out and decodes once.

type edgeCtxKey struct{}

// takeEdge removes the carrier from req's _meta and decodes it.
func takeEdge(req mcp.Request) edge {
	meta := metaOf(req)
	raw, ok := meta[edgeKey]
	if !ok {
		return edge{}
	}
	delete(meta, edgeKey)
	var e edge
	if b, err := json.Marshal(raw); err == nil {
		_ = json.Unmarshal(b, &e)
	}
	return e
}

// edgeOf returns what the transport edge decided about the request that
// ctx belongs to.
func edgeOf(ctx context.Context) edge {
	e, _ := ctx.Value(edgeCtxKey{}).(edge)
	return e
}

func revisionOf(ctx context.Context) revision { return edgeOf(ctx).revision() }

// standIn is the progress notification that HTTPHandler and Transport turn
// into the notification method with params (the SDK cannot send a custom
// notification itself): its _meta, under the per-process marker, carries
// both.
func (r *Router) standIn(ctx context.Context, ss *mcp.ServerSession, method string, params any) error {
	return ss.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
		ProgressToken: r.sdk.marker,
		Meta:          mcp.Meta{r.sdk.marker: map[string]any{"method": method, "params": params}},
	})
}

// OwnerFunc resolves the owner of a request that has no authenticated user.
// An empty result means anonymous.
type OwnerFunc func(ctx context.Context, req mcp.Request) string

// SessionOwner binds tasks to the MCP session: only the session that made
// a task can see it, and it is unreachable once the session ends (a client
// that reconnects gets a new session). Requests without a session (stdio)
// are anonymous.
func SessionOwner(_ context.Context, req mcp.Request) string {
	if s := req.GetSession(); s != nil && s.ID() != "" {
		return "session:" + s.ID()
	}
	return ""
}

// logOwner is how an owner appears in log lines. A SessionOwner owner
// holds the session id, the credential of its tasks, so it is logged as a
// short SHA-256 digest: stable, so a session's lines still correlate, and
// of no use to whoever reads the log.
func logOwner(owner string) string {
	id, ok := strings.CutPrefix(owner, "session:")
	if !ok {
		return owner
	}
	sum := sha256.Sum256([]byte(id))
	return "session:sha256:" + hex.EncodeToString(sum[:6])
}

type ownerKey struct{}

// Owner returns the task owner the Router resolved for the request that ctx
// belongs to (inside a tool handler, a task's work, or a tasks/* handler).
func Owner(ctx context.Context) (string, bool) {
	o, ok := ctx.Value(ownerKey{}).(string)
	return o, ok
}

type sdkState struct {
	marker string // progress token of the stand-in status notifications

	mu       sync.Mutex
	servers  []*mcp.Server
	sessions map[*mcp.ServerSession]string // session -> owner (normalized)
	pruned   int                           // len(sessions) after the last pruning
	watchers map[chan struct{}]bool        // poked on every local task change (listen.go)
}

func (s *sdkState) init() {
	var b [16]byte
	rand.Read(b[:])
	s.marker = "io.mcptasks/status-" + hex.EncodeToString(b[:])
	s.sessions = map[*mcp.ServerSession]string{}
}

func normOwner(o string) string {
	if strings.TrimSpace(o) == "" {
		return taskstore.AnonymousOwner
	}
	return o
}

func (r *Router) noteSession(req mcp.Request, owner string) {
	ss, ok := req.GetSession().(*mcp.ServerSession)
	if !ok || ss == nil {
		return
	}
	owner = normOwner(owner)
	r.sdk.mu.Lock()
	if r.sdk.sessions[ss] != owner {
		r.sdk.sessions[ss] = owner
	}
	prune := len(r.sdk.sessions) > 2*r.sdk.pruned+64
	r.sdk.mu.Unlock()
	if prune {
		r.sessionsOf("") // forgets ended sessions
	}
}

// sessionsOf returns the live sessions whose requests resolved to owner,
// and forgets sessions that have ended.
func (r *Router) sessionsOf(owner string) []*mcp.ServerSession {
	owner = normOwner(owner)
	r.sdk.mu.Lock()
	servers := r.sdk.servers
	r.sdk.mu.Unlock()
	if len(servers) == 0 {
		return nil
	}
	live := map[*mcp.ServerSession]bool{}
	for _, s := range servers {
		for ss := range s.Sessions() {
			live[ss] = true
		}
	}
	var out []*mcp.ServerSession
	r.sdk.mu.Lock()
	defer r.sdk.mu.Unlock()
	for ss, o := range r.sdk.sessions {
		if !live[ss] {
			delete(r.sdk.sessions, ss)
			continue
		}
		if o == owner {
			out = append(out, ss)
		}
	}
	r.sdk.pruned = len(r.sdk.sessions)
	return out
}

// notifyStatus sends notifications/tasks/status to the owner's sessions on
// this replica, and to no one else.
func (r *Router) notifyStatus(owner string, task taskstore.Task) {
	r.pokeWatchers()
	sessions := r.sessionsOf(owner)
	if len(sessions) == 0 {
		return
	}
	raw, err := json.Marshal(task)
	if err != nil {
		return
	}
	for _, ss := range sessions {
		// Best effort: notifications are optional and the session may be gone.
		_ = r.standIn(context.Background(), ss, "notifications/tasks/status", json.RawMessage(raw))
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

// Install makes server task-capable: it registers tasks/get, tasks/result,
// tasks/list and tasks/cancel, and adds middleware that advertises the
// tasks capability and each tool's execution.taskSupport, runs
// task-augmented tools/call as tasks, and enforces the taskSupport rules.
// Serve the server through HTTPHandler or Transport, which deliver the
// task field of tools/call. Call Install once per server, after any
// middleware that must see requests first has been added.
func (r *Router) Install(server *mcp.Server) error {
	errs := []error{
		mcp.AddReceivingCustomMethod(server, "tasks/get", r.sdkGet),
		mcp.AddReceivingCustomMethod(server, "tasks/result", r.sdkResult),
		mcp.AddReceivingCustomMethod(server, "tasks/list", r.sdkList),
		mcp.AddReceivingCustomMethod(server, "tasks/cancel", r.sdkCancel),
		mcp.AddReceivingCustomMethod(server, "tasks/update", r.sdkUpdate),
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	server.AddReceivingMiddleware(r.receiving)
	server.AddSendingMiddleware(r.sending)
	r.sdk.mu.Lock()
	r.sdk.servers = append(r.sdk.servers, server)
	r.sdk.mu.Unlock()
	return nil
}

// toWire turns an error into what the SDK sends as a JSON-RPC error.
func toWire(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return &jsonrpc.Error{Code: int64(e.Code), Message: e.Message}
	}
	return err
}

func (r *Router) receiving(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		e := takeEdge(req)
		ctx = context.WithValue(ctx, edgeCtxKey{}, e)
		if e.revision() == rev20260728 {
			if res, err, ok := r.modernReceiving(ctx, method, req, next); ok {
				return res, err
			}
			return next(ctx, method, req)
		}
		switch method {
		case "server/discover":
			// The 2026-07-28 handshake, arriving other than through
			// HTTPHandler's stateless route (HTTPOptions.Stateless): the SDK's
			// stateful HTTP handler rejects 2026-07-28 requests after answering
			// this one, so refuse it: clients probe with it and then fall back
			// to initialize (2025-11-25).
			return nil, methodNotFound(`"server/discover" is not supported: use initialize (protocol 2025-11-25)`)
		case "initialize":
			res, err := next(ctx, method, req)
			if err != nil || res == nil {
				return res, err
			}
			return &patchedResult{Result: res, patch: addTasksCapability}, nil
		case "tools/list":
			res, err := next(ctx, method, req)
			if err != nil || res == nil {
				return res, err
			}
			support := r.supportMap()
			return &patchedResult{Result: res, patch: func(b []byte) ([]byte, error) { return addExecution(b, support) }}, nil
		case "tools/call":
			return r.toolsCall(ctx, method, req, next)
		case "tasks/get", "tasks/result", "tasks/list", "tasks/cancel":
			owner := r.owner(ctx, req)
			r.noteSession(req, owner)
			return next(context.WithValue(ctx, ownerKey{}, owner), method, req)
		}
		return next(ctx, method, req)
	}
}

// sending drops progress notifications of a task that has ended and marks
// the others with the related-task key.
func (r *Router) sending(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method == "notifications/subscriptions/acknowledged" {
			return r.onListenAck(ctx, method, req, next)
		}
		if method == "notifications/progress" {
			if rn := runFrom(ctx); rn != nil {
				if rn.isFinished() {
					return nil, nil
				}
				if p, ok := req.GetParams().(*mcp.ProgressNotificationParams); ok && p != nil {
					if p.Meta == nil {
						p.Meta = mcp.Meta{}
					}
					p.Meta[RelatedTaskKey] = map[string]string{"taskId": rn.id}
				}
			}
		}
		return next(ctx, method, req)
	}
}

// taskParams is params.task of an augmented request. pollInterval is an
// extension of this package: the requested polling interval, in ms.
type taskParams struct {
	TTL          *float64 `json:"ttl"`
	PollInterval *float64 `json:"pollInterval"`
}

func msParam(name string, v *float64) (*time.Duration, error) {
	if v == nil {
		return nil, nil
	}
	if *v < 1 || *v > float64(1<<62)/float64(time.Millisecond) {
		return nil, &Error{Code: taskstore.CodeInvalidParams, Message: fmt.Sprintf("params.task.%s must be a positive number of milliseconds", name)}
	}
	d := time.Duration(*v * float64(time.Millisecond)).Truncate(time.Millisecond)
	return &d, nil
}

func (r *Router) toolsCall(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	cr, ok := req.(*mcp.CallToolRequest)
	if !ok || cr.Params == nil {
		return next(ctx, method, req)
	}
	p := cr.Params
	taskRaw := edgeOf(ctx).Task
	augmented := taskRaw != nil
	owner := r.owner(ctx, req)
	ctx = context.WithValue(ctx, ownerKey{}, owner)
	switch r.TaskSupport(p.Name) {
	case TaskForbidden:
		if augmented {
			return nil, methodNotFound(fmt.Sprintf("tool %q does not support task-augmented calls", p.Name))
		}
	case TaskRequired:
		if !augmented {
			return nil, methodNotFound(fmt.Sprintf("tool %q must be called as a task (params.task)", p.Name))
		}
	}
	if !augmented {
		return next(ctx, method, req)
	}
	r.noteSession(req, owner)
	var tp taskParams
	if json.Unmarshal(taskRaw, &tp) != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "params.task must be an object"}
	}
	ttl, err := msParam("ttl", tp.TTL)
	if err != nil {
		return nil, toWire(err)
	}
	poll, err := msParam("pollInterval", tp.PollInterval)
	if err != nil {
		return nil, toWire(err)
	}
	task, err := r.startTool(ctx, StartRequest{Owner: owner, Method: method, Tool: p.Name, TTL: ttl, PollInterval: poll}, next, req)
	if err != nil {
		return nil, toWire(err)
	}
	return &createTaskResult{Task: task}, nil
}

// startTool starts a task that runs the tool call req through next (the
// SDK's handler) in the background, with the owner in the run's context.
func (r *Router) startTool(ctx context.Context, sr StartRequest, next mcp.MethodHandler, req mcp.Request) (taskstore.Task, error) {
	owner, method := sr.Owner, sr.Method
	sr.Values = func(c context.Context) context.Context {
		return context.WithValue(c, ownerKey{}, owner)
	}
	return r.Start(ctx, sr, func(runCtx context.Context) Outcome {
		return toolOutcome(next(runCtx, method, req))
	})
}

// methodNotFound is a -32601 error that keeps its message: the SDK
// replaces the message of any error that errors.Is a -32601 wire error with
// "method not found: <method>", which would hide why a tools/call failed.
// This one only converts (errors.As) to the wire error.
type methodNotFoundError struct{ msg string }

func methodNotFound(msg string) error { return &methodNotFoundError{msg: msg} }

func (e *methodNotFoundError) Error() string { return e.msg }

func (e *methodNotFoundError) As(target any) bool {
	if p, ok := target.(**jsonrpc.Error); ok {
		*p = &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: e.msg}
		return true
	}
	return false
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
		return Outcome{Err: &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: err.Error()}}
	}
	if res == nil {
		return Outcome{Err: &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: "tool returned no result"}}
	}
	b, err := json.Marshal(res)
	if err != nil {
		return Outcome{Err: &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: "tool result does not marshal: " + err.Error()}}
	}
	out := Outcome{Result: b}
	if ctr, ok := res.(*mcp.CallToolResult); ok && ctr.IsError {
		out.IsError = true
		for _, c := range ctr.Content {
			if t, ok := c.(*mcp.TextContent); ok && t.Text != "" {
				out.Message = t.Text
				break
			}
		}
		if out.Message == "" {
			out.Message = "the tool reported an error"
		}
	}
	return out
}

// ---- tasks/* through the SDK ----

type taskIDParams struct {
	mcp.ParamsBase
	TaskID string `json:"taskId"`
}

type listParams struct {
	mcp.ParamsBase
	Cursor string `json:"cursor,omitempty"`
}

// taskResult is a Task, flat, as tasks/get and tasks/cancel answer
// (2025-11-25), or the extension's DetailedTask (modern) or empty
// acknowledgement (ack).
type taskResult struct {
	mcp.ResultBase
	task   taskstore.Task
	modern *modernGetResult
	ack    bool
}

func (t *taskResult) MarshalJSON() ([]byte, error) {
	switch {
	case t.ack:
		return (&ackResult{}).MarshalJSON()
	case t.modern != nil:
		return t.modern.MarshalJSON()
	}
	return json.Marshal(t.task)
}

type createTaskResult struct {
	mcp.ResultBase
	Task taskstore.Task `json:"task"`
}

type listResult struct {
	mcp.ResultBase
	Tasks      []taskstore.Task `json:"tasks"`
	NextCursor string           `json:"nextCursor,omitempty"`
}

// rawResult is a result kept as JSON (the replayed outcome of tasks/result).
type rawResult struct {
	mcp.ResultBase
	raw json.RawMessage
}

func (r *rawResult) MarshalJSON() ([]byte, error) { return r.raw, nil }

func ownerOf(ctx context.Context) string {
	o, _ := Owner(ctx)
	return o
}

func (r *Router) sdkGet(ctx context.Context, _ *mcp.ServerSession, p *taskIDParams) (*taskResult, error) {
	if p == nil {
		p = &taskIDParams{}
	}
	if revisionOf(ctx) == rev20260728 {
		rec, err := r.GetDetailed(ctx, ownerOf(ctx), p.TaskID)
		if err != nil {
			return nil, toWire(err)
		}
		return &taskResult{modern: &modernGetResult{rec: rec}}, nil
	}
	t, err := r.Get(ctx, ownerOf(ctx), p.TaskID)
	if err != nil {
		return nil, toWire(err)
	}
	return &taskResult{task: t}, nil
}

func (r *Router) sdkCancel(ctx context.Context, _ *mcp.ServerSession, p *taskIDParams) (*taskResult, error) {
	if p == nil {
		p = &taskIDParams{}
	}
	if revisionOf(ctx) == rev20260728 {
		if err := r.CancelAck(ctx, ownerOf(ctx), p.TaskID); err != nil {
			return nil, toWire(err)
		}
		return &taskResult{ack: true}, nil
	}
	t, err := r.Cancel(ctx, ownerOf(ctx), p.TaskID)
	if err != nil {
		return nil, toWire(err)
	}
	return &taskResult{task: t}, nil
}

func (r *Router) sdkList(ctx context.Context, _ *mcp.ServerSession, p *listParams) (*listResult, error) {
	cursor := ""
	if p != nil {
		cursor = p.Cursor
	}
	tasks, next, err := r.List(ctx, ownerOf(ctx), cursor)
	if err != nil {
		return nil, toWire(err)
	}
	return &listResult{Tasks: tasks, NextCursor: next}, nil
}

func (r *Router) sdkResult(ctx context.Context, _ *mcp.ServerSession, p *taskIDParams) (*rawResult, error) {
	if p == nil {
		p = &taskIDParams{}
	}
	rec, err := r.Result(ctx, ownerOf(ctx), p.TaskID)
	if err != nil {
		return nil, toWire(err)
	}
	if rec.Error != nil {
		return nil, &jsonrpc.Error{Code: int64(rec.Error.Code), Message: rec.Error.Message, Data: rec.Error.Data}
	}
	raw, err := withRelatedTask(rec.Result, rec.Task.TaskID)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "stored result is not an object"}
	}
	return &rawResult{raw: raw}, nil
}

// withRelatedTask sets _meta[RelatedTaskKey] = {taskId} on a JSON object.
func withRelatedTask(result json.RawMessage, taskID string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(result, &m); err != nil || m == nil {
		return nil, errors.New("not an object")
	}
	meta := map[string]json.RawMessage{}
	if raw, ok := m["_meta"]; ok {
		_ = json.Unmarshal(raw, &meta)
		if meta == nil {
			meta = map[string]json.RawMessage{}
		}
	}
	rel, _ := json.Marshal(map[string]string{"taskId": taskID})
	meta[RelatedTaskKey] = rel
	mb, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	m["_meta"] = mb
	return json.Marshal(m)
}

// ---- results the SDK marshals as they are, with fields it does not know ----

// patchedResult marshals Result, then applies patch to the JSON.
type patchedResult struct {
	mcp.Result
	patch func([]byte) ([]byte, error)
}

func (p *patchedResult) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(p.Result)
	if err != nil {
		return nil, err
	}
	return p.patch(b)
}

var tasksCapability = json.RawMessage(`{"list":{},"cancel":{},"requests":{"tools":{"call":{}}}}`)

// addTasksCapability sets capabilities.tasks in an initialize result.
func addTasksCapability(b []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	caps := map[string]json.RawMessage{}
	if raw, ok := m["capabilities"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &caps); err != nil {
			return nil, err
		}
	}
	caps["tasks"] = tasksCapability
	cb, err := json.Marshal(caps)
	if err != nil {
		return nil, err
	}
	m["capabilities"] = cb
	return json.Marshal(m)
}

// addExecution sets execution.taskSupport on each listed tool that has one
// other than forbidden (absent means forbidden).
func addExecution(b []byte, support map[string]TaskSupport) ([]byte, error) {
	if len(support) == 0 {
		return b, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	var tools []map[string]json.RawMessage
	if err := json.Unmarshal(m["tools"], &tools); err != nil {
		return nil, err
	}
	for _, t := range tools {
		var name string
		_ = json.Unmarshal(t["name"], &name)
		if s, ok := support[name]; ok {
			t["execution"] = json.RawMessage(`{"taskSupport":"` + string(s) + `"}`)
		}
	}
	tb, err := json.Marshal(tools)
	if err != nil {
		return nil, err
	}
	m["tools"] = tb
	return json.Marshal(m)
}
