package valkeyadapter

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Driver opens Conns from URLs; it is registered as "valkey".
type Driver struct{}

// Open parses dsn with valkey.ParseURL and returns a Conn whose Close
// closes the client it makes:
//
//	redis://[user:password@]host:port[/db][?option=value...]
//	redis://host:port?addr=host2:port2&addr=...          several seeds (a cluster)
//	redis://sentinel:port?master_name=NAME[&addr=...]    sentinel (or master_set=NAME)
//	unix:///path/to/socket[?db=N]
//
// rediss:// is TLS, valkey:// and valkeys:// are redis:// and rediss://.
// The options are valkey.ParseURL's, master_name, read_timeout (valkey's
// one timeout for a reply, ConnWriteTimeout, becomes the larger of the
// two) and pool_size (BlockingPoolSize, the connections that pin takes).
// Any other option, or a malformed URL, fails with
// relock.ErrInvalidArgument. The client-side cache is off. Open does not
// dial: valkey.NewClient runs on the first call, on in the background if
// that call's context ends first, and is tried again after a failure.
func (Driver) Open(dsn string) (driver.Conn, error) {
	opt, err := parseDSN(dsn)
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		err = ue.Err // url.Error repeats the URL, password included
	}
	if err != nil {
		return nil, fmt.Errorf("relock/valkey: invalid DSN: %w: %w", relock.ErrInvalidArgument, err)
	}
	opt.DisableCache = true
	return &Conn{lazy: &lazyClient{opt: opt}}, nil
}

var parsed = []string{"db", "dial_timeout", "write_timeout", "addr", "skip_verify", "protocol", "client_cache", "max_retries", "client_name", "master_set"}

func parseDSN(dsn string) (opt valkey.ClientOption, err error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return opt, err
	}
	if u.Scheme == "unix" && u.Path == "" {
		return opt, errors.New("want unix:///path/to/socket")
	}
	q := u.Query()
	if q.Has("master_name") && q.Has("master_set") {
		return opt, errors.New("master_name and master_set both given")
	} else if q.Has("master_name") {
		q["master_set"] = q["master_name"]
	}
	readTimeout, poolSize := 0*time.Second, 0
	for name, v := range q {
		switch {
		case name == "master_name":
		case name == "read_timeout":
			if readTimeout, err = time.ParseDuration(v[0]); err != nil || readTimeout < 0 {
				return opt, fmt.Errorf("option read_timeout=%q: want a duration such as 3s", v[0])
			}
		case name == "pool_size":
			if poolSize, err = strconv.Atoi(v[0]); err != nil || poolSize < 0 {
				return opt, fmt.Errorf("option pool_size=%q: want a number", v[0])
			}
		case !slices.Contains(parsed, name):
			return opt, fmt.Errorf("unknown option %s (known: %v, master_name, read_timeout, pool_size)", name, parsed)
		}
	}
	u.RawQuery = q.Encode() // valkey.ParseURL ignores the options it does not know
	if opt, err = valkey.ParseURL(u.String()); err != nil {
		return opt, err
	}
	opt.ConnWriteTimeout = max(opt.ConnWriteTimeout, readTimeout)
	opt.BlockingPoolSize = poolSize
	return opt, nil
}

// lazyClient makes the client of a Conn from Driver.Open on first use.
type lazyClient struct {
	opt     valkey.ClientOption
	mu      sync.Mutex
	try     *attempt // the last valkey.NewClient
	stopped bool     // the Conn was closed
}

type attempt struct {
	done   chan struct{} // closed when NewClient returned
	client valkey.Client
	err    error
}

// get returns the client, waiting until ctx ends for the NewClient in
// flight, or for one it starts in a goroutine that wg counts.
func (l *lazyClient) get(ctx context.Context, wg *sync.WaitGroup) (valkey.Client, error) {
	l.mu.Lock()
	a := l.try
	if l.stopped {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	if a == nil {
		a = &attempt{done: make(chan struct{})}
		l.try = a
		wg.Go(func() {
			if a.client, a.err = valkey.NewClient(l.opt); a.err != nil {
				l.mu.Lock()
				l.try = nil // the next call tries again
				l.mu.Unlock()
			}
			close(a.done)
		})
	}
	l.mu.Unlock()
	select {
	case <-a.done:
		if a.err != nil {
			return nil, fmt.Errorf("relock/valkey: connect to %v: %w", l.opt.InitAddress, wrap(a.err))
		}
		return a.client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close makes get fail and closes the client, once a NewClient in flight
// returned.
func (l *lazyClient) close() {
	l.mu.Lock()
	l.stopped = true
	a := l.try
	l.mu.Unlock()
	if a != nil {
		if <-a.done; a.client != nil {
			a.client.Close()
		}
	}
}
