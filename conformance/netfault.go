package conformance

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxyMode is what a proxy does to the traffic through it.
type proxyMode int32

const (
	// modeForward passes everything on, and logs the commands.
	modeForward proxyMode = iota
	// modeSilent passes nothing on, either way: a server that stopped
	// answering, or a network that stopped carrying. A connection made
	// meanwhile gets its set-up commands answered, as SilentServer does,
	// and nothing else.
	modeSilent
	// modeReset resets every connection (TCP RST), open ones at once and
	// new ones as soon as they are accepted.
	modeReset
	// modeRefuse closes the listener, so that a new connection is
	// refused, and resets the open ones.
	modeRefuse
)

// proxy is an in-process TCP proxy in front of one server, for the
// subtests that need the network to fail under the driver or to see on
// which connection a command went.
type proxy struct {
	ln       net.Listener
	upstream string
	mode     atomic.Int32

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // both sides of every proxied connection
	nextID int
	log    []loggedCommand
	closed bool
	wg     sync.WaitGroup
}

// loggedCommand is one command a client sent through a proxy.
type loggedCommand struct {
	conn int // which client connection, numbered from 1 in accept order
	args []string
}

// newProxy starts a proxy to upstream on a free loopback port, closed
// when t ends.
func newProxy(t testing.TB, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("conformance: proxy: %v", err)
	}
	p := &proxy{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// set switches the proxy to mode m.
func (p *proxy) set(m proxyMode) {
	p.mode.Store(int32(m))
	if m == modeRefuse {
		_ = p.ln.Close()
	}
	if m == modeReset || m == modeRefuse {
		p.mu.Lock()
		for c := range p.conns {
			reset(c)
		}
		p.mu.Unlock()
	}
}

// commands returns the commands logged so far.
func (p *proxy) commands() []loggedCommand {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]loggedCommand(nil), p.log...)
}

// reset closes c with an RST rather than a FIN, as a peer that crashed or
// a middlebox that dropped the connection does.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	_ = p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track registers c, or closes it and reports false if the proxy is
// closed.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		mode := proxyMode(p.mode.Load())
		if mode == modeReset || mode == modeRefuse {
			reset(c)
			continue
		}
		if !p.track(c) {
			return
		}
		p.mu.Lock()
		p.nextID++
		id := p.nextID
		p.wg.Add(1)
		p.mu.Unlock()
		if mode == modeSilent {
			go p.handleSilent(c)
			continue
		}
		go p.handle(c, id)
	}
}

// gate passes writes on while the proxy forwards, and drops them while it
// is silent.
type gate struct {
	p *proxy
	w io.Writer
}

func (g gate) Write(b []byte) (int, error) {
	if proxyMode(g.p.mode.Load()) != modeForward {
		return len(b), nil
	}
	return g.w.Write(b)
}

func (p *proxy) handle(c net.Conn, id int) {
	defer p.wg.Done()
	defer p.untrack(c)
	up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		reset(c)
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(gate{p, c}, up)
		_ = c.Close()
	}()
	// Every byte read from the client goes upstream as it is read; the
	// parser only watches.
	r := bufio.NewReader(io.TeeReader(c, gate{p, up}))
	for {
		args, err := readCommand(r)
		if err != nil {
			_, _ = io.Copy(io.Discard, r)
			break
		}
		p.mu.Lock()
		p.log = append(p.log, loggedCommand{conn: id, args: args})
		p.mu.Unlock()
	}
	_ = up.Close()
	<-done
}

// handleSilent serves a connection accepted while the proxy is silent as
// SilentServer does: it answers the commands that set a connection up, so
// that a client's handshake (which some clients bound by their own
// timeouts only) completes, and no other.
func (p *proxy) handleSilent(c net.Conn) {
	defer p.wg.Done()
	defer p.untrack(c)
	serveSilently(c)
}

// replyServer starts a server on a free loopback port that answers the
// commands clients send while they set a connection up as SilentServer
// does, and every other command with reply(args), a raw RESP reply ("" to
// leave it unanswered). It is closed when t ends.
func replyServer(t testing.TB, reply func(args []string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("conformance: reply server: %v", err)
	}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			wg.Add(1)
			mu.Unlock()
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					_ = c.Close()
				}()
				r := bufio.NewReader(c)
				for {
					args, err := readCommand(r)
					if err != nil {
						return
					}
					out, ok := setupReply(args)
					if !ok {
						out = reply(args)
					}
					if out == "" {
						_, _ = io.Copy(io.Discard, r)
						return
					}
					if _, err := io.WriteString(c, out); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// refusedAddr returns a loopback address on which nothing listens: a
// port just freed.
func refusedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("conformance: %v", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// upper is strings.ToUpper, for command names in the proxy's log.
func upper(s string) string { return strings.ToUpper(s) }

// syncReplicas writes key on a connection of the suite's own to the server
// at addr and sends WAIT n on it: once n replicas acknowledge that write,
// they have acknowledged every write made before it, on any connection
// (the replication offset is one for the whole server). It returns how
// many acknowledged within timeout.
func syncReplicas(addr, key string, n int, timeout time.Duration) (int64, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout + 5*time.Second))
	var b strings.Builder
	for _, cmd := range [][]string{
		{"SET", key, "sync", "PX", "10000"},
		{"WAIT", strconv.Itoa(n), strconv.FormatInt(timeout.Milliseconds(), 10)},
	} {
		fmt.Fprintf(&b, "*%d\r\n", len(cmd))
		for _, a := range cmd {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	var last string
	for range 2 {
		line, err := readLine(r)
		if err != nil {
			return 0, err
		}
		if line[0] == '-' {
			return 0, fmt.Errorf("conformance: %s", line[1:])
		}
		last = line
	}
	if last[0] != ':' {
		return 0, fmt.Errorf("conformance: WAIT replied %q", last)
	}
	return strconv.ParseInt(last[1:], 10, 64)
}
