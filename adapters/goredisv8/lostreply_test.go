package goredisv8_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredisv8"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// TestRetriedSetNX: go-redis v8 sends a SET NX again after losing its
// reply (MaxRetries), and the second answers "not set" since the first
// went through. relock must still see the lock as obtained: the key holds
// its token.
func TestRetriedSetNX(t *testing.T) {
	addr := testredis.Addr(t)
	var sets atomic.Int32
	proxy := dropFirstSetReply(t, addr, &sets)
	rdb := client(t, proxy) // MaxRetries 3, the default
	locker, err := relock.New(goredisv8.New(rdb))
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := locker.TryObtain(ctx, "relock-goredisv8-test:retried:"+time.Now().Format(time.RFC3339Nano), time.Minute)
	if err != nil {
		t.Fatalf("TryObtain with the first SET's reply lost: %v", err)
	}
	if n := sets.Load(); n != 2 {
		t.Fatalf("the server got %d SET commands, want 2: go-redis did not retry", n)
	}
	if v, err := client(t, addr).Get(ctx, l.RedisKey()).Result(); err != nil || v != l.Token() {
		t.Fatalf("the key holds %q, %v; want the lock's token", v, err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// dropFirstSetReply listens on a loopback port and relays connections to
// addr, except that the first SET it sees goes to the server while its
// client's connection is closed, so that the reply is lost. It counts the
// SETs in sets.
func dropFirstSetReply(t *testing.T, addr string, sets *atomic.Int32) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var dropped atomic.Bool
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				_ = c.Close()
				continue
			}
			wg.Go(func() { _, _ = io.Copy(c, s); _ = c.Close() })
			wg.Go(func() {
				defer s.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if bytes.Contains(bytes.ToLower(buf[:n]), []byte("$3\r\nset\r\n")) {
						sets.Add(1)
						if !dropped.Swap(true) {
							_ = c.Close() // before the server can answer
							_, _ = s.Write(buf[:n])
							time.Sleep(50 * time.Millisecond)
							return
						}
					}
					if _, err := s.Write(buf[:n]); err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}
