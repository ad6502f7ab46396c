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

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock/adapters/goredis"
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
	m := miniredis.RunT(t)
	rdb := backend{addr: m.Addr(), mini: m}.client(t)
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

// TestSubscribeRemove covers Remove in -short mode: a removed channel gets
// nothing more, the others still do, and Remove of a channel never added
// is harmless.
func TestSubscribeRemove(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := backend{addr: m.Addr(), mini: m}.client(t)
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
	for m.Publish(removed, "late") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the server still has a subscriber of %q %v after Remove", removed, adaptertest.Wait)
		}
		time.Sleep(time.Millisecond)
	}
	m.Publish(kept, "still")
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
	if n := m.Publish(kept, "kept"); n != 1 {
		t.Fatalf("PUBLISH after Remove() reached %d subscribers, want 1", n)
	}
	r.Expect(t, kept, "kept")
}

func TestSubscribeReconnect(t *testing.T) {
	t.Run("miniredis", func(t *testing.T) {
		m := miniredis.RunT(t)
		rdb := backend{addr: m.Addr(), mini: m}.client(t)
		r := adaptertest.NewRecorder(t)
		s := adaptertest.Subscribe(t, goredis.New(rdb), r)
		ch := subChannel()
		adaptertest.MustAdd(t, s, ch)
		m.Close()
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
		adaptertest.WaitResubscribed(t, r, ch, func(p string) int64 { return int64(m.Publish(ch, p)) })
		other := subChannel()
		adaptertest.MustAdd(t, s, other)
		if n := m.Publish(other, "y"); n != 1 {
			t.Fatalf("PUBLISH after Add reached %d subscribers, want 1", n)
		}
		r.Expect(t, other, "y")
	})
	t.Run("redis", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts a redis-server and restarts it: skipped in -short mode")
		}
		srv := testredis.Start(t)
		rdb := backend{addr: srv.Addr()}.client(t)
		a := subAdapter(rdb)
		r := adaptertest.NewRecorder(t)
		s := adaptertest.Subscribe(t, a.Subscriber, r)
		ch := subChannel()
		adaptertest.MustAdd(t, s, ch)
		a.Publish(t, ch, "first")
		r.Expect(t, ch, "first")

		srv.Restart()
		adaptertest.WaitResubscribed(t, r, ch, adaptertest.ServerPublish(srv, ch))
		adaptertest.CheckKillSubscriber(t, srv, r, ch)
		adaptertest.CheckAddAcrossRestart(t, srv, s, r, ch, subChannel(), func(_ *testing.T, channel, payload string) int64 {
			return adaptertest.ServerPublish(srv, channel)(payload)
		})
	})
}

// TestSubscribeErrorReply checks that a SUBSCRIBE the server refuses
// (NOPERM) fails Add, and that a new connection does not try it again.
func TestSubscribeErrorReply(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a redis-server: skipped in -short mode")
	}
	srv := testredis.Start(t)
	adaptertest.CheckErrorReply(t, srv, func(user, password string) adaptertest.Adapter {
		return subAdapter(backend{addr: srv.Addr()}.client(t, func(o *redis.Options) {
			o.Username, o.Password = user, password
		}))
	})
}
