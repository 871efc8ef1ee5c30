package protocol

import (
	"errors"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mcptasks/mcptasks/taskstore"
)

func TestParseRevision(t *testing.T) {
	for v, want := range map[string]Revision{
		"2025-11-25": Rev20251125, "2025-06-18": Rev20251125, "": Rev20251125, "garbage": Rev20260728,
		"2026-07-28": Rev20260728, " 2026-07-28 ": Rev20260728, "2027-01-01": Rev20260728,
	} {
		if got := ParseRevision(v); got != want {
			t.Errorf("ParseRevision(%q) = %v, want %v", v, got, want)
		}
	}
	if Rev20251125.String() != "2025-11-25" || Rev20260728.String() != Name20260728 {
		t.Error("revision names")
	}
}

func TestMethodNotFoundKeepsItsMessage(t *testing.T) {
	err := NewMethodNotFound("tool %q must be called as a task", "x")
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != CodeMethodNotFound || je.Message != `tool "x" must be called as a task` {
		t.Fatalf("as wire error: %+v", je)
	}
	if errors.Is(err, &jsonrpc.Error{Code: CodeMethodNotFound}) {
		t.Fatal("it must not be Is a -32601 wire error: the SDK would replace its message")
	}
}

func TestFailure(t *testing.T) {
	rec := &taskstore.TaskRecord{Task: taskstore.Task{Status: taskstore.StatusCancelled}}
	if got := Failure(rec); got.Code != taskstore.CodeInternalError || got.Message != "task cancelled" {
		t.Fatalf("Failure = %+v", got)
	}
	rec.Task.StatusMessage = "stopped by the user"
	if got := Failure(rec); got.Message != "stopped by the user" {
		t.Fatalf("Failure = %+v, want the status message", got)
	}
}
