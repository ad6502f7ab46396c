package radixadapter

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mediocregopher/radix/v4"
	"github.com/mediocregopher/radix/v4/trace"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Driver opens Conns from URLs; the package registers it as "radix".
type Driver struct{}

func init() { relock.Register("radix", Driver{}) }

// Open returns a Conn that owns the radix client dsn describes:
//
//	redis://[[user]:password@]host[:port][/db][?option=value...]   (rediss:// for TLS)
//	unix://[[user]:password@]/path/to/socket[?db=N&option=value...]
//	redis://host:port?addr=host2:port2&addr=...          a cluster
//	redis://sentinel:port?master_name=NAME[&addr=...]    sentinels
//
// The options: db, dial_timeout (connect and TLS handshake, 5s),
// read_timeout and write_timeout (10s each: a call whose context allows
// longer waits at most their sum), client_name, pool_size (connections per
// pool, 4), addr and master_name. Its pools do not PING in the background.
// Open does not dial: the client is made on the first call, within its
// context, and again on the next while that fails. Its errors match
// relock.ErrInvalidArgument.
func (Driver) Open(dsn string) (driver.Conn, error) {
	o := &opened{URL: driver.URL{PoolSize: 4, DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second},
		sem: make(chan struct{}, 1), conns: map[*trackedConn]bool{}}
	if err := o.Parse(dsn); err != nil {
		return nil, fmt.Errorf("relock/radix: invalid DSN: %w: %w", relock.ErrInvalidArgument, err)
	}
	o.tls = o.TLSConfig()
	return &Conn{lazy: o, dial: o.dial, timeout: o.ReadTimeout + o.WriteTimeout}, nil
}

// opened is what Open read in a DSN, and the client it makes on first use.
type opened struct {
	driver.URL
	tls    *tls.Config
	sem    chan struct{} // held while the client is made, and by close
	closed bool          // under sem
	client atomic.Pointer[closer]
	mu     sync.Mutex
	conns  map[*trackedConn]bool // nil once closed
}

// closer is a radix client that Open made.
type closer interface {
	Client
	Close() error
}

func (o *opened) build(ctx context.Context) (closer, error) {
	pc := radix.PoolConfig{Dialer: radix.Dialer{CustomConn: o.dial}, Size: o.PoolSize, PingInterval: -1}
	switch {
	case o.MasterName != "":
		sd := radix.Dialer{CustomConn: func(ctx context.Context, network, addr string) (radix.Conn, error) {
			return o.track(radix.Dialer{NetDialer: o.netDialer()}.Dial(ctx, network, addr))
		}}
		return radix.SentinelConfig{PoolConfig: pc, SentinelDialer: sd}.New(ctx, o.MasterName, o.Addrs)
	case len(o.Addrs) > 1:
		return radix.ClusterConfig{PoolConfig: pc}.New(ctx, o.Addrs)
	}
	// Wait (within ctx) for the pool to dial all its connections, which it
	// does in the background: its Close meanwhile takes 100 ms for each.
	filled := make(chan struct{})
	pc.Trace.InitCompleted = func(trace.PoolInitCompleted) { close(filled) }
	cl, err := pc.New(ctx, o.Network, o.Addrs[0])
	if err == nil {
		select {
		case <-filled:
		case <-ctx.Done():
		}
	}
	return cl, err
}

func (o *opened) netDialer() interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
} {
	if o.tls != nil {
		return &tls.Dialer{NetDialer: &net.Dialer{Timeout: o.DialTimeout}, Config: o.tls}
	}
	return &net.Dialer{Timeout: o.DialTimeout}
}

// dial opens a connection and sends AUTH, SELECT and CLIENT SETNAME. A
// lone password for a server without one is accepted, as in the other
// adapters.
func (o *opened) dial(ctx context.Context, network, addr string) (radix.Conn, error) {
	conn, err := radix.Dialer{NetDialer: o.netDialer()}.Dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cmds := [][]string{{"AUTH", o.Username, o.Password}, {"SELECT", strconv.Itoa(o.DB)}, {"CLIENT", "SETNAME", o.ClientName}}
	if o.Username == "" {
		cmds[0] = []string{"AUTH", o.Password}
	}
	for i, c := range cmds {
		if i == 0 && o.Password == "" || i == 1 && o.DB == 0 || i == 2 && o.ClientName == "" {
			continue
		}
		if err := conn.Do(ctx, radix.Cmd(nil, c[0], c[1:]...)); err != nil && !(i == 0 && len(c) == 2 && strings.Contains(err.Error(), "without any password configured")) {
			_ = conn.Close()
			return nil, err
		}
	}
	return o.track(conn, nil)
}

// track records conn, to be closed by close if still open then: radix's
// pool neither keeps nor closes one it dials while it closes.
func (o *opened) track(conn radix.Conn, err error) (radix.Conn, error) {
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.conns == nil {
		_ = conn.Close()
		return nil, ErrClosed
	}
	tc := &trackedConn{conn, o}
	o.conns[tc] = true
	return tc, nil
}

type trackedConn struct {
	radix.Conn
	o *opened
}

func (c *trackedConn) Close() error {
	c.o.mu.Lock()
	delete(c.o.conns, c)
	c.o.mu.Unlock()
	return c.Conn.Close()
}

// get returns the client, made within ctx if it is not there yet.
func (o *opened) get(ctx context.Context) (Client, error) {
	if cl := o.client.Load(); cl != nil {
		return *cl, ctx.Err()
	}
	select {
	case o.sem <- struct{}{}:
		defer func() { <-o.sem }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if o.closed {
		return nil, ErrClosed
	} else if cl := o.client.Load(); cl != nil {
		return *cl, ctx.Err()
	}
	if d := o.DialTimeout + o.ReadTimeout + o.WriteTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	cl, err := o.build(ctx)
	if err != nil {
		return nil, err
	}
	o.client.Store(&cl)
	return cl, nil
}

// close closes the client, once a build in progress ended, and every
// connection dial made that is still open.
func (o *opened) close() error {
	o.sem <- struct{}{}
	o.closed = true
	<-o.sem
	var err error
	if cl := o.client.Load(); cl != nil {
		err = (*cl).Close()
	}
	o.mu.Lock()
	conns := o.conns
	o.conns = nil
	o.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
	return err
}
