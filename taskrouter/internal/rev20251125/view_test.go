package rev20251125

import (
	"encoding/json"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// exact compares the marshalled answer byte for byte: the key order is
// what clients (and the README's walkthrough) see.
func exact(t *testing.T, what, want string, v any) {
	t.Helper()
	got, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

func TestViewCapabilitiesAndTools(t *testing.T) {
	init := &mcp.InitializeResult{ProtocolVersion: "2025-11-25", ServerInfo: &mcp.Implementation{Name: "s", Version: "1"},
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{ListChanged: true}}}
	exact(t, "initialize", `{"capabilities":{"tools":{"listChanged":true},"tasks":{"list":{},"cancel":{},"requests":{"tools":{"call":{}}}}},`+
		`"protocolVersion":"2025-11-25","serverInfo":{"name":"s","version":"1"}}`, View{}.Initialized(init))

	list := &mcp.ListToolsResult{Tools: []*mcp.Tool{{Name: "plain", InputSchema: map[string]any{"type": "object"}}, {Name: "slow", InputSchema: map[string]any{"type": "object"}}}}
	// ttlMs and cacheScope are the SDK's own (its Cacheable), kept as they are.
	exact(t, "tools/list", `{"ttlMs":0,"cacheScope":"","tools":[{"inputSchema":{"type":"object"},"name":"plain"},`+
		`{"inputSchema":{"type":"object"},"name":"slow","execution":{"taskSupport":"required"}}]}`,
		View{}.ToolsListed(list, map[string]string{"slow": "required", "gone": "optional"}))
	if got := (View{}).ToolsListed(list, nil); got != mcp.Result(list) {
		t.Error("with no tool supporting tasks, the SDK's answer must pass as it is")
	}
}
