//lint:file-ignore SA1019 ask_model shows sampling, deprecated from 2026-07-28 on, which 2025-11-25 clients offer

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

type sleepArgs struct {
	Seconds float64 `json:"seconds" jsonschema:"how long to sleep, in seconds (at most 3600)"`
}

type failArgs struct {
	Message string `json:"message" jsonschema:"the error message the tool reports"`
}

type askUserArgs struct {
	Question string `json:"question,omitempty" jsonschema:"what to ask the user (default: Proceed?)"`
}

type askModelArgs struct {
	Prompt string `json:"prompt,omitempty" jsonschema:"what to ask the client's model"`
}

type reportArgs struct {
	Topic string `json:"topic,omitempty" jsonschema:"what the report is about"`
	Steps int    `json:"steps,omitempty" jsonschema:"how many steps the report takes (default 4, at most 100)"`
	// StepSeconds sets how often a running report checkpoints (probes of
	// the running cost set it).
	StepSeconds float64 `json:"stepSeconds,omitempty" jsonschema:"how long each step takes, in seconds (default 0.5, at most 60)"`
}

// addDemoTools adds sleep, fail, slow_report, ask_user and ask_model to s
// and declares their task support to r.
func addDemoTools(s *mcp.Server, r *taskrouter.Router) {
	mcp.AddTool(s, &mcp.Tool{
		Name:        "sleep",
		Description: "Sleeps for the given number of seconds, reporting progress, then says so. May run as a task.",
	}, sleepTool)
	r.SetTaskSupport("sleep", taskrouter.TaskOptional)

	mcp.AddTool(s, &mcp.Tool{
		Name:        "fail",
		Description: "Fails at once with the given message (an isError result). May run as a task, which then ends failed.",
	}, failTool)
	r.SetTaskSupport("fail", taskrouter.TaskOptional)

	mcp.AddTool(s, &mcp.Tool{
		Name:        "slow_report",
		Description: "Writes a report in several slow steps (half a second each unless stepSeconds says), recording its progress in the task's variables. Must run as a task.",
	}, reportTool)
	r.SetTaskSupport("slow_report", taskrouter.TaskRequired)
	r.SetResumable("slow_report", reportAttempts)

	mcp.AddTool(s, &mcp.Tool{
		Name:        "ask_user",
		Description: "Asks the user a question (an elicitation) while it runs, then reports the answer. May run as a task: the task is input_required until the client answers through tasks/result.",
	}, askUserTool)
	r.SetTaskSupport("ask_user", taskrouter.TaskOptional)

	mcp.AddTool(s, &mcp.Tool{
		Name:        "ask_model",
		Description: "Asks the client's model (a sampling request) while it runs, then reports what it said. May run as a task: the task is input_required until the client answers through tasks/result.",
	}, askModelTool)
	r.SetTaskSupport("ask_model", taskrouter.TaskOptional)
}

// askUserTool asks as any go-sdk handler does; as a task, the Router turns
// the request into the task's input_required state.
func askUserTool(ctx context.Context, req *mcp.CallToolRequest, in askUserArgs) (*mcp.CallToolResult, any, error) {
	q := in.Question
	if q == "" {
		q = "Proceed?"
	}
	res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{
		Message: q,
		RequestedSchema: &jsonschema.Schema{
			Type:       "object",
			Properties: map[string]*jsonschema.Schema{"answer": {Type: "string", Description: q}},
			Required:   []string{"answer"},
		},
	})
	if err != nil {
		return nil, nil, err
	}
	if res.Action != "accept" {
		return text(fmt.Sprintf("the user chose %s", res.Action)), nil, nil
	}
	return text(fmt.Sprintf("the user answered: %v", res.Content["answer"])), nil, nil
}

func askModelTool(ctx context.Context, req *mcp.CallToolRequest, in askModelArgs) (*mcp.CallToolResult, any, error) {
	p := in.Prompt
	if p == "" {
		p = "Say hello."
	}
	res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{
		Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: p}}},
		MaxTokens: 200,
	})
	if err != nil {
		return nil, nil, err
	}
	said := ""
	if t, ok := res.Content.(*mcp.TextContent); ok {
		said = t.Text
	}
	return text(fmt.Sprintf("the model (%s) said: %s", res.Model, said)), nil, nil
}

// reportAttempts is how many runs a slow_report task gets when the
// replicas running it stop (see taskrouter.Router.SetResumable).
const reportAttempts = 3

// progress sends a progress notification if the caller asked for them.
func progress(ctx context.Context, req *mcp.CallToolRequest, done, total float64, msg string) {
	tok := req.Params.GetProgressToken()
	if tok == nil {
		return
	}
	_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
		ProgressToken: tok, Progress: done, Total: total, Message: msg,
	})
}

func sleepTool(ctx context.Context, req *mcp.CallToolRequest, in sleepArgs) (*mcp.CallToolResult, any, error) {
	if in.Seconds < 0 || in.Seconds > 3600 {
		return nil, nil, errors.New("seconds must be between 0 and 3600")
	}
	total := time.Duration(in.Seconds * float64(time.Second))
	step := min(max(total/10, 10*time.Millisecond), time.Second)
	start := time.Now()
	t := time.NewTicker(step)
	defer t.Stop()
	deadline := time.NewTimer(total)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-deadline.C:
			progress(ctx, req, in.Seconds, in.Seconds, "done")
			return &mcp.CallToolResult{Content: []mcp.Content{
				&mcp.TextContent{Text: fmt.Sprintf("slept %g seconds", in.Seconds)},
			}}, nil, nil
		case <-t.C:
			progress(ctx, req, time.Since(start).Seconds(), in.Seconds, "sleeping")
		}
	}
}

func failTool(_ context.Context, _ *mcp.CallToolRequest, in failArgs) (*mcp.CallToolResult, any, error) {
	msg := in.Message
	if msg == "" {
		msg = "failed as asked"
	}
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}, nil, nil
}

func reportLine(i int) string { return fmt.Sprintf("report.line.%d", i) }

func reportTool(ctx context.Context, req *mcp.CallToolRequest, in reportArgs) (*mcp.CallToolResult, any, error) {
	steps := in.Steps
	if steps == 0 {
		steps = 4
	}
	if steps < 0 || steps > 100 {
		return nil, nil, errors.New("steps must be between 1 and 100")
	}
	step := 500 * time.Millisecond
	switch {
	case in.StepSeconds < 0 || in.StepSeconds > 60:
		return nil, nil, errors.New("stepSeconds must be between 0 and 60")
	case in.StepSeconds > 0:
		step = time.Duration(in.StepSeconds * float64(time.Second))
	}
	topic := in.Topic
	if topic == "" {
		topic = "the weather"
	}
	h := taskrouter.TaskHandle(ctx) // never nil: the tool is task-only
	if h == nil {
		return nil, nil, errors.New("slow_report runs only as a task")
	}
	// Each finished step is a checkpoint variable: a run taken over from a
	// replica that stopped continues after the last one.
	var lines []string
	rec, err := h.Get(ctx)
	if err != nil {
		return nil, nil, err
	}
	for i := 1; i <= steps; i++ {
		var line string
		if json.Unmarshal(rec.Variables[reportLine(i)], &line) != nil {
			break
		}
		lines = append(lines, line)
	}
	for i := len(lines) + 1; i <= steps; i++ {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(step):
		}
		line := fmt.Sprintf("%d. finding %d about %s (attempt %d)", i, i, topic, h.Attempt())
		// Visible to tasks/get in _meta, on every replica; the progress
		// (for the admin page) goes in the same write.
		if err := h.SetVariables(ctx, map[string]any{reportLine(i): line, "report.step": i, "report.steps": steps,
			taskstore.ProgressVariable: taskstore.Progress{Progress: float64(i), Total: float64(steps), Message: fmt.Sprintf("step %d of %d", i, steps)}}); err != nil {
			return nil, nil, err
		}
		lines = append(lines, line)
		progress(ctx, req, float64(i), float64(steps), fmt.Sprintf("step %d of %d", i, steps))
	}
	return &mcp.CallToolResult{Content: []mcp.Content{
		&mcp.TextContent{Text: fmt.Sprintf("Report on %s:\n%s", topic, strings.Join(lines, "\n"))},
	}}, nil, nil
}
