package rueidisadapter

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Driver opens Conns from URLs; it is registered as "rueidis".
type Driver struct{}

// openOptions are rueidis.ParseURL's query options and the shared
// vocabulary's master_name, read_timeout and pool_size.
var openOptions = []string{"db", "dial_timeout", "read_timeout", "write_timeout", "pool_size", "addr", "skip_verify", "protocol",
	"client_cache", "max_retries", "client_name", "master_set", "master_name"}

// Open parses dsn with rueidis.ParseURL and returns a Conn that owns the
// client it makes:
//
//	redis://[user:password@]host:port[/db][?option=value...]   rediss:// for TLS
//	redis://host:port?addr=host2:port2&addr=...          several seeds (a cluster, when the server is one)
//	redis://sentinel:port?master_name=NAME[&addr=...]    sentinel (master_set=NAME works too)
//	unix:///path/to/socket[?db=N]
//
// The options are openOptions: read_timeout raises ConnWriteTimeout (one
// timeout for a write and its reply) and pool_size sets BlockingPoolSize
// (the connections Dedicate pins; rueidis pipelines the rest over one
// connection per node). Open turns the client-side cache off and does not
// dial: rueidis.NewClient runs on the first call, within its context, and
// on in the background if the context ends first. Its errors match
// relock.ErrInvalidArgument.
func (Driver) Open(dsn string) (driver.Conn, error) {
	opt, err := parseDSN(dsn)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("relock/rueidis: invalid DSN: %w: %w", relock.ErrInvalidArgument, err)
	}
	opt.DisableCache = true
	return &Conn{lazy: &lazyClient{opt: opt, sem: make(chan struct{}, 1)}}, nil
}

func parseDSN(dsn string) (opt rueidis.ClientOption, err error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return opt, err
	}
	if u.Scheme == "unix" && u.Path == "" {
		return opt, errors.New("want unix:///path/to/socket")
	}
	q := u.Query()
	for name := range q {
		if !slices.Contains(openOptions, name) {
			return opt, fmt.Errorf("unknown option %s (known: %s)", name, strings.Join(openOptions, ", "))
		}
	}
	if q.Has("master_name") && q.Has("master_set") {
		return opt, errors.New("master_name and master_set both given")
	} else if q.Has("master_name") {
		q.Set("master_set", q.Get("master_name"))
	}
	readTimeout, rtErr := time.ParseDuration(q.Get("read_timeout"))
	if q.Has("read_timeout") && (rtErr != nil || readTimeout < 0) {
		return opt, fmt.Errorf("option read_timeout=%q: want a duration such as 3s", q.Get("read_timeout"))
	}
	poolSize, psErr := strconv.Atoi(q.Get("pool_size"))
	if q.Has("pool_size") && (psErr != nil || poolSize < 0) {
		return opt, fmt.Errorf("option pool_size=%q: want a number", q.Get("pool_size"))
	}
	for _, name := range []string{"master_name", "read_timeout", "pool_size"} {
		q.Del(name)
	}
	u.RawQuery = q.Encode()
	if opt, err = rueidis.ParseURL(u.String()); err != nil {
		return opt, err
	}
	opt.ConnWriteTimeout = max(opt.ConnWriteTimeout, readTimeout)
	opt.BlockingPoolSize = max(opt.BlockingPoolSize, poolSize)
	return opt, nil
}

// lazyClient makes the client of a Conn that Driver.Open returned on
// first use, and closes it with the Conn.
type lazyClient struct {
	opt     rueidis.ClientOption
	made    atomic.Value  // the rueidis.Client, once made
	sem     chan struct{} // held while the client is made or closed
	stopped bool          // under sem
}

// get returns the client, making it in a goroutine that the Conn's Close
// waits for and the caller leaves when ctx ends (the next call then waits
// for it). A failure to connect is tried again by the next call.
func (l *lazyClient) get(ctx context.Context, c *Conn) (rueidis.Client, error) {
	if cl, ok := l.made.Load().(rueidis.Client); ok {
		return cl, nil
	} else if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	errs := make(chan error, 1)
	c.background(func() {
		defer func() { <-l.sem }()
		errs <- l.make()
	})
	select {
	case err := <-errs:
		if err != nil { // an error reply to the handshake is classified too
			return nil, fmt.Errorf("relock/rueidis: connect to %v: %w", l.opt.InitAddress, translate(err))
		}
		return l.made.Load().(rueidis.Client), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// make makes the client unless it is made or the Conn closed. The caller
// holds sem.
func (l *lazyClient) make() error {
	if _, made := l.made.Load().(rueidis.Client); made {
		return nil
	} else if l.stopped {
		return ErrClosed
	}
	cl, err := rueidis.NewClient(l.opt)
	if err == nil {
		l.made.Store(cl)
	}
	return err
}

// close closes the client once a NewClient in flight has returned.
func (l *lazyClient) close() {
	l.sem <- struct{}{}
	l.stopped = true
	if cl, ok := l.made.Load().(rueidis.Client); ok {
		cl.Close()
	}
	<-l.sem
}
