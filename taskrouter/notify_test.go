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

// A task's end is told once: the run's own end and its echo on the change
// feed, or a tasks/cancel and the run noticing it, are one event.
func TestStatusNotifiedOncePerEnd(t *testing.T) {
	ctx := t.Context()
	rep := newReplica(t, newStore(t, taskstore.Config{}), replicaOptions{})
	c := httpClient(t, rep.URL, "tok-alice", false, nil)
	lines := openStream(t, rep.URL+"/mcp", "tok-alice", c.cs.ID())
	done := c.start(t, ctx, "sleep", map[string]any{"ms": 20}, map[string]any{})
	resultText(t, c, ctx, done.TaskID)
	blocked := c.start(t, ctx, "block", nil, map[string]any{})
	waitClosed(t, rep.probe.Started(blocked.TaskID), "start")
	c.task(t, ctx, "tasks/cancel", blocked.TaskID)
	waitClosed(t, rep.probe.Stopped(blocked.TaskID), "stop")
	count := map[string]int{}
	quiet := time.After(500 * time.Millisecond) // time for any second notification
	for {
		select {
		case line := <-lines:
			for _, id := range []string{done.TaskID, blocked.TaskID} {
				if strings.Contains(line, `"method":"notifications/tasks/status"`) && strings.Contains(line, id) {
					count[id]++
				}
			}
			continue
		case <-quiet:
		}
		break
	}
	if count[done.TaskID] != 1 || count[blocked.TaskID] != 1 {
		t.Errorf("status notifications: %d for the completed task, %d for the cancelled one; want 1 each", count[done.TaskID], count[blocked.TaskID])
	}
}
