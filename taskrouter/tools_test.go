package taskrouter

import (
	"context"
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
