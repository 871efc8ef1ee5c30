package taskrouter_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcptasks/mcptasks/taskrouter"
	"github.com/mcptasks/mcptasks/taskstore"
)

// stdioPeer is the client end of a newline-delimited JSON-RPC stream (what
// stdio carries) to a server run through Router.TransportWith.
type stdioPeer struct {
	t    *testing.T
	in   io.Writer
	msgs chan map[string]json.RawMessage
	id   int
	// backlog holds what call read while waiting for its response.
	backlog []map[string]json.RawMessage
}

func newStdioPeer(t *testing.T, serve20260728 bool) *stdioPeer {
	t.Helper()
	store := newStore(t, taskstore.Config{PollInterval: 20 * time.Millisecond, AllowAnonymous: true})
	r := taskrouter.New(store, taskrouter.Options{})
	s := newMCPServer(t, r, newProbe())
	clientR, serverW := io.Pipe()
	serverR, clientW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	ss, err := s.Connect(ctx, r.TransportWith(&mcp.IOTransport{Reader: serverR, Writer: serverW}, &taskrouter.TransportOptions{Serve20260728: serve20260728}), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &stdioPeer{t: t, in: clientW, msgs: make(chan map[string]json.RawMessage, 64)}
	go func() {
		defer close(p.msgs)
		sc := bufio.NewScanner(clientR)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]json.RawMessage
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				p.msgs <- m
			}
		}
	}()
	t.Cleanup(func() {
		clientW.Close()
		ss.Close()
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = r.Shutdown(sctx)
		clientR.Close()
	})
	return p
}

// send sends a 2026-07-28 request (declaring the tasks extension) and
// returns its id.
func (p *stdioPeer) send(method string, params map[string]any) int {
	p.t.Helper()
	if params == nil {
		params = map[string]any{}
	}
	params["_meta"] = map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "stdio-test", "version": "1"},
		"io.modelcontextprotocol/clientCapabilities": map[string]any{"extensions": map[string]any{taskrouter.ExtensionID: map[string]any{}}},
	}
	p.id++
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": p.id, "method": method, "params": params})
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		p.t.Fatal(err)
	}
	return p.id
}

func (p *stdioPeer) recv() map[string]json.RawMessage {
	p.t.Helper()
	if len(p.backlog) > 0 {
		m := p.backlog[0]
		p.backlog = p.backlog[1:]
		return m
	}
	select {
	case m, ok := <-p.msgs:
		if !ok {
			p.t.Fatal("stdio stream ended")
		}
		return m
	case <-time.After(10 * time.Second):
		p.t.Fatal("nothing from the server for 10s")
	}
	return nil
}

// call sends a request and returns its response, skipping notifications.
func (p *stdioPeer) call(method string, params map[string]any) map[string]json.RawMessage {
	p.t.Helper()
	id := p.send(method, params)
	var skipped []map[string]json.RawMessage
	for {
		m := p.recv()
		if string(m["id"]) == jsonInt(id) {
			p.backlog = append(p.backlog, skipped...)
			return m
		}
		skipped = append(skipped, m) // for recv: notifications may overtake the response

	}
}

func jsonInt(i int) string { b, _ := json.Marshal(i); return string(b) }

func resultField(t *testing.T, m map[string]json.RawMessage, key string) json.RawMessage {
	t.Helper()
	var r map[string]json.RawMessage
	if err := json.Unmarshal(m["result"], &r); err != nil || r[key] == nil {
		t.Fatalf("no result.%s in %s", key, mustMarshal(m))
	}
	return r[key]
}

func mustMarshal(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestStdio20260728: with TransportOptions.Serve20260728, protocol 2026-07-28 is
// served over stdio: server/discover advertises the extension, a tool call
// becomes a task, tasks/get inlines the result, and subscriptions/listen
// carries notifications/tasks.
func TestStdio20260728(t *testing.T) {
	p := newStdioPeer(t, true)

	disc := p.call("server/discover", nil)
	if !bytes.Contains(resultField(t, disc, "capabilities"), []byte(taskrouter.ExtensionID)) {
		t.Fatalf("server/discover: %s", mustMarshal(disc))
	}
	created := p.call("tools/call", map[string]any{"name": "block", "arguments": map[string]any{}})
	var id, rt string
	_ = json.Unmarshal(resultField(t, created, "taskId"), &id)
	_ = json.Unmarshal(resultField(t, created, "resultType"), &rt)
	if id == "" || rt != "task" {
		t.Fatalf("tools/call: %s", mustMarshal(created))
	}

	sub := p.send("subscriptions/listen", map[string]any{"notifications": map[string]any{"taskIds": []string{id}}})
	ack := p.recv()
	if !bytes.Contains(ack["method"], []byte("notifications/subscriptions/acknowledged")) || !bytes.Contains(ack["params"], []byte(`"taskIds":["`+id+`"]`)) {
		t.Fatalf("want the acknowledgement naming %s first, got %s", id, mustMarshal(ack))
	}
	first := p.recv()
	if !bytes.Contains(first["method"], []byte(`"notifications/tasks"`)) || !bytes.Contains(first["params"], []byte(`"status":"working"`)) {
		t.Fatalf("want notifications/tasks (working), got %s", mustMarshal(first))
	}

	if c := p.call("tasks/cancel", map[string]any{"taskId": id}); string(c["result"]) != `{"resultType":"complete"}` {
		t.Fatalf("tasks/cancel: %s", mustMarshal(c))
	}
	var sawCancelled, sawEnd bool
	for !sawCancelled || !sawEnd {
		m := p.recv()
		switch {
		case bytes.Contains(m["method"], []byte(`"notifications/tasks"`)) && bytes.Contains(m["params"], []byte(`"status":"cancelled"`)):
			sawCancelled = true
		case string(m["id"]) == jsonInt(sub):
			sawEnd = true
			if !sawCancelled {
				t.Fatalf("listen ended before the cancelled notification: %s", mustMarshal(m))
			}
		}
	}
	get := p.call("tasks/get", map[string]any{"taskId": id})
	var status string
	_ = json.Unmarshal(resultField(t, get, "status"), &status)
	if status != "cancelled" {
		t.Errorf("tasks/get: %s", mustMarshal(get))
	}
}

// TestStdio20260728IsOptIn: without TransportOptions.Serve20260728, server/discover
// is still refused over stdio, so clients fall back to 2025-11-25.
func TestStdio20260728IsOptIn(t *testing.T) {
	p := newStdioPeer(t, false)
	disc := p.call("server/discover", nil)
	if disc["error"] == nil {
		t.Fatalf("server/discover answered: %s", mustMarshal(disc))
	}
}
