package driver_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// tinyConn is the smallest useful driver: driver.Conn plus driver.Scripter
// over one RESP2 connection that it dials itself, with no client library.
// It is what docs/drivers.md walks through. A real driver would keep a
// pool; this one serialises its calls on one connection, which is enough
// to be safe for concurrent use.
type tinyConn struct {
	addr string

	mu     sync.Mutex
	c      net.Conn // nil until the first call, and after a broken one
	r      *bufio.Reader
	closed bool
}

var errClosed = errors.New("relock/tiny: connection closed")

// SetNX runs SET key value NX PX ttl: "OK" when set, a nil reply when the
// key exists.
func (t *tinyConn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	v, err := t.do(ctx, "SET", key, value, "NX", "PX", strconv.FormatInt(ttl.Milliseconds(), 10))
	return v != nil, err
}

// Get runs GET key: a nil reply is a missing key, not an error.
func (t *tinyConn) Get(ctx context.Context, key string) (string, bool, error) {
	v, err := t.do(ctx, "GET", key)
	s, ok := v.(string)
	return s, ok, err
}

// Eval runs EVAL script numkeys keys... args....
func (t *tinyConn) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	return t.do(ctx, append(append([]string{"EVAL", script, strconv.Itoa(len(keys))}, keys...), args...)...)
}

// EvalSha runs EVALSHA; the server's NOSCRIPT reply matches
// driver.ErrNoScript through driver.ServerError.
func (t *tinyConn) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	return t.do(ctx, append(append([]string{"EVALSHA", sha1, strconv.Itoa(len(keys))}, keys...), args...)...)
}

// Close closes the connection.
func (t *tinyConn) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	if t.c == nil {
		return nil
	}
	err := t.c.Close()
	t.c = nil
	return err
}

// do sends one command and reads its reply, within ctx: the context's
// deadline becomes the connection's, and its cancellation cuts the call
// short. A call that failed midway leaves the connection in an unknown
// state, so it is closed and the next call dials again.
func (t *tinyConn) do(ctx context.Context, args ...string) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errClosed
	}
	if t.c == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", t.addr)
		if err != nil {
			return nil, err
		}
		t.c, t.r = c, bufio.NewReader(c)
	}
	deadline, hasDeadline := ctx.Deadline() // the zero time: no deadline
	_ = t.c.SetDeadline(deadline)
	c := t.c // the callback may run after do has dropped t.c
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	v, err := t.roundTrip(args)
	stop()
	var reply *replyError
	if err != nil && !errors.As(err, &reply) {
		_ = t.c.Close()
		t.c = nil
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && hasDeadline && !time.Now().Before(deadline) {
			<-ctx.Done() // the connection's deadline was the context's
		}
		if ctx.Err() != nil {
			err = errors.Join(ctx.Err(), err) // the context's error stays visible
		}
	}
	return v, err
}

func (t *tinyConn) roundTrip(args []string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(t.c, b.String()); err != nil {
		return nil, err
	}
	return readReply(t.r)
}

// replyError is an error reply: its text classified by driver.ServerError.
// Unlike a network error, it leaves the connection usable.
type replyError struct{ error }

func (e *replyError) Unwrap() error { return e.error }

// readReply reads one RESP2 reply into the shapes the driver package doc
// names: nil, int64, string, []any; an error reply nested in an array
// stays an error value there, which driver.ConvertReply turns into the
// call's error.
func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("relock/tiny: empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return nil, &replyError{driver.ServerError(body)}
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err // $-1: a nil bulk string
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err // *-1: a nil array
		}
		a := make([]any, n)
		for i := range a {
			v, err := readReply(r)
			var reply *replyError
			switch {
			case errors.As(err, &reply):
				v = reply.error
			case err != nil:
				return nil, err
			}
			a[i] = v
		}
		v, err := driver.ConvertReply(a)
		if err != nil {
			return nil, &replyError{err} // the whole reply was read
		}
		return v, nil
	}
	return nil, fmt.Errorf("relock/tiny: unknown reply %q", line)
}

// Example_smallestDriver builds a relock Client over the smallest useful
// driver: Conn and Scripter, about 150 lines with its own RESP reader.
// Without Subscriber its waiters poll; without Watcher and ReplicaWaiter
// it has no fallback for a server without Lua and no WithReplicas. The
// driver's conformance run is TestTinyConformance.
func Example_smallestDriver() {
	client, err := relock.New(&tinyConn{addr: "127.0.0.1:6379"})
	if err != nil {
		panic(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lock, err := client.Obtain(ctx, "report:42", 30*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lock.Release(ctx)
	fmt.Println("obtained", lock.Key())
}
