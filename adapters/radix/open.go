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

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Driver opens Conns from redis://, rediss:// and unix:// URLs. The
// package registers it with relock under the name "radix".
type Driver struct{}

func init() {
	relock.Register("radix", Driver{})
}

// openOptions are the query options Driver.Open knows.
var openOptions = []string{"db", "dial_timeout", "read_timeout", "write_timeout", "client_name", "pool_size", "addr", "master_name"}

// Open builds a radix client from dsn and returns a Conn that owns it: the
// Conn's Close closes it. dsn has the form
//
//	redis://[[user]:password@]host[:port][/db][?option=value...]
//	rediss://...                                         TLS
//	unix://[[user]:password@]/path/to/socket[?db=N&option=value...]
//	redis://host:port?addr=host2:port2&addr=...          a cluster (radix.ClusterConfig)
//	redis://sentinel:port?master_name=NAME[&addr=...]    sentinels (radix.SentinelConfig)
//
// The options are db, dial_timeout (TCP connect and TLS handshake, 5s),
// read_timeout (the longest a call waits when its context allows longer,
// 10s), write_timeout (each write to the socket, 10s), client_name,
// pool_size (the connections of each pool, radix dials them all at once;
// 4, radix's default), addr and master_name; durations as time.ParseDuration takes
// them. Any other option is an error. The pools do not PING in the
// background (PingInterval -1), which radix would otherwise do unguarded
// by the context.
//
// Open does not contact the server: radix dials when its client is made,
// which happens on the first call, within that call's context, and again
// on the next call while it fails. An unreachable server, a bad password
// or a TLS mismatch surface there. A password given for a server that
// needs none is accepted. Every error of Open matches
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
	return &Conn{lazy: &lazyClient{o: o, sem: make(chan struct{}, 1)}, dial: o.dial, timeout: o.readTimeout}, nil
}

// options are what Open read in a DSN.
type options struct {
	network, addr                          string
	seeds                                  []string // addr and the addr options
	master, user, password, clientName     string
	auth                                   bool
	db, poolSize                           int
	dialTimeout, readTimeout, writeTimeout time.Duration
	tls                                    *tls.Config
	mu                                     sync.Mutex
	conns                                  map[*trackedConn]struct{} // nil once closed
}

func parseDSN(dsn string) (*options, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, err
	}
	o := &options{conns: map[*trackedConn]struct{}{}, network: "tcp", addr: u.Host, poolSize: 4,
		dialTimeout: 5 * time.Second, readTimeout: 10 * time.Second, writeTimeout: 10 * time.Second}
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
	count := func(name string, n *int) error {
		if !q.Has(name) {
			return nil
		}
		v, err := strconv.Atoi(q.Get(name))
		if err != nil || v < 0 {
			return fmt.Errorf("option %s=%q: want a number", name, q.Get(name))
		}
		*n = v
		return nil
	}
	duration := func(name string, d *time.Duration) error {
		if !q.Has(name) {
			return nil
		}
		v, err := time.ParseDuration(q.Get(name))
		if err != nil || v < 0 {
			return fmt.Errorf("option %s=%q: want a duration such as 3s", name, q.Get(name))
		}
		*d = v
		return nil
	}
	if err := errors.Join(count("db", &o.db), count("pool_size", &o.poolSize), duration("dial_timeout", &o.dialTimeout),
		duration("read_timeout", &o.readTimeout), duration("write_timeout", &o.writeTimeout)); err != nil {
		return nil, err
	}
	o.seeds = append([]string{o.addr}, q["addr"]...)
	o.master, o.clientName = q.Get("master_name"), q.Get("client_name")
	if u.User != nil {
		o.user = u.User.Username()
		o.password, o.auth = u.User.Password()
		if !o.auth && o.user != "" { // redis://secret@host, as redis-cli takes it
			o.user, o.password, o.auth = "", o.user, true
		}
	}
	return o, nil
}

// build makes the radix client that o describes, dialing within ctx.
func (o *options) build(ctx context.Context) (client interface {
	Client
	Close() error
}, err error) {
	pc := radix.PoolConfig{Dialer: radix.Dialer{CustomConn: o.dial}, Size: o.poolSize, PingInterval: -1}
	switch {
	case o.master != "":
		sc := radix.SentinelConfig{PoolConfig: pc, SentinelDialer: radix.Dialer{NetDialer: o.netDialer()}}
		if client, err = sc.New(ctx, o.master, o.seeds); err != nil {
			return nil, err
		}
	case len(o.seeds) > 1:
		if client, err = (radix.ClusterConfig{PoolConfig: pc}).New(ctx, o.seeds); err != nil {
			return nil, err
		}
	default:
		return pc.New(ctx, o.network, o.addr)
	}
	return client, nil
}

// dial opens one connection to addr and logs it in: AUTH, SELECT,
// CLIENT SETNAME. A server without a password answers a lone password with
// an error that says so; that counts as success, as in the other adapters.
func (o *options) dial(ctx context.Context, network, addr string) (radix.Conn, error) {
	conn, err := radix.Dialer{NetDialer: o.netDialer()}.Dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	var cmds [][]string
	switch {
	case o.auth && o.user != "":
		cmds = append(cmds, []string{"AUTH", o.user, o.password})
	case o.auth:
		cmds = append(cmds, []string{"AUTH", o.password})
	}
	if o.db != 0 {
		cmds = append(cmds, []string{"SELECT", strconv.Itoa(o.db)})
	}
	if o.clientName != "" {
		cmds = append(cmds, []string{"CLIENT", "SETNAME", o.clientName})
	}
	for _, c := range cmds {
		err := conn.Do(ctx, radix.Cmd(nil, c[0], c[1:]...))
		if err != nil && !(len(c) == 2 && strings.Contains(err.Error(), "without any password configured")) {
			_ = conn.Close()
			return nil, err
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.conns == nil {
		_ = conn.Close()
		return nil, ErrClosed
	}
	tc := &trackedConn{conn, o}
	o.conns[tc] = struct{}{}
	return tc, nil
}

// trackedConn is a connection that dial made, closed by closeAll if it is
// still open then: radix's pool forgets a connection that it dials while it
// closes, neither keeping nor closing it.
type trackedConn struct {
	radix.Conn
	o *options
}

func (c *trackedConn) Close() error {
	c.o.mu.Lock()
	delete(c.o.conns, c)
	c.o.mu.Unlock()
	return c.Conn.Close()
}

// closeAll closes every connection dial made, and those it makes later.
func (o *options) closeAll() {
	o.mu.Lock()
	conns := o.conns
	o.conns = nil
	o.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
}

// netDialer dials within dial_timeout, with TLS for rediss://, and bounds
// each write by write_timeout.
func (o *options) netDialer() dialer {
	nd := &net.Dialer{Timeout: o.dialTimeout}
	if o.tls != nil {
		return dialer{d: &tls.Dialer{NetDialer: nd, Config: o.tls}, write: o.writeTimeout}
	}
	return dialer{d: nd, write: o.writeTimeout}
}

type dialer struct {
	d interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	}
	write time.Duration
}

func (d dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.d.DialContext(ctx, network, addr)
	if err != nil || d.write <= 0 {
		return c, err
	}
	return writeTimeout{c, d.write}, nil
}

// writeTimeout is a net.Conn whose every Write must end within d.
type writeTimeout struct {
	net.Conn
	d time.Duration
}

func (c writeTimeout) Write(b []byte) (int, error) {
	_ = c.SetWriteDeadline(time.Now().Add(c.d))
	return c.Conn.Write(b)
}

// lazyClient is the client of a Conn made by Open, built on first use.
type lazyClient struct {
	o      *options
	sem    chan struct{} // held while the client is built, and by close
	closed bool          // under sem
	client atomic.Pointer[interface {
		Client
		Close() error
	}]
}

// get returns the client, building it within ctx (and dial_timeout plus
// read_timeout) if it is not there yet.
func (l *lazyClient) get(ctx context.Context) (Client, error) {
	if cl := l.client.Load(); cl != nil {
		return *cl, ctx.Err()
	}
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-l.sem }()
	if cl := l.client.Load(); cl != nil || l.closed {
		if l.closed {
			return nil, ErrClosed
		}
		return *cl, ctx.Err()
	}
	if d := l.o.dialTimeout + l.o.readTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	cl, err := l.o.build(ctx)
	if err != nil {
		return nil, translate(ctx, err)
	}
	l.client.Store(&cl)
	return cl, nil
}

// close closes the client, once a build in progress ended.
func (l *lazyClient) close() error {
	l.sem <- struct{}{}
	l.closed = true
	<-l.sem
	var err error
	if cl := l.client.Load(); cl != nil {
		err = (*cl).Close()
	}
	l.o.closeAll()
	return err
}
