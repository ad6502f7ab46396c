package lockbench

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	goredisv8lib "github.com/go-redis/redis/v8"
	redigo "github.com/gomodule/redigo/redis"
	radixlib "github.com/mediocregopher/radix/v4"
	goredislib "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	valkeylib "github.com/valkey-io/valkey-go"

	radixadapter "github.com/relock-go/relock/adapters/radix"
)

// The wrappers below count the commands each library hands to its client
// ("sent"): one per command, pipelined ones included, retries inside the
// client not. The server's INFO commandstats counts more: it also counts
// every redis.call a Lua script makes.

// goredisCounter is a go-redis hook.
type goredisCounter struct{ n *atomic.Int64 }

func (h goredisCounter) DialHook(next goredislib.DialHook) goredislib.DialHook { return next }

func (h goredisCounter) ProcessHook(next goredislib.ProcessHook) goredislib.ProcessHook {
	return func(ctx context.Context, cmd goredislib.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h goredisCounter) ProcessPipelineHook(next goredislib.ProcessPipelineHook) goredislib.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredislib.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// rueidisCounter wraps a rueidis.Client.
type rueidisCounter struct {
	rueidis.Client
	n *atomic.Int64
}

func countRueidis(c rueidis.Client, n *atomic.Int64) rueidis.Client {
	if n == nil {
		return c
	}
	return rueidisCounter{Client: c, n: n}
}

func (r rueidisCounter) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	r.n.Add(1)
	return r.Client.Do(ctx, cmd)
}

func (r rueidisCounter) DoMulti(ctx context.Context, multi ...rueidis.Completed) []rueidis.RedisResult {
	r.n.Add(int64(len(multi)))
	return r.Client.DoMulti(ctx, multi...)
}

func (r rueidisCounter) DoCache(ctx context.Context, cmd rueidis.Cacheable, ttl time.Duration) rueidis.RedisResult {
	r.n.Add(1)
	return r.Client.DoCache(ctx, cmd, ttl)
}

func (r rueidisCounter) DoMultiCache(ctx context.Context, multi ...rueidis.CacheableTTL) []rueidis.RedisResult {
	r.n.Add(int64(len(multi)))
	return r.Client.DoMultiCache(ctx, multi...)
}

// redigoCounter wraps a redigo connection; the pool's connection calls
// through it, context and timeout variants included.
type redigoCounter struct {
	redigo.Conn
	n *atomic.Int64
}

func (r redigoCounter) count(cmd string) {
	if cmd != "" { // Do("") only flushes and reads pending replies
		r.n.Add(1)
	}
}

func (r redigoCounter) Do(cmd string, args ...any) (any, error) {
	r.count(cmd)
	return r.Conn.Do(cmd, args...)
}

func (r redigoCounter) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	r.count(cmd)
	return redigo.DoContext(r.Conn, ctx, cmd, args...)
}

func (r redigoCounter) DoWithTimeout(d time.Duration, cmd string, args ...any) (any, error) {
	r.count(cmd)
	return redigo.DoWithTimeout(r.Conn, d, cmd, args...)
}

func (r redigoCounter) Send(cmd string, args ...any) error {
	r.count(cmd)
	return r.Conn.Send(cmd, args...)
}

func (r redigoCounter) ReceiveContext(ctx context.Context) (any, error) {
	return redigo.ReceiveContext(r.Conn, ctx)
}

func (r redigoCounter) ReceiveWithTimeout(d time.Duration) (any, error) {
	return redigo.ReceiveWithTimeout(r.Conn, d)
}

// goredisv8Counter is a go-redis v8 hook.
type goredisv8Counter struct{ n *atomic.Int64 }

func (h goredisv8Counter) BeforeProcess(ctx context.Context, _ goredisv8lib.Cmder) (context.Context, error) {
	h.n.Add(1)
	return ctx, nil
}

func (goredisv8Counter) AfterProcess(context.Context, goredisv8lib.Cmder) error { return nil }

func (h goredisv8Counter) BeforeProcessPipeline(ctx context.Context, cmds []goredisv8lib.Cmder) (context.Context, error) {
	h.n.Add(int64(len(cmds)))
	return ctx, nil
}

func (goredisv8Counter) AfterProcessPipeline(context.Context, []goredisv8lib.Cmder) error { return nil }

// valkeyCounter wraps a valkey.Client.
type valkeyCounter struct {
	valkeylib.Client
	n *atomic.Int64
}

func countValkey(c valkeylib.Client, n *atomic.Int64) valkeylib.Client {
	if n == nil {
		return c
	}
	return valkeyCounter{Client: c, n: n}
}

func (v valkeyCounter) Do(ctx context.Context, cmd valkeylib.Completed) valkeylib.ValkeyResult {
	v.n.Add(1)
	return v.Client.Do(ctx, cmd)
}

func (v valkeyCounter) DoMulti(ctx context.Context, multi ...valkeylib.Completed) []valkeylib.ValkeyResult {
	v.n.Add(int64(len(multi)))
	return v.Client.DoMulti(ctx, multi...)
}

// radixCounter counts the actions handed to a radix pool: one per
// command, a pipeline counting as one. It keeps the pool's Addr, which the
// adapter's subscriptions dial.
type radixCounter struct {
	c radixlib.Client
	n *atomic.Int64
}

func countRadix(c radixlib.Client, n *atomic.Int64) radixadapter.Client {
	if n == nil {
		return c
	}
	return radixCounter{c: c, n: n}
}

func (r radixCounter) Addr() net.Addr { return r.c.Addr() }

func (r radixCounter) Do(ctx context.Context, a radixlib.Action) error {
	r.n.Add(1)
	return r.c.Do(ctx, a)
}
