package goredis_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// The subscription tests that all adapters share are in
// internal/testkit/adaptertest; this file runs them on go-redis clients and
// adds the tests of go-redis's own ways.

// subChannel returns a channel name no other test uses.
func subChannel() string { return adaptertest.Channel("goredis") }

// subAdapter returns the shared tests' view of a Conn on rdb, which
// publishes through rdb's pool (not through the subscription's connection).
func subAdapter(rdb *redis.Client) adaptertest.Adapter {
	return adaptertest.Adapter{
		Name:       "goredis",
		Subscriber: goredis.New(rdb),
		Publish: func(t *testing.T, channel, payload string) int64 {
			return subPublish(t, rdb, channel, payload)
		},
	}
}

// subPublish publishes payload on channel through rdb and returns the
// number of receivers.
func subPublish(t *testing.T, rdb *redis.Client, channel, payload string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adaptertest.Wait)
	defer cancel()
	n, err := rdb.Publish(ctx, channel, payload).Result()
	if err != nil {
		t.Fatalf("PUBLISH %s: %v", channel, err)
	}
	return n
}

func TestSubscribe(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		rdb := b.client(t)
		// Remove returns once UNSUBSCRIBE is written, not once applied.
		adaptertest.CheckSubscribe(t, subAdapter(rdb), adaptertest.SubscribeOptions{
			Unsubscribed: func(t *testing.T) {
				if err := rdb.Ping(context.Background()).Err(); err != nil {
					t.Fatalf("PING on the client after Close: %v", err)
				}
			},
		})
	})
}

// TestSubscribeOrder checks that messages arrive in the order published,
// across channels.
func TestSubscribeOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		rdb := b.client(t)
		adaptertest.CheckOrder(t, subAdapter(rdb), func(t *testing.T, msgs []adaptertest.Message) {
			// One connection (a pipeline), so the server runs them in order.
			_, err := rdb.Pipelined(context.Background(), func(p redis.Pipeliner) error {
				for _, m := range msgs {
					p.Publish(context.Background(), m.Channel, m.Payload)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	})
}

// TestSubscribeConcurrent runs Adds, Removes and messages from many
// goroutines at once, for the race detector.
func TestSubscribeConcurrent(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		adaptertest.CheckConcurrent(t, subAdapter(b.client(t)))
	})
}

func TestSubscribeContext(t *testing.T) {
	rdb := backend{addr: testredis.Addr(t)}.client(t)
	adaptertest.CheckCancelled(t, subAdapter(rdb), adaptertest.NewRecorder(t))
}

// TestSubscribeRefused covers refuse in -short mode, without Redis: a
// server that refuses every SUBSCRIBE with an error reply (as Redis does
// with NOPERM) must fail the Add waiting for its confirmation with that
// error, rather than leave it waiting, and the Add after it too.
func TestSubscribeRefused(t *testing.T) {
	addr := refusingServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
	defer rdb.Close()
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, goredis.New(rdb), r)
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), adaptertest.Wait)
		err := s.Add(ctx, subChannel())
		cancel()
		var rerr redis.Error
		if !errors.As(err, &rerr) || !strings.Contains(err.Error(), "NOPERM") {
			t.Fatalf("Add refused by the server: %v; want its NOPERM error reply", err)
		}
	}
}

// refusingServer listens on a loopback port and answers every command with
// +OK, except SUBSCRIBE, which gets -NOPERM, and HELLO, which it does not
// know. It stops when t ends.
func refusingServer(t *testing.T) string {
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
			wg.Go(func() {
				rd := bufio.NewReader(c)
				for {
					cmd, err := readCommand(rd)
					if err != nil {
						return
					}
					reply := "+OK\r\n"
					switch {
					case strings.EqualFold(cmd, "hello"): // as Redis 5 answers: go-redis goes on in RESP2
						reply = "-ERR unknown command 'HELLO'\r\n"
					case strings.EqualFold(cmd, "subscribe"):
						reply = "-NOPERM this user has no permissions to access one of the channels\r\n"
					}
					if _, err := c.Write([]byte(reply)); err != nil {
						return
					}
				}
			})
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

// readCommand reads one RESP command (an array of bulk strings) and
// returns its name.
func readCommand(rd *bufio.Reader) (string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil {
		return "", err
	}
	var name string
	for i := range n {
		if _, err := rd.ReadString('\n'); err != nil { // $len
			return "", err
		}
		arg, err := rd.ReadString('\n')
		if err != nil {
			return "", err
		}
		if i == 0 {
			name = strings.TrimSpace(arg)
		}
	}
	return name, nil
}

// TestSubscribeRemove: a removed channel gets nothing more, the others
// still do, and Remove of a channel never added is harmless.
func TestSubscribeRemove(t *testing.T) {
	rdb := backend{addr: testredis.Addr(t)}.client(t)
	publish := func(channel, payload string) int64 { return subPublish(t, rdb, channel, payload) }
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, goredis.New(rdb), r)
	ctx, cancel := context.WithTimeout(context.Background(), adaptertest.Wait)
	defer cancel()
	kept, removed := subChannel(), subChannel()
	adaptertest.MustAdd(t, s, kept, removed)
	if err := s.Remove(ctx, removed, subChannel()); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	deadline := time.Now().Add(adaptertest.Wait)
	for publish(removed, "late") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the server still has a subscriber of %q %v after Remove", removed, adaptertest.Wait)
		}
		time.Sleep(time.Millisecond)
	}
	publish(kept, "still")
	for {
		select {
		case <-time.After(adaptertest.Wait):
			t.Fatal("no message on the kept channel")
		default:
		}
		// Messages published on removed before the server applied
		// Remove may come first.
		got := adaptertest.NextMessage(t, r)
		if got.Channel == removed && got.Payload == "late" {
			continue
		}
		if got != (adaptertest.Message{Channel: kept, Payload: "still"}) {
			t.Fatalf("after Remove: got %q on %q", got.Payload, got.Channel)
		}
		break
	}

	// Remove of no channel removes nothing (go-redis's Unsubscribe of
	// none would unsubscribe from all).
	if err := s.Remove(ctx); err != nil {
		t.Fatalf("Remove(): %v", err)
	}
	if n := publish(kept, "kept"); n != 1 {
		t.Fatalf("PUBLISH after Remove() reached %d subscribers, want 1", n)
	}
	r.Expect(t, kept, "kept")
}

// TestSubscribeDoneOnKill: the subscription is one connection. When the
// server drops it (CLIENT KILL TYPE pubsub), Done closes and Add fails; the
// subscription does not reconnect (relock's notifier opens a new one).
func TestSubscribeDoneOnKill(t *testing.T) {
	srv := testredis.Start(t)
	rdb := backend{addr: srv.Addr()}.client(t)
	a := subAdapter(rdb)
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, a.Subscriber, r)
	ch := subChannel()
	adaptertest.MustAdd(t, s, ch)
	a.Publish(t, ch, "first")
	r.Expect(t, ch, "first")
	select {
	case <-s.Done():
		t.Fatal("Done closed before the connection broke")
	default:
	}

	if n, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil || n.(int64) != 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub = %v, %v; want 1", n, err)
	}
	select {
	case <-s.Done():
	case <-time.After(adaptertest.Wait):
		t.Fatalf("Done still open %v after CLIENT KILL", adaptertest.Wait)
	}
	ctx, cancel := context.WithTimeout(context.Background(), adaptertest.Wait)
	defer cancel()
	if err := s.Add(ctx, subChannel()); err == nil {
		t.Fatal("Add after Done: no error")
	}
	// No connection was made again: nobody receives.
	time.Sleep(100 * time.Millisecond)
	if n := a.Publish(t, ch, "after"); n != 0 {
		t.Fatalf("PUBLISH after the kill reached %d subscribers, want 0 (the subscription reconnected)", n)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after Done: %v", err)
	}
	r.Quiet(t, 50*time.Millisecond)
}

// TestSubscribeErrorReply checks that a SUBSCRIBE the server refuses
// (NOPERM) fails Add, and leaves the subscription usable.
func TestSubscribeErrorReply(t *testing.T) {
	srv := testredis.Start(t)
	if _, err := srv.Do("ACL", "SETUSER", "limited", "on", ">pw", "~*", "resetchannels", "&allowed:*", "+@all"); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	a := subAdapter(backend{addr: srv.Addr()}.client(t, func(o *redis.Options) { o.Username, o.Password = "limited", "pw" }))
	r := adaptertest.NewRecorder(t)
	s := adaptertest.Subscribe(t, a.Subscriber, r)
	ctx, cancel := context.WithTimeout(context.Background(), adaptertest.Wait)
	defer cancel()
	err := s.Add(ctx, "denied:x")
	if !errors.Is(err, driver.ErrNoPermission) || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Add of a denied channel: %v; want a NOPERM error matching driver.ErrNoPermission", err)
	}
	adaptertest.MustAdd(t, s, "allowed:x")
	a.Publish(t, "allowed:x", "ok")
	r.Expect(t, "allowed:x", "ok")
}

// TestSubscribeRing: a ring has no one node for every channel; Subscribe
// says so, without sending anything.
func TestSubscribeRing(t *testing.T) {
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	if s, err := goredis.New(ring).Subscribe(context.Background(), func(string, string) {}); !errors.Is(err, errors.ErrUnsupported) {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("Subscribe through a ring: %v; want errors.ErrUnsupported", err)
	}
}
