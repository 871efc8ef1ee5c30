package main

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"abandoner","version":"1"}}}`

// mcpPost sends one JSON-RPC body as a 2025-11-25 client and returns the
// status, the session id the server assigned (if any) and the body.
func mcpPost(t *testing.T, c *http.Client, url, sid, token, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return 0, "", ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), string(b)
}

// settled is the goroutine count and live heap after two collections.
func settled() (goroutines int, heap uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), m.HeapAlloc
}

// burst opens n sessions with workers concurrent clients and never ends
// them; it returns their ids.
func burst(t *testing.T, c *http.Client, url string, n, workers int) map[string]bool {
	t.Helper()
	sids := make(chan string, n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				status, sid, body := mcpPost(t, c, url, "", "", initializeBody)
				if status != http.StatusOK || sid == "" {
					t.Errorf("initialize #%d: status %d, session %q: %.200s", i, status, sid, body)
					return
				}
				sids <- sid
			}
		}()
	}
	wg.Wait()
	close(sids)
	seen := map[string]bool{}
	for s := range sids {
		seen[s] = true
	}
	if !t.Failed() && len(seen) != n {
		t.Fatalf("%d distinct session ids for %d sessions", len(seen), n)
	}
	return seen
}

// TestServeAbandonedSessionsAreFreed: thousands of clients initialize a
// session over real HTTP and never DELETE it. Once the idle timeout has
// passed, every one of them is gone and the goroutines and heap of serve
// (it runs in this process) are back near the baseline measured in the
// same test. A resource bound, not a timing assertion: the wait for the
// timeout is only a generous deadline. A control run without the timeout
// shows that the measure sees held sessions.
func TestServeAbandonedSessionsAreFreed(t *testing.T) {
	const n, workers = 2000, 32
	tr := &http.Transport{MaxIdleConnsPerHost: workers}
	c := &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)

	t.Run("idle timeout", func(t *testing.T) {
		url, _, stop := startServe(t, "--session-idle", "1s", "--max-sessions", "0")
		defer stop()
		// Warm up (lazily started goroutines and pools belong in the
		// baseline), and let the warm-up sessions expire.
		burst(t, c, url, 20, 4)
		tr.CloseIdleConnections()
		time.Sleep(2 * time.Second)
		baseG, baseHeap := settled()

		var peakG int
		stopMon, monDone := make(chan struct{}), make(chan struct{})
		go func() { // the peak, for the log: sessions expire during a slow burst
			defer close(monDone)
			for {
				peakG = max(peakG, runtime.NumGoroutine())
				select {
				case <-stopMon:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		start := time.Now()
		seen := burst(t, c, url, n, workers)
		took := time.Since(start)
		close(stopMon)
		<-monDone
		tr.CloseIdleConnections()
		if t.Failed() {
			return
		}

		// Goroutine slack: the HTTP server's and client's connection
		// goroutines that may still be winding down.
		const slackG = 20
		var g int
		var heap uint64
		for deadline := time.Now().Add(60 * time.Second); ; {
			g, heap = settled()
			if g <= baseG+slackG || time.Now().After(deadline) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Logf("baseline %d goroutines, heap %.1f MiB; %d sessions in %v (peak %d goroutines); after the idle timeout %d goroutines, heap %.1f MiB",
			baseG, mib(baseHeap), len(seen), took.Round(time.Millisecond), peakG, g, mib(heap))
		if g > baseG+slackG {
			t.Errorf("%d goroutines after the idle timeout, baseline %d", g, baseG)
		}
		if limit := baseHeap + baseHeap/2 + 2<<20; heap > limit {
			t.Errorf("heap %.1f MiB after the idle timeout, baseline %.1f, limit %.1f", mib(heap), mib(baseHeap), mib(limit))
		}
		expired := 0
		for s := range seen {
			if status, _, _ := mcpPost(t, c, url, s, "", `{"jsonrpc":"2.0","id":2,"method":"ping"}`); status == http.StatusNotFound {
				expired++
			}
			if expired == 100 {
				break
			}
		}
		if expired != 100 {
			t.Errorf("of 100 abandoned sessions, %d answer 404 (expired)", expired)
		}
	})

	t.Run("control: no idle timeout", func(t *testing.T) {
		const n = 500
		url, _, stop := startServe(t, "--session-idle", "0", "--max-sessions", "0")
		defer stop()
		burst(t, c, url, 20, 4)
		tr.CloseIdleConnections()
		baseG, baseHeap := settled()
		burst(t, c, url, n, workers)
		tr.CloseIdleConnections()
		time.Sleep(2 * time.Second)
		g, heap := settled()
		t.Logf("without a timeout: %d sessions held %d goroutines and %.1f MiB of heap over the baseline",
			n, g-baseG, mib(heap-min(heap, baseHeap)))
		if g < baseG+n {
			t.Errorf("%d goroutines after %d held sessions, baseline %d: the measure does not see sessions", g, n, baseG)
		}

		// Shutting serve down closes the sessions it still holds.
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		tr.CloseIdleConnections()
		for deadline := time.Now().Add(30 * time.Second); ; {
			if g, _ = settled(); g <= baseG+20 || time.Now().After(deadline) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if g > baseG+20 {
			t.Errorf("%d goroutines after serve stopped, baseline %d", g, baseG)
		}
	})
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// TestServeSessionCap: beyond --max-sessions a new session gets 503 with
// Retry-After, sessions already open keep working, a DELETE frees a slot,
// requests without a valid token never take one, and a concurrent burst
// never opens more than the cap.
func TestServeSessionCap(t *testing.T) {
	const max = 5
	url, _, _ := startServe(t, "--max-sessions", fmt.Sprint(max), "--token", "alice:secret-a")
	c := http.DefaultClient

	// Unauthenticated session attempts are refused before the cap.
	for range 3 * max {
		if status, _, _ := mcpPost(t, c, url, "", "wrong", initializeBody); status != http.StatusUnauthorized {
			t.Fatalf("bad token: %d", status)
		}
	}

	// A concurrent burst: exactly max get a session.
	var mu sync.Mutex
	var open []string
	refused := 0
	var wg sync.WaitGroup
	for range 8 * max {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, sid, body := mcpPost(t, c, url, "", "secret-a", initializeBody)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case status == http.StatusOK && sid != "":
				open = append(open, sid)
			case status == http.StatusServiceUnavailable:
				refused++
				if !strings.Contains(body, fmt.Sprintf("maximum of %d MCP sessions", max)) {
					t.Errorf("503 body %q does not say why", body)
				}
			default:
				t.Errorf("initialize: %d %q", status, body)
			}
		}()
	}
	wg.Wait()
	// Double counting of a session still being opened may refuse one more
	// than needed during a burst, never admit one too many.
	if len(open) > max || len(open) < 1 || len(open)+refused != 8*max {
		t.Fatalf("burst: %d sessions opened, %d refused; cap %d", len(open), refused, max)
	}
	for len(open) < max {
		status, sid, _ := mcpPost(t, c, url, "", "secret-a", initializeBody)
		if status != http.StatusOK {
			t.Fatalf("below the cap (%d open): %d", len(open), status)
		}
		open = append(open, sid)
	}

	// At the cap: refused with Retry-After; open sessions keep working.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(initializeBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer secret-a")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("at the cap: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	for _, sid := range open {
		mcpPost(t, c, url, sid, "secret-a", `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		if status, _, body := mcpPost(t, c, url, sid, "secret-a", `{"jsonrpc":"2.0","id":2,"method":"ping"}`); status != http.StatusOK {
			t.Errorf("ping on an open session at the cap: %d %q", status, body)
		}
	}

	// DELETE frees a slot.
	del, _ := http.NewRequestWithContext(t.Context(), http.MethodDelete, url, nil)
	del.Header.Set("Mcp-Session-Id", open[0])
	del.Header.Set("Authorization", "Bearer secret-a")
	if resp, err := c.Do(del); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	if status, _, body := mcpPost(t, c, url, "", "secret-a", initializeBody); status != http.StatusOK {
		t.Errorf("after a DELETE: %d %q", status, body)
	}
	if status, _, _ := mcpPost(t, c, url, "", "secret-a", initializeBody); status != http.StatusServiceUnavailable {
		t.Errorf("at the cap again: %d", status)
	}
}

// TestServeSessionCapPerUser: with tokens, one user cannot take every
// session of the server: beyond --max-sessions-per-user it gets 429, while
// another user still gets sessions up to the server's cap.
func TestServeSessionCapPerUser(t *testing.T) {
	url, _, _ := startServe(t, "--max-sessions", "5", "--max-sessions-per-user", "3",
		"--token", "alice:secret-a", "--token", "bob:secret-b")
	c := http.DefaultClient
	open := func(token string, want int) string {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(initializeBody))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s: status %d, want %d: %s", token, resp.StatusCode, want, body)
		}
		if want != http.StatusOK && (resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "maximum of")) {
			t.Errorf("%s: refusal without Retry-After or reason: %q", token, body)
		}
		return resp.Header.Get("Mcp-Session-Id")
	}
	var alice []string
	for range 3 {
		alice = append(alice, open("secret-a", http.StatusOK))
	}
	open("secret-a", http.StatusTooManyRequests)
	open("secret-b", http.StatusOK)
	open("secret-b", http.StatusOK)
	open("secret-b", http.StatusServiceUnavailable) // the server's 5
	open("secret-a", http.StatusServiceUnavailable)

	del, _ := http.NewRequestWithContext(t.Context(), http.MethodDelete, url, nil)
	del.Header.Set("Mcp-Session-Id", alice[0])
	del.Header.Set("Authorization", "Bearer secret-a")
	if resp, err := c.Do(del); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	open("secret-b", http.StatusOK) // bob's third, the server's fifth
	open("secret-a", http.StatusServiceUnavailable)
}
