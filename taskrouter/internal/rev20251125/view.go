// Package rev20251125 is everything protocol 2025-11-25 shows of a task:
// capabilities.tasks in initialize, each tool's execution.taskSupport in
// tools/list, the CreateTaskResult of a task-augmented tools/call,
// tasks/get, tasks/list, tasks/cancel, tasks/result (the original
// request's answer, with the related-task _meta) and
// notifications/tasks/status. The store records what happened; this unit
// decides what this revision makes of it.
package rev20251125

import (
	"encoding/json"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/internal/jsonwalk"
	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
	"github.com/mcptasks/mcptasks/taskstore"
)

// View maps stored tasks to this revision's answers.
type View struct{}

// Created answers the tools/call that created the task: CreateTaskResult.
func (View) Created(rec *taskstore.TaskRecord) any {
	t, _ := rec.WireTask().MarshalJSON() // it cannot fail
	return json.RawMessage(append(append([]byte(`{"task":`), t...), '}'))
}

// Get answers tasks/get: the task, its variables merged into _meta.
func (View) Get(rec *taskstore.TaskRecord) any { return rec.WireTask() }

// Cancelled answers tasks/cancel: the task, now cancelled; cancelling a
// terminal task is -32602.
func (View) Cancelled(rec *taskstore.TaskRecord, terminal bool) (any, error) {
	if terminal {
		return nil, &taskstore.RPCError{Code: taskstore.CodeInvalidParams,
			Message: fmt.Sprintf("Cannot cancel task: already in terminal status '%s'", rec.Task.Status)}
	}
	return rec.WireTask(), nil
}

// Notification is notifications/tasks/status with the task.
func (View) Notification(rec *taskstore.TaskRecord, _ any) (string, any) {
	return "notifications/tasks/status", rec.WireTask()
}

// tasksCapability is the server's capabilities.tasks.
var tasksCapability = json.RawMessage(`{"list":{},"cancel":{},"requests":{"tools":{"call":{}}}}`)

// Initialized adds capabilities.tasks to the SDK's initialize answer, which
// has no field for it.
func (View) Initialized(res mcp.Result) mcp.Result {
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
func (View) ToolsListed(res mcp.Result, support map[string]string) mcp.Result {
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
	TaskSupport string `json:"taskSupport"`
}

// List answers tasks/list: the page's tasks as tasks/get shows them.
func (v View) List(page *taskstore.Page) (any, error) {
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
func (View) Result(rec *taskstore.TaskRecord) (any, error) {
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
