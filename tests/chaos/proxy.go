package chaos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Proxy is a TCP proxy on a loopback port in front of one server. Each
// connection through it gets its own latency, drawn once per direction
// between MinLatency and MaxLatency, added to every byte it carries (order
// is kept); a jittery proxy (NewJitterProxy) draws it afresh for every
// chunk read instead. Reset cuts connections with a TCP RST; Partition
// stops every byte, both ways, without closing anything. Its methods are
// safe for concurrent use.
type Proxy struct {
	target           string
	minLat, maxLat   time.Duration
	perChunk         bool // draw the latency per chunk, not per connection
	ln               net.Listener
	wg               sync.WaitGroup // the accept loop and every pump
	mu               sync.Mutex
	conns            map[*proxyConn]struct{}
	closed           bool
	accepted, resets int
	// healed is closed while data flows; a partition replaces it with an
	// open channel, which Heal (or Close) closes.
	healed chan struct{}
	done   chan struct{} // closed by Close
}

// proxyConn is one client connection and its upstream connection.
type proxyConn struct {
	client, server *net.TCPConn
	once           sync.Once
}

// close cuts both sides; with reset, the client sees an RST rather than a
// FIN.
func (c *proxyConn) close(reset bool) {
	c.once.Do(func() {
		if reset {
			_ = c.client.SetLinger(0)
			_ = c.server.SetLinger(0)
		}
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// NewProxy listens on a free loopback port and forwards every connection
// to target, adding latencies between minLatency and maxLatency each way.
func NewProxy(target string, minLatency, maxLatency time.Duration) (*Proxy, error) {
	if minLatency < 0 || maxLatency < minLatency {
		return nil, fmt.Errorf("chaos: proxy latency [%v, %v] is not a range", minLatency, maxLatency)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("chaos: proxy: %w", err)
	}
	p := &Proxy{target: target, minLat: minLatency, maxLat: maxLatency, ln: ln, conns: map[*proxyConn]struct{}{}, healed: make(chan struct{}), done: make(chan struct{})}
	close(p.healed)
	p.wg.Go(p.accept)
	return p, nil
}

// NewJitterProxy is NewProxy with a latency drawn between minLatency and
// maxLatency for every chunk of data, in each direction, rather than once
// per connection: a slow, jittery network. A chunk never overtakes the one
// read before it on the same side, so a chunk is delayed by at least its
// own draw and order is kept.
func NewJitterProxy(target string, minLatency, maxLatency time.Duration) (*Proxy, error) {
	p, err := NewProxy(target, minLatency, maxLatency)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.perChunk = true
	p.mu.Unlock()
	return p, nil
}

// Addr is the proxy's address, for clients.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Stats returns how many connections the proxy accepted and reset.
func (p *Proxy) Stats() (accepted, resets int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted, p.resets
}

func (p *Proxy) latency() time.Duration {
	if p.maxLat == p.minLat {
		return p.minLat
	}
	return p.minLat + rand.N(p.maxLat-p.minLat+1)
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		s, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			_ = c.(*net.TCPConn).SetLinger(0)
			_ = c.Close()
			continue
		}
		pc := &proxyConn{client: c.(*net.TCPConn), server: s.(*net.TCPConn)}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			pc.close(false)
			return
		}
		p.conns[pc] = struct{}{}
		p.accepted++
		perChunk := p.perChunk
		p.mu.Unlock()
		up, down := p.latency(), p.latency()
		p.wg.Go(func() { p.pump(pc, pc.client, pc.server, up, perChunk) })
		p.wg.Go(func() { p.pump(pc, pc.server, pc.client, down, perChunk) })
	}
}

// chunk is data read at some moment, due to be written at another.
type chunk struct {
	data []byte
	due  time.Time
}

// pump copies from src to dst, each chunk lat after it was read (with
// perChunk, a latency drawn for that chunk, but never before the chunk
// read before it). When either side fails, the whole connection is closed.
func (p *Proxy) pump(pc *proxyConn, src, dst *net.TCPConn, lat time.Duration, perChunk bool) {
	defer func() {
		pc.close(false)
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()
	queue := make(chan chunk, 256)
	var writer sync.WaitGroup
	writer.Go(func() {
		for c := range queue {
			if d := time.Until(c.due); d > 0 {
				time.Sleep(d)
			}
			p.mu.Lock()
			healed := p.healed
			p.mu.Unlock()
			var err error
			select {
			case <-healed:
				_, err = dst.Write(c.data)
			case <-p.done:
				err = net.ErrClosed // Close drops what a partition held back
			}
			if err != nil {
				pc.close(false)
				for range queue { // drain: the reader ends on the closed conn
				}
				return
			}
		}
	})
	buf := make([]byte, 32<<10)
	var last time.Time // when the previous chunk is due
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if perChunk {
				lat = p.latency()
			}
			due := time.Now().Add(lat)
			if due.Before(last) {
				due = last
			}
			last = due
			queue <- chunk{data: append([]byte(nil), buf[:n]...), due: due}
		}
		if err != nil {
			break
		}
	}
	close(queue)
	writer.Wait()
	// Data read before the end was delivered (or the write failed): now
	// close the other side too.
}

// Reset cuts n of the open connections, picked at random (all of them
// when n <= 0 or larger than their number), with a TCP RST, and returns
// how many it cut.
func (p *Proxy) Reset(n int) int {
	p.mu.Lock()
	var cs []*proxyConn
	for c := range p.conns {
		cs = append(cs, c)
	}
	rand.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
	if n > 0 && n < len(cs) {
		cs = cs[:n]
	}
	p.resets += len(cs)
	p.mu.Unlock()
	for _, c := range cs {
		c.close(true)
	}
	return len(cs)
}

// Partition stops delivering data on every connection, open or opened
// later, both ways, until Heal: the client and the server each see a peer
// that has gone silent, as behind a network partition. Nothing is closed;
// data sent meanwhile is delivered on Heal (and dropped by Close).
func (p *Proxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.healed:
		p.healed = make(chan struct{})
	default: // already partitioned
	}
}

// Heal ends a partition.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.healed:
	default:
		close(p.healed)
	}
}

// Close stops accepting, cuts every connection and waits until every
// goroutine of the proxy has ended.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	var cs []*proxyConn
	for c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range cs {
		c.close(false)
	}
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
