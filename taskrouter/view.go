package taskrouter

import (
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
	"github.com/mcptasks/mcptasks/taskrouter/internal/rev20251125"
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
	_ view = rev20251125.View{}
	_ view = rev20260728.View{}
)

func viewOf(rev protocol.Revision) view {
	if rev == protocol.Rev20260728 {
		return rev20260728.View{}
	}
	return rev20251125.View{}
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
