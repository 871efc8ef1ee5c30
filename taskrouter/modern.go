package taskrouter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskstore"
)

// This file serves the tasks extension of protocol 2026-07-28
// (io.modelcontextprotocol/tasks, SEP-2663) from the same store and records
// as the 2025-11-25 flow. Its requests reach the SDK through HTTPHandler's
// stateless route (HTTPOptions.Stateless), which marks each one with the
// private _meta key modernMetaKey; without that mark a request is served
// as 2025-11-25.
//
// Differences from 2025-11-25, all on the wire: the client opts in per
// request (_meta clientCapabilities.extensions), the server decides which
// calls become tasks, CreateTaskResult is flat (resultType "task", ttlMs,
// pollIntervalMs), tasks/get inlines result, error or inputRequests,
// tasks/update delivers input responses, tasks/cancel is an empty
// acknowledgement, tasks/result and tasks/list are gone (-32601), and a
// tool result with isError completes the task.

// ExtensionID names the tasks extension of protocol 2026-07-28.
const ExtensionID = "io.modelcontextprotocol/tasks"

// CodeMissingRequiredClientCapability is the JSON-RPC error a 2026-07-28
// request gets when it needs a capability (here: the tasks extension) its
// client did not declare.
const CodeMissingRequiredClientCapability = -32021

// clientCapsMetaKey carries the per-request client capabilities (SEP-2575).
const clientCapsMetaKey = "io.modelcontextprotocol/clientCapabilities"

// Preflight runs synchronously when a 2026-07-28 call of a task-supporting
// tool is about to become a task. A non-nil result answers the call instead
// and no task is created: typically a result with InputRequests (an SEP-2322
// input-required round), so that input is gathered before the task exists,
// as SEP-2663 recommends. On the retried call (which carries the client's
// inputResponses) it returns nil, and the call becomes a task whose handler
// sees the same inputResponses.
type Preflight func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error)

// SetPreflight sets the named tool's Preflight (nil removes it). It applies
// only to 2026-07-28 calls that are about to become tasks.
func (r *Router) SetPreflight(tool string, fn Preflight) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.preflight == nil {
		r.preflight = map[string]Preflight{}
	}
	if fn == nil {
		delete(r.preflight, tool)
		return
	}
	r.preflight[tool] = fn
}

func (r *Router) preflightOf(tool string) Preflight {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.preflight[tool]
}

func metaOf(req mcp.Request) map[string]any {
	if req == nil {
		return nil
	}
	p := req.GetParams()
	if p == nil {
		return nil
	}
	defer func() { recover() }() // a nil typed params pointer
	return p.GetMeta()
}

// declaresTasks reports whether the request's client capabilities name the
// tasks extension.
func declaresTasks(req mcp.Request) bool {
	caps, ok := metaOf(req)[clientCapsMetaKey]
	if !ok {
		return false
	}
	var c struct {
		Extensions map[string]json.RawMessage `json:"extensions"`
	}
	b, err := json.Marshal(caps)
	if err != nil || json.Unmarshal(b, &c) != nil {
		return false
	}
	_, ok = c.Extensions[ExtensionID]
	return ok
}

func missingTasksCapability(what string) error {
	return &jsonrpc.Error{
		Code:    CodeMissingRequiredClientCapability,
		Message: "Missing required client capability: " + what + " needs the " + ExtensionID + " extension",
		Data:    json.RawMessage(`{"requiredCapabilities":{"extensions":{"` + ExtensionID + `":{}}}}`),
	}
}

// modernReceiving is the receiving middleware's part for 2026-07-28
// requests. handled is false for methods it leaves to the SDK.
func (r *Router) modernReceiving(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (res mcp.Result, err error, handled bool) {
	switch method {
	case "server/discover":
		res, err := next(ctx, method, req)
		if err != nil || res == nil {
			return res, err, true
		}
		return &patchedResult{Result: res, patch: addTasksExtension}, nil, true
	case "tools/call":
		res, err := r.modernToolsCall(ctx, method, req, next)
		return res, err, true
	case "tasks/get", "tasks/update", "tasks/cancel":
		if !declaresTasks(req) {
			return nil, missingTasksCapability(method), true
		}
		owner := r.owner(ctx, req)
		ctx = context.WithValue(ctx, ownerKey{}, owner)
		res, err := next(ctx, method, req)
		return res, err, true
	case "subscriptions/listen":
		res, err := r.modernListen(ctx, method, req, next)
		return res, err, true
	case "tasks/result", "tasks/list":
		return nil, methodNotFound(fmt.Sprintf("%q is not part of the %s extension (protocol 2026-07-28): use tasks/get", method, ExtensionID)), true
	}
	return nil, nil, false
}

func (r *Router) modernToolsCall(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	cr, ok := req.(*mcp.CallToolRequest)
	if !ok || cr.Params == nil {
		return next(ctx, method, req)
	}
	p := cr.Params
	owner := r.owner(ctx, req)
	ctx = context.WithValue(ctx, ownerKey{}, owner)
	support := r.TaskSupport(p.Name)
	declared := declaresTasks(req)
	switch {
	case support == TaskForbidden:
		return next(ctx, method, req)
	case !declared && support == TaskRequired:
		return nil, missingTasksCapability(fmt.Sprintf("tool %q", p.Name))
	case !declared:
		return next(ctx, method, req) // optional: run it as a plain call
	}
	if pf := r.preflightOf(p.Name); pf != nil {
		res, err := pf(ctx, cr)
		if err != nil {
			return nil, err
		}
		if res != nil {
			return withResultType(res, "input_required"), nil
		}
	}
	task, err := r.startTool(ctx, StartRequest{Owner: owner, Method: method, Tool: p.Name, Modern: true}, next, req)
	if err != nil {
		return nil, toWire(err)
	}
	return &modernCreateResult{task: task}, nil
}

// withResultType answers res with resultType set (when res has
// inputRequests, the SEP-2322 input-required round).
func withResultType(res *mcp.CallToolResult, rt string) mcp.Result {
	if res.InputRequests == nil {
		rt = "complete"
	}
	return &patchedResult{Result: res, patch: func(b []byte) ([]byte, error) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		m["resultType"] = json.RawMessage(`"` + rt + `"`)
		return json.Marshal(m)
	}}
}

// addTasksExtension sets capabilities.extensions[ExtensionID] in a
// server/discover result, sets resultType, and drops a 2025-11-25 capabilities.tasks (the
// SEP forbids advertising both under one protocol version).
func addTasksExtension(b []byte) ([]byte, error) {
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
	delete(caps, "tasks")
	ext := map[string]json.RawMessage{}
	if raw, ok := caps["extensions"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &ext); err != nil {
			return nil, err
		}
	}
	ext[ExtensionID] = json.RawMessage(`{}`)
	eb, err := json.Marshal(ext)
	if err != nil {
		return nil, err
	}
	caps["extensions"] = eb
	cb, err := json.Marshal(caps)
	if err != nil {
		return nil, err
	}
	m["capabilities"] = cb
	// The SDK sets resultType on its own result types only; this wrapper
	// hides the one it would have set.
	if _, ok := m["resultType"]; !ok {
		m["resultType"] = json.RawMessage(`"complete"`)
	}
	return json.Marshal(m)
}

// ---- wire shapes of the extension ----

// modernTask is the extension's Task: ttlMs and pollIntervalMs instead of
// ttl and pollInterval, and no requestState.
type modernTask struct {
	ResultType     string                     `json:"resultType"`
	TaskID         string                     `json:"taskId"`
	Status         taskstore.Status           `json:"status"`
	StatusMessage  string                     `json:"statusMessage,omitempty"`
	CreatedAt      string                     `json:"createdAt"`
	LastUpdatedAt  string                     `json:"lastUpdatedAt"`
	TTLMs          *int64                     `json:"ttlMs"`
	PollIntervalMs *int64                     `json:"pollIntervalMs,omitempty"`
	Meta           map[string]json.RawMessage `json:"_meta,omitempty"`
	Result         json.RawMessage            `json:"result,omitempty"`
	Error          *taskstore.RPCError        `json:"error,omitempty"`
	InputRequests  json.RawMessage            `json:"inputRequests,omitempty"`
}

func toModern(t taskstore.Task, resultType string) modernTask {
	mt := modernTask{
		ResultType:    resultType,
		TaskID:        t.TaskID,
		Status:        t.Status,
		StatusMessage: t.StatusMessage,
		CreatedAt:     t.CreatedAt.UTC().Format(taskstore.TimeFormat),
		LastUpdatedAt: t.LastUpdatedAt.UTC().Format(taskstore.TimeFormat),
		Meta:          t.Meta,
	}
	if t.TTL != nil {
		ms := t.TTL.Milliseconds()
		mt.TTLMs = &ms
	}
	if t.PollInterval != nil {
		ms := max(t.PollInterval.Milliseconds(), 1)
		mt.PollIntervalMs = &ms
	}
	return mt
}

// detailedTask is tasks/get's DetailedTask for rec. A record of the
// 2025-11-25 flow that failed with a tool result (isError) is shown as the
// extension defines that case: completed, with the result.
func detailedTask(rec *taskstore.TaskRecord) modernTask {
	mt := toModern(rec.WireTask(), "complete")
	switch rec.Task.Status {
	case taskstore.StatusCompleted:
		mt.Result = rec.Result
		if mt.Result == nil {
			mt.Result = json.RawMessage(`{"content":[]}`)
		}
	case taskstore.StatusFailed:
		switch {
		case rec.Error != nil:
			mt.Error = rec.Error
		case rec.Result != nil:
			mt.Status = taskstore.StatusCompleted
			mt.Result = rec.Result
		default:
			msg := rec.Task.StatusMessage
			if msg == "" {
				msg = "task failed"
			}
			mt.Error = &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: msg}
		}
	case taskstore.StatusInputRequired:
		mt.InputRequests = rec.InputRequests
		if len(mt.InputRequests) == 0 {
			mt.InputRequests = json.RawMessage(`{}`)
		}
	}
	return mt
}

type modernCreateResult struct {
	mcp.ResultBase
	task taskstore.Task
}

func (m *modernCreateResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(toModern(m.task, "task"))
}

type modernGetResult struct {
	mcp.ResultBase
	rec *taskstore.TaskRecord
}

func (m *modernGetResult) MarshalJSON() ([]byte, error) { return json.Marshal(detailedTask(m.rec)) }

// ackResult is the empty acknowledgement of tasks/update and tasks/cancel.
type ackResult struct {
	mcp.ResultBase
}

func (*ackResult) MarshalJSON() ([]byte, error) { return []byte(`{"resultType":"complete"}`), nil }

// ---- the extension's methods over the store ----

// GetDetailed is the extension's tasks/get: the record, for DetailedTask.
func (r *Router) GetDetailed(ctx context.Context, owner, taskID string) (*taskstore.TaskRecord, error) {
	rec, err := r.store.Get(ctx, owner, taskID)
	if err != nil {
		return nil, rpcError(err)
	}
	return rec, nil
}

// Update is tasks/update: it delivers input responses; responses to keys
// that are not pending are ignored, and so is an update of a terminal
// task. An unknown task is -32602.
func (r *Router) Update(ctx context.Context, owner, taskID string, responses map[string]json.RawMessage) error {
	if _, err := r.store.SubmitInput(ctx, owner, taskID, responses); err != nil {
		return rpcError(err)
	}
	r.pokeWatchers()
	return nil
}

// CancelAck is the extension's tasks/cancel: cancelling a terminal task is
// acknowledged like any other (the spec makes it idempotent); an unknown
// task is -32602.
func (r *Router) CancelAck(ctx context.Context, owner, taskID string) error {
	_, err := r.Cancel(ctx, owner, taskID)
	var e *Error
	if errors.As(err, &e) && e.Code == taskstore.CodeInvalidParams {
		if _, gerr := r.store.Get(ctx, owner, taskID); gerr == nil {
			return nil // terminal: acknowledged
		}
	}
	return err
}

type updateParams struct {
	mcp.ParamsBase
	TaskID         string                     `json:"taskId"`
	InputResponses map[string]json.RawMessage `json:"inputResponses"`
}

func (r *Router) sdkUpdate(ctx context.Context, _ *mcp.ServerSession, p *updateParams) (*ackResult, error) {
	if revisionOf(ctx) != rev20260728 {
		return nil, methodNotFound(`"tasks/update" belongs to the ` + ExtensionID + ` extension (protocol 2026-07-28)`)
	}
	if p == nil || p.InputResponses == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "params.inputResponses must be an object"}
	}
	if err := r.Update(ctx, ownerOf(ctx), p.TaskID, p.InputResponses); err != nil {
		return nil, toWire(err)
	}
	return &ackResult{}, nil
}
