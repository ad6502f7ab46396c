package relock_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/memdriver"
)

// cuttableConn is a memdriver connection whose every call fails, as on a
// connection reset, once cut: a process cut off from Redis.
type cuttableConn struct {
	*memdriver.Conn
	cut atomic.Bool
}

func (c *cuttableConn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	if c.cut.Load() {
		return false, io.EOF
	}
	return c.Conn.SetNX(ctx, key, value, ttl)
}

func (c *cuttableConn) Get(ctx context.Context, key string) (string, bool, error) {
	if c.cut.Load() {
		return "", false, io.EOF
	}
	return c.Conn.Get(ctx, key)
}

func (c *cuttableConn) Watch(ctx context.Context, keys []string, fn func(driver.Tx) error) error {
	if c.cut.Load() {
		return io.EOF
	}
	return c.Conn.Watch(ctx, keys, fn)
}

// campaignAsync campaigns in a goroutine; the result comes with the time
// Campaign returned.
type campaignResult struct {
	t   *relock.Term
	err error
	at  time.Time
}

func campaignAsync(ctx context.Context, e *relock.Election, value string, ttl time.Duration) <-chan campaignResult {
	ch := make(chan campaignResult, 1)
	go func() {
		t, err := e.Campaign(ctx, value, ttl)
		ch <- campaignResult{t, err, time.Now()}
	}()
	return ch
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestElectionCampaignLeaderResign(t *testing.T) {
	store := memdriver.New()
	c := newClient(t, store.Conn())
	ctx := ctxT(t, 10*time.Second)
	e := c.Election("elect:basic")

	if _, err := e.Leader(ctx); !errors.Is(err, relock.ErrNoLeader) {
		t.Fatalf("Leader before any campaign: %v; want ErrNoLeader", err)
	}
	term, err := e.Campaign(ctx, "web-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if term.Value() != "web-1" || term.Fence() <= 0 || len(term.Token()) != 32 || term.Err() != nil || isClosed(term.Done()) {
		t.Fatalf("term: value %q fence %d token %q err %v", term.Value(), term.Fence(), term.Token(), term.Err())
	}
	if left := time.Until(term.ValidUntil()); left < 50*time.Second || left > time.Minute {
		t.Errorf("ValidUntil in %v; want about a minute", left)
	}
	if v, ok := memGet(t, store, "elect:basic"); !ok || v != term.Token()+"|web-1" {
		t.Errorf("the key holds %q, %v; want token|web-1", v, ok)
	}
	l, err := e.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l.Value != "web-1" || l.Token != term.Token() || l.Fence != term.Fence() || l.TTL <= 50*time.Second {
		t.Errorf("Leader = %+v; want web-1's term (fence %d)", l, term.Fence())
	}

	if err := term.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if !isClosed(term.Done()) || !errors.Is(term.Err(), relock.ErrReleased) {
		t.Errorf("after Resign: Done closed %v, Err %v; want closed, ErrReleased", isClosed(term.Done()), term.Err())
	}
	if err := term.Resign(ctx); err != nil {
		t.Errorf("second Resign: %v", err)
	}
	if _, err := e.Leader(ctx); !errors.Is(err, relock.ErrNoLeader) || !strings.Contains(err.Error(), "elect:basic") {
		t.Errorf("Leader after Resign: %v; want ErrNoLeader naming the key", err)
	}
}

// TestElectionSuccession: the second campaigner waits, and is elected when
// the first resigns; its fence is higher, and the first term had ended
// when it was elected.
func TestElectionSuccession(t *testing.T) {
	store := memdriver.New()
	a := newClient(t, store.Conn())
	b := newClient(t, store.Conn())
	ctx := ctxT(t, 10*time.Second)
	first, err := a.Election("elect:succ").Campaign(ctx, "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	next := campaignAsync(ctx, b.Election("elect:succ"), "b", time.Minute)
	select {
	case r := <-next:
		t.Fatalf("b was elected while a leads: %v, %v", r.t, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := first.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-next
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !isClosed(first.Done()) {
		t.Error("b was elected while a's term had not ended")
	}
	if r.t.Fence() <= first.Fence() {
		t.Errorf("b's fence %d is not above a's %d", r.t.Fence(), first.Fence())
	}
	l, err := a.Election("elect:succ").Leader(ctx)
	if err != nil || l.Value != "b" || l.Token != r.t.Token() || l.Fence != r.t.Fence() {
		t.Errorf("Leader = %+v, %v; want b", l, err)
	}
	if err := r.t.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestElectionLossSignalledBeforeNextLeader: the leader is cut off from
// Redis; its term ends (Done, ErrLost) before the other campaigner is
// elected, which happens once the key expires.
func TestElectionLossSignalledBeforeNextLeader(t *testing.T) {
	store := memdriver.New()
	cut := &cuttableConn{Conn: store.Conn()}
	a := newClient(t, cut)
	b := newClient(t, store.Conn())
	ctx := ctxT(t, 20*time.Second)
	const ttl = 300 * time.Millisecond
	first, err := a.Election("elect:loss").Campaign(ctx, "a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	next := campaignAsync(ctx, b.Election("elect:loss"), "b", ttl)
	time.Sleep(ttl) // a few refreshes go through
	if isClosed(first.Done()) {
		t.Fatalf("a's term ended while connected: %v", first.Err())
	}
	cut.cut.Store(true)
	r := <-next
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.t.Resign(ctx)
	if !isClosed(first.Done()) || !errors.Is(first.Err(), relock.ErrLost) {
		t.Fatalf("b was elected at %v while a's term had not ended (valid until %v, Err %v)",
			r.at.Format(time.StampMicro), first.ValidUntil().Format(time.StampMicro), first.Err())
	}
	if !first.ValidUntil().Before(r.at) {
		t.Errorf("a's term was valid until %v, after b was elected at %v", first.ValidUntil(), r.at)
	}
	if r.t.Fence() <= first.Fence() {
		t.Errorf("b's fence %d is not above a's %d", r.t.Fence(), first.Fence())
	}
	cut.cut.Store(false) // back in touch: Resign reports the loss
	if err := first.Resign(ctx); !errors.Is(err, relock.ErrNotHeld) || !errors.Is(err, relock.ErrLost) {
		t.Errorf("Resign of the lost term: %v; want ErrNotHeld and ErrLost", err)
	}
}

func TestElectionCampaignBudget(t *testing.T) {
	c := newClient(t, memdriver.New().Conn())
	ctx := ctxT(t, 10*time.Second)
	leader, err := c.Election("elect:budget").Campaign(ctx, "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Resign(ctx)

	start := time.Now()
	_, err = c.Election("elect:budget", relock.WithMaxWait(50*time.Millisecond)).Campaign(ctx, "b", time.Minute)
	if !errors.Is(err, relock.ErrNotObtained) {
		t.Errorf("Campaign with a budget: %v; want ErrNotObtained", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Errorf("Campaign with a 50ms budget returned after %v", d)
	}
	_, err = c.Election("elect:budget", relock.WithRetry(relock.NoRetry())).Campaign(ctx, "b", time.Minute)
	if !errors.Is(err, relock.ErrNotObtained) {
		t.Errorf("Campaign with NoRetry: %v; want ErrNotObtained", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err = c.Election("elect:budget").Campaign(cctx, "b", time.Minute)
	if !errors.Is(err, relock.ErrNotObtained) || !errors.Is(err, context.Canceled) {
		t.Errorf("Campaign cancelled: %v; want ErrNotObtained and context.Canceled", err)
	}
}

func TestElectionArguments(t *testing.T) {
	c := newClient(t, memdriver.New().Conn())
	ctx := ctxT(t, 10*time.Second)
	for name, f := range map[string]func() error{
		"empty name": func() error { _, err := c.Election("").Campaign(ctx, "v", time.Minute); return err },
		"short ttl":  func() error { _, err := c.Election("e").Campaign(ctx, "v", time.Millisecond); return err },
		"long value": func() error {
			_, err := c.Election("e").Campaign(ctx, strings.Repeat("v", 1025), time.Minute)
			return err
		},
		"unfenceable": func() error { _, err := c.Election("a}b").Campaign(ctx, "v", time.Minute); return err },
		"prefix option": func() error {
			_, err := c.Election("e", relock.WithKeyPrefix("p:")).Campaign(ctx, "v", time.Minute)
			return err
		},
		"nil election": func() error { _, err := (*relock.Election)(nil).Campaign(ctx, "v", time.Minute); return err },
		"nil client":   func() error { _, err := (*relock.Client)(nil).Election("e").Leader(ctx); return err },
		"leader, bad name": func() error {
			_, err := c.Election("").Leader(ctx)
			return err
		},
		"nil term":       func() error { return (*relock.Term)(nil).Resign(ctx) },
		"nil term's Err": func() error { return (*relock.Term)(nil).Err() },
		"resign, nil ctx": func() error {
			term, err := c.Election("e:nilctx").Campaign(ctx, "v", time.Minute)
			if err != nil {
				return err
			}
			defer term.Resign(ctx)
			return term.Resign(nil) //nolint:staticcheck // the nil context is the point
		},
	} {
		if err := f(); !errors.Is(err, relock.ErrInvalidArgument) {
			t.Errorf("%s: %v; want ErrInvalidArgument", name, err)
		}
	}
	var nt *relock.Term
	if nt.Value() != "" || nt.Token() != "" || nt.Fence() != 0 || !nt.ValidUntil().IsZero() || !isClosed(nt.Done()) {
		t.Error("a nil Term's accessors are not zero")
	}
}

func TestElectionKeyPrefixAndClose(t *testing.T) {
	store := memdriver.New()
	c, err := relock.New(store.Conn(), relock.WithKeyPrefix("app:"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 10*time.Second)
	e := c.Election("leader")
	term, err := e.Campaign(ctx, "v", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := memGet(t, store, "app:leader"); !ok || v != term.Token()+"|v" {
		t.Errorf("app:leader holds %q, %v", v, ok)
	}
	obs := e.Observe(ctx)
	if l := <-obs; l.Token != term.Token() {
		t.Errorf("Observe's first leader: %+v; want the term's", l)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !isClosed(term.Done()) || !errors.Is(term.Err(), relock.ErrClosed) {
		t.Errorf("after Close: Done closed %v, Err %v; want ErrClosed", isClosed(term.Done()), term.Err())
	}
	select {
	case _, ok := <-obs:
		if ok {
			// A change seen before Close (the release) may come first.
			if _, ok = <-obs; ok {
				t.Error("Observe's channel still open after Close")
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Observe's channel not closed 5 s after Client.Close")
	}
	if _, ok := memGet(t, store, "app:leader"); ok {
		t.Error("Close left the leader's key in place")
	}
	if _, err := e.Campaign(ctx, "v", time.Minute); !errors.Is(err, relock.ErrClosed) {
		t.Errorf("Campaign after Close: %v; want ErrClosed", err)
	}
	if _, ok := <-e.Observe(ctx); ok {
		t.Error("Observe after Close sent a value")
	}
}

// nextLeader reads obs until a leader for which ok returns true, failing
// after 10 s; the values skipped must be allowed by skip.
func nextLeader(t *testing.T, obs <-chan relock.Leader, ok, skip func(relock.Leader) bool) relock.Leader {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, open := <-obs:
			if !open {
				t.Fatal("Observe's channel closed")
			}
			if ok(l) {
				return l
			}
			if !skip(l) {
				t.Fatalf("Observe sent %+v", l)
			}
		case <-timeout:
			t.Fatal("no such leader within 10 s")
		}
	}
}

func TestElectionObserve(t *testing.T) {
	store := memdriver.New()
	a := newClient(t, store.Conn())
	b := newClient(t, store.Conn())
	ctx := ctxT(t, 20*time.Second)
	e := a.Election("elect:observe", relock.WithObserveInterval(10*time.Millisecond))
	octx, stop := context.WithCancel(ctx)
	obs := e.Observe(octx)
	none := func(l relock.Leader) bool { return l == relock.Leader{} }
	never := func(relock.Leader) bool { return false }
	nextLeader(t, obs, none, never) // nobody, at first

	first, err := e.Campaign(ctx, "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	l := nextLeader(t, obs, func(l relock.Leader) bool { return l.Token == first.Token() }, never)
	if l.Value != "a" || l.Fence != first.Fence() || l.TTL <= 0 {
		t.Errorf("Observe: %+v; want a's term", l)
	}
	next := campaignAsync(ctx, b.Election("elect:observe"), "b", time.Minute)
	select {
	case l := <-obs:
		t.Errorf("Observe sent %+v while a leads", l)
	case <-time.After(100 * time.Millisecond):
	}
	if err := first.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-next
	if r.err != nil {
		t.Fatal(r.err)
	}
	l = nextLeader(t, obs, func(l relock.Leader) bool { return l.Token == r.t.Token() }, none)
	if l.Value != "b" || l.Fence <= first.Fence() {
		t.Errorf("Observe: %+v; want b's term, fenced above %d", l, first.Fence())
	}
	// b resigns with nobody waiting: Observe sees nobody.
	if err := r.t.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	nextLeader(t, obs, none, never)

	stop()
	select {
	case _, open := <-obs:
		if open {
			t.Error("Observe sent a value after its context ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Observe's channel not closed 5 s after its context ended")
	}
}

// TestElectionObserveSeesExpiry: a leader cut off from Redis; Observe, at
// its default interval, sees its key expire and the next leader.
func TestElectionObserveSeesExpiry(t *testing.T) {
	store := memdriver.New()
	cut := &cuttableConn{Conn: store.Conn()}
	a := newClient(t, cut)
	b := newClient(t, store.Conn())
	ctx := ctxT(t, 20*time.Second)
	const ttl = 300 * time.Millisecond
	first, err := a.Election("elect:expiry").Campaign(ctx, "a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	obs := b.Election("elect:expiry").Observe(ctx)
	if l := <-obs; l.Token != first.Token() {
		t.Fatalf("Observe: %+v; want a", l)
	}
	cut.cut.Store(true)
	<-first.Done()
	nextLeader(t, obs, func(l relock.Leader) bool { return l == relock.Leader{} }, func(relock.Leader) bool { return false })
	second, err := b.Election("elect:expiry").Campaign(ctx, "b", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Resign(ctx)
	nextLeader(t, obs, func(l relock.Leader) bool { return l.Token == second.Token() }, func(relock.Leader) bool { return false })
}

// TestElectionObserveRetriesFailedReads: reads that fail are tried again
// soon (doubling up to a second), whatever the interval (an hour here).
func TestElectionObserveRetriesFailedReads(t *testing.T) {
	store := memdriver.New()
	cut := &cuttableConn{Conn: store.Conn()}
	o := newClient(t, cut)
	c := newClient(t, store.Conn())
	ctx := ctxT(t, 20*time.Second)
	term, err := c.Election("elect:retry").Campaign(ctx, "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Resign(ctx)
	cut.cut.Store(true)
	obs := o.Election("elect:retry", relock.WithObserveInterval(time.Hour)).Observe(ctx)
	select {
	case l := <-obs:
		t.Fatalf("Observe sent %+v while its reads fail", l)
	case <-time.After(200 * time.Millisecond):
	}
	cut.cut.Store(false)
	select {
	case l := <-obs:
		if l.Token != term.Token() {
			t.Errorf("Observe sent %+v; want a's term", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Observe did not read again within 5 s of Redis coming back")
	}
}

// TestElectionObserveKeepsLatest: a receiver that falls behind gets the
// latest leader.
func TestElectionObserveKeepsLatest(t *testing.T) {
	c := newClient(t, memdriver.New().Conn())
	ctx := ctxT(t, 20*time.Second)
	e := c.Election("elect:latest", relock.WithObserveInterval(5*time.Millisecond))
	obs := e.Observe(ctx)
	var last *relock.Term
	for i := range 5 {
		term, err := e.Campaign(ctx, fmt.Sprint(i), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
		if i < 4 {
			if err := term.Resign(ctx); err != nil {
				t.Fatal(err)
			}
		}
		last = term
	}
	defer last.Resign(ctx)
	time.Sleep(100 * time.Millisecond)
	nextLeader(t, obs, func(l relock.Leader) bool { return l.Token == last.Token() }, func(relock.Leader) bool { return false })
}

func TestElectionObserveRefused(t *testing.T) {
	store := memdriver.New()
	c := newClient(t, store.Conn())
	ctx := ctxT(t, 10*time.Second)
	for _, name := range []string{"", "a}:relock:b"} {
		if _, ok := <-c.Election(name).Observe(ctx); ok {
			t.Errorf("Observe(%q) sent a value", name)
		}
	}
	store.SetHash("elect:hash")
	if _, ok := <-c.Election("elect:hash").Observe(ctx); ok {
		t.Error("Observe of a hash sent a value")
	}
	if _, err := c.Election("elect:hash").Leader(ctx); !errors.Is(err, relock.ErrWrongType) {
		t.Errorf("Leader of a hash: %v; want ErrWrongType", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := <-c.Election("e").Observe(done); ok {
		t.Error("Observe with an ended context sent a value")
	}
	if _, ok := <-(*relock.Election)(nil).Observe(ctx); ok {
		t.Error("Observe of a nil Election sent a value")
	}
}

// ExampleElection elects a leader among replicas: one campaigns and leads,
// another waits for its turn, and anyone can follow who leads.
func ExampleElection() {
	rdb, stop := exampleRedis()
	defer stop()
	client, err := relock.New(rdb.Conn())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	election := client.Election("scheduler")
	leaders := election.Observe(ctx) // the leader now, then every change
	if l := <-leaders; l.Token == "" {
		fmt.Println("nobody leads")
	}

	term, err := election.Campaign(ctx, "web-1", 10*time.Second) // waits until elected
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("elected:", term.Value())
	fmt.Println("leader seen:", (<-leaders).Value)

	// Another replica campaigns, and waits for its turn.
	next := make(chan *relock.Term, 1)
	go func() {
		t, err := election.Campaign(ctx, "web-2", 10*time.Second)
		if err != nil {
			log.Fatal(err)
		}
		next <- t
	}()

	// web-1 leads until its term ends: stop leading when term.Done()
	// closes, and pass term.Fence() with every write. Here it steps down.
	if err := term.Resign(ctx); err != nil {
		log.Fatal(err)
	}
	second := <-next
	fmt.Println("elected:", second.Value(), "with a higher fence:", second.Fence() > term.Fence())
	for l := range leaders {
		if l.Token == second.Token() {
			fmt.Println("leader seen:", l.Value)
			break
		}
	}

	_ = second.Resign(ctx)
	_, err = election.Leader(ctx)
	fmt.Println(errors.Is(err, relock.ErrNoLeader))
	// Output:
	// nobody leads
	// elected: web-1
	// leader seen: web-1
	// elected: web-2 with a higher fence: true
	// leader seen: web-2
	// true
}

// ExampleElection_Campaign leads while the term lasts, fencing every write
// (docs/election.md shows the lines between the README markers).
func ExampleElection_Campaign() {
	rdb, stop := exampleRedis()
	defer stop()
	client, err := relock.New(rdb.Conn())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	store := &fencedStore{}
	jobs := []string{"job 1", "job 2"}

	// README:begin
	term, err := client.Election("scheduler").Campaign(ctx, "web-1", 10*time.Second) // waits until elected
	if err != nil {
		log.Fatal(err) // ErrNotObtained when ctx (or WithMaxWait) ended the wait
	}
	defer term.Resign(ctx) // the next campaigner in line takes over
	for _, job := range jobs {
		select {
		case <-term.Done(): // the term ended (term.Err() says why): stop leading now
			log.Fatal(term.Err())
		default:
		}
		// Storage that rejects fences lower than the highest it has seen
		// turns away a leader whose term ended during a pause.
		if err := store.Write(term.Fence(), job); err != nil {
			log.Fatal(err)
		}
	}
	// README:end
	fmt.Println(store.value)
	// Output: job 2
}
