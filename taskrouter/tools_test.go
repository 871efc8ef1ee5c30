package taskrouter

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks"
	"github.com/mcptasks/mcptasks/taskstore"
)

func TestInstallRefusesUnknownTools(t *testing.T) {
	newServer := func() *mcp.Server {
		s := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
		mcp.AddTool(s, &mcp.Tool{Name: "crunch"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{}, nil, nil
		})
		return s
	}
	cases := []struct {
		name  string
		setup func(r *Router)
		want  string // "" for no error
	}{
		{"known tool", func(r *Router) { r.SetTaskSupport("crunch", TaskOptional) }, ""},
		{"nothing set", func(*Router) {}, ""},
		{"wrong case", func(r *Router) { r.SetTaskSupport("Crunch", TaskOptional) }, `SetTaskSupport("Crunch"): the server has no such tool (it has crunch)`},
		{"resumable", func(r *Router) { r.SetResumable("crnch", 3) }, `SetResumable("crnch")`},
		{"preflight", func(r *Router) {
			r.SetPreflight("other", func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) { return nil, nil })
		}, `SetPreflight("other")`},
		{"unset again", func(r *Router) { r.SetTaskSupport("gone", TaskOptional); r.SetTaskSupport("gone", TaskForbidden) }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store, err := mcptasks.Open(t.Context(), "memory://", taskstore.Config{})
			if err != nil {
				t.Fatal(err)
			}
			r := New(store, Options{})
			t.Cleanup(func() { r.Shutdown(context.Background()) })
			c.setup(r)
			err = r.Install(newServer())
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Install: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Install: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// A server installed but not served through HTTPHandler or Transport loses
// params.task (the SDK drops it): a call of a task-supporting tool is then
// refused, naming the fix, and the mistake is logged once.
func TestCallWithoutTheWrapperIsRefused(t *testing.T) {
	store, err := mcptasks.Open(t.Context(), "memory://", taskstore.Config{AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	r := New(store, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	s := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
	for _, name := range []string{"crunch", "plain"} {
		mcp.AddTool(s, &mcp.Tool{Name: name}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ran"}}}, nil, nil
		})
	}
	r.SetTaskSupport("crunch", TaskOptional)
	if err := r.Install(s); err != nil {
		t.Fatal(err)
	}
	ct, st := mcp.NewInMemoryTransports() // no r.Transport around st
	if _, err := s.Connect(t.Context(), st, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(t.Context(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for range 2 {
		_, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "crunch"})
		if err == nil || !strings.Contains(err.Error(), "Router.HTTPHandler") {
			t.Fatalf("call without the wrapper: %v, want a refusal naming Router.HTTPHandler", err)
		}
	}
	if n := strings.Count(logs.String(), "without taskrouter's transport wrapper"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
	// A tool that does not support tasks is none of the Router's business.
	if res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "plain"}); err != nil || res.IsError {
		t.Fatalf("plain tool: %v %+v", err, res)
	}
}
