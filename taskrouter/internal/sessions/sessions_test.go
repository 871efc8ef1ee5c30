package sessions

import (
	"fmt"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func connect(t *testing.T, s *mcp.Server) *mcp.ServerSession {
	t.Helper()
	ct, st := mcp.NewInMemoryTransports()
	ss, err := s.Connect(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(t.Context(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return ss
}

func TestOfOwner(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
	r := New()
	r.AddServer(s)
	a, b := connect(t, s), connect(t, s)
	r.Note(a, "alice")
	r.NoteRequest(&mcp.CallToolRequest{Session: b}, "bob")
	r.NoteRequest(&mcp.CallToolRequest{}, "nobody") // no session: nothing to note
	if got := r.Of("alice"); len(got) != 1 || got[0] != a {
		t.Fatalf("Of(alice) = %v, want only alice's session", got)
	}
	if got := r.Of("bob"); len(got) != 1 || got[0] != b {
		t.Fatalf("Of(bob) = %v, want bob's session, noted from his request", got)
	}
	if got := r.Of("carol"); len(got) != 0 {
		t.Fatalf("Of(carol) = %v, want none", got)
	}
}

func TestPruneForgetsEndedSessions(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
	r := New()
	r.AddServer(s)
	kept := connect(t, s)
	r.Note(kept, "alice")
	// Enough ended sessions to trigger passes: the registry must not grow
	// with sessions that are gone.
	for i := range 300 {
		ss := connect(t, s)
		r.Note(ss, fmt.Sprint("owner", i))
		ss.Close()
		r.NoteStream(fmt.Sprint("gone", i))
	}
	r.prune()
	if len(r.owners) != 1 || len(r.streamed) != 0 {
		t.Fatalf("after pruning: %d sessions, %d stream ids; want 1 and 0", len(r.owners), len(r.streamed))
	}
	if got := r.Of("alice"); len(got) != 1 || got[0] != kept {
		t.Fatalf("the live session was forgotten: %v", got)
	}
}
