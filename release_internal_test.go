package relock

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relock-go/relock/internal/scripts"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// hookConn is rawConn whose script calls pass through hooks: before runs
// before the call is sent, after between the server's answer and its
// delivery. Either may hold the call back.
type hookConn struct {
	*rawConn
	before, after func(ctx context.Context, sha string) error
}

func (c *hookConn) EvalSha(ctx context.Context, sha string, keys []string, args ...string) (any, error) {
	if c.before != nil {
		if err := c.before(ctx, sha); err != nil {
			return nil, err
		}
	}
	r, err := c.rawConn.EvalSha(ctx, sha, keys, args...)
	if c.after != nil {
		if herr := c.after(ctx, sha); herr != nil {
			return nil, herr
		}
	}
	return r, err
}

// events records an observer's event kinds.
type events struct {
	mu    sync.Mutex
	kinds []EventKind
}

func (e *events) Observe(ev Event) {
	e.mu.Lock()
	e.kinds = append(e.kinds, ev.Kind)
	e.mu.Unlock()
}

func (e *events) count(k EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, got := range e.kinds {
		if got == k {
			n++
		}
	}
	return n
}

// Issue 19.2: Release sends its release at once, while an auto-refresh is
// on the wire, instead of waiting for the refresh's answer first (up to
// two round trips, a second at most, on a slow link: the hand-over came
// that much later). Here the refresh's answer is held back for 2 s and the
// lock's round trip is set to 500 ms, so waiting would send the release
// about a second late, after cutting the refresh.
func TestReleaseDoesNotWaitForARefreshOnTheWire(t *testing.T) {
	addr := testredis.Addr(t)
	rdb := &rawRedis{addr: addr}
	s := &rawServer{addr: addr, rdb: rdb}
	key := s.key(t, "{early}")
	var mu sync.Mutex
	var stalling, refreshPending bool
	refreshStalled := make(chan struct{}, 1)
	var releaseSent time.Time
	var pendingAtRelease bool
	conn := &hookConn{rawConn: &rawConn{rdb: rdb}}
	conn.before = func(ctx context.Context, sha string) error {
		if sha == scripts.Release.SHA1 {
			mu.Lock()
			releaseSent, pendingAtRelease = time.Now(), refreshPending
			mu.Unlock()
		}
		return nil
	}
	conn.after = func(ctx context.Context, sha string) error {
		mu.Lock()
		stall := stalling && sha == scripts.Refresh.SHA1
		if stall {
			refreshPending = true
		}
		mu.Unlock()
		if !stall {
			return nil
		}
		select {
		case refreshStalled <- struct{}{}:
		default:
		}
		defer func() {
			mu.Lock()
			refreshPending = false
			mu.Unlock()
		}()
		select {
		case <-time.After(2 * time.Second):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c, err := New(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ev events
	l, err := c.Obtain(ctx, key, 600*time.Millisecond, WithAutoRefresh(), WithObserver(&ev))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	stalling = true
	mu.Unlock()
	<-refreshStalled
	l.rtt.Store(int64(500 * time.Millisecond)) // a slow link: the grace is a second
	called := time.Now()
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	mu.Lock()
	sent, pending := releaseSent, pendingAtRelease
	mu.Unlock()
	t.Logf("release sent %v after Release was called; refresh still on the wire: %v", sent.Sub(called), pending)
	if !pending {
		t.Fatal("the release was sent after the refresh on the wire ended: Release waited for it")
	}
	if _, held := s.get(t, key); held {
		t.Fatal("the key is still there after Release")
	}
	if err := l.Err(); !errors.Is(err, ErrReleased) {
		t.Fatalf("Err() = %v, want ErrReleased", err)
	}
	if n := ev.count(EventLost); n != 0 {
		t.Fatalf("%d EventLost for a lock that was released", n)
	}
}

// overtakeRefresh obtains an auto-refreshed lock on a fresh key and makes
// its next refresh reach Redis after the release, and answer before it:
// the refresh is held back until the server has run the release, and the
// release's answer until the refresh has returned; the release's answer is
// then replaced by releaseErr when not nil. It returns the lock, its
// events and what Release returned.
func overtakeRefresh(t *testing.T, name string, releaseErr error) (*Lock, *events, error) {
	t.Helper()
	addr := testredis.Addr(t)
	rdb := &rawRedis{addr: addr}
	s := &rawServer{addr: addr, rdb: rdb}
	key := s.key(t, name)
	var armed atomic.Bool
	refreshWaiting := make(chan struct{})
	releaseRan := make(chan struct{})
	refreshDone := make(chan struct{})
	var refreshOnce, ranOnce sync.Once
	conn := &hookConn{rawConn: &rawConn{rdb: rdb}}
	conn.before = func(ctx context.Context, sha string) error {
		if armed.Load() && sha == scripts.Refresh.SHA1 {
			refreshOnce.Do(func() { close(refreshWaiting) })
			<-releaseRan // sent only once the server has run the release
		}
		return nil
	}
	conn.after = func(ctx context.Context, sha string) error {
		switch {
		case armed.Load() && sha == scripts.Release.SHA1:
			ranOnce.Do(func() { close(releaseRan) })
			<-refreshDone // answered only once the refresh has returned
			return releaseErr
		case armed.Load() && sha == scripts.Refresh.SHA1:
			defer close(refreshDone)
		}
		return nil
	}
	c, err := New(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := &events{}
	l, err := c.Obtain(ctx, key, 300*time.Millisecond, WithAutoRefresh(), WithObserver(ev))
	if err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	<-refreshWaiting
	rerr := l.Release(ctx)
	select {
	case <-refreshDone:
	default:
		t.Fatal("the refresh had not returned: the test did not make the case")
	}
	if n, err := rdb.do("EXISTS", key); err != nil || n != int64(0) {
		t.Fatalf("EXISTS key: %v, %v: the release did not run", n, err)
	}
	return l, ev, rerr
}

// A refresh that reaches Redis after the release finds the key gone. While
// the release has not answered, that is not a loss: the release's answer
// decides. Here it answers: the lock must end released, with no EventLost.
func TestRefreshOvertakenByReleaseIsNoLoss(t *testing.T) {
	l, ev, err := overtakeRefresh(t, "{overtaken}", nil)
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := l.Err(); !errors.Is(err, ErrReleased) {
		t.Fatalf("Err() = %v, want ErrReleased", err)
	}
	if n := ev.count(EventLost); n != 0 {
		t.Fatalf("%d EventLost: the refresh that the release overtook counted as a loss", n)
	}
	if n := ev.count(EventReleased); n != 1 {
		t.Fatalf("%d EventReleased, want 1", n)
	}
}

// The other end: the release's answer is lost (a timeout) after the
// refresh found the key not ours. The lock must not go on believing it
// holds the key: it ends as lost (Err matches ErrLost and ErrNotHeld, Done
// is closed, one EventLost), and Release reports the failure.
func TestRefreshNotOursThenReleaseFailsIsLoss(t *testing.T) {
	lostReply := errors.New("the release's reply was lost")
	l, ev, err := overtakeRefresh(t, "{notours}", lostReply)
	if !errors.Is(err, lostReply) {
		t.Fatalf("Release: %v, want the lost reply's error", err)
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("Done is open: the lock still believes it holds a key that Redis deleted")
	}
	if err := l.Err(); !errors.Is(err, ErrLost) || !errors.Is(err, ErrNotHeld) {
		t.Fatalf("Err() = %v, want ErrLost and ErrNotHeld", err)
	}
	if n := ev.count(EventLost); n != 1 {
		t.Fatalf("%d EventLost, want 1", n)
	}
}

// lateConn is rawConn whose tries, once armed, are cut: the caller gets its
// context's error when the context ends, while the command goes on and
// reaches Redis delay later, as a driver that runs calls on a worker the
// caller leaves (the go-redis adapter's) sends it.
type lateConn struct {
	*rawConn
	armed  atomic.Bool
	delay  time.Duration
	landed chan struct{}
}

func (c *lateConn) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	if !c.armed.Swap(false) {
		return c.rawConn.SetNX(ctx, key, value, ttl)
	}
	go func() {
		time.Sleep(c.delay)
		_, _ = c.rawConn.SetNX(context.Background(), key, value, ttl)
		close(c.landed)
	}()
	<-ctx.Done()
	return false, ctx.Err()
}

func (c *lateConn) EvalSha(ctx context.Context, sha string, keys []string, args ...string) (any, error) {
	if sha == scripts.Obtain.SHA1 && c.armed.Swap(false) {
		go func() {
			time.Sleep(c.delay)
			_, _ = c.rawConn.EvalSha(context.Background(), sha, keys, args...)
			close(c.landed)
		}()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return c.rawConn.EvalSha(ctx, sha, keys, args...)
}

// Issue 19.4: a try cut at the call's end that reaches Redis after the
// call's clean-up (here 300 ms after a 50 ms deadline) takes the free key
// with our token. The clean-up releases once more at its end, or at
// Close: after Close, the key does not hold the token of a call that
// reported it not obtained.
func TestCutTryLandingAfterTheCleanUp(t *testing.T) {
	addr := testredis.Addr(t)
	rdb := &rawRedis{addr: addr}
	s := &rawServer{addr: addr, rdb: rdb}
	key := s.key(t, "{cuttry}")
	conn := &lateConn{rawConn: &rawConn{rdb: rdb}, delay: 300 * time.Millisecond, landed: make(chan struct{})}
	conn.armed.Store(true)
	c, err := New(conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if l, err := c.Obtain(ctx, key, 30*time.Second); err == nil {
		t.Fatalf("Obtain = %v, want not obtained", l)
	}
	<-conn.landed
	if v, err := rdb.do("GET", key); err != nil || v == nil {
		t.Fatalf("the cut try did not land (%v, %v): the test did not make the case", v, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.do("EXISTS", key); err != nil || n != int64(0) {
		t.Fatalf("after Close the key still holds the token of a call reported not obtained (EXISTS %v, %v)", n, err)
	}
}
