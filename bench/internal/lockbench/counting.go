package lockbench

import (
	"context"
	"sync/atomic"
	"time"

	redigo "github.com/gomodule/redigo/redis"
	goredislib "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
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
