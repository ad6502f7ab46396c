package chaos_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relock-go/relock/tests/chaos"
)

// echoServer echoes lines until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(c, c) })
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

func TestProxy(t *testing.T) {
	p, err := chaos.NewProxy(echoServer(t), 50*time.Millisecond, 60*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for i := range 3 {
		start := time.Now()
		if _, err := c.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil || line != "ping\n" {
			t.Fatalf("echo %d: %q, %v", i, line, err)
		}
		// Both directions add 50–60 ms; allow for a loaded machine above.
		if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
			t.Errorf("round trip %d took %v, want about 100–120 ms", i, d)
		}
	}
	if n := p.Reset(0); n != 1 {
		t.Fatalf("Reset cut %d connections, want 1", n)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = r.ReadString('\n')
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read after Reset: %v, want ECONNRESET", err)
	}
	if acc, resets := p.Stats(); acc != 1 || resets != 1 {
		t.Errorf("Stats = %d accepted, %d resets; want 1, 1", acc, resets)
	}
	// A new connection works; Close cuts it and waits for every pump.
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Write([]byte("x\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(c2).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("the proxy still accepts after Close")
	}
}

func TestNewProxyRejectsBadLatency(t *testing.T) {
	if _, err := chaos.NewProxy("127.0.0.1:1", 2*time.Second, time.Second); err == nil {
		t.Fatal("NewProxy accepted a latency range whose minimum exceeds its maximum")
	}
}

func TestProxyPartition(t *testing.T) {
	p, err := chaos.NewProxy(echoServer(t), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	echo := func(within time.Duration) error {
		_ = c.SetReadDeadline(time.Now().Add(within))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return err
		}
		_, err := r.ReadString('\n')
		return err
	}
	if err := echo(2 * time.Second); err != nil {
		t.Fatalf("before the partition: %v", err)
	}
	p.Partition()
	if err := echo(200 * time.Millisecond); err == nil {
		t.Fatal("an echo got through the partition")
	}
	p.Heal()
	// The ping sent during the partition arrives now, then this one.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("after Heal: %q, %v", line, err)
	}
	if err := echo(2 * time.Second); err != nil {
		t.Fatalf("after Heal: %v", err)
	}
	// Close ends a partitioned proxy too.
	p.Partition()
	if _, err := c.Write([]byte("x\n")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
