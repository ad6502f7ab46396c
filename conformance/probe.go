package conformance

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relock-go/relock/driver"
)

// errLostReply stands for a reply lost on the way back: the command ran on
// the server, the client saw a failure.
var errLostReply = errors.New("conformance: reply lost on the way back (simulated)")

// fault is what a probe does to the next write that may obtain a lock
// (SetNX, Eval or EvalSha).
type fault int

const (
	faultNone fault = iota
	// faultRetried runs the write twice and returns the second reply, as a
	// client does when it retries a command whose first reply was lost.
	faultRetried
	// faultLost runs the write and then reports errLostReply.
	faultLost
	// faultCancel runs the write, cancels the caller's context and reports
	// the context's error, as a client does when the context ends while the
	// reply is on its way.
	faultCancel
)

// probe wraps the driver under test: it counts calls and injects faults.
// It implements every capability, but the suite only ever hands relock a
// view of it that exposes the capabilities of one path (see view).
type probe struct {
	conn driver.Conn
	s    driver.Scripter
	w    driver.Watcher
	rw   driver.ReplicaWaiter
	sub  driver.Subscriber

	dropping atomic.Bool  // drop hand-over messages instead of passing them on
	subs     atomic.Int32 // subscriptions open

	mu        sync.Mutex
	calls     map[string]int
	next      fault
	cancel    context.CancelFunc
	delivered []string // payloads passed on to relock's onMessage
	// beforeExec runs once before the next Tx.Exec (see onNextExec).
	beforeExec func()
}

// heard reports whether a message whose payload starts with prefix was
// passed on to relock.
func (p *probe) heard(prefix string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.delivered {
		if strings.HasPrefix(m, prefix) {
			return true
		}
	}
	return false
}

func newProbe(conn driver.Conn) *probe {
	p := &probe{conn: conn, calls: map[string]int{}}
	p.s, _ = conn.(driver.Scripter)
	p.w, _ = conn.(driver.Watcher)
	p.rw, _ = conn.(driver.ReplicaWaiter)
	p.sub, _ = conn.(driver.Subscriber)
	return p
}

// arm makes the next obtaining write suffer f. cancel is used by faultCancel.
func (p *probe) arm(f fault, cancel context.CancelFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next, p.cancel = f, cancel
}

func (p *probe) take() (fault, context.CancelFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, c := p.next, p.cancel
	p.next, p.cancel = faultNone, nil
	return f, c
}

func (p *probe) count(name string) {
	p.mu.Lock()
	p.calls[name]++
	p.mu.Unlock()
}

// total returns how many calls of the given names the probe passed on.
func (p *probe) total(names ...string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, name := range names {
		n += p.calls[name]
	}
	return n
}

// allCalls is every method name the probe counts.
var allCalls = []string{"SetNX", "Get", "Eval", "EvalSha", "Watch", "EvalShaWait", "EvalWait", "Subscribe"}

// write runs op under the armed fault.
func write[T any](p *probe, ctx context.Context, op func(context.Context) (T, error)) (T, error) {
	f, cancel := p.take()
	r, err := op(ctx)
	if f == faultNone || err != nil {
		return r, err
	}
	return afterWrite(ctx, f, cancel, func() (T, error) { return op(ctx) })
}

// afterWrite applies fault f to a write that has just succeeded; again
// runs the same write once more.
func afterWrite[T any](ctx context.Context, f fault, cancel context.CancelFunc, again func() (T, error)) (T, error) {
	var zero T
	switch f {
	case faultRetried:
		return again()
	case faultLost:
		return zero, errLostReply
	default: // faultCancel
		cancel()
		return zero, ctx.Err()
	}
}

func (p *probe) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	p.count("SetNX")
	set, err := write(p, ctx, func(ctx context.Context) (bool, error) { return p.conn.SetNX(ctx, key, value, ttl) })
	if set {
		p.count("SetNX set")
	}
	return set, err
}

func (p *probe) Get(ctx context.Context, key string) (string, bool, error) {
	p.count("Get")
	return p.conn.Get(ctx, key)
}

func (p *probe) Close() error { return nil } // the suite closes the real conn itself

func (p *probe) Eval(ctx context.Context, script string, keys []string, args ...string) (any, error) {
	p.count("Eval")
	return write(p, ctx, func(ctx context.Context) (any, error) { return p.s.Eval(ctx, script, keys, args...) })
}

func (p *probe) EvalSha(ctx context.Context, sha1 string, keys []string, args ...string) (any, error) {
	p.count("EvalSha")
	p.count("EvalSha " + sha1)
	defer p.count("EvalSha returned")
	f, cancel := p.take()
	r, err := p.s.EvalSha(ctx, sha1, keys, args...)
	if f == faultNone || err != nil {
		if errors.Is(err, driver.ErrNoScript) {
			p.arm(f, cancel) // the fault waits for the Eval that follows
		}
		return r, err
	}
	return afterWrite(ctx, f, cancel, func() (any, error) { return p.s.EvalSha(ctx, sha1, keys, args...) })
}

func (p *probe) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	p.count("Watch")
	return p.w.Watch(ctx, keys, func(tx driver.Tx) error { return fn(probeTx{Tx: tx, p: p}) })
}

// onNextExec makes f run once, just before the next Tx.Exec relock sends
// through the probe: between the GET of a WATCH transaction and its EXEC.
func (p *probe) onNextExec(f func()) {
	p.mu.Lock()
	p.beforeExec = f
	p.mu.Unlock()
}

// probeTx runs the hook onNextExec set before an Exec.
type probeTx struct {
	driver.Tx
	p *probe
}

func (t probeTx) Exec(ctx context.Context, cmds ...[]string) ([]any, error) {
	t.p.mu.Lock()
	f := t.p.beforeExec
	t.p.beforeExec = nil
	t.p.mu.Unlock()
	if f != nil {
		f()
	}
	return t.Tx.Exec(ctx, cmds...)
}

func (p *probe) EvalShaWait(ctx context.Context, sha1 string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	p.count("EvalShaWait")
	return p.rw.EvalShaWait(ctx, sha1, keys, args, replicas, timeout)
}

func (p *probe) EvalWait(ctx context.Context, script string, keys, args []string, replicas int, timeout time.Duration) (any, int, error) {
	p.count("EvalWait")
	return p.rw.EvalWait(ctx, script, keys, args, replicas, timeout)
}

func (p *probe) Subscribe(ctx context.Context, onMessage func(channel, payload string)) (driver.Subscription, error) {
	p.count("Subscribe")
	s, err := p.sub.Subscribe(ctx, func(channel, payload string) {
		if !p.dropping.Load() {
			p.mu.Lock()
			p.delivered = append(p.delivered, payload)
			p.mu.Unlock()
			onMessage(channel, payload)
		}
	})
	if err != nil {
		return nil, err
	}
	p.subs.Add(1)
	return &probeSub{Subscription: s, p: p}, nil
}

type probeSub struct {
	driver.Subscription
	p      *probe
	closed atomic.Bool
}

func (s *probeSub) Close() error {
	if !s.closed.Swap(true) {
		s.p.subs.Add(-1)
	}
	return s.Subscription.Close()
}

// Views expose one path's capabilities of a probe to relock.
type (
	scriptView struct {
		driver.Conn
		driver.Scripter
	}
	scriptWaitView struct {
		driver.Conn
		driver.Scripter
		driver.ReplicaWaiter
	}
	scriptSubView struct {
		driver.Conn
		driver.Scripter
		driver.Subscriber
	}
	scriptWaitSubView struct {
		driver.Conn
		driver.Scripter
		driver.ReplicaWaiter
		driver.Subscriber
	}
	watchView struct {
		driver.Conn
		driver.Watcher
	}
)

// Path names, used as the last element of subtest names.
const (
	pathScript = "Script"
	pathWatch  = "Watch"
)

func (p *probe) view(path string) driver.Conn {
	if path == pathScript {
		switch {
		case p.rw != nil && p.sub != nil:
			return scriptWaitSubView{p, p, p, p}
		case p.rw != nil:
			return scriptWaitView{p, p, p}
		case p.sub != nil:
			return scriptSubView{p, p, p}
		}
		return scriptView{p, p}
	}
	return watchView{p, p}
}

// has reports whether the driver under test supports path.
func (p *probe) has(path string) bool {
	if path == pathScript {
		return p.s != nil
	}
	return p.w != nil
}
