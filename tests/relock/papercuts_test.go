package relock_test

// Tests of the papercuts of issue 18, item 4: Release past an ended
// context, DoOnce and WithMinHold, TryObtain and Attach options, Ping.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relock-go/relock"
	_ "github.com/relock-go/relock/adapters/goredis"
)

// Release with the context that obtained the lock, after that context's
// deadline passed or it was cancelled, still deletes the key.
func TestReleaseWithAnEndedContext(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		c := s.client(t)
		for _, how := range []string{"deadline", "cancelled"} {
			k := s.key(t, "release-ended")
			var ctx context.Context
			var cancel context.CancelFunc
			if how == "deadline" {
				ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
			} else {
				ctx, cancel = context.WithCancel(context.Background())
			}
			l, err := c.Obtain(ctx, k, 10*time.Second, relock.WithAutoRefresh())
			if err != nil {
				t.Fatal(err)
			}
			if how == "cancelled" {
				cancel()
			}
			<-ctx.Done()
			if err := l.Release(ctx); err != nil {
				t.Fatalf("%s: Release = %v, want nil", how, err)
			}
			if _, ok := s.get(t, k); ok {
				t.Fatalf("%s: the key is still there after Release", how)
			}
			if !errors.Is(l.Err(), relock.ErrReleased) {
				t.Fatalf("%s: Err = %v, want ErrReleased", how, l.Err())
			}
			cancel()
		}
	})
}

// TryObtain takes options: metadata and fencing on a try; a wait budget
// does not make it wait.
func TestTryObtainTakesOptions(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		c := s.client(t)
		k := s.key(t, "{try}")
		ctx := ctxT(t, 10*time.Second)
		l, err := c.TryObtain(ctx, k, 10*time.Second, relock.WithMetadata("host-a"), relock.WithFencing())
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release(ctx)
		if l.Fence() <= 0 {
			t.Errorf("Fence = %d, want > 0", l.Fence())
		}
		info, err := c.Inspect(ctx, k)
		if err != nil || info.Metadata != "host-a" {
			t.Fatalf("Inspect = %+v, %v; want metadata host-a", info, err)
		}
		var tries atomic.Int32
		obs := relock.ObserverFunc(func(e relock.Event) {
			if e.Kind == relock.EventNotObtained {
				tries.Store(int32(e.Tries))
			}
		})
		_, err = c.TryObtain(ctx, k, time.Second, relock.WithMaxWait(time.Minute), relock.WithRetry(relock.DefaultRetry()), relock.WithObserver(obs))
		if !errors.Is(err, relock.ErrNotObtained) {
			t.Fatalf("TryObtain of a held lock = %v, want ErrNotObtained", err)
		}
		if tries.Load() != 1 {
			t.Fatalf("TryObtain made %d tries, want 1", tries.Load())
		}
	})
}

// Attach takes WithAutoRefresh and WithObserver, and refuses the options
// that only mean something when obtaining.
func TestAttachTakesOptions(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		a, b := s.client(t), s.client(t)
		k := s.key(t, "attach-opts")
		ctx := ctxT(t, 20*time.Second)
		l, err := a.Obtain(ctx, k, 600*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range []relock.Option{relock.WithFencing(), relock.WithMetadata("m"), relock.WithRetry(relock.NoRetry()), relock.WithMaxWait(time.Second), relock.WithMinHold(time.Second), relock.WithKeyPrefix("p:")} {
			if _, err := b.Attach(ctx, k, l.Token(), o); !errors.Is(err, relock.ErrInvalidArgument) {
				t.Errorf("Attach with an obtain-only option = %v, want ErrInvalidArgument", err)
			}
		}
		var refreshed atomic.Int32
		obs := relock.ObserverFunc(func(e relock.Event) {
			if e.Kind == relock.EventRefreshed {
				refreshed.Add(1)
			}
		})
		al, err := b.Attach(ctx, k, l.Token(), relock.WithAutoRefresh(), relock.WithObserver(obs))
		if err != nil {
			t.Fatal(err)
		}
		// Wait on the server's side, well past the obtain's TTL.
		deadline := time.Now().Add(1500 * time.Millisecond)
		for time.Now().Before(deadline) {
			if s.mini != nil {
				s.mini.FastForward(100 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := al.Err(); err != nil {
			t.Fatalf("attached auto-refreshed lock: Err = %v", err)
		}
		if v, ok := s.get(t, k); !ok || v[:32] != l.Token() {
			t.Fatalf("key = %q, %v; want still held by the token", v, ok)
		}
		if refreshed.Load() == 0 {
			t.Fatal("no refresh event from the attached lock's observer")
		}
		if err := al.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// DoOnce with WithMinHold runs a job once across three replicas whose
// timers fire at slightly different times, each after the job, as quick
// as it is, has returned on the first; the others are told it was
// skipped. After the job, the key stays until the minimum hold ends.
func TestDoOnceRunsOnceAcrossReplicas(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		k := s.key(t, "cron")
		ctx := ctxT(t, 20*time.Second)
		var ran atomic.Int32
		results := make([]error, 3)
		job := func(context.Context) error { ran.Add(1); return nil }
		replicas := []*relock.Client{s.client(t), s.client(t), s.client(t)}
		// Replica i fires after replica i-1 has finished: the worst case
		// for a Do that would delete the key at once.
		for i, c := range replicas {
			results[i] = c.DoOnce(ctx, k, 5*time.Second, job, relock.WithMinHold(3*time.Second))
			time.Sleep(20 * time.Millisecond)
		}
		if ran.Load() != 1 || results[0] != nil {
			t.Fatalf("job ran %d times (first replica: %v), want once", ran.Load(), results[0])
		}
		for i, err := range results[1:] {
			if !errors.Is(err, relock.ErrNotObtained) || errors.Is(err, relock.ErrUnavailable) {
				t.Fatalf("replica %d: DoOnce = %v, want ErrNotObtained (skipped)", i+2, err)
			}
		}
		// The key outlives the job, expiring when the hold ends.
		d := s.do(t, "PTTL", k).(int64)
		if d <= 0 || d > 3000 {
			t.Fatalf("PTTL after the job = %d ms, want in (0, 3000]", d)
		}
		if s.mini != nil {
			s.mini.FastForward(3 * time.Second)
			if err := replicas[1].DoOnce(ctx, k, 5*time.Second, job); err != nil || ran.Load() != 2 {
				t.Fatalf("DoOnce after the hold = %v (runs: %d), want the job run again", err, ran.Load())
			}
		}

		// The same thing concurrently: three replicas at once.
		k2 := s.key(t, "cron2")
		ran.Store(0)
		var wg sync.WaitGroup
		var skipped atomic.Int32
		for i, c := range replicas {
			wg.Go(func() {
				time.Sleep(time.Duration(i) * 5 * time.Millisecond)
				err := c.DoOnce(ctx, k2, 5*time.Second, job, relock.WithMinHold(3*time.Second))
				switch {
				case errors.Is(err, relock.ErrNotObtained):
					skipped.Add(1)
				case err != nil:
					t.Errorf("DoOnce: %v", err)
				}
			})
		}
		wg.Wait()
		if ran.Load() != 1 || skipped.Load() != 2 {
			t.Fatalf("concurrently: ran %d, skipped %d; want 1 and 2", ran.Load(), skipped.Load())
		}
	})
}

// A Release at or after the end of the minimum hold deletes the key; one
// before sets its expiry to the hold's end; a negative hold is refused.
func TestMinHold(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		c := s.client(t)
		ctx := ctxT(t, 10*time.Second)
		if _, err := c.Obtain(ctx, s.key(t, "neg"), time.Second, relock.WithMinHold(-time.Second)); !errors.Is(err, relock.ErrInvalidArgument) {
			t.Fatalf("Obtain with a negative hold = %v, want ErrInvalidArgument", err)
		}
		k := s.key(t, "hold")
		l, err := c.Obtain(ctx, k, 10*time.Second, relock.WithMinHold(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := s.get(t, k); ok {
			t.Fatal("key still there after a Release past the hold")
		}
		l, err = c.Obtain(ctx, k, 10*time.Second, relock.WithMinHold(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil || !errors.Is(l.Err(), relock.ErrReleased) {
			t.Fatalf("Release within the hold = %v (Err %v), want nil and ErrReleased", err, l.Err())
		}
		if d := s.do(t, "PTTL", k).(int64); d < 10_000 || d > 60_000 {
			t.Fatalf("PTTL after a Release within a 1m hold of a 10s lock = %d ms, want in [10s, 1m]", d)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("a second Release = %v", err)
		}
	})
}

// DoOnce against an unreachable Redis is ErrUnavailable, not a skip.
func TestDoOnceUnavailableIsNotASkip(t *testing.T) {
	c, err := relock.Open("goredis", "redis://127.0.0.1:1?dial_timeout=200ms")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.DoOnce(ctxT(t, 5*time.Second), "job", time.Second, func(context.Context) error {
		t.Error("fn ran")
		return nil
	})
	if !errors.Is(err, relock.ErrUnavailable) || errors.Is(err, relock.ErrNotObtained) {
		t.Fatalf("DoOnce with Redis down = %v, want ErrUnavailable and not ErrNotObtained", err)
	}
}

// Ping: nil against a live server, ErrUnavailable against a refused port,
// the context's deadline against a server that never answers, ErrClosed
// after Close.
func TestPing(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		c, err := relock.Open("goredis", "redis://"+s.addr, relock.WithKeyPrefix("app:"))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Ping(ctxT(t, 5*time.Second)); err != nil {
			t.Fatalf("Ping = %v", err)
		}
		c.Close()
		if err := c.Ping(ctxT(t, 5*time.Second)); !errors.Is(err, relock.ErrClosed) {
			t.Fatalf("Ping after Close = %v, want ErrClosed", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		c, err := relock.Open("goredis", "redis://127.0.0.1:1?dial_timeout=200ms")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Ping(ctxT(t, 5*time.Second)); !errors.Is(err, relock.ErrUnavailable) {
			t.Fatalf("Ping of a refused port = %v, want ErrUnavailable", err)
		}
	})
	t.Run("silent", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			conns []net.Conn
		)
		defer func() {
			ln.Close()
			mu.Lock()
			for _, cn := range conns {
				cn.Close()
			}
			mu.Unlock()
			wg.Wait()
		}()
		wg.Go(func() {
			for {
				cn, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, cn)
				mu.Unlock()
				wg.Go(func() { // read and never answer
					buf := make([]byte, 512)
					for {
						if _, err := cn.Read(buf); err != nil {
							return
						}
					}
				})
			}
		})
		c, err := relock.Open("goredis", "redis://"+ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err = c.Ping(ctx)
		if !errors.Is(err, relock.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Ping of a silent server = %v, want ErrUnavailable and DeadlineExceeded", err)
		}
		c.Close()
	})
}

// Error texts say "relock:" once, and "not obtained" names the holder by
// its metadata and says how long its lock has left.
func TestErrorTexts(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		c := s.client(t)
		ctx := ctxT(t, 10*time.Second)
		k := s.key(t, "texts")
		l, err := c.Obtain(ctx, k, 30*time.Second, relock.WithMetadata("host=web-1 pid=7"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.TryObtain(ctx, k, time.Second)
		msg := fmt.Sprint(err)
		if !errors.Is(err, relock.ErrNotObtained) || strings.Count(msg, "relock:") != 1 ||
			!strings.HasPrefix(msg, fmt.Sprintf(`relock: obtain %q: lock not obtained (held by "host=web-1 pid=7", `, k)) || !strings.HasSuffix(msg, "s left)") {
			t.Errorf("TryObtain of a held lock: %q", msg)
		}
		// A lock found gone: lost, and not held.
		s.do(t, "DEL", k)
		err = l.Refresh(ctx, time.Minute)
		if msg := fmt.Sprint(err); !errors.Is(err, relock.ErrNotHeld) || strings.Count(msg, "relock:") != 1 {
			t.Errorf("Refresh of a lock whose key is gone: %q", msg)
		}
		if msg := fmt.Sprint(l.Err()); !errors.Is(l.Err(), relock.ErrLost) || !errors.Is(l.Err(), relock.ErrNotHeld) || strings.Count(msg, "relock:") != 1 {
			t.Errorf("Err of the lost lock: %q", msg)
		}
		err = l.Release(ctx)
		if msg := fmt.Sprint(err); !errors.Is(err, relock.ErrNotHeld) || !errors.Is(err, relock.ErrLost) || strings.Count(msg, "relock:") != 1 {
			t.Errorf("Release of the lost lock: %q", msg)
		}
	})
}

// A DSN that is not a URL gets an error that says what one looks like.
func TestOpenSaysWhatAURLLooksLike(t *testing.T) {
	_, err := relock.Open("goredis", "127.0.0.1:6600")
	if msg := fmt.Sprint(err); !errors.Is(err, relock.ErrInvalidArgument) || !strings.Contains(msg, "redis://") || strings.Count(msg, "relock:") != 1 {
		t.Fatalf("Open of a host:port = %q, want ErrInvalidArgument naming the URL forms", msg)
	}
}
