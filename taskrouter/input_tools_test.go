//lint:file-ignore SA1019 the tools ask for sampling and roots, deprecated from 2026-07-28 on, as 2025-11-25 handlers do

package taskrouter_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter"
)

type askIn struct {
	Question string `json:"question"`
	Times    int    `json:"times,omitempty"`
}

// addInputTools adds tools that ask the client as any go-sdk handler does:
// elicit (elicitation, Times times in a row), sample (CreateMessage),
// sample_tools (CreateMessageWithTools) and roots (ListRoots).
func addInputTools(s *mcp.Server, r *taskrouter.Router, p *probe) {
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	mcp.AddTool(s, &mcp.Tool{Name: "elicit"}, func(ctx context.Context, req *mcp.CallToolRequest, in askIn) (*mcp.CallToolResult, any, error) {
		if h := taskrouter.TaskHandle(ctx); h != nil {
			defer close(p.Stopped(h.ID()))
		}
		var answers []string
		for i := range max(in.Times, 1) {
			res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{
				Message: fmt.Sprintf("%s (%d)", in.Question, i+1),
				RequestedSchema: &jsonschema.Schema{Type: "object", Required: []string{"answer"},
					Properties: map[string]*jsonschema.Schema{"answer": {Type: "string"}}},
			})
			if err != nil {
				return nil, nil, err
			}
			answers = append(answers, fmt.Sprintf("%s:%v", res.Action, res.Content["answer"]))
		}
		return text("answers: " + strings.Join(answers, ",")), nil, nil
	})
	r.SetTaskSupport("elicit", taskrouter.TaskOptional)
	mcp.AddTool(s, &mcp.Tool{Name: "sample"}, func(ctx context.Context, req *mcp.CallToolRequest, in askIn) (*mcp.CallToolResult, any, error) {
		res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 10,
			Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: in.Question}}}})
		if err != nil {
			return nil, nil, err
		}
		t, _ := res.Content.(*mcp.TextContent)
		if t == nil {
			return nil, nil, errors.New("no text content")
		}
		return text(fmt.Sprintf("model %s: %s", res.Model, t.Text)), nil, nil
	})
	r.SetTaskSupport("sample", taskrouter.TaskOptional)
	mcp.AddTool(s, &mcp.Tool{Name: "sample_tools"}, func(ctx context.Context, req *mcp.CallToolRequest, in askIn) (*mcp.CallToolResult, any, error) {
		res, err := req.Session.CreateMessageWithTools(ctx, &mcp.CreateMessageWithToolsParams{MaxTokens: 10,
			Messages: []*mcp.SamplingMessageV2{{Role: "user", Content: []mcp.Content{&mcp.TextContent{Text: in.Question}}}}})
		if err != nil {
			return nil, nil, err
		}
		return text(fmt.Sprintf("model %s: %d blocks", res.Model, len(res.Content))), nil, nil
	})
	r.SetTaskSupport("sample_tools", taskrouter.TaskOptional)
	mcp.AddTool(s, &mcp.Tool{Name: "roots"}, func(ctx context.Context, req *mcp.CallToolRequest, in askIn) (*mcp.CallToolResult, any, error) {
		res, err := req.Session.ListRoots(ctx, nil)
		if err != nil {
			return nil, nil, err
		}
		var uris []string
		for _, r := range res.Roots {
			uris = append(uris, r.URI)
		}
		return text("roots: " + strings.Join(uris, ",")), nil, nil
	})
	r.SetTaskSupport("roots", taskrouter.TaskOptional)
}
