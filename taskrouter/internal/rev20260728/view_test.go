package rev20260728

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter/internal/protocol"
)

func decoded(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDiscoverAddsTheExtensionToACopy(t *testing.T) {
	caps := &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}, Extensions: map[string]any{"x.y/z": map[string]any{}}}
	orig := &mcp.DiscoverResult{SupportedVersions: []string{"2026-07-28"}, Capabilities: caps}
	got, ok := Discover(orig).(*mcp.DiscoverResult)
	if !ok {
		t.Fatalf("Discover returned %T", Discover(orig))
	}
	if _, ok := got.Capabilities.Extensions[protocol.ExtensionID]; !ok {
		t.Fatalf("extension missing: %+v", got.Capabilities.Extensions)
	}
	if _, ok := got.Capabilities.Extensions["x.y/z"]; !ok {
		t.Fatal("the server's own extensions must stay")
	}
	if _, ok := caps.Extensions[protocol.ExtensionID]; ok || got.Capabilities == caps {
		t.Fatal("Discover changed the server's shared capabilities")
	}
	if other := mcp.Result(&mcp.InitializeResult{}); Discover(other) != other {
		t.Fatal("a result of another type must pass unchanged")
	}
}

func TestDeclares(t *testing.T) {
	req := func(meta mcp.Meta) mcp.Request {
		return &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Meta: meta}}
	}
	cases := []struct {
		name string
		req  mcp.Request
		want bool
	}{
		{"declared", req(mcp.Meta{protocol.ClientCapsKey: map[string]any{"extensions": map[string]any{protocol.ExtensionID: map[string]any{}}}}), true},
		{"other extension", req(mcp.Meta{protocol.ClientCapsKey: map[string]any{"extensions": map[string]any{"a/b": map[string]any{}}}}), false},
		{"no capabilities", req(nil), false},
		{"capabilities not an object", req(mcp.Meta{protocol.ClientCapsKey: "yes"}), false},
		{"no params", &mcp.CallToolRequest{}, false},
	}
	for _, c := range cases {
		if got := Declares(c.req); got != c.want {
			t.Errorf("%s: Declares = %v, want %v", c.name, got, c.want)
		}
	}
	var je *jsonrpc.Error
	if err := MissingCapability("tasks/get"); !errors.As(err, &je) || je.Code != protocol.CodeMissingRequiredClientCapability {
		t.Fatalf("MissingCapability = %v, want code %d", err, protocol.CodeMissingRequiredClientCapability)
	}
}

// The acknowledgement's stand-in carries the SDK's params with
// notifications.taskIds added, all else as the SDK wrote it.
func TestAckParams(t *testing.T) {
	p := &mcp.SubscriptionsAcknowledgedParams{Meta: mcp.Meta{"k": "v"},
		Notifications: mcp.NotificationSubscriptions{ToolsListChanged: true}}
	got := decoded(t, ackParams{SubscriptionsAcknowledgedParams: p,
		Notifications: ackNotifications{NotificationSubscriptions: p.Notifications, TaskIDs: []string{"t1"}}})
	want := decoded(t, json.RawMessage(`{"_meta":{"k":"v"},"notifications":{"toolsListChanged":true,"taskIds":["t1"]}}`))
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("ack params (-want +got):\n%s", d)
	}
}
