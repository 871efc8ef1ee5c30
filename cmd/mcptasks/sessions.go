package main

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Sessions of 2025-11-25 clients live in the SDK's stateful handler until
// the client sends DELETE, which an abandoned or hostile client never does.
// serve bounds them twice: the SDK closes a session that has had no
// request for the idle timeout (StreamableHTTPOptions.SessionTimeout; a
// POST in progress, such as a blocking tasks/result, holds the timer, a
// GET stream alone does not), and sessionLimit refuses new sessions beyond
// a cap, so memory is bounded between two timeouts as well.

const (
	defaultSessionIdle = 10 * time.Minute
	defaultMaxSessions = 1000
)

// sessionLimit caps the live sessions of one server's stateful handler.
// The SDK has no cap and no hook when a session ends, so the live count is
// read from mcp.Server.Sessions (sessions with an id; the stateless
// handler's per-request sessions have none) plus the requests admitted and
// still opening theirs. A session that has connected but whose request has
// not returned is counted twice, which errs on the side of refusing: live
// sessions never exceed max.
type sessionLimit struct {
	server *mcp.Server
	max    int

	mu      sync.Mutex
	opening int // admitted session-creating requests still in flight
}

func (l *sessionLimit) live() int {
	n := 0
	for s := range l.server.Sessions() {
		if s.ID() != "" {
			n++
		}
	}
	return n
}

// retryAfter is what a refused client is told to wait, in seconds.
const retryAfter = 30

// wrap puts next behind the cap. Only a POST without Mcp-Session-Id opens
// a session; everything else passes, so clients that hold one keep
// working at the cap.
func (l *sessionLimit) wrap(next http.Handler) http.Handler {
	if l.max <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.Header.Get("Mcp-Session-Id") != "" {
			next.ServeHTTP(w, req)
			return
		}
		l.mu.Lock()
		if l.live()+l.opening >= l.max {
			l.mu.Unlock()
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
			http.Error(w, fmt.Sprintf("Service Unavailable: this server holds its maximum of %d MCP sessions; "+
				"end unused sessions (HTTP DELETE with their Mcp-Session-Id) or retry later", l.max), http.StatusServiceUnavailable)
			return
		}
		l.opening++
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			l.opening--
			l.mu.Unlock()
		}()
		next.ServeHTTP(w, req)
	})
}
