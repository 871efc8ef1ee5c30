package taskrouter

import (
	"encoding/json"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskstore"
)

// A view is what one protocol revision shows of a stored task: the only
// code that maps a TaskRecord (and its outcome) to that revision's results,
// errors and notifications. The store records what happened; the views
// decide what each revision makes of it.
type view interface {
	// created answers the request that created the task.
	created(rec *taskstore.TaskRecord) any
	// get answers tasks/get.
	get(rec *taskstore.TaskRecord) any
	// cancelled answers tasks/cancel; terminal says the task had already
	// ended (rec is then its current state).
	cancelled(rec *taskstore.TaskRecord, terminal bool) (any, error)
	// notification is the status notification of rec: its method and params.
	notification(rec *taskstore.TaskRecord, subscriptionID any) (string, any)
}

func viewOf(rev revision) view {
	if rev == rev20260728 {
		return view20260728{}
	}
	return view20251125{}
}

// failure is the error a terminal task without a stored outcome answers
// with (cancelled, or failed through its handle), in both revisions.
func failure(rec *taskstore.TaskRecord) *taskstore.RPCError {
	msg := rec.Task.StatusMessage
	if msg == "" {
		msg = "task " + string(rec.Task.Status)
	}
	return &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: msg}
}

// ---- 2025-11-25 ----

type view20251125 struct{}

func (view20251125) created(rec *taskstore.TaskRecord) any {
	t, _ := rec.WireTask().MarshalJSON() // it cannot fail
	return json.RawMessage(append(append([]byte(`{"task":`), t...), '}'))
}

func (view20251125) get(rec *taskstore.TaskRecord) any { return rec.WireTask() }

func (view20251125) cancelled(rec *taskstore.TaskRecord, terminal bool) (any, error) {
	if terminal {
		return nil, &taskstore.RPCError{Code: taskstore.CodeInvalidParams,
			Message: fmt.Sprintf("Cannot cancel task: already in terminal status '%s'", rec.Task.Status)}
	}
	return rec.WireTask(), nil
}

func (view20251125) notification(rec *taskstore.TaskRecord, _ any) (string, any) {
	return "notifications/tasks/status", rec.WireTask()
}

// result answers tasks/result of a terminal task: exactly what the original
// request answered (its result, with the related-task _meta, or its
// JSON-RPC error). A tool result with isError is replayed as it was, and
// the task shows failed.
func (view20251125) result(rec *taskstore.TaskRecord) (any, error) {
	switch {
	case rec.Error != nil:
		return nil, rec.Error
	case rec.Result == nil:
		return nil, failure(rec)
	}
	id, _ := json.Marshal(rec.Task.TaskID)
	rel := append(append([]byte(`{"taskId":`), id...), '}')
	res, err := setPath(rec.Result, []string{"_meta", RelatedTaskKey}, rel)
	if err != nil {
		return nil, &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: "stored result is not an object"}
	}
	return json.RawMessage(res), nil
}

// ---- 2026-07-28 (the io.modelcontextprotocol/tasks extension) ----

type view20260728 struct{}

// detailedTask is the extension's Task: ttlMs and pollIntervalMs instead
// of ttl and pollInterval, the outcome inlined, no requestState.
// resultType is left out of notifications.
type detailedTask struct {
	ResultType     string                     `json:"resultType,omitempty"`
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

func (view20260728) task(rec *taskstore.TaskRecord, resultType string) detailedTask {
	t := rec.WireTask()
	d := detailedTask{
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
		d.TTLMs = &ms
	}
	if t.PollInterval != nil {
		ms := max(t.PollInterval.Milliseconds(), 1)
		d.PollIntervalMs = &ms
	}
	return d
}

func (v view20260728) created(rec *taskstore.TaskRecord) any { return v.task(rec, "task") }

// detailed inlines the outcome. On this revision a tool result with isError
// completes the task, and failed means a JSON-RPC error: a task that failed
// with a result shows completed with it.
func (v view20260728) detailed(rec *taskstore.TaskRecord, resultType string) detailedTask {
	d := v.task(rec, resultType)
	switch rec.Task.Status {
	case taskstore.StatusCompleted:
		d.Result = rec.Result
		if d.Result == nil {
			d.Result = json.RawMessage(`{"content":[]}`)
		}
	case taskstore.StatusFailed:
		switch {
		case rec.Error != nil:
			d.Error = rec.Error
		case rec.Result != nil:
			d.Status, d.Result = taskstore.StatusCompleted, rec.Result
		default:
			d.Error = failure(rec)
		}
	case taskstore.StatusInputRequired:
		d.InputRequests = rec.InputRequests
		if len(d.InputRequests) == 0 {
			d.InputRequests = json.RawMessage(`{}`)
		}
	}
	return d
}

func (v view20260728) get(rec *taskstore.TaskRecord) any { return v.detailed(rec, "complete") }

// ack is the empty acknowledgement of tasks/update and tasks/cancel.
var ack = json.RawMessage(`{"resultType":"complete"}`)

// cancelled is an acknowledgement, also for a task already terminal (the
// extension makes cancel idempotent).
func (view20260728) cancelled(*taskstore.TaskRecord, bool) (any, error) { return ack, nil }

func (v view20260728) notification(rec *taskstore.TaskRecord, subscriptionID any) (string, any) {
	d := v.detailed(rec, "")
	if subscriptionID != nil {
		meta := make(map[string]json.RawMessage, len(d.Meta)+1)
		for k, m := range d.Meta {
			meta[k] = m
		}
		meta[mcp.MetaKeySubscriptionID], _ = json.Marshal(subscriptionID)
		d.Meta = meta
	}
	return "notifications/tasks", d
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
