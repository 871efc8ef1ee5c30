package taskrouter

import (
	"encoding/json"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/internal/jsonwalk"
	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
	"github.com/mcptasks/mcptasks/taskrouter/internal/rev20260728"
	"github.com/mcptasks/mcptasks/taskstore"
)

// A view is what one protocol revision shows of a stored task: the only
// code that maps a TaskRecord (and its outcome) to that revision's results,
// errors and notifications. The store records what happened; the views
// decide what each revision makes of it.
type view interface {
	// Created answers the request that created the task.
	Created(rec *taskstore.TaskRecord) any
	// Get answers tasks/get.
	Get(rec *taskstore.TaskRecord) any
	// List answers tasks/list with a page of the caller's tasks.
	List(page *taskstore.Page) (any, error)
	// Cancelled answers tasks/cancel; terminal says the task had already
	// ended (rec is then its current state).
	Cancelled(rec *taskstore.TaskRecord, terminal bool) (any, error)
	// Result answers tasks/result of a terminal task.
	Result(rec *taskstore.TaskRecord) (any, error)
	// Notification is the status notification of rec: its method and params.
	Notification(rec *taskstore.TaskRecord, subscriptionID any) (string, any)
}

var (
	_ view = view20251125{}
	_ view = rev20260728.View{}
)

func viewOf(rev protocol.Revision) view {
	if rev == protocol.Rev20260728 {
		return rev20260728.View{}
	}
	return view20251125{}
}

// ---- 2025-11-25 ----

type view20251125 struct{}

func (view20251125) Created(rec *taskstore.TaskRecord) any {
	t, _ := rec.WireTask().MarshalJSON() // it cannot fail
	return json.RawMessage(append(append([]byte(`{"task":`), t...), '}'))
}

func (view20251125) Get(rec *taskstore.TaskRecord) any { return rec.WireTask() }

func (view20251125) Cancelled(rec *taskstore.TaskRecord, terminal bool) (any, error) {
	if terminal {
		return nil, &taskstore.RPCError{Code: taskstore.CodeInvalidParams,
			Message: fmt.Sprintf("Cannot cancel task: already in terminal status '%s'", rec.Task.Status)}
	}
	return rec.WireTask(), nil
}

func (view20251125) Notification(rec *taskstore.TaskRecord, _ any) (string, any) {
	return "notifications/tasks/status", rec.WireTask()
}

// tasksCapability is the server's capabilities.tasks.
var tasksCapability = json.RawMessage(`{"list":{},"cancel":{},"requests":{"tools":{"call":{}}}}`)

// Initialized adds capabilities.tasks to the SDK's initialize answer, which
// has no field for it.
func (view20251125) Initialized(res mcp.Result) mcp.Result {
	ir, ok := res.(*mcp.InitializeResult)
	if !ok || ir == nil {
		return res
	}
	return &initializeResult{InitializeResult: ir, Capabilities: capabilities{ServerCapabilities: ir.Capabilities, Tasks: tasksCapability}}
}

// initializeResult shadows the SDK's capabilities; declared first, they
// keep their place on the wire (before protocolVersion).
type initializeResult struct {
	Capabilities capabilities `json:"capabilities"`
	*mcp.InitializeResult
}

type capabilities struct {
	*mcp.ServerCapabilities
	Tasks json.RawMessage `json:"tasks"`
}

// ToolsListed sets execution.taskSupport on each listed tool that has one
// other than forbidden (absent means forbidden); the SDK's Tool has no
// field for it.
func (view20251125) ToolsListed(res mcp.Result, support map[string]TaskSupport) mcp.Result {
	lr, ok := res.(*mcp.ListToolsResult)
	if !ok || lr == nil || len(support) == 0 {
		return res
	}
	out := &listToolsResult{ListToolsResult: lr, Tools: make([]tool, len(lr.Tools))}
	for i, t := range lr.Tools {
		out.Tools[i].Tool = t
		if t != nil {
			if s, ok := support[t.Name]; ok {
				out.Tools[i].Execution = &execution{TaskSupport: s}
			}
		}
	}
	return out
}

type listToolsResult struct {
	*mcp.ListToolsResult
	Tools []tool `json:"tools"` // shadows the SDK's
}

type tool struct {
	*mcp.Tool
	Execution *execution `json:"execution,omitempty"`
}

type execution struct {
	TaskSupport TaskSupport `json:"taskSupport"`
}

// List answers tasks/list: the page's tasks as tasks/get shows them.
func (v view20251125) List(page *taskstore.Page) (any, error) {
	list := struct {
		Tasks      []any  `json:"tasks"`
		NextCursor string `json:"nextCursor,omitempty"`
	}{Tasks: make([]any, len(page.Tasks)), NextCursor: page.NextCursor}
	for i, rec := range page.Tasks {
		list.Tasks[i] = v.Get(rec)
	}
	return list, nil
}

// Result answers tasks/result of a terminal task: exactly what the original
// request answered (its result, with the related-task _meta, or its
// JSON-RPC error). A tool result with isError is replayed as it was, and
// the task shows failed.
func (view20251125) Result(rec *taskstore.TaskRecord) (any, error) {
	switch {
	case rec.Error != nil:
		return nil, rec.Error
	case rec.Result == nil:
		return nil, protocol.Failure(rec)
	}
	id, _ := json.Marshal(rec.Task.TaskID)
	rel := append(append([]byte(`{"taskId":`), id...), '}')
	res, err := jsonwalk.SetPath(rec.Result, []string{"_meta", protocol.RelatedTaskKey}, rel)
	if err != nil {
		return nil, &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: "stored result is not an object"}
	}
	return json.RawMessage(res), nil
}

// ---- results the SDK marshals as they are ----

// wireResult is any answer of a view: a value, or JSON kept as it is.
type wireResult struct {
	mcp.ResultBase
	v any
}

func (w *wireResult) MarshalJSON() ([]byte, error) {
	switch v := w.v.(type) {
	case json.RawMessage:
		return v, nil
	case json.Marshaler: // such as taskstore.Task: no reflection, no second pass
		return v.MarshalJSON()
	}
	return json.Marshal(w.v)
}

// patchedResult marshals Result, then applies patch to the JSON (the SDK's
// types have no field for capabilities.tasks, execution or resultType).
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
