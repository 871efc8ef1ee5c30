package main

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Sessions of 2025-11-25 clients live in the SDK's stateful handler until
// the client sends DELETE, which an abandoned or hostile client never does.
// serve bounds them twice: the SDK closes a session that has had no
// request for the idle timeout (StreamableHTTPOptions.SessionTimeout; a
// POST in progress, such as a blocking tasks/result, holds the timer, a
// GET stream alone does not), and sessionLimit refuses new sessions beyond
// caps (in all, and per token user), so memory is bounded between two
// timeouts as well.

const (
	defaultSessionIdle = 10 * time.Minute
	defaultMaxSessions = 1000
	defaultMaxPerUser  = 100
)

// sessionLimit caps the live sessions of one server's stateful handler,
// in all and per token user (so that one user cannot lock the others out).
// The SDK has no cap and no hook when a session ends, so the live sessions
// are read from mcp.Server.Sessions (sessions with an id; the stateless
// handler's per-request sessions have none), plus the requests admitted and
// still opening theirs; the user of each session is remembered when it
// opens and forgotten once it is no longer live. A session that has
// connected but whose request has not returned is counted twice, which errs
// on the side of refusing: live sessions never exceed the caps.
type sessionLimit struct {
	server  *mcp.Server
	max     int // all sessions; 0 = no cap
	perUser int // sessions of one token user; 0 = no cap

	mu        sync.Mutex
	opening   int               // admitted session-creating requests still in flight
	openingBy map[string]int    // the same, by user
	users     map[string]string // live (or lately live) session id -> user
}

func newSessionLimit(server *mcp.Server, max, perUser int) *sessionLimit {
	return &sessionLimit{server: server, max: max, perUser: perUser, openingBy: map[string]int{}, users: map[string]string{}}
}

// counts is the number of sessions held or being opened, in all and by
// user; it forgets the users of sessions that have ended. Call with mu held.
func (l *sessionLimit) counts(user string) (all, mine int) {
	live := map[string]bool{}
	for s := range l.server.Sessions() {
		if id := s.ID(); id != "" {
			live[id] = true
		}
	}
	for id, u := range l.users {
		switch {
		case !live[id]:
			delete(l.users, id)
		case u == user:
			mine++
		}
	}
	return len(live) + l.opening, mine + l.openingBy[user]
}

// retryAfter is what a refused client is told to wait, in seconds.
const retryAfter = 30

// wrap puts next behind the caps; it must run behind authentication, so
// that the user is known and requests without a valid token take no slot.
// Only a POST without Mcp-Session-Id opens a session; everything else
// passes, so clients that hold one keep working at the cap.
func (l *sessionLimit) wrap(next http.Handler) http.Handler {
	if l.max <= 0 && l.perUser <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.Header.Get("Mcp-Session-Id") != "" {
			next.ServeHTTP(w, req)
			return
		}
		var user string
		if ti := auth.TokenInfoFromContext(req.Context()); ti != nil {
			user = ti.UserID
		}
		l.mu.Lock()
		all, mine := l.counts(user)
		switch {
		case l.max > 0 && all >= l.max:
			l.mu.Unlock()
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
			http.Error(w, fmt.Sprintf("Service Unavailable: this server holds its maximum of %d MCP sessions; "+
				"end unused sessions (HTTP DELETE with their Mcp-Session-Id) or retry later", l.max), http.StatusServiceUnavailable)
			return
		case user != "" && l.perUser > 0 && mine >= l.perUser:
			l.mu.Unlock()
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
			http.Error(w, fmt.Sprintf("Too Many Requests: this user holds its maximum of %d MCP sessions; "+
				"end unused sessions (HTTP DELETE with their Mcp-Session-Id) or retry later", l.perUser), http.StatusTooManyRequests)
			return
		}
		l.opening++
		l.openingBy[user]++
		l.mu.Unlock()
		defer func() {
			sid := w.Header().Get("Mcp-Session-Id") // set by the SDK when it opened one
			l.mu.Lock()
			defer l.mu.Unlock()
			l.opening--
			if l.openingBy[user]--; l.openingBy[user] == 0 {
				delete(l.openingBy, user)
			}
			if sid != "" && user != "" {
				l.users[sid] = user
			}
		}()
		next.ServeHTTP(w, req)
	})
}
