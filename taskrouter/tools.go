package taskrouter

import (
	"encoding/json"
	"maps"
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

// supportMap is a copy of every tool's taskSupport other than forbidden.
func (t *toolRules) supportMap() map[string]TaskSupport {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.support)
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

// rerunFor returns the Rerun of a tools/call of a resumable tool, or nil.
func (t *toolRules) rerunFor(tool string, req mcp.Request) (json.RawMessage, error) {
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
	return json.Marshal(info)
}
