package rueidisadapter

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Driver opens Conns from redis:// and rediss:// URLs. It is registered with
// relock under the name "rueidis".
type Driver struct{}

// openOptions are the query options rueidis.ParseURL knows, and
// master_name, the name go-redis gives master_set.
var openOptions = []string{"db", "dial_timeout", "read_timeout", "write_timeout", "pool_size", "addr", "skip_verify", "protocol",
	"client_cache", "max_retries", "client_name", "master_set", "master_name"}

// Open parses dsn with rueidis.ParseURL and returns a Conn that owns the
// client it makes: the Conn's Close closes it. The forms are
//
//	redis://[user:password@]host:port[/db][?option=value...]
//	redis://host:port?addr=host2:port2&addr=...          several seeds (a cluster, when the server is one)
//	redis://sentinel:port?master_name=NAME[&addr=...]    sentinel (master_set=NAME works too)
//
// with rediss:// for TLS, and unix:///path/to/socket[?db=N]. The options
// are those rueidis.ParseURL knows (db, dial_timeout, write_timeout, addr,
// skip_verify, protocol, client_cache, max_retries, client_name,
// master_set), master_name, and, for the vocabulary the three adapters
// share, read_timeout (rueidis has one timeout for a reply and a write:
// the larger of read_timeout and write_timeout becomes ConnWriteTimeout)
// and pool_size (BlockingPoolSize: the connections WATCH pins; rueidis
// pipelines every other command over one connection per node); any other
// is an error. rueidis builds a cluster client whenever the server answers
// CLUSTER SLOTS, with one seed or several. Open turns off the client-side
// cache, which relock never reads.
//
// Open does not contact the server: rueidis.NewClient, which dials, runs on
// the first call, within that call's context (and, when the context ends
// first, on in the background until rueidis's own timeouts end it; the
// next call then waits for it). An unreachable server, a bad password or a
// TLS mismatch surface on the first call, and again on every call until a
// connection is made. Every error of Open matches relock.ErrInvalidArgument.
func (Driver) Open(dsn string) (driver.Conn, error) {
	opt, err := parseDSN(dsn)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("rueidisadapter: invalid DSN: %w: %w", relock.ErrInvalidArgument, err)
	}
	opt.DisableCache = true
	return &Conn{lazy: &lazyClient{opt: opt}, owned: true}, nil
}

// parseDSN checks the options of dsn and parses it with rueidis.ParseURL.
func parseDSN(dsn string) (rueidis.ClientOption, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return rueidis.ClientOption{}, err
	}
	if u.Scheme == "unix" && u.Path == "" {
		return rueidis.ClientOption{}, errors.New("want unix:///path/to/socket")
	}
	q := u.Query()
	for name := range q {
		if !slices.Contains(openOptions, name) {
			return rueidis.ClientOption{}, fmt.Errorf("unknown option %s (known: %s)", name, strings.Join(openOptions, ", "))
		}
	}
	if q.Has("master_name") {
		if q.Has("master_set") {
			return rueidis.ClientOption{}, errors.New("master_name and master_set both given")
		}
		q.Set("master_set", q.Get("master_name"))
		q.Del("master_name")
	}
	var readTimeout time.Duration
	if q.Has("read_timeout") {
		if readTimeout, err = time.ParseDuration(q.Get("read_timeout")); err != nil || readTimeout < 0 {
			return rueidis.ClientOption{}, fmt.Errorf("option read_timeout=%q: want a duration such as 3s", q.Get("read_timeout"))
		}
		q.Del("read_timeout")
	}
	poolSize := 0
	if q.Has("pool_size") {
		if poolSize, err = strconv.Atoi(q.Get("pool_size")); err != nil || poolSize < 0 {
			return rueidis.ClientOption{}, fmt.Errorf("option pool_size=%q: want a number", q.Get("pool_size"))
		}
		q.Del("pool_size")
	}
	u.RawQuery = q.Encode()
	opt, err := rueidis.ParseURL(u.String())
	if err != nil {
		return rueidis.ClientOption{}, err
	}
	opt.ConnWriteTimeout = max(opt.ConnWriteTimeout, readTimeout)
	if poolSize > 0 {
		opt.BlockingPoolSize = poolSize
	}
	return opt, nil
}

// lazyClient makes the client of a Conn that Driver.Open returned, on
// first use.
type lazyClient struct {
	opt rueidis.ClientOption

	mu      sync.Mutex
	client  rueidis.Client
	making  *attempt // the rueidis.NewClient in flight, if any
	stopped bool     // the Conn was closed
}

// attempt is one rueidis.NewClient call.
type attempt struct {
	done   chan struct{} // closed when it returned
	client rueidis.Client
	err    error
}

// get returns the client, making it if need be: it waits for the
// rueidis.NewClient in flight, or starts one, until ctx ends. The
// goroutine that runs NewClient is counted in c.pinning, which Close waits
// for.
func (l *lazyClient) get(ctx context.Context, c *Conn) (rueidis.Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	switch {
	case l.client != nil:
		cl := l.client
		l.mu.Unlock()
		return cl, nil
	case l.stopped:
		l.mu.Unlock()
		return nil, ErrClosed
	}
	a := l.making
	if a == nil {
		a = &attempt{done: make(chan struct{})}
		l.making = a
		c.pinning.Add(1)
		go l.make(a, &c.pinning)
	}
	l.mu.Unlock()
	select {
	case <-a.done:
		if a.err != nil {
			// An error reply to the handshake (BUSY, LOADING,
			// WRONGPASS, ...) is classified as every reply is.
			return nil, fmt.Errorf("rueidisadapter: connect to %v: %w", l.opt.InitAddress, translate(a.err))
		}
		return a.client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// make runs rueidis.NewClient for a.
func (l *lazyClient) make(a *attempt, wg *sync.WaitGroup) {
	defer wg.Done()
	cl, err := rueidis.NewClient(l.opt)
	var made rueidis.Client
	l.mu.Lock()
	l.making = nil
	switch {
	case err != nil:
	case l.stopped:
		err = ErrClosed // made after the Conn's Close: closed below
	default:
		l.client, made, cl = cl, cl, nil
	}
	l.mu.Unlock()
	if cl != nil {
		cl.Close()
	}
	a.client, a.err = made, err
	close(a.done)
}

// close closes the client, if made, and makes an attempt in flight close
// its client when it comes.
func (l *lazyClient) close() {
	l.mu.Lock()
	l.stopped = true
	cl := l.client
	l.mu.Unlock()
	if cl != nil {
		cl.Close()
	}
}
