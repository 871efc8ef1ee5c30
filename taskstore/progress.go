package taskstore

import (
	"encoding/json"
)

// ProgressVariable is the task variable in which a handler may record how
// far its task has come, as a JSON object {"progress":n,"total":m,
// "message":"…"} (the fields of an MCP progress notification; total and
// message optional, total 0 or absent when unknown). Operator tools (the
// admin page of package taskadmin) show it as a bar. It is a convention,
// not a feature of the Router: progress notifications to the client cost
// no store write, and nothing records them here. A handler that wants its
// progress seen by operators writes the variable when it writes anyway (a
// checkpoint), or at most every few seconds:
//
//	h.SetVariables(ctx, map[string]any{taskstore.ProgressVariable: taskstore.Progress{Progress: 3, Total: 10}})
const ProgressVariable = "io.mcptasks.task/progress"

// Progress is the value of ProgressVariable.
type Progress struct {
	// Progress is how much is done, in any unit: it increases as the work
	// goes on.
	Progress float64 `json:"progress"`
	// Total is how much there is to do, in the same unit, or 0 when unknown.
	Total float64 `json:"total,omitempty"`
	// Message says what is being done, optionally.
	Message string `json:"message,omitempty"`
}

// Progress returns the task's ProgressVariable, and false when it has none
// or it is not a Progress (not an object, or a number below 0).
func (r *TaskRecord) Progress() (Progress, bool) {
	raw, ok := r.Variables[ProgressVariable]
	if !ok {
		return Progress{}, false
	}
	var p Progress
	if !isObject(raw) || json.Unmarshal(raw, &p) != nil || p.Progress < 0 || p.Total < 0 {
		return Progress{}, false
	}
	return p, true
}

func isObject(raw json.RawMessage) bool {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{'
	}
	return false
}
