package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The tests do not run in parallel: noProxyGoroutines looks at every
// goroutine of the test binary.

// quiet is how long a test watches for something that must not happen (a
// byte forwarded during a partition). It is no speed claim: a broken proxy
// forwards within microseconds.
const quiet = 300 * time.Millisecond

// echoServer is a target that writes back what it reads and counts the
// connections it accepts.
type echoServer struct {
	ln       net.Listener
	accepted atomic.Int64
	received atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					s.received.Add(int64(n))
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *echoServer) addr() string { return s.ln.Addr().String() }

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// listen is a target the test drives by hand.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func accept(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// expectRead reads len(want) bytes from c, which must be want, within a
// generous deadline (a failure, not a measurement).
func expectRead(t *testing.T, c net.Conn, want string) {
	t.Helper()
	got := make([]byte, len(want))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("read %q, %v; want %q", got, err, want)
	}
}

// roundTrip writes msg and reads back as many bytes, within a generous
// deadline (a failure, not a measurement).
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	expectRead(t, c, msg)
}

// readNothing checks that c receives nothing for a while: its read times out.
func readNothing(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(quiet))
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read during a partition: %d bytes, %v; want a timeout", n, err)
	}
}

// heldUntilHeal writes msg on from during a partition of p, checks that
// nothing reaches to, runs during (checks of the target's side) and heals:
// then msg arrives.
func heldUntilHeal(t *testing.T, p *Proxy, from, to net.Conn, msg string, during func()) {
	t.Helper()
	if _, err := from.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	readNothing(t, to)
	if during != nil {
		during()
	}
	p.Heal()
	expectRead(t, to, msg)
}

// readEnds waits for c to be closed by the other side and returns the error
// its read ends with.
func readEnds(t *testing.T, c net.Conn) error {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1024)
	for {
		_, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the connection stayed open")
			}
			return err
		}
	}
}

// noProxyGoroutines fails t if a goroutine of the proxy is still running
// (after a grace period for goroutines that are returning).
func noProxyGoroutines(t *testing.T) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		buf := make([]byte, 4<<20)
		buf = buf[:runtime.Stack(buf, true)]
		left = left[:0]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "faultproxy.(*Proxy)") || strings.Contains(g, "faultproxy.(*link)") {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of the proxy left after Close:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitOpen waits until the proxy has accepted n open connections: a
// client's dial returns before the proxy's Accept.
func waitOpen(t *testing.T, p *Proxy, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Open != n; {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want %d connections open", p.Stats(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestForwardsBothWays(t *testing.T) {
	srv := newEchoServer(t)
	p := newProxy(t, srv.addr())
	c := dial(t, p.Addr())
	roundTrip(t, c, "hello")
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB, more than one read
	done := make(chan error, 1)
	go func() { _, err := c.Write([]byte(big)); done <- err }()
	got := make([]byte, len(big))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if string(got) != big {
		t.Fatal("the echo of 1 MiB differs from what was sent")
	}
	s := p.Stats()
	want := int64(len("hello") + len(big))
	if s.Conns != 1 || s.Open != 1 || s.BytesUp != want || s.BytesDown != want {
		t.Fatalf("stats %+v, want 1 connection open and %d bytes each way", s, want)
	}
	if host, _, _ := net.SplitHostPort(p.Addr()); host != "127.0.0.1" {
		t.Fatalf("the proxy listens on %s, want loopback", p.Addr())
	}
}

// A client's half-close reaches the target, and the target's answer and
// close come back.
func TestHalfClose(t *testing.T) {
	srv := newEchoServer(t)
	p := newProxy(t, srv.addr())
	c := dial(t, p.Addr())
	if _, err := c.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "last words" {
		t.Fatalf("read %q, %v; want the echo, then EOF", got, err)
	}
}

func TestPartitionHoldsRequestUntilHeal(t *testing.T) {
	srv := newEchoServer(t)
	p := newProxy(t, srv.addr())
	c := dial(t, p.Addr())
	roundTrip(t, c, "before")
	p.Partition()
	heldUntilHeal(t, p, c, c, "during", func() {
		if n := srv.received.Load(); n != int64(len("before")) {
			t.Fatalf("the target received %d bytes, want only the %d sent before the partition", n, len("before"))
		}
	})
	roundTrip(t, c, "after")
	s := p.Stats()
	if s.Partitions != 1 || s.Heals != 1 || s.Partitioned || s.Conns != 1 {
		t.Fatalf("stats %+v, want one partition, healed, one connection", s)
	}
}

// A partition also holds answers: the target's write is forwarded only
// after Heal.
func TestPartitionHoldsAnswerUntilHeal(t *testing.T) {
	ln := listen(t)
	p := newProxy(t, ln.Addr().String())
	c := dial(t, p.Addr())
	srvConn := accept(t, ln)
	p.Partition()
	heldUntilHeal(t, p, srvConn, c, "answer", nil)
}

func TestNewConnectionDuringPartition(t *testing.T) {
	srv := newEchoServer(t)
	p := newProxy(t, srv.addr())
	p.Partition()
	p.Partition() // counted, still one partition
	c := dial(t, p.Addr())
	waitOpen(t, p, 1)
	heldUntilHeal(t, p, c, c, "hello?", func() {
		if n := srv.accepted.Load(); n != 0 {
			t.Fatalf("the target accepted %d connections during the partition, want 0", n)
		}
		if s := p.Stats(); s.Conns != 1 || s.Open != 1 || s.Partitions != 2 || !s.Partitioned {
			t.Fatalf("stats %+v, want the connection accepted and open, two Partition calls", s)
		}
	})
}

// While partitioned the proxy stops reading: a client that keeps writing
// is held back by the kernel's buffers, not taken in by the proxy.
func TestPartitionIsBounded(t *testing.T) {
	srv := newEchoServer(t)
	p := newProxy(t, srv.addr())
	c := dial(t, p.Addr())
	roundTrip(t, c, "x")
	p.Partition()
	const total = 64 << 20 // more than any loopback socket buffers hold
	chunk := bytes.Repeat([]byte{'y'}, 1<<20)
	c.SetWriteDeadline(time.Now().Add(time.Second))
	written := 0
	for written < total {
		n, err := c.Write(chunk)
		written += n
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatal(err)
			}
			break
		}
	}
	c.SetWriteDeadline(time.Time{})
	if written >= total {
		t.Fatalf("the client wrote all %d bytes during a partition: the proxy kept reading", total)
	}
	if s := p.Stats(); s.BytesUp != 1 {
		t.Fatalf("%d bytes forwarded up, want only the 1 sent before the partition", s.BytesUp)
	}
	t.Logf("the client could write %d bytes (socket buffers plus at most one read buffer of the proxy)", written)
	// After Heal every byte arrives, in order, and comes back.
	p.Heal()
	got := make([]byte, written)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read %d: %v; %+v; echo received %d", n, err, p.Stats(), srv.received.Load())
	}
	if bytes.Count(got, []byte{'y'}) != written {
		t.Fatal("the bytes held during the partition came back altered")
	}
}

func TestReset(t *testing.T) {
	ln := listen(t)
	p := newProxy(t, ln.Addr().String())
	c := dial(t, p.Addr())
	srvConn := accept(t, ln)
	p.Reset()
	if err := readEnds(t, c); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the client's read ended with %v, want a connection reset", err)
	}
	if err := readEnds(t, srvConn); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the target's read ended with %v, want a connection reset", err)
	}
	// The proxy keeps accepting, and forwards.
	c2 := dial(t, p.Addr())
	srvConn2 := accept(t, ln)
	waitOpen(t, p, 1) // the reset connection's goroutines have ended
	if _, err := c2.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	expectRead(t, srvConn2, "again")
	if s := p.Stats(); s.Resets != 1 || s.Conns != 2 || s.Open != 1 {
		t.Fatalf("stats %+v, want one reset, two connections, one open", s)
	}
}

// Reset also ends connections held by a partition, which stays in force.
func TestResetDuringPartition(t *testing.T) {
	srv := newEchoServer(t)
	p := newProxy(t, srv.addr())
	old := dial(t, p.Addr())
	roundTrip(t, old, "x")
	p.Partition()
	held := dial(t, p.Addr()) // accepted, never dialed through
	waitOpen(t, p, 2)
	p.Reset()
	for _, c := range []net.Conn{old, held} {
		if err := readEnds(t, c); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read ended with %v, want a connection reset", err)
		}
	}
	c := dial(t, p.Addr())
	heldUntilHeal(t, p, c, c, "y", nil)
}

// A target that is down (a store restarting): the client's connection is
// accepted and closed at once, and it reads EOF even when it had already
// sent a request.
func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close()
	p := newProxy(t, target)
	c := dial(t, p.Addr())
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := readEnds(t, c); !errors.Is(err, io.EOF) {
		t.Fatalf("read ended with %v, want EOF", err)
	}
	if s := p.Stats(); s.DialFailures != 1 || s.Conns != 1 {
		t.Fatalf("stats %+v, want one connection and one failed dial", s)
	}
	// The target comes back on its port: the next connection goes through.
	ln, err = net.Listen("tcp", target)
	if err != nil {
		t.Skipf("the target's port was taken meanwhile: %v", err)
	}
	defer ln.Close()
	c2 := dial(t, p.Addr())
	srvConn := accept(t, ln)
	c2.Write([]byte("z"))
	expectRead(t, srvConn, "z")
}

func TestCloseLeavesNothing(t *testing.T) {
	srv := newEchoServer(t)
	p, err := New(srv.addr())
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 3 {
		c := dial(t, p.Addr())
		roundTrip(t, c, "x")
		conns = append(conns, c)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	noProxyGoroutines(t)
	for _, c := range conns {
		if err := readEnds(t, c); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read ended with %v, want a connection reset", err)
		}
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("the proxy still accepts after Close")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if s := p.Stats(); s.Open != 0 || s.Conns != 3 {
		t.Fatalf("stats %+v, want 3 connections, none open", s)
	}
}

// Many connections in every state, some writing as fast as they can, some
// closed by their clients, a partition, a reset, and Close during a second
// partition: every client's connection ends and no goroutine is left.
func TestHostile(t *testing.T) {
	srv := newEchoServer(t)
	p, err := New(srv.addr())
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var writers sync.WaitGroup
	var conns []net.Conn
	chunk := bytes.Repeat([]byte{'w'}, 64<<10)
	for i := range n {
		c := dial(t, p.Addr())
		conns = append(conns, c)
		switch i % 4 {
		case 0: // writes without reading: the echo fills every buffer on the way
			writers.Add(1)
			go func() {
				defer writers.Done()
				for {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		case 1: // closed by its client
			c.Close()
		case 2:
			c.Write([]byte("hi"))
		}
		if i == n/2 {
			p.Partition()
		}
		if i == 3*n/4 {
			p.Reset()
			p.Heal()
			p.Partition()
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	noProxyGoroutines(t)
	for i, c := range conns {
		if i%4 == 1 {
			continue
		}
		if err := readEnds(t, c); err == nil {
			t.Fatalf("connection %d: read ended without an error", i)
		}
	}
	for _, c := range conns {
		c.Close() // ends the writers that are still blocked
	}
	writers.Wait()
	// Connections still in the listen backlog at Close were never accepted.
	if s := p.Stats(); s.Conns > n || s.Conns < n/2 || s.Open != 0 {
		t.Fatalf("stats %+v, want up to %d connections, none open", s, n)
	}
}

func TestNewRefusesBadTarget(t *testing.T) {
	if _, err := New("no port"); err == nil {
		t.Fatal("New accepted a target without a port")
	}
}
