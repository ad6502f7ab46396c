package radixadapter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
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

var openOptions = []string{"db", "dial_timeout", "read_timeout", "write_timeout", "client_name", "pool_size", "addr", "master_name"}

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
	o, err := parseDSN(dsn)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("relock/radix: invalid DSN: %w: %w", relock.ErrInvalidArgument, err)
	}
	return &Conn{lazy: o, dial: o.dial, timeout: o.read + o.write}, nil
}

// opened is what Open read in a DSN, and the client it makes on first use.
type opened struct {
	network, addr, master, user, password, name string
	seeds                                       []string // addr and the addr options
	auth                                        bool
	db, size                                    int
	connect, read, write                        time.Duration
	tls                                         *tls.Config
	sem                                         chan struct{} // held while the client is made, and by close
	closed                                      bool          // under sem
	client                                      atomic.Pointer[closer]
	mu                                          sync.Mutex
	conns                                       map[*trackedConn]bool // nil once closed
}

func parseDSN(dsn string) (*opened, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, err
	}
	o := &opened{network: "tcp", addr: u.Host, size: 4, connect: 5 * time.Second, read: 10 * time.Second,
		write: 10 * time.Second, sem: make(chan struct{}, 1), conns: map[*trackedConn]bool{}}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Opaque != "" || u.Host == "" {
			return nil, errors.New("want redis://host[:port][/db]")
		}
		if _, _, err := net.SplitHostPort(o.addr); err != nil {
			o.addr = net.JoinHostPort(u.Hostname(), "6379")
		}
		if p := strings.TrimPrefix(u.Path, "/"); p != "" {
			if o.db, err = strconv.Atoi(p); err != nil || o.db < 0 {
				return nil, fmt.Errorf("database %q: want a number", p)
			}
		}
		if u.Scheme == "rediss" {
			o.tls = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		}
	case "unix":
		if u.Opaque != "" || u.Path == "" {
			return nil, errors.New("want unix:///path/to/socket")
		}
		o.network, o.addr = "unix", u.Path
	default:
		return nil, fmt.Errorf("scheme %q: want redis, rediss or unix", u.Scheme)
	}
	q := u.Query()
	for name := range q {
		if !slices.Contains(openOptions, name) {
			return nil, fmt.Errorf("unknown option %s (known: %s)", name, strings.Join(openOptions, ", "))
		}
	}
	for name, p := range map[string]any{"db": &o.db, "pool_size": &o.size, "dial_timeout": &o.connect, "read_timeout": &o.read, "write_timeout": &o.write} {
		v, bad := q.Get(name), false
		if !q.Has(name) {
			continue
		}
		switch p := p.(type) {
		case *int:
			n, err := strconv.Atoi(v)
			*p, bad = n, err != nil || n < 0
		case *time.Duration:
			d, err := time.ParseDuration(v)
			*p, bad = d, err != nil || d < 0
		}
		if bad {
			return nil, fmt.Errorf("option %s=%q: want a number, or a duration such as 3s", name, v)
		}
	}
	o.seeds, o.master, o.name = append([]string{o.addr}, q["addr"]...), q.Get("master_name"), q.Get("client_name")
	if u.User != nil {
		o.user = u.User.Username()
		if o.password, o.auth = u.User.Password(); !o.auth && o.user != "" { // redis://secret@host
			o.user, o.password, o.auth = "", o.user, true
		}
	}
	return o, nil
}

// closer is a radix client that Open made.
type closer interface {
	Client
	Close() error
}

func (o *opened) build(ctx context.Context) (closer, error) {
	pc := radix.PoolConfig{Dialer: radix.Dialer{CustomConn: o.dial}, Size: o.size, PingInterval: -1}
	switch {
	case o.master != "":
		sd := radix.Dialer{CustomConn: func(ctx context.Context, network, addr string) (radix.Conn, error) {
			return o.track(radix.Dialer{NetDialer: o.netDialer()}.Dial(ctx, network, addr))
		}}
		return radix.SentinelConfig{PoolConfig: pc, SentinelDialer: sd}.New(ctx, o.master, o.seeds)
	case len(o.seeds) > 1:
		return radix.ClusterConfig{PoolConfig: pc}.New(ctx, o.seeds)
	}
	// Wait (within ctx) for the pool to dial all its connections, which it
	// does in the background: its Close meanwhile takes 100 ms for each.
	filled := make(chan struct{})
	pc.Trace.InitCompleted = func(trace.PoolInitCompleted) { close(filled) }
	cl, err := pc.New(ctx, o.network, o.addr)
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
		return &tls.Dialer{NetDialer: &net.Dialer{Timeout: o.connect}, Config: o.tls}
	}
	return &net.Dialer{Timeout: o.connect}
}

// dial opens a connection and sends AUTH, SELECT and CLIENT SETNAME. A
// lone password for a server without one is accepted, as in the other
// adapters.
func (o *opened) dial(ctx context.Context, network, addr string) (radix.Conn, error) {
	conn, err := radix.Dialer{NetDialer: o.netDialer()}.Dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cmds := [][]string{{"AUTH", o.user, o.password}, {"SELECT", strconv.Itoa(o.db)}, {"CLIENT", "SETNAME", o.name}}
	if o.user == "" {
		cmds[0] = []string{"AUTH", o.password}
	}
	for i, c := range cmds {
		if i == 0 && !o.auth || i == 1 && o.db == 0 || i == 2 && o.name == "" {
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
	if d := o.connect + o.read + o.write; d > 0 {
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
