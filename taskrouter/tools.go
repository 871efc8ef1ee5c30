package taskrouter

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter/internal/lease"
)

// toolRules is what the Router was told of each tool: its taskSupport, its
// Preflight, and how many attempts a resumable one has.
type toolRules struct {
	mu        sync.Mutex
	support   map[string]TaskSupport
	preflight map[string]Preflight
	attempts  map[string]int // resumable tools
}

func (t *toolRules) setSupport(tool string, s TaskSupport) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch s {
	case TaskOptional, TaskRequired:
		if t.support == nil {
			t.support = map[string]TaskSupport{}
		}
		t.support[tool] = s
	default:
		delete(t.support, tool)
	}
}

func (t *toolRules) supportOf(tool string) TaskSupport {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.support[tool]; ok {
		return s
	}
	return TaskForbidden
}

// supportMap is every tool's taskSupport other than forbidden.
func (t *toolRules) supportMap() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := make(map[string]string, len(t.support))
	for tool, s := range t.support {
		m[tool] = string(s)
	}
	return m
}

func (t *toolRules) setPreflight(tool string, fn Preflight) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if fn == nil {
		delete(t.preflight, tool)
		return
	}
	if t.preflight == nil {
		t.preflight = map[string]Preflight{}
	}
	t.preflight[tool] = fn
}

func (t *toolRules) preflightOf(tool string) Preflight {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.preflight[tool]
}

func (t *toolRules) setAttempts(tool string, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n < 2 {
		delete(t.attempts, tool)
		return
	}
	if t.attempts == nil {
		t.attempts = map[string]int{}
	}
	t.attempts[tool] = n
}

// rerunFor returns the Rerun of a tools/call of a resumable tool, by a
// client declaring caps, or nil.
func (t *toolRules) rerunFor(tool string, req mcp.Request, caps clientCaps) (json.RawMessage, error) {
	t.mu.Lock()
	attempts := t.attempts[tool]
	t.mu.Unlock()
	cr, ok := req.(*mcp.CallToolRequest)
	if attempts == 0 || !ok || cr.Params == nil {
		return nil, nil
	}
	info := lease.Rerun{Tool: tool, Arguments: cr.Params.Arguments, MaxAttempts: attempts}
	if extra := req.GetExtra(); extra != nil && extra.TokenInfo != nil {
		info.User, info.Scopes = extra.TokenInfo.UserID, extra.TokenInfo.Scopes
	}
	info.Client = caps.json()
	return json.Marshal(info)
}

// check refuses rules for tools that server does not have: a misspelt name
// (tool names are case-sensitive) would otherwise make every task call of
// the real tool fail with -32601.
func (t *toolRules) check(server *mcp.Server) error {
	t.mu.Lock()
	named := map[string]string{}
	for tool := range t.support {
		named[tool] = "SetTaskSupport"
	}
	for tool := range t.preflight {
		named[tool] = "SetPreflight"
	}
	for tool := range t.attempts {
		named[tool] = "SetResumable"
	}
	t.mu.Unlock()
	if len(named) == 0 {
		return nil
	}
	have, err := toolNames(server)
	if err != nil {
		return fmt.Errorf("taskrouter: listing the server's tools: %w", err)
	}
	var unknown []string
	for tool, call := range named {
		if !slices.Contains(have, tool) {
			unknown = append(unknown, fmt.Sprintf("%s(%q)", call, tool))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return fmt.Errorf("taskrouter: %s: the server has no such tool (it has %s); add tools before Install",
		strings.Join(unknown, ", "), strings.Join(have, ", "))
}

// toolNames lists server's tools through an in-memory session.
func toolNames(server *mcp.Server) ([]string, error) {
	ctx := context.Background()
	ct, st := mcp.NewInMemoryTransports()
	ss, err := server.Connect(ctx, st, nil)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "mcptasks-install", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, err
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names, nil
}
