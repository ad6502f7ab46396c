package relock_test

// Leader election (issue 20) on real Redis, through every adapter: hand-overs
// between campaigners seen by Observe through pub/sub alone, a leader cut
// off from Redis whose term ends before anyone else is elected, the WATCH
// path, a key prefix and a Redis Cluster.

import (
	"context"
	"errors"
	"testing"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/internal/testkit/testredis"
	"github.com/relock-go/relock/tests/chaos"
)

// electClient returns a Client of adapter over a new client of addr, with
// opts; both close when the test ends.
func electClient(t *testing.T, adapter, addr string, opts ...relock.Option) *relock.Client {
	t.Helper()
	conn, closeConn, err := chaos.NewConn(adapter, addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := relock.New(conn, opts...)
	if err != nil {
		closeConn()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		closeConn()
	})
	return c
}

type campaignResult struct {
	t   *relock.Term
	err error
	at  time.Time // when Campaign returned
}

func campaignAsync(ctx context.Context, e *relock.Election, value string, ttl time.Duration) <-chan campaignResult {
	ch := make(chan campaignResult, 1)
	go func() {
		t, err := e.Campaign(ctx, value, ttl)
		ch <- campaignResult{t, err, time.Now()}
	}()
	return ch
}

func elected(t *testing.T, ch <-chan campaignResult, within time.Duration) campaignResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r
	case <-time.After(within):
		t.Fatalf("not elected within %v", within)
	}
	return campaignResult{}
}

func termEnded(term *relock.Term) bool {
	select {
	case <-term.Done():
		return true
	default:
		return false
	}
}

// seen is a leader Observe sent, and when it was received.
type seen struct {
	relock.Leader
	at time.Time
}

// waitLeader reads obs until a leader whose Token is token ("": nobody),
// within d, and returns the values read, that one last.
func waitLeader(t *testing.T, obs <-chan relock.Leader, token string, d time.Duration) []seen {
	t.Helper()
	var got []seen
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-obs:
			if !ok {
				t.Fatalf("Observe's channel closed; read %+v", got)
			}
			got = append(got, seen{l, time.Now()})
			if l.Token == token {
				return got
			}
		case <-timeout:
			t.Fatalf("Observe did not send the leader %q within %v; read %+v", token, d, got)
		}
	}
}

// handOverRound runs one succession on name: a leads, b waits in the
// queue, a resigns and b is elected; an observer on o whose only wake-ups
// are pub/sub (its interval is an hour, and a's key is 30 s from expiring)
// sees a, then b. Then b resigns with nobody waiting, which the observer's
// polls after the change find.
func handOverRound(t *testing.T, a, b, o *relock.Client, name string, pubsub bool) {
	ctx := ctxT(t, 60*time.Second)
	const ttl = 30 * time.Second
	interval := time.Hour
	if !pubsub {
		interval = 0 // the default: polls
	}
	first, err := a.Election(name).Campaign(ctx, "a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	obs := o.Election(name, relock.WithObserveInterval(interval)).Observe(ctx)
	waitLeader(t, obs, first.Token(), 10*time.Second)
	next := campaignAsync(ctx, b.Election(name), "b", ttl)
	if pubsub {
		waitWaiters(t, o, name, 1)
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case r := <-next:
		t.Fatalf("b elected while a leads: %v, %v", r.t, r.err)
	default:
	}
	if err := first.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	r := elected(t, next, 10*time.Second)
	if !termEnded(first) || !errors.Is(first.Err(), relock.ErrReleased) {
		t.Errorf("b elected while a's term goes on (Err %v)", first.Err())
	}
	if r.t.Fence() <= first.Fence() {
		t.Errorf("b's fence %d is not above a's %d", r.t.Fence(), first.Fence())
	}
	// Within 10 s: well before the observer's first timed read (a's key
	// had 20 s or more left when last read).
	got := waitLeader(t, obs, r.t.Token(), 10*time.Second)
	last := got[len(got)-1]
	if last.Value != "b" || last.Fence != r.t.Fence() {
		t.Errorf("Observe sent %+v; want b's term", last)
	}
	t.Logf("observer: b seen %v after its Campaign returned (%d values)", last.at.Sub(r.at).Round(time.Millisecond), len(got))
	l, err := o.Election(name).Leader(ctx)
	if err != nil || l.Token != r.t.Token() || l.Value != "b" || l.Fence != r.t.Fence() || l.TTL < ttl-10*time.Second {
		t.Errorf("Leader = %+v, %v; want b's term", l, err)
	}

	if err := r.t.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, obs, "", 10*time.Second)
	if _, err := o.Election(name).Leader(ctx); !errors.Is(err, relock.ErrNoLeader) {
		t.Errorf("Leader after the last resignation: %v; want ErrNoLeader", err)
	}
}

// TestElectionHandOver: every adapter, on the shared server, with a key
// prefix; Observe sees the hand-over through pub/sub alone.
func TestElectionHandOver(t *testing.T) {
	addr := testredis.Addr(t)
	for _, adapter := range chaos.Adapters {
		t.Run(adapter, func(t *testing.T) {
			p := relock.WithKeyPrefix("elect-test:")
			a := electClient(t, adapter, addr, p)
			b := electClient(t, adapter, addr, p)
			o := electClient(t, adapter, addr, p)
			handOverRound(t, a, b, o, freshKey(t, "leader"), true)
		})
	}
}

// TestElectionWatchPath: the WATCH/MULTI/EXEC path, without scripts or
// pub/sub: campaigners poll, and so does Observe.
func TestElectionWatchPath(t *testing.T) {
	addr := testredis.Addr(t)
	clients := make([]*relock.Client, 3)
	for i := range clients {
		conn, closeConn, err := chaos.NewConn("goredis", addr)
		if err != nil {
			t.Fatal(err)
		}
		w, err := chaos.NewWatchOnly(conn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(closeConn)
		clients[i] = newClient(t, w)
	}
	handOverRound(t, clients[0], clients[1], clients[2], freshKey(t, "leader"), false)
}

// TestElectionLeaderCutOff: the leader's connections are cut (or its
// client partitioned from Redis) while another campaigner waits: the
// leader's term ends (Done closed, ErrLost) before the other is elected,
// its validity ends before the other's Campaign returns, the fence goes
// up, and an observer sees the change, on every adapter.
func TestElectionLeaderCutOff(t *testing.T) {
	addr := testredis.Addr(t)
	for _, adapter := range chaos.Adapters {
		for _, f := range []struct {
			name  string
			fault func(*chaos.Proxy)
		}{{"cut", func(px *chaos.Proxy) { _ = px.Close() }}, {"partition", func(px *chaos.Proxy) { px.Partition() }}} {
			t.Run(adapter+"/"+f.name, func(t *testing.T) {
				if adapter != chaos.Adapters[0] {
					// 1.3-1.5 s each; the first adapter keeps both
					// faults under -short.
					testredis.SkipShort(t, "the cut-off through one more adapter")
				}
				leaderCutOff(t, adapter, addr, f.fault)
			})
		}
	}
}

func leaderCutOff(t *testing.T, adapter, addr string, fault func(*chaos.Proxy)) {
	const ttl = time.Second
	px, err := chaos.NewProxy(addr, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := electClient(t, adapter, px.Addr())
	t.Cleanup(func() { _ = px.Close() }) // before a closes
	b := electClient(t, adapter, addr)
	o := electClient(t, adapter, addr)
	name := freshKey(t, "leader")
	ctx := ctxT(t, 30*time.Second)

	first, err := a.Election(name).Campaign(ctx, "a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	obs := o.Election(name).Observe(ctx)
	waitLeader(t, obs, first.Token(), 10*time.Second)
	doneAt := make(chan time.Time, 1)
	go func() {
		<-first.Done()
		doneAt <- time.Now()
	}()
	next := campaignAsync(ctx, b.Election(name), "b", ttl)
	waitWaiters(t, o, name, 1)
	time.Sleep(ttl / 2) // refreshes go through
	if termEnded(first) {
		t.Fatalf("a's term ended while connected: %v", first.Err())
	}

	faultAt := time.Now()
	fault(px)
	r := elected(t, next, 10*time.Second)
	defer r.t.Resign(ctx)
	// Done and Err check the clock: no goroutine's scheduling decides
	// these.
	if !termEnded(first) || !errors.Is(first.Err(), relock.ErrLost) {
		t.Fatalf("b elected at %s while a's term goes on (valid until %s, Err %v)",
			r.at.Format(time.StampMicro), first.ValidUntil().Format(time.StampMicro), first.Err())
	}
	if !first.ValidUntil().Before(r.at) {
		t.Errorf("a's term valid until %s, after b's Campaign returned at %s",
			first.ValidUntil().Format(time.StampMicro), r.at.Format(time.StampMicro))
	}
	if r.t.Fence() <= first.Fence() {
		t.Errorf("b's fence %d is not above a's %d", r.t.Fence(), first.Fence())
	}
	d := <-doneAt
	t.Logf("%s: a's Done closed %v after the fault, %v before b's Campaign returned; a valid until %v before it",
		adapter, d.Sub(faultAt).Round(time.Millisecond), r.at.Sub(d).Round(time.Millisecond), r.at.Sub(first.ValidUntil()).Round(time.Millisecond))
	if d.Sub(faultAt) > 2*ttl {
		t.Errorf("a's Done closed %v after the fault; its TTL is %v", d.Sub(faultAt), ttl)
	}

	got := waitLeader(t, obs, r.t.Token(), 10*time.Second)
	for _, s := range got[:len(got)-1] {
		if s.Token != "" {
			t.Errorf("Observe sent %+v between a and b", s.Leader)
		}
	}
	if l := got[len(got)-1]; l.Value != "b" || l.Fence != r.t.Fence() {
		t.Errorf("Observe sent %+v; want b's term", l.Leader)
	}
}

// TestElectionCluster: a Redis Cluster through go-redis: the election's
// keys share a slot, and the hand-over is announced through the cluster's
// pub/sub.
func TestElectionCluster(t *testing.T) {
	testredis.SkipShort(t, "starts a Redis Cluster")
	cl := testredis.StartCluster(t)
	clients := make([]*relock.Client, 3)
	for i := range clients {
		rdb := goredislib.NewClusterClient(&goredislib.ClusterOptions{Addrs: cl.Addrs()})
		t.Cleanup(func() { _ = rdb.Close() })
		clients[i] = newClient(t, goredis.New(rdb))
	}
	handOverRound(t, clients[0], clients[1], clients[2], "{election}:leader", true)
}

// TestElectionObserveResubscribes: the observer's connections are reset;
// its subscription comes back, and the next hand-over is seen through it
// (its interval is an hour, and the leader's key 20 s or more from
// expiring), on every adapter.
func TestElectionObserveResubscribes(t *testing.T) {
	addr := testredis.Addr(t)
	for _, adapter := range chaos.Adapters {
		t.Run(adapter, func(t *testing.T) {
			px, err := chaos.NewProxy(addr, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			o := electClient(t, adapter, px.Addr())
			t.Cleanup(func() { _ = px.Close() }) // before o closes
			a := electClient(t, adapter, addr)
			b := electClient(t, adapter, addr)
			name := freshKey(t, "leader")
			ctx := ctxT(t, 30*time.Second)
			const ttl = 30 * time.Second

			first, err := a.Election(name).Campaign(ctx, "a", ttl)
			if err != nil {
				t.Fatal(err)
			}
			obs := o.Election(name, relock.WithObserveInterval(time.Hour)).Observe(ctx)
			waitLeader(t, obs, first.Token(), 10*time.Second)
			next := campaignAsync(ctx, b.Election(name), "b", ttl)
			waitWaiters(t, a, name, 1)
			time.Sleep(100 * time.Millisecond) // subscribed by now

			before, _ := px.Stats()
			if n := px.Reset(0); n == 0 {
				t.Fatal("the observer has no connection to reset")
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				if accepted, _ := px.Stats(); accepted > before {
					break // the subscription reconnects
				}
				if time.Now().After(deadline) {
					t.Fatal("the observer did not reconnect within 5 s of the reset")
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
			if err := first.Resign(ctx); err != nil {
				t.Fatal(err)
			}
			r := elected(t, next, 10*time.Second)
			defer r.t.Resign(ctx)
			waitLeader(t, obs, r.t.Token(), 10*time.Second)
		})
	}
}
