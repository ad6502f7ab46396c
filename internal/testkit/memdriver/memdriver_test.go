package memdriver_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

var ctx = context.Background()

func TestConformance(t *testing.T) {
	s := memdriver.New()
	conformance.Run(t, conformance.Harness{
		NewConn:      func(*testing.T) driver.Conn { return s.Conn() },
		Advance:      func(_ *testing.T, d time.Duration) { s.Advance(d) },
		SetWrongType: func(_ *testing.T, key string) { s.SetHash(key) },
	})
}

func TestNotScripter(t *testing.T) {
	var c driver.Conn = memdriver.New().Conn()
	if _, ok := c.(driver.Scripter); ok {
		t.Fatal("Conn implements driver.Scripter; it has no Lua")
	}
	if _, ok := c.(driver.Watcher); !ok {
		t.Fatal("Conn does not implement driver.Watcher")
	}
}

func mustGet(t *testing.T, c driver.Conn, key string) (string, bool) {
	t.Helper()
	v, ok, err := c.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v, ok
}

func mustSetNX(t *testing.T, c driver.Conn, key, val string, ttl time.Duration) bool {
	t.Helper()
	ok, err := c.SetNX(ctx, key, val, ttl)
	if err != nil {
		t.Fatalf("SetNX(%q): %v", key, err)
	}
	return ok
}

func TestSetNXGet(t *testing.T) {
	s := memdriver.New()
	a, b := s.Conn(), s.Conn()
	if _, ok := mustGet(t, a, "k"); ok {
		t.Fatal("missing key reported present")
	}
	if !mustSetNX(t, a, "k", "v1", time.Minute) {
		t.Fatal("SetNX on a missing key did not set")
	}
	if mustSetNX(t, b, "k", "v2", time.Minute) {
		t.Fatal("SetNX on an existing key set it")
	}
	if v, ok := mustGet(t, b, "k"); !ok || v != "v1" {
		t.Fatalf("Get = %q, %v; want v1, true", v, ok)
	}
	if _, err := a.SetNX(ctx, "x", "v", 999*time.Microsecond); err == nil {
		t.Fatal("SetNX with a TTL under 1ms: no error")
	}
	if got := s.Commands(); got != 5 {
		t.Fatalf("Commands = %d, want 5", got)
	}
}

func TestExpiry(t *testing.T) {
	s := memdriver.New()
	c := s.Conn()
	mustSetNX(t, c, "k", "v", time.Second)
	s.Advance(999 * time.Millisecond)
	if _, ok := mustGet(t, c, "k"); !ok {
		t.Fatal("key gone before its deadline")
	}
	s.Advance(time.Millisecond)
	if _, ok := mustGet(t, c, "k"); ok {
		t.Fatal("key still there at its deadline")
	}
	mustSetNX(t, c, "gone", "v", time.Second)
	s.Advance(time.Second)
	// The expired key is replaced, not just reported as set: a bug once
	// wrote the new value into the dropped entry.
	if !mustSetNX(t, c, "gone", "v2", time.Second) {
		t.Fatal("SetNX after expiry did not set")
	}
	if v, ok := mustGet(t, c, "gone"); !ok || v != "v2" {
		t.Fatalf("Get after SetNX over an expired key = %q, %v; want v2, true", v, ok)
	}
	if r := execOne(t, c, "PTTL", "gone"); r != int64(1000) {
		t.Fatalf("PTTL = %#v, want 1000", r)
	}
}

func TestExpiryRealTime(t *testing.T) {
	s := memdriver.New()
	c := s.Conn()
	mustSetNX(t, c, "k", "v", 5*time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if _, ok := mustGet(t, c, "k"); ok {
		t.Fatal("key still there after its TTL passed in real time")
	}
}

func TestWrongType(t *testing.T) {
	s := memdriver.New()
	c := s.Conn()
	s.SetHash("h")
	if _, _, err := c.Get(ctx, "h"); !errors.Is(err, driver.ErrWrongType) {
		t.Fatalf("Get on a hash: err = %v, want ErrWrongType", err)
	}
	if mustSetNX(t, c, "h", "v", time.Second) {
		t.Fatal("SetNX on a hash set it")
	}
	err := c.Watch(ctx, []string{"h"}, func(tx driver.Tx) error {
		if _, _, err := tx.Get(ctx, "h"); !errors.Is(err, driver.ErrWrongType) {
			t.Errorf("Tx.Get on a hash: err = %v, want ErrWrongType", err)
		}
		r, err := tx.Exec(ctx, []string{"GET", "h"}, []string{"PTTL", "h"})
		if !errors.Is(err, driver.ErrWrongType) {
			t.Errorf("Exec GET on a hash: err = %v, want ErrWrongType", err)
		}
		if len(r) != 2 || r[1] != int64(-1) {
			t.Errorf("Exec replies = %#v, want [error, -1]", r)
		} else if e, ok := r[0].(error); !ok || !errors.Is(e, driver.ErrWrongType) {
			t.Errorf("Exec reply 0 = %#v, want a WRONGTYPE error", r[0])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A plain SET overwrites a key of any type, as in Redis.
	execOne(t, c, "SET", "h", "s")
	if v, ok := mustGet(t, c, "h"); !ok || v != "s" {
		t.Fatalf("Get after SET over a hash = %q, %v", v, ok)
	}
}

// do runs one command in a transaction that watches nothing.
func do(c driver.Conn, cmd ...string) (any, error) {
	var reply any
	err := c.(driver.Watcher).Watch(ctx, nil, func(tx driver.Tx) error {
		r, err := tx.Exec(ctx, cmd)
		if err != nil {
			return err
		}
		reply = r[0]
		return nil
	})
	return reply, err
}

// execOne is do, failing t on an error.
func execOne(t *testing.T, c driver.Conn, cmd ...string) any {
	t.Helper()
	reply, err := do(c, cmd...)
	if err != nil {
		t.Fatalf("%v: %v", cmd, err)
	}
	return reply
}

func TestExecReplies(t *testing.T) {
	s := memdriver.New()
	c := s.Conn()
	var got []any
	err := c.Watch(ctx, []string{"k"}, func(tx driver.Tx) error {
		var err error
		got, err = tx.Exec(ctx,
			[]string{"GET", "k"},
			[]string{"PTTL", "k"},
			[]string{"set", "k", "v", "NX", "PX", "1000"},
			[]string{"SET", "k", "w", "NX", "PX", "1000"},
			[]string{"GET", "k"},
			[]string{"PTTL", "k"},
			[]string{"PEXPIRE", "k", "5000"},
			[]string{"PTTL", "k"},
			[]string{"SET", "p", "x"},
			[]string{"PTTL", "p"},
			[]string{"EXISTS", "k", "p", "q"},
			[]string{"DEL", "k", "p", "q"},
			[]string{"PEXPIRE", "k", "10"},
			[]string{"GET", "k"},
		)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []any{nil, int64(-2), "OK", nil, "v", int64(1000), int64(1), int64(5000),
		"OK", int64(-1), int64(2), int64(2), int64(0), nil}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("replies\n got %#v\nwant %#v", got, want)
	}
	if n := s.Commands(); n != int64(len(want))+3 { // WATCH MULTI ... EXEC
		t.Fatalf("Commands = %d, want %d", n, len(want)+3)
	}

	got = nil
	err = c.Watch(ctx, nil, func(tx driver.Tx) error {
		var err error
		got, err = tx.Exec(ctx)
		return err
	})
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("empty Exec = %#v, %v; want [], nil", got, err)
	}
}

func TestPExpireZeroDeletes(t *testing.T) {
	s := memdriver.New()
	c := s.Conn()
	mustSetNX(t, c, "k", "v", time.Minute)
	if r := execOne(t, c, "PEXPIRE", "k", "0"); r != int64(1) {
		t.Fatalf("PEXPIRE k 0 = %#v, want 1", r)
	}
	if _, ok := mustGet(t, c, "k"); ok {
		t.Fatal("PEXPIRE 0 left the key")
	}
}

func TestExecQueueErrorAbortsAll(t *testing.T) {
	s := memdriver.New()
	c := s.Conn()
	mustSetNX(t, c, "k", "v", time.Minute)
	for _, bad := range [][]string{{"NOSUCH", "k"}, {"GET"}, {"GET", "k", "extra"}, {}} {
		err := c.Watch(ctx, nil, func(tx driver.Tx) error {
			_, err := tx.Exec(ctx, []string{"DEL", "k"}, bad)
			return err
		})
		if err == nil {
			t.Errorf("Exec with %q: no error", bad)
		}
		if errors.Is(err, driver.ErrTxAborted) {
			t.Errorf("Exec with %q: %v matches ErrTxAborted", bad, err)
		}
		if _, ok := mustGet(t, c, "k"); !ok {
			t.Fatalf("Exec with %q applied the DEL", bad)
		}
	}
	// A runtime error (syntax) does not stop the other commands.
	err := c.Watch(ctx, nil, func(tx driver.Tx) error {
		r, err := tx.Exec(ctx, []string{"SET", "k", "v", "BOGUS"}, []string{"DEL", "k"})
		if err == nil || len(r) != 2 || r[1] != int64(1) {
			t.Errorf("Exec = %#v, %v; want [error, 1], error", r, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// watchAbort runs WATCH k, GET k, then change, then MULTI DEL k EXEC, and
// returns Exec's error.
func watchAbort(t *testing.T, s *memdriver.Store, change func()) error {
	t.Helper()
	c := s.Conn()
	var execErr error
	err := c.Watch(ctx, []string{"k"}, func(tx driver.Tx) error {
		if _, _, err := tx.Get(ctx, "k"); err != nil {
			return err
		}
		change()
		_, execErr = tx.Exec(ctx, []string{"DEL", "k"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return execErr
}

func TestWatchAbort(t *testing.T) {
	cases := []struct {
		name    string
		present bool // k exists with a 1s TTL before WATCH
		change  func(s *memdriver.Store, c driver.Conn)
		abort   bool
	}{
		{"Unchanged", true, func(*memdriver.Store, driver.Conn) {}, false},
		{"UnchangedMissing", false, func(*memdriver.Store, driver.Conn) {}, false},
		{"Read", true, func(s *memdriver.Store, c driver.Conn) { c.Get(ctx, "k") }, false},
		{"FailedSetNX", true, func(s *memdriver.Store, c driver.Conn) { c.SetNX(ctx, "k", "x", time.Second) }, false},
		{"OtherKey", true, func(s *memdriver.Store, c driver.Conn) { c.SetNX(ctx, "other", "x", time.Second) }, false},
		{"Write", false, func(s *memdriver.Store, c driver.Conn) { c.SetNX(ctx, "k", "x", time.Second) }, true},
		{"WriteSameValue", true, func(s *memdriver.Store, c driver.Conn) {
			do(c, "SET", "k", "v")
		}, true},
		{"Delete", true, func(s *memdriver.Store, c driver.Conn) { do(c, "DEL", "k") }, true},
		{"DeleteRecreate", true, func(s *memdriver.Store, c driver.Conn) {
			do(c, "DEL", "k")
			c.SetNX(ctx, "k", "v", time.Second)
		}, true},
		{"CreateDelete", false, func(s *memdriver.Store, c driver.Conn) {
			c.SetNX(ctx, "k", "v", time.Second)
			do(c, "DEL", "k")
		}, true},
		{"PExpire", true, func(s *memdriver.Store, c driver.Conn) {
			do(c, "PEXPIRE", "k", "9000")
		}, true},
		{"Expiry", true, func(s *memdriver.Store, c driver.Conn) { s.Advance(time.Second) }, true},
		{"ExpiryObserved", true, func(s *memdriver.Store, c driver.Conn) {
			s.Advance(time.Second)
			c.Get(ctx, "k")
		}, true},
		{"Hash", true, func(s *memdriver.Store, c driver.Conn) { s.SetHash("k") }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := memdriver.New()
			other := s.Conn()
			if tc.present {
				mustSetNX(t, other, "k", "v", time.Second)
			}
			err := watchAbort(t, s, func() { tc.change(s, other) })
			if tc.abort && !errors.Is(err, driver.ErrTxAborted) {
				t.Fatalf("Exec err = %v, want ErrTxAborted", err)
			}
			if !tc.abort && err != nil {
				t.Fatalf("Exec err = %v, want nil", err)
			}
		})
	}
}

func TestWatchEndsAtExec(t *testing.T) {
	s := memdriver.New()
	c := s.Conn()
	err := c.Watch(ctx, []string{"k"}, func(tx driver.Tx) error {
		if _, err := tx.Exec(ctx, []string{"SET", "k", "a"}); err != nil {
			return err
		}
		// Changing k now does not abort: EXEC ended the watch.
		execOne(t, s.Conn(), "SET", "k", "b")
		_, err := tx.Exec(ctx, []string{"SET", "k", "c"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := mustGet(t, c, "k"); v != "c" {
		t.Fatalf("k = %q, want c", v)
	}
}

func TestWatchReturnsFnError(t *testing.T) {
	s := memdriver.New()
	boom := errors.New("boom")
	var saved driver.Tx
	err := s.Conn().Watch(ctx, []string{"k"}, func(tx driver.Tx) error {
		saved = tx
		return boom
	})
	if err != boom {
		t.Fatalf("Watch = %v, want fn's error", err)
	}
	if _, _, err := saved.Get(ctx, "k"); err == nil {
		t.Fatal("Tx.Get after fn returned: no error")
	}
	if _, err := saved.Exec(ctx); err == nil {
		t.Fatal("Tx.Exec after fn returned: no error")
	}
}

func TestContextCancelled(t *testing.T) {
	s := memdriver.New()
	c := s.Conn()
	mustSetNX(t, c, "k", "v", time.Minute)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	before := s.Commands()

	if ok, err := c.SetNX(cctx, "n", "v", time.Minute); ok || !errors.Is(err, context.Canceled) {
		t.Errorf("SetNX = %v, %v; want false, Canceled", ok, err)
	}
	if _, _, err := c.Get(cctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get err = %v, want Canceled", err)
	}
	called := false
	if err := c.Watch(cctx, []string{"k"}, func(driver.Tx) error { called = true; return nil }); !errors.Is(err, context.Canceled) || called {
		t.Errorf("Watch err = %v (fn called %v), want Canceled without a call", err, called)
	}
	err := c.Watch(ctx, []string{"k"}, func(tx driver.Tx) error {
		if _, _, err := tx.Get(cctx, "k"); !errors.Is(err, context.Canceled) {
			t.Errorf("Tx.Get err = %v, want Canceled", err)
		}
		if _, err := tx.Exec(cctx, []string{"DEL", "k"}); !errors.Is(err, context.Canceled) {
			t.Errorf("Tx.Exec err = %v, want Canceled", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mustGet(t, c, "n"); ok {
		t.Error("cancelled SetNX set the key")
	}
	if _, ok := mustGet(t, c, "k"); !ok {
		t.Error("cancelled Exec deleted the key")
	}
	// WATCH and UNWATCH reached the store, then the two GETs above.
	if n := s.Commands() - before; n != 4 {
		t.Errorf("Commands grew by %d, want 4", n)
	}
}

func TestClose(t *testing.T) {
	s := memdriver.New()
	a, b := s.Conn(), s.Conn()
	mustSetNX(t, a, "k", "v", time.Minute)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := a.SetNX(ctx, "x", "v", time.Minute); !errors.Is(err, memdriver.ErrClosed) {
		t.Errorf("SetNX after Close: err = %v", err)
	}
	if _, _, err := a.Get(ctx, "k"); !errors.Is(err, memdriver.ErrClosed) {
		t.Errorf("Get after Close: err = %v", err)
	}
	if err := a.Watch(ctx, nil, func(driver.Tx) error { return nil }); !errors.Is(err, memdriver.ErrClosed) {
		t.Errorf("Watch after Close: err = %v", err)
	}
	if v, ok := mustGet(t, b, "k"); !ok || v != "v" {
		t.Fatal("closing one Conn affected another")
	}
}

// TestConcurrentLocks has goroutines take and release a lock key the way
// relock's WATCH path does, and checks that no two hold it at once.
func TestConcurrentLocks(t *testing.T) {
	s := memdriver.New()
	const workers, rounds = 8, 200
	var (
		mu      sync.Mutex
		holders int
		wg      sync.WaitGroup
		total   int
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := s.Conn()
			defer c.Close()
			token := fmt.Sprint("w", w)
			for done := 0; done < rounds; {
				ok, err := c.SetNX(ctx, "lock", token, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					continue
				}
				mu.Lock()
				holders++
				if holders != 1 {
					t.Errorf("%d holders", holders)
				}
				total++
				mu.Unlock()
				if v, ok, err := c.Get(ctx, "lock"); err != nil || !ok || v != token {
					t.Errorf("lock holds %q %v %v, want %q", v, ok, err, token)
				}
				mu.Lock()
				holders--
				mu.Unlock()
				for {
					err := c.Watch(ctx, []string{"lock"}, func(tx driver.Tx) error {
						v, ok, err := tx.Get(ctx, "lock")
						if err != nil || !ok || v != token {
							return fmt.Errorf("lost the lock: %q %v %v", v, ok, err)
						}
						_, err = tx.Exec(ctx, []string{"DEL", "lock"})
						return err
					})
					if errors.Is(err, driver.ErrTxAborted) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					break
				}
				done++
			}
		}()
	}
	// Meanwhile, move the clock and touch other keys.
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		c := s.Conn()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.Advance(time.Microsecond)
			c.SetNX(ctx, fmt.Sprint("other", i%10), "v", time.Millisecond)
			s.SetHash("hash")
		}
	}()
	wg.Wait()
	close(stop)
	bg.Wait()
	if total != workers*rounds {
		t.Fatalf("acquired %d times, want %d", total, workers*rounds)
	}
}
