package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter"
)

// The fixture tools that the official MCP conformance suite's tasks-*
// scenarios (npm @modelcontextprotocol/conformance) call, so that the suite
// can run against `mcptasks serve`. They double as examples of the
// 2026-07-28 tasks extension: server-directed tasks, input requests during
// a task (tasks/update), and input gathered before a task (Preflight).

type greetArgs struct {
	Name string `json:"name" jsonschema:"who to greet"`
}

type computeArgs struct {
	Seconds float64 `json:"seconds" jsonschema:"how long the computation takes, in seconds (at most 3600)"`
	Label   string  `json:"label,omitempty" jsonschema:"a label echoed in the result"`
}

type deleteArgs struct {
	Filename string `json:"filename" jsonschema:"the file to delete (nothing is deleted: a fixture)"`
}

type noArgs struct{}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// addFixtureTools adds greet, slow_compute, failing_job, protocol_error_job,
// confirm_delete, multi_input and test_tool_with_task.
func addFixtureTools(s *mcp.Server, r *taskrouter.Router) {
	mcp.AddTool(s, &mcp.Tool{Name: "greet", Description: "Says hello at once (never a task)."},
		func(_ context.Context, _ *mcp.CallToolRequest, in greetArgs) (*mcp.CallToolResult, any, error) {
			return text(fmt.Sprintf("Hello, %s!", in.Name)), nil, nil
		})

	mcp.AddTool(s, &mcp.Tool{Name: "slow_compute", Description: "Computes for the given number of seconds, then answers. Runs as a task when the client supports tasks."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in computeArgs) (*mcp.CallToolResult, any, error) {
			if in.Seconds < 0 || in.Seconds > 3600 {
				return nil, nil, errors.New("seconds must be between 0 and 3600")
			}
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(time.Duration(in.Seconds * float64(time.Second))):
			}
			return text(fmt.Sprintf("computed %q in %g seconds", in.Label, in.Seconds)), nil, nil
		})
	r.SetTaskSupport("slow_compute", taskrouter.TaskOptional)

	mcp.AddTool(s, &mcp.Tool{Name: "failing_job", Description: "Reports a tool error (isError) after half a second. Must run as a task."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "the job failed, as it always does"}}}, nil, nil
		})
	r.SetTaskSupport("failing_job", taskrouter.TaskRequired)

	s.AddTool(&mcp.Tool{
		Name:        "protocol_error_job",
		Description: "Ends with a JSON-RPC error (a protocol error, not a tool error). Runs as a task when the client supports tasks.",
		InputSchema: json.RawMessage(`{"type":"object"}`),
	}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "protocol_error_job: internal failure, as designed"}
	})
	r.SetTaskSupport("protocol_error_job", taskrouter.TaskOptional)

	mcp.AddTool(s, &mcp.Tool{Name: "confirm_delete", Description: "Asks the user to confirm (an input request during the task), then reports what it did. Runs as a task."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in deleteArgs) (*mcp.CallToolResult, any, error) {
			h := taskrouter.TaskHandle(ctx)
			if h == nil {
				return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "confirm_delete asks for input while it runs, which needs a task (protocol 2026-07-28 with the tasks extension)"}}}, nil, nil
			}
			answers, err := h.AwaitInput(ctx, map[string]any{
				"confirm": elicit(fmt.Sprintf("Delete %s?", in.Filename), "confirm", "boolean"),
			}, "waiting for confirmation")
			if err != nil {
				return nil, nil, err
			}
			if accepted(answers["confirm"]) {
				return text(fmt.Sprintf("Deleted %s (not really: a fixture)", in.Filename)), nil, nil
			}
			return text(fmt.Sprintf("Kept %s", in.Filename)), nil, nil
		})
	r.SetTaskSupport("confirm_delete", taskrouter.TaskOptional)

	mcp.AddTool(s, &mcp.Tool{Name: "multi_input", Description: "Asks for two inputs at once (a name and a confirmation), then answers. Runs as a task."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
			h := taskrouter.TaskHandle(ctx)
			if h == nil {
				return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "multi_input needs a task (protocol 2026-07-28 with the tasks extension)"}}}, nil, nil
			}
			answers, err := h.AwaitInput(ctx, map[string]any{
				"name":    elicit("Your name?", "name", "string"),
				"confirm": elicit("Proceed?", "confirm", "boolean"),
			}, "waiting for two inputs")
			if err != nil {
				return nil, nil, err
			}
			return text(fmt.Sprintf("got %d inputs (name accepted: %v, confirm accepted: %v)", len(answers), accepted(answers["name"]), accepted(answers["confirm"]))), nil, nil
		})
	r.SetTaskSupport("multi_input", taskrouter.TaskOptional)

	mcp.AddTool(s, &mcp.Tool{Name: "test_tool_with_task", Description: "Asks for the user's name first (an input-required round), then becomes a task that greets them. Must run as a task."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
			name := userName(req)
			if name == "" {
				return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "no user_name was provided"}}}, nil, nil
			}
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
			return text(fmt.Sprintf("Hello, %s! (computed in a task)", name)), nil, nil
		})
	r.SetTaskSupport("test_tool_with_task", taskrouter.TaskRequired)
	r.SetPreflight("test_tool_with_task", func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if userName(req) != "" {
			return nil, nil // the input is here: become a task
		}
		return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{
			"user_name": &mcp.ElicitParams{
				Mode:    "form",
				Message: "What is your name?",
				RequestedSchema: map[string]any{
					"type":       "object",
					"properties": map[string]any{"name": map[string]any{"type": "string"}},
					"required":   []string{"name"},
				},
			},
		}}, nil
	})
}

// elicit is an elicitation/create input request for one field.
func elicit(message, field, typ string) map[string]any {
	return map[string]any{
		"method": "elicitation/create",
		"params": map[string]any{
			"mode":    "form",
			"message": message,
			"requestedSchema": map[string]any{
				"type":       "object",
				"properties": map[string]any{field: map[string]any{"type": typ}},
				"required":   []string{field},
			},
		},
	}
}

func accepted(raw json.RawMessage) bool {
	var r struct {
		Action string `json:"action"`
	}
	return json.Unmarshal(raw, &r) == nil && r.Action == "accept"
}

// userName is the name from the user_name input response, if any.
func userName(req *mcp.CallToolRequest) string {
	if req == nil || req.Params == nil {
		return ""
	}
	er, ok := req.Params.InputResponses["user_name"].(*mcp.ElicitResult)
	if !ok || er == nil || er.Action != "accept" {
		return ""
	}
	for _, k := range []string{"name", "user_name"} {
		if s, ok := er.Content[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}
