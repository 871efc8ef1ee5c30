// Package rev20260728 is everything protocol 2026-07-28 shows of a task
// (the io.modelcontextprotocol/tasks extension): the created answer,
// tasks/get with the outcome inlined, the tasks/cancel and tasks/update
// acknowledgements, notifications/tasks on subscriptions/listen streams,
// and the extension in server/discover. The store records what happened;
// this unit decides what this revision makes of it.
package rev20260728

import (
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
	"github.com/mcptasks/mcptasks/taskstore"
)

// View maps stored tasks to this revision's answers.
type View struct{}

// Task is the extension's DetailedTask: ttlMs and pollIntervalMs instead
// of ttl and pollInterval, the outcome inlined, no requestState.
// resultType is left out of notifications.
type Task struct {
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

func task(rec *taskstore.TaskRecord, resultType string) Task {
	t := rec.WireTask()
	d := Task{
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

// Created answers the tools/call that created the task.
func (View) Created(rec *taskstore.TaskRecord) any { return task(rec, "task") }

// detailed inlines the outcome. On this revision a tool result with isError
// completes the task, and failed means a JSON-RPC error: a task that failed
// with a result shows completed with it.
func detailed(rec *taskstore.TaskRecord, resultType string) Task {
	d := task(rec, resultType)
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
			d.Error = protocol.Failure(rec)
		}
	case taskstore.StatusInputRequired:
		d.InputRequests = rec.InputRequests
		if len(d.InputRequests) == 0 {
			d.InputRequests = json.RawMessage(`{}`)
		}
	}
	return d
}

// Get answers tasks/get.
func (View) Get(rec *taskstore.TaskRecord) any { return detailed(rec, "complete") }

// Ack is the empty acknowledgement of tasks/update and tasks/cancel.
var Ack = json.RawMessage(`{"resultType":"complete"}`)

// Cancelled is an acknowledgement, also for a task already terminal (the
// extension makes cancel idempotent).
func (View) Cancelled(*taskstore.TaskRecord, bool) (any, error) { return Ack, nil }

// List and Result: the extension has neither method (tasks/get inlines
// the outcome).
func (View) List(*taskstore.Page) (any, error) { return nil, notInExtension("tasks/list") }

func (View) Result(*taskstore.TaskRecord) (any, error) { return nil, notInExtension("tasks/result") }

func notInExtension(method string) error {
	return protocol.NewMethodNotFound("%q is not part of the %s extension (protocol %s): use tasks/get", method, protocol.ExtensionID, protocol.Name20260728)
}

// NotInExtension refuses a 2025-11-25 method that the extension dropped.
func NotInExtension(method string) error { return notInExtension(method) }

// Notification is the notifications/tasks of rec, with the subscription id
// (of the listen stream it goes on) in _meta.
func (View) Notification(rec *taskstore.TaskRecord, subscriptionID any) (string, any) {
	d := detailed(rec, "")
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

// Discover adds the extension to a server/discover answer, and leaves out
// the 2025-11-25 capabilities.tasks (the SEP forbids both under one
// revision). The answer is a copy: the server's capabilities are shared.
func Discover(res mcp.Result) mcp.Result {
	d, ok := res.(*mcp.DiscoverResult)
	if !ok || d == nil {
		return res
	}
	c := *d
	caps := mcp.ServerCapabilities{}
	if d.Capabilities != nil {
		caps = *d.Capabilities
	}
	ext := make(map[string]any, len(caps.Extensions)+1)
	for k, v := range caps.Extensions {
		ext[k] = v
	}
	ext[protocol.ExtensionID] = map[string]any{}
	caps.Extensions = ext
	c.Capabilities = &caps
	return &c
}

// Declares reports whether a request's client capabilities name the tasks
// extension.
func Declares(req mcp.Request) bool {
	var c struct {
		Extensions map[string]json.RawMessage `json:"extensions"`
	}
	b, err := json.Marshal(protocol.Meta(req)[protocol.ClientCapsKey])
	if err != nil || json.Unmarshal(b, &c) != nil {
		return false
	}
	_, ok := c.Extensions[protocol.ExtensionID]
	return ok
}

// MissingCapability is the error of a request that needs the extension
// its client did not declare.
func MissingCapability(what string) error {
	return &jsonrpc.Error{
		Code:    protocol.CodeMissingRequiredClientCapability,
		Message: "Missing required client capability: " + what + " needs the " + protocol.ExtensionID + " extension",
		Data:    json.RawMessage(`{"requiredCapabilities":{"extensions":{"` + protocol.ExtensionID + `":{}}}}`),
	}
}
