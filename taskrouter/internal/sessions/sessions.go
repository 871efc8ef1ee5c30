// Package sessions keeps, for one router, the go-sdk sessions on this
// replica whose requests resolved to each task owner, so that a task's
// 2025-11-25 status notifications go to its owner's sessions and to no one
// else. Only sessions that can receive a notification count: stdio's
// (which have no id), and HTTP sessions that opened their standalone SSE
// stream (the SDK drops, or keeps for a replay that needs that stream, what
// a session without one is sent, so encoding it for nobody is waste).
//
// Ended sessions are forgotten in amortized passes (when a map has doubled
// since the last pass), against the sessions of the servers added.
package sessions

import (
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Registry is the sessions of one router. Its zero value is not usable:
// use New.
type Registry struct {
	mu            sync.Mutex
	servers       []*mcp.Server
	owners        map[*mcp.ServerSession]string // session -> owner
	streamed      map[string]bool               // ids of HTTP sessions with a standalone stream
	pruned        int                           // len(owners) after the last pass
	prunedStreams int                           // len(streamed) after the last pass
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{owners: map[*mcp.ServerSession]string{}, streamed: map[string]bool{}}
}

// AddServer adds a server whose sessions may be noted.
func (r *Registry) AddServer(s *mcp.Server) {
	r.mu.Lock()
	r.servers = append(r.servers, s)
	r.mu.Unlock()
}

// Note records that ss made a request as owner.
func (r *Registry) Note(ss *mcp.ServerSession, owner string) {
	r.mu.Lock()
	r.owners[ss] = owner
	prune := len(r.owners) > 2*r.pruned+64
	r.mu.Unlock()
	if prune {
		r.prune()
	}
}

// NoteRequest records that req's session, if it has one, made a request
// as owner.
func (r *Registry) NoteRequest(req mcp.Request, owner string) {
	if ss, ok := req.GetSession().(*mcp.ServerSession); ok && ss != nil {
		r.Note(ss, owner)
	}
}

// NoteStream records that the HTTP session id opened its standalone
// stream (the SDK answered its GET with 200).
func (r *Registry) NoteStream(id string) {
	r.mu.Lock()
	r.streamed[id] = true
	prune := len(r.streamed) > 2*r.prunedStreams+64
	r.mu.Unlock()
	if prune {
		r.prune()
	}
}

// Of returns owner's sessions that can receive a notification. An ended
// one not yet forgotten refuses the send.
func (r *Registry) Of(owner string) []*mcp.ServerSession {
	var out []*mcp.ServerSession
	r.mu.Lock()
	defer r.mu.Unlock()
	for ss, o := range r.owners {
		if o == owner && (ss.ID() == "" || r.streamed[ss.ID()]) {
			out = append(out, ss)
		}
	}
	return out
}

// prune forgets the sessions, and stream ids, that have ended.
func (r *Registry) prune() {
	r.mu.Lock()
	servers := r.servers
	r.mu.Unlock()
	live, ids := map[*mcp.ServerSession]bool{}, map[string]bool{}
	for _, s := range servers {
		for ss := range s.Sessions() {
			live[ss], ids[ss.ID()] = true, true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for ss := range r.owners {
		if !live[ss] {
			delete(r.owners, ss)
		}
	}
	for id := range r.streamed {
		if !ids[id] {
			delete(r.streamed, id)
		}
	}
	r.pruned, r.prunedStreams = len(r.owners), len(r.streamed)
}
