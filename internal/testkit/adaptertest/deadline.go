package adaptertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// Bounds of the deadline checks. A call given a context whose deadline is
// CallDeadline away must return within CallLimit of its start: the margin
// (1.2 s) is far above what a call needs, so that the check never flakes on
// a loaded machine, and far below what a client's own timeouts give
// (go-redis: 3 s per read, retried; redigo: none, it waits forever).
const (
	CallDeadline = 300 * time.Millisecond
	CallLimit    = 1500 * time.Millisecond
)

// SilentServer listens on a free loopback port, accepts every connection,
// reads and drops what it receives and never answers: a server that hangs
// with its sockets open. It returns the address. When t ends the listener
// and every accepted connection are closed, and its goroutines are gone.
func SilentServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("SilentServer: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(io.Discard, c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// Freeze stops srv's process with SIGSTOP: its connections stay open and
// the kernel still accepts new ones, but nothing is read or answered. It
// returns a function that resumes the process (SIGCONT); the same is
// registered as a clean-up of t, which runs before the clean-up that stops
// srv when Freeze is called after testredis.Start.
func Freeze(t testing.TB, srv *testredis.Server) (thaw func()) {
	t.Helper()
	pid := serverPID(t, srv)
	if err := stopProcess(pid); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	var once sync.Once
	thaw = func() { once.Do(func() { _ = continueProcess(pid) }) }
	t.Cleanup(thaw)
	return thaw
}

// serverPID asks srv for its process id (INFO server).
func serverPID(t testing.TB, srv *testredis.Server) int {
	t.Helper()
	v, err := srv.Do("INFO", "server")
	if err != nil {
		t.Fatalf("INFO server: %v", err)
	}
	text, _ := v.(string)
	for line := range strings.Lines(text) {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(s)
			if err == nil && pid > 0 {
				return pid
			}
		}
	}
	t.Fatalf("INFO server gives no process_id")
	return 0
}

// DeadlineCall is one call under [CheckDeadlines]. Do must fail, since the
// server does not answer; it gets a context with a deadline.
type DeadlineCall struct {
	Name string
	Do   func(ctx context.Context) error
}

// Overruns summarises how long after their deadline the calls returned.
type Overruns struct {
	Min, Median, Max time.Duration
}

func (o Overruns) String() string {
	return fmt.Sprintf("overrun min %v median %v max %v",
		o.Min.Round(time.Millisecond), o.Median.Round(time.Millisecond), o.Max.Round(time.Millisecond))
}

// CheckDeadlines runs every call n times, the n runs of one call
// concurrently, each with a context whose deadline is deadline away. It
// fails t when a run returns nil, or returns later than limit after its
// start. It logs, per call, the distribution of the overrun: the time from
// the deadline to the return (negative when a call failed before its
// deadline).
func CheckDeadlines(t *testing.T, deadline, limit time.Duration, n int, calls ...DeadlineCall) map[string]Overruns {
	t.Helper()
	out := map[string]Overruns{}
	for _, call := range calls {
		overruns := make([]time.Duration, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				defer cancel()
				start := time.Now()
				errs[i] = call.Do(ctx)
				took := time.Since(start)
				overruns[i] = took - deadline
				if took > limit {
					errs[i] = fmt.Errorf("returned after %v, above the %v limit (deadline %v): %v", took, limit, deadline, errs[i])
				} else if errs[i] == nil {
					errs[i] = errors.New("succeeded against a server that does not answer")
				} else {
					errs[i] = nil
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Errorf("%s: %v", call.Name, err)
				break
			}
		}
		slices.Sort(overruns)
		o := Overruns{Min: overruns[0], Median: overruns[len(overruns)/2], Max: overruns[len(overruns)-1]}
		out[call.Name] = o
		t.Logf("%s: deadline %v, %d calls: %v", call.Name, deadline, n, o)
	}
	return out
}

// DriverCalls returns the calls of conn that [CheckDeadlines] runs, one
// per method that sends something: SetNX, Get, Eval, EvalSha, and, when
// conn implements them, EvalShaWait, Watch (WATCH, then GET and
// MULTI/DEL/EXEC on the pinned connection), Subscribe followed by Add,
// and Subscribe followed by Remove and Add.
// The subscriptions opened meanwhile are closed by closeSubs, which fails
// t when closing them all takes longer than closeLimit (0: no limit, the
// time is logged); call it before closing conn.
func DriverCalls(t *testing.T, conn driver.Conn, key string, closeLimit time.Duration) (calls []DeadlineCall, closeSubs func()) {
	const sha = "ffffffffffffffffffffffffffffffffffffffff"
	keys := []string{key}
	calls = []DeadlineCall{
		{"SetNX", func(ctx context.Context) error {
			_, err := conn.SetNX(ctx, key, "v", time.Minute)
			return err
		}},
		{"Get", func(ctx context.Context) error {
			_, _, err := conn.Get(ctx, key)
			return err
		}},
	}
	if s, ok := conn.(driver.Scripter); ok {
		calls = append(calls,
			DeadlineCall{"Eval", func(ctx context.Context) error {
				_, err := s.Eval(ctx, "return redis.call('GET', KEYS[1])", keys)
				return err
			}},
			DeadlineCall{"EvalSha", func(ctx context.Context) error {
				_, err := s.EvalSha(ctx, sha, keys)
				return err
			}})
	}
	if w, ok := conn.(driver.ReplicaWaiter); ok {
		calls = append(calls, DeadlineCall{"EvalShaWait", func(ctx context.Context) error {
			_, _, err := w.EvalShaWait(ctx, sha, keys, nil, 1, 100*time.Millisecond)
			return err
		}})
	}
	if w, ok := conn.(driver.Watcher); ok {
		calls = append(calls, DeadlineCall{"Watch", func(ctx context.Context) error {
			return w.Watch(ctx, keys, func(tx driver.Tx) error {
				if _, _, err := tx.Get(ctx, key); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, []string{"DEL", key})
				return err
			})
		}})
	}
	var (
		mu   sync.Mutex
		subs []driver.Subscription
	)
	if sub, ok := conn.(driver.Subscriber); ok {
		calls = append(calls, DeadlineCall{"Subscribe+Add", func(ctx context.Context) error {
			s, err := sub.Subscribe(ctx, func(string, string) {})
			if err != nil {
				return err
			}
			mu.Lock()
			subs = append(subs, s)
			mu.Unlock()
			return s.Add(ctx, Channel("deadline"))
		}}, DeadlineCall{"Subscribe+Remove+Add", func(ctx context.Context) error {
			s, err := sub.Subscribe(ctx, func(string, string) {})
			if err != nil {
				return err
			}
			mu.Lock()
			subs = append(subs, s)
			mu.Unlock()
			ch := Channel("deadline")
			if err := s.Remove(ctx, ch); err != nil {
				return err
			}
			return s.Add(ctx, ch)
		}})
	}
	closeSubs = func() {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		var wg sync.WaitGroup
		start := time.Now()
		for _, s := range subs {
			wg.Go(func() { _ = s.Close() })
		}
		wg.Wait()
		d := time.Since(start)
		if closeLimit > 0 && d > closeLimit {
			t.Errorf("closing %d subscriptions took %v, above %v", len(subs), d, closeLimit)
		}
		t.Logf("closing %d subscriptions took %v", len(subs), d.Round(time.Millisecond))
		subs = nil
	}
	return calls, closeSubs
}
