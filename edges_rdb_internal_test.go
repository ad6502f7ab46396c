package relock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/relock-go/relock/internal/testkit/testredis"
)

// rawRedis is the little of a Redis client that the script-level tests
// need, over testredis's RESP client (a new connection per command), so
// that the root package's tests import no Redis client. Its methods are
// shaped like go-redis's, which these tests used before.
type rawRedis struct{ addr string }

// errRawNil is a nil reply.
var errRawNil = errors.New("redis: nil")

func (r *rawRedis) do(args ...any) (any, error) {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = fmt.Sprint(a)
	}
	v, err := testredis.Do(r.addr, s...)
	if err == nil && v == nil {
		err = errRawNil
	}
	return v, err
}

func (r *rawRedis) Close() error { return nil }

type rawResult struct {
	v   any
	err error
}

func (c rawResult) Err() error           { return c.err }
func (c rawResult) Result() (any, error) { return c.v, c.err }
func (c rawResult) strings() []string {
	a, _ := c.v.([]any)
	out := make([]string, len(a))
	for i, e := range a {
		out[i], _ = e.(string)
	}
	return out
}

type rawString struct{ rawResult }

func (c rawString) Result() (string, error) { s, _ := c.v.(string); return s, c.err }
func (c rawString) Val() string             { s, _ := c.v.(string); return s }

type rawInt struct{ rawResult }

func (c rawInt) Result() (int64, error) { n, _ := c.v.(int64); return n, c.err }

type rawStrings struct{ rawResult }

func (c rawStrings) Result() ([]string, error) { return c.strings(), c.err }

type rawDuration struct{ rawResult }

// Val is PTTL's reply as a duration; -1 and -2 stay negative.
func (c rawDuration) Val() time.Duration {
	n, _ := c.v.(int64)
	if n < 0 {
		return time.Duration(n)
	}
	return time.Duration(n) * time.Millisecond
}

func (r *rawRedis) result(args ...any) rawResult {
	v, err := r.do(args...)
	return rawResult{v, err}
}

func (r *rawRedis) Do(_ context.Context, args ...any) rawResult { return r.result(args...) }

func (r *rawRedis) Get(_ context.Context, key string) rawString {
	return rawString{r.result("GET", key)}
}

func (r *rawRedis) Eval(_ context.Context, script string, keys []string, args ...any) rawResult {
	return r.result(append(append([]any{"EVAL", script, len(keys)}, anySlice(keys)...), args...)...)
}

func (r *rawRedis) EvalSha(_ context.Context, sha string, keys []string, args ...any) rawResult {
	return r.result(append(append([]any{"EVALSHA", sha, len(keys)}, anySlice(keys)...), args...)...)
}

func (r *rawRedis) Del(_ context.Context, keys ...string) rawInt {
	return rawInt{r.result(append([]any{"DEL"}, anySlice(keys)...)...)}
}

func (r *rawRedis) Keys(_ context.Context, pattern string) rawStrings {
	return rawStrings{r.result("KEYS", pattern)}
}

func (r *rawRedis) LRange(_ context.Context, key string, start, stop int64) rawStrings {
	return rawStrings{r.result("LRANGE", key, start, stop)}
}

func (r *rawRedis) PTTL(_ context.Context, key string) rawDuration {
	return rawDuration{r.result("PTTL", key)}
}

func (r *rawRedis) Set(_ context.Context, key, value string, ttl time.Duration) rawResult {
	return r.result("SET", key, value, "PX", ttl.Milliseconds())
}

func (r *rawRedis) RPush(_ context.Context, key string, values ...string) rawResult {
	return r.result(append([]any{"RPUSH", key}, anySlice(values)...)...)
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// rawPubSub is one SUBSCRIBE connection.
type rawPubSub struct {
	c net.Conn
	r *bufio.Reader
}

type rawMessage struct{ Channel, Payload string }

// Subscribe opens a connection subscribed to channel; Receive reads the
// confirmation.
func (r *rawRedis) Subscribe(_ context.Context, channel string) *rawPubSub {
	c, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
	if err != nil {
		return &rawPubSub{}
	}
	fmt.Fprintf(c, "*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n", len(channel), channel)
	return &rawPubSub{c: c, r: bufio.NewReader(c)}
}

func (p *rawPubSub) Close() error {
	if p.c == nil {
		return nil
	}
	return p.c.Close()
}

// Receive reads one reply.
func (p *rawPubSub) Receive(ctx context.Context) (any, error) {
	if p.c == nil {
		return nil, errors.New("not connected")
	}
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(10 * time.Second)
	}
	_ = p.c.SetReadDeadline(d)
	return readRESP(p.r)
}

// ReceiveMessage reads replies up to the next message.
func (p *rawPubSub) ReceiveMessage(ctx context.Context) (*rawMessage, error) {
	for {
		v, err := p.Receive(ctx)
		if err != nil {
			return nil, err
		}
		if a, ok := v.([]any); ok && len(a) == 3 && a[0] == "message" {
			ch, _ := a[1].(string)
			pl, _ := a[2].(string)
			return &rawMessage{Channel: ch, Payload: pl}, nil
		}
	}
}

// readRESP reads one RESP2 value.
func readRESP(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty RESP line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, errors.New(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = readRESP(r); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	return nil, fmt.Errorf("unknown RESP type %q", line)
}
