// Package protocol holds what the router's units share about MCP itself:
// the protocol revisions the router serves, the _meta keys and JSON-RPC
// codes both revisions use, and the error a task without a stored outcome
// answers with. Each revision's wire forms are in a unit of their own.
package protocol

import (
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskstore"
)

// Revision is a protocol revision the router serves.
type Revision uint8

const (
	Rev20251125 Revision = iota
	Rev20260728
)

// Name20260728 is the 2026-07-28 revision's name on the wire.
const Name20260728 = "2026-07-28"

// String is the revision's name on the wire.
func (v Revision) String() string {
	if v == Rev20260728 {
		return Name20260728
	}
	return "2025-11-25"
}

// ParseRevision maps a protocol version (dates compare as strings) to the
// revision that serves it.
func ParseRevision(v string) Revision {
	if strings.TrimSpace(v) >= Name20260728 {
		return Rev20260728
	}
	return Rev20251125
}

const (
	// RelatedTaskKey is the _meta key that marks messages belonging to a task.
	RelatedTaskKey = "io.modelcontextprotocol/related-task"
	// ExtensionID names the tasks extension of protocol 2026-07-28.
	ExtensionID = "io.modelcontextprotocol/tasks"
	// VersionKey is the _meta key of a 2026-07-28 request's protocol version.
	VersionKey = "io.modelcontextprotocol/protocolVersion"
	// ClientCapsKey carries a 2026-07-28 request's client capabilities
	// (SEP-2575).
	ClientCapsKey = "io.modelcontextprotocol/clientCapabilities"
)

// JSON-RPC codes the router answers with, beside taskstore's.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	// CodeHeaderMismatch answers an HTTP request whose Mcp-Name header does
	// not match its body.
	CodeHeaderMismatch = -32020
	// CodeMissingRequiredClientCapability answers a 2026-07-28 request that
	// needs a capability (here: the tasks extension) its client did not
	// declare.
	CodeMissingRequiredClientCapability = -32021
)

// MethodNotFound is a -32601 error that keeps its message: the SDK replaces
// the message of any error that errors.Is a -32601 wire error with "method
// not found: <method>", which would hide why a call failed. This one only
// converts (errors.As) to the wire error.
type MethodNotFound struct{ Msg string }

// NewMethodNotFound formats a MethodNotFound.
func NewMethodNotFound(format string, args ...any) error {
	return &MethodNotFound{Msg: fmt.Sprintf(format, args...)}
}

func (e *MethodNotFound) Error() string { return e.Msg }

// As converts e to the SDK's wire error.
func (e *MethodNotFound) As(target any) bool {
	if p, ok := target.(**jsonrpc.Error); ok {
		*p = &jsonrpc.Error{Code: CodeMethodNotFound, Message: e.Msg}
		return true
	}
	return false
}

// Failure is the error a terminal task without a stored outcome answers
// with (cancelled, or failed through its handle), in both revisions.
func Failure(rec *taskstore.TaskRecord) *taskstore.RPCError {
	msg := rec.Task.StatusMessage
	if msg == "" {
		msg = "task " + string(rec.Task.Status)
	}
	return &taskstore.RPCError{Code: taskstore.CodeInternalError, Message: msg}
}

// Meta is the _meta of a request's params (the SDK has decoded it into a
// map), or nil.
func Meta(req mcp.Request) map[string]any {
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
