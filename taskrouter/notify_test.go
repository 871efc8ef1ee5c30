package taskrouter_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// An HTTP session gets status notifications only once it has opened its
// standalone stream (GET), the one place they can go: before, none are
// encoded and sent for nobody; after, they arrive on that stream.
func TestStatusNotificationsNeedAStream(t *testing.T) {
	store := newStore(t, taskstore.Config{AllowAnonymous: true})
	r := taskrouter.New(store, taskrouter.Options{Owner: taskrouter.SessionOwner})
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	s := newMCPServer(t, r, newProbe())
	var sent atomic.Int64
	s.AddSendingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if p, ok := req.GetParams().(*mcp.ProgressNotificationParams); ok {
				if tok, _ := p.ProgressToken.(string); strings.HasPrefix(tok, "io.mcptasks/status-") {
					sent.Add(1)
				}
			}
			return next(ctx, method, req)
		}
	})
	hs := httptest.NewServer(r.HTTPHandler(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil), nil))
	t.Cleanup(hs.Close)
	c := newRawSession(t, hs.URL, hs.Client())
	if err := roundTripOf(c); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the run's end is written after tasks/result answers
	if n := sent.Load(); n != 0 {
		t.Fatalf("%d status notifications sent to a session without a stream", n)
	}

	got := openStream(t, hs.URL, "", c.sid)
	if err := roundTripOf(c); err != nil {
		t.Fatal(err)
	}
	waitLine(t, got, `"method":"notifications/tasks/status"`, `"status":"completed"`)
}
