package relock_test

// A Lock's beliefs never drift from what Redis holds: validity after each
// write, Close during a wait, and exactly one end event per lock. The
// model-based test in model_test.go checks the whole class with random
// sequences; these name each case the issue reported.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	redigolib "github.com/gomodule/redigo/redis"
	goredislib "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/adapters/redigo"
	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

// adapterConns returns a constructor of a new driver connection to s for
// each of the three adapters, each closed when the test ends.
func adapterConns(s *srv) map[string]func(t *testing.T) driver.Conn {
	return connsAs(s.addr, s.mini != nil, "")
}

// connsAs returns, for each adapter, a constructor of a connection to addr
// (a miniredis when mini), as the ACL user user (password "pw") unless
// user is "".
func connsAs(addr string, mini bool, user string) map[string]func(t *testing.T) driver.Conn {
	pass := ""
	if user != "" {
		pass = "pw"
	}
	return map[string]func(t *testing.T) driver.Conn{
		"goredis": func(t *testing.T) driver.Conn {
			rdb := goredislib.NewClient(&goredislib.Options{Addr: addr, Username: user, Password: pass, MaxRetries: -1})
			t.Cleanup(func() { _ = rdb.Close() })
			return goredis.New(rdb)
		},
		"redigo": func(t *testing.T) driver.Conn {
			opts := []redigolib.DialOption{}
			if user != "" {
				opts = append(opts, redigolib.DialUsername(user), redigolib.DialPassword(pass))
			}
			pool := &redigolib.Pool{MaxIdle: 8, DialContext: func(ctx context.Context) (redigolib.Conn, error) {
				return redigolib.DialContext(ctx, "tcp", addr, opts...)
			}}
			t.Cleanup(func() { _ = pool.Close() })
			return redigo.New(pool)
		},
		"rueidis": func(t *testing.T) driver.Conn {
			opt := rueidis.ClientOption{InitAddress: []string{addr}, Username: user, Password: pass, DisableCache: true}
			if mini {
				opt.ForceSingleClient = true
			}
			c, err := rueidis.NewClient(opt)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			return rueidisadapter.New(c)
		},
	}
}

// watchOnly hides a connection's scripting, so that relock takes the
// WATCH/MULTI/EXEC path.
type watchOnly struct {
	driver.Conn
	w driver.Watcher
}

func (c watchOnly) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	return c.w.Watch(ctx, keys, fn)
}

// scriptAndWatch runs f with a Client over s on the script path and on the
// WATCH path.
func scriptAndWatch(t *testing.T, s *srv, f func(t *testing.T, newClient func(opts ...relock.Option) *relock.Client)) {
	t.Run("scripts", func(t *testing.T) {
		f(t, func(opts ...relock.Option) *relock.Client { return s.client(t, opts...) })
	})
	t.Run("watch", func(t *testing.T) {
		f(t, func(opts ...relock.Option) *relock.Client {
			c := s.conn(t)
			return newClient(t, watchOnly{c, c}, opts...)
		})
	})
}

// pttl is the key's remaining TTL on s, as the server reports it.
func (s *srv) pttl(t *testing.T, key string) time.Duration {
	t.Helper()
	n, _ := s.do(t, "PTTL", key).(int64)
	return time.Duration(n) * time.Millisecond
}

// checkValidityWithinKey fails t when the lock believes itself valid past
// the moment Redis drops its key.
func checkValidityWithinKey(t *testing.T, s *srv, l *relock.Lock, what string) {
	t.Helper()
	believed := time.Until(l.ValidUntil()) // read before the server's answer
	left := s.pttl(t, l.Key())
	if l.Err() == nil && believed > left+time.Millisecond {
		t.Fatalf("%s: the lock believes it is valid for %v more, but its key expires in %v", what, believed, left)
	}
}

// A Refresh to a shorter TTL shortens the validity: the lock has ended by
// the time its key has expired and another Client can take it.
func TestRefreshShorterShortensValidity(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		scriptAndWatch(t, s, func(t *testing.T, newClient func(...relock.Option) *relock.Client) {
			a, b := newClient(), newClient()
			ctx := ctxT(t, 10*time.Second)
			k := s.key(t, "shorter")
			l, err := a.Obtain(ctx, k, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			before := time.Now()
			if err := l.Refresh(ctx, 300*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if left := time.Until(l.ValidUntil()); left > 300*time.Millisecond {
				t.Fatalf("after Refresh(300ms) the lock is valid for %v more", left)
			}
			if l.ValidUntil().Before(before.Add(250 * time.Millisecond)) {
				t.Fatalf("ValidUntil %v is before the refresh's send time + 300ms - drift", l.ValidUntil())
			}
			checkValidityWithinKey(t, s, l, "after Refresh(300ms)")
			// Another Client takes the lock once the key expires; at that
			// moment the first lock must already have ended.
			if s.mini != nil {
				<-l.Done()
				s.mini.FastForward(300 * time.Millisecond)
			}
			for {
				other, err := b.TryObtain(ctx, k, time.Second)
				if err == nil {
					if l.Err() == nil {
						t.Fatal("two holders: another Client obtained the lock while the first one's Err() is nil")
					}
					select {
					case <-l.Done():
					default:
						t.Fatal("two holders: another Client obtained the lock while the first one's Done() is open")
					}
					_ = other.Release(ctx)
					break
				}
				if !errors.Is(err, relock.ErrNotObtained) {
					t.Fatal(err)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if !errors.Is(l.Err(), relock.ErrLost) {
				t.Fatalf("Err = %v, want ErrLost", l.Err())
			}
		})
	})
}

// An auto-refreshed lock refreshed by hand to a longer TTL keeps that TTL:
// the automatic refreshes renew to it, and after every refresh the
// validity stays within the key's lifetime.
func TestAutoRefreshFollowsManualRefresh(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		rec := &recorder{}
		c := s.client(t, relock.WithObserver(rec))
		ctx := ctxT(t, 10*time.Second)
		k := s.key(t, "auto")
		l, err := c.Obtain(ctx, k, 300*time.Millisecond, relock.WithAutoRefresh())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = l.Release(context.Background()) }()
		if err := l.Refresh(ctx, 900*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		checkValidityWithinKey(t, s, l, "after a manual Refresh(900ms)")
		// Wait for an automatic refresh after the manual one.
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := 0
			for _, e := range rec.all() {
				if e.Kind == relock.EventRefreshed {
					n++
				}
			}
			if n >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no automatic refresh within 5s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, e := range rec.all() {
			if e.Kind == relock.EventRefreshed && e.TTL != 900*time.Millisecond {
				t.Fatalf("a refresh renewed to %v, want the manual Refresh's 900ms", e.TTL)
			}
		}
		checkValidityWithinKey(t, s, l, "after an automatic refresh")
		if l.Err() != nil {
			t.Fatalf("Err = %v while auto-refreshed", l.Err())
		}
	})
}

// lostReply is a memdriver connection whose refreshes take effect but
// whose replies are lost: the call fails as a timeout would.
type lostReply struct {
	*memdriver.Conn
	lose atomic.Bool
}

func (c *lostReply) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	err := c.Conn.Watch(ctx, keys, fn)
	if err == nil && c.lose.Load() {
		return fmt.Errorf("reply lost: %w", context.DeadlineExceeded)
	}
	return err
}

// A refresh whose outcome is unknown may have shortened the key: the
// validity becomes the earlier of the two; a longer one leaves it alone.
func TestRefreshWithUnknownOutcomeOnlyShortens(t *testing.T) {
	store := memdriver.New()
	conn := &lostReply{Conn: store.Conn()}
	c := newClient(t, conn)
	ctx := ctxT(t, 5*time.Second)
	l, err := c.Obtain(ctx, "k", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.lose.Store(true)
	was := l.ValidUntil()
	if err := l.Refresh(ctx, 10*time.Second); err == nil {
		t.Fatal("Refresh with its reply lost = nil, want an error")
	}
	if !l.ValidUntil().Equal(was) {
		t.Fatalf("a longer refresh of unknown outcome moved ValidUntil from %v to %v", was, l.ValidUntil())
	}
	before := time.Now()
	if err := l.Refresh(ctx, 200*time.Millisecond); err == nil {
		t.Fatal("Refresh with its reply lost = nil, want an error")
	}
	if left := l.ValidUntil().Sub(before); left > 200*time.Millisecond {
		t.Fatalf("a shorter refresh of unknown outcome left the lock valid for %v more", left)
	}
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the lock did not end when the shortened validity ran out")
	}
}

// TTL tells the lock what Redis holds: a key shortened from outside
// shortens the validity.
func TestTTLShrinksValidityToTheKey(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		c := s.client(t)
		ctx := ctxT(t, 5*time.Second)
		k := s.key(t, "pexpire")
		l, err := c.Obtain(ctx, k, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		s.do(t, "PEXPIRE", k, "200")
		d, err := l.TTL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d > 200*time.Millisecond {
			t.Fatalf("TTL = %v after PEXPIRE 200", d)
		}
		checkValidityWithinKey(t, s, l, "after TTL saw the key shortened")
	})
}

// Every lock ends with exactly one end event, whichever call notices the
// end first, and every later call agrees.
func TestEachLockEndsWithExactlyOneEvent(t *testing.T) {
	ctx := ctxT(t, 10*time.Second)
	noticers := map[string]func(l *relock.Lock) error{
		"Err":  func(l *relock.Lock) error { return l.Err() },
		"Done": func(l *relock.Lock) error { <-l.Done(); return nil },
		"Release": func(l *relock.Lock) error {
			return l.Release(ctx)
		},
		"Refresh": func(l *relock.Lock) error { return l.Refresh(ctx, time.Second) },
		"TTL": func(l *relock.Lock) error {
			_, err := l.TTL(ctx)
			return err
		},
	}
	eachServer(t, func(t *testing.T, s *srv) {
		for name, notice := range noticers {
			t.Run("lapsed/"+name, func(t *testing.T) {
				rec := &recorder{}
				c := s.client(t, relock.WithObserver(rec))
				l, err := c.Obtain(ctx, s.key(t, "once"), 30*time.Millisecond)
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Until(l.ValidUntil()) + 5*time.Millisecond)
				_ = notice(l)
				if n := rec.count(relock.EventLost); n != 1 {
					t.Fatalf("after %s noticed the lapse: %d lost events, want 1 (%v)", name, n, rec.kinds())
				}
				for other, again := range noticers {
					if err := again(l); other != "Done" && err == nil {
						t.Fatalf("%s after the lapse = nil, want an error", other)
					}
				}
				if lost, rel := rec.count(relock.EventLost), rec.count(relock.EventReleased); lost != 1 || rel != 0 {
					t.Fatalf("events %v: want exactly one lost and no released", rec.kinds())
				}
				if !errors.Is(l.Err(), relock.ErrLost) {
					t.Fatalf("Err = %v, want ErrLost", l.Err())
				}
			})
		}
		t.Run("released", func(t *testing.T) {
			rec := &recorder{}
			c := s.client(t, relock.WithObserver(rec))
			l, err := c.Obtain(ctx, s.key(t, "once"), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			for name, again := range noticers {
				err := again(l)
				switch name {
				case "Release", "Done":
					if err != nil {
						t.Fatalf("%s after Release = %v, want nil", name, err)
					}
				default:
					if !errors.Is(err, relock.ErrReleased) {
						t.Fatalf("%s after Release = %v, want ErrReleased", name, err)
					}
				}
			}
			if k := rec.kinds(); rec.count(relock.EventReleased) != 1 || rec.count(relock.EventLost) != 0 {
				t.Fatalf("events %v: want exactly one released and no lost", k)
			}
		})
	})
}

// Close ends a waiting Obtain at once with ErrClosed and takes its place
// out of the queue before the connection closes: the next waiter gets the
// lock from the holder's release, not after the TTL.
func TestCloseEndsWaitingObtainAndLeavesTheQueue(t *testing.T) {
	eachServer(t, func(t *testing.T, s *srv) {
		for name, newConn := range adapterConns(s) {
			t.Run(name, func(t *testing.T) {
				ctx := ctxT(t, 20*time.Second)
				k := s.key(t, "closewait")
				holder := newClient(t, newConn(t))
				hl, err := holder.Obtain(ctx, k, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				closing, err := relock.New(newConn(t))
				if err != nil {
					t.Fatal(err)
				}
				defer closing.Close()
				third := newClient(t, newConn(t))

				type result struct {
					l   *relock.Lock
					err error
					at  time.Time
				}
				waitQueued := func(n int) {
					t.Helper()
					deadline := time.Now().Add(5 * time.Second)
					for {
						info, err := holder.Inspect(ctx, k)
						if err != nil {
							t.Fatal(err)
						}
						if info.Waiters >= n {
							return
						}
						if time.Now().After(deadline) {
							t.Fatalf("%d waiters queued after 5s, want %d", info.Waiters, n)
						}
						time.Sleep(5 * time.Millisecond)
					}
				}
				closed := make(chan result, 1)
				go func() {
					l, err := closing.Obtain(ctx, k, 10*time.Second)
					closed <- result{l, err, time.Now()}
				}()
				waitQueued(1)
				got := make(chan result, 1)
				go func() {
					l, err := third.Obtain(ctx, k, 10*time.Second)
					got <- result{l, err, time.Now()}
				}()
				waitQueued(2)

				start := time.Now()
				if err := closing.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				r := <-closed
				t.Logf("%s: the waiting Obtain returned %v after Close began: %v", name, r.at.Sub(start), r.err)
				if !errors.Is(r.err, relock.ErrClosed) || r.l != nil {
					t.Fatalf("Obtain during Close = %v, %v; want ErrClosed", r.l, r.err)
				}
				if took := r.at.Sub(start); took > 100*time.Millisecond+callMargin {
					t.Fatalf("the waiting Obtain returned %v after Close began, want ≤ 100ms", took)
				}
				if info, err := holder.Inspect(ctx, k); err != nil || info.Waiters != 1 {
					t.Fatalf("after Close: %d waiters (%v), want only the third Client", info.Waiters, err)
				}

				released := time.Now()
				if err := hl.Release(ctx); err != nil {
					t.Fatal(err)
				}
				r = <-got
				if r.err != nil {
					t.Fatalf("the third Client's Obtain: %v", r.err)
				}
				t.Logf("%s: the third Client got the lock %v after the release", name, r.at.Sub(released))
				if took := r.at.Sub(released); took > time.Second {
					t.Fatalf("the third Client got the lock %v after the release, want it by hand-over", took)
				}
				_ = r.l.Release(ctx)
			})
		}
	})
}
