// Package faultproxy is a TCP proxy for fault tests: a client talks to the
// proxy's address instead of its server's, and the test cuts the path
// between them (Partition, Heal) or drops every connection on it (Reset)
// while both ends keep running.
//
// What each fault looks like to the ends:
//   - Partition: packets vanish. Nothing is forwarded either way; open
//     connections stay open (no FIN, no RST), and new connections are
//     accepted but are not dialed through and get nothing. A client finds
//     out only through its own timeouts. The proxy stops reading, so what a
//     client keeps sending fills the kernel's buffers, not the proxy's
//     memory: at most one read buffer per direction per connection is held.
//   - Heal: forwarding resumes and what was held flows on, as TCP delivers
//     retransmitted data after a short partition. A connection accepted
//     during the partition is dialed through now.
//   - Reset: every open connection is closed at once, on both sides, with an
//     RST (as a restarted middlebox answers a connection it no longer
//     knows). The proxy keeps accepting.
//   - Target down (a store restarting): a connection whose dial to the
//     target fails is closed at once, with a FIN, so the client reads EOF;
//     through a proxy that is what a refused connection looks like.
//
// Only the standard library; it listens on loopback only.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// bufSize is what one direction of one connection reads at a time, and so
// the most it holds while partitioned.
const bufSize = 32 << 10

// dialTimeout bounds a dial to a target that neither answers nor refuses.
const dialTimeout = 5 * time.Second

// drainTimeout and drainLimit bound how long and how much a connection whose
// dial failed is read (and dropped) after its FIN, so that closing it sends
// no RST.
const (
	drainTimeout = time.Second
	drainLimit   = 1 << 20
)

// Stats counts what a Proxy has done since New.
type Stats struct {
	Conns        int   // connections accepted
	Open         int   // connections accepted and not yet closed
	Partitions   int   // calls of Partition
	Heals        int   // calls of Heal that ended a partition
	Resets       int   // calls of Reset
	DialFailures int   // accepted connections closed because the target could not be dialed
	Partitioned  bool  // a partition is in force now
	BytesUp      int64 // bytes read from clients and written (or being written) to the target
	BytesDown    int64 // bytes read from the target and written (or being written) to clients
}

// Proxy forwards TCP connections from its own loopback address to a target,
// and injects faults on command. Its methods are safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup // the accept loop and every connection's goroutines

	bytesUp, bytesDown atomic.Int64

	ctx    context.Context // done at Close: ends dials in progress
	cancel context.CancelFunc

	mu     sync.Mutex
	healed chan struct{} // closed while forwarding; open during a partition
	links  map[*link]struct{}
	closed bool
	stats  Stats
}

// link is one client connection and, once dialed, its connection to the
// target.
type link struct {
	client net.Conn
	ctx    context.Context // done once the link is closed: by Reset, Close or its end
	cancel context.CancelFunc

	mu       sync.Mutex
	upstream net.Conn // nil until dialed
	closed   bool
}

// New listens on 127.0.0.1 on a free port and forwards each connection it
// accepts to target (host:port). It forwards until Partition or Close.
func New(target string) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	healed := make(chan struct{})
	close(healed)
	p := &Proxy{target: target, ln: ln, healed: healed, links: make(map[*link]struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the host:port to give a client instead of the target's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Partition stops all forwarding, both ways, on open and new connections,
// until Heal. Calling it during a partition only counts the call.
func (p *Proxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Partitions++
	if !p.stats.Partitioned {
		p.stats.Partitioned = true
		p.healed = make(chan struct{})
	}
}

// Heal ends a partition: data held during it flows, and connections
// accepted during it are dialed through. Without a partition it does
// nothing.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stats.Partitioned {
		p.stats.Partitioned = false
		p.stats.Heals++
		close(p.healed)
	}
}

// Reset closes every open connection now, on both sides, with an RST. The
// proxy keeps accepting, and a partition in force stays in force.
func (p *Proxy) Reset() {
	p.mu.Lock()
	p.stats.Resets++
	links := p.openLinks()
	p.mu.Unlock()
	for _, l := range links {
		l.close(true)
	}
}

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	s := p.stats
	s.Open = len(p.links)
	p.mu.Unlock()
	s.BytesUp = p.bytesUp.Load()
	s.BytesDown = p.bytesDown.Load()
	return s
}

// Close stops accepting, closes every connection (with an RST) and returns
// once every goroutine of the proxy has ended. Later calls return nil.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	links := p.openLinks()
	p.mu.Unlock()
	err := p.ln.Close()
	p.cancel()
	for _, l := range links {
		l.close(true)
	}
	p.wg.Wait()
	return err
}

// openLinks lists the open links; the caller holds p.mu.
func (p *Proxy) openLinks() []*link {
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	return links
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: let it pass rather than spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		l := &link{client: c}
		l.ctx, l.cancel = context.WithCancel(context.Background())
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			l.close(true)
			return
		}
		p.links[l] = struct{}{}
		p.stats.Conns++
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(l)
	}
}

// serve dials the target for l once no partition is in force, then forwards
// both ways until both sides have ended or l is closed.
func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	defer p.forget(l)
	if !p.wait(l) {
		return
	}
	// Not l.ctx: a dial that Reset cut short would close the connection the
	// target just accepted with a FIN. Finished, it is reset below.
	ctx, cancel := context.WithTimeout(p.ctx, dialTimeout)
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		if l.ctx.Err() != nil {
			return // closed meanwhile, by Close
		}
		p.mu.Lock()
		p.stats.DialFailures++
		p.mu.Unlock()
		l.refuse()
		return
	}
	if !l.setUpstream(up) {
		return // closed while dialing; setUpstream closed up
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.pump(l, up, l.client, &p.bytesUp)
	}()
	p.pump(l, l.client, up, &p.bytesDown)
	<-done
	l.close(false)
}

// pump copies from src to dst, holding off reading and writing while a
// partition is in force. At src's end it half-closes dst (also held during
// a partition), so that the other direction can finish.
func (p *Proxy) pump(l *link, dst, src net.Conn, count *atomic.Int64) {
	buf := make([]byte, bufSize)
	for {
		if !p.wait(l) {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait(l) {
				return
			}
			count.Add(int64(n)) // before the write, so a reader that has it sees it counted
			if _, err := dst.Write(buf[:n]); err != nil {
				l.close(false)
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) && p.wait(l) {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
					return
				}
			}
			l.close(false)
			return
		}
	}
}

// wait returns true once no partition is in force, or false when l is
// closed first.
func (p *Proxy) wait(l *link) bool {
	p.mu.Lock()
	healed := p.healed
	p.mu.Unlock()
	if l.ctx.Err() != nil {
		return false
	}
	select {
	case <-healed:
		return true
	case <-l.ctx.Done():
		return false
	}
}

func (p *Proxy) forget(l *link) {
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// setUpstream records l's connection to the target, or closes it (with an
// RST, as only Reset and Close end a link that is dialing) and returns false
// when l was closed while dialing.
func (l *link) setUpstream(up net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		closeConn(up, true)
		return false
	}
	l.upstream = up
	return true
}

// refuse ends a link whose target could not be dialed so that its client
// reads EOF: a FIN first, then whatever the client had sent is read and
// dropped (closing a socket with unread data would send an RST instead),
// until the client closes or drainTimeout passes.
func (l *link) refuse() {
	if tc, ok := l.client.(*net.TCPConn); ok && tc.CloseWrite() == nil {
		tc.SetReadDeadline(time.Now().Add(drainTimeout))
		stop := context.AfterFunc(l.ctx, func() { tc.SetReadDeadline(time.Now()) })
		io.Copy(io.Discard, io.LimitReader(tc, drainLimit))
		stop()
	}
	l.close(false)
}

// close closes both of l's connections, once; with reset, with an RST.
func (l *link) close(reset bool) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	conns := []net.Conn{l.client, l.upstream}
	l.mu.Unlock()
	l.cancel()
	for _, c := range conns {
		if c != nil {
			closeConn(c, reset)
		}
	}
}

// closeConn closes c; with reset, with an RST.
func closeConn(c net.Conn, reset bool) {
	if tc, ok := c.(*net.TCPConn); ok && reset {
		tc.SetLinger(0)
	}
	c.Close()
}
