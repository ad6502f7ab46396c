package relock

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/relock-go/relock/driver"
)

// NewQuorum returns a Client whose locks live on a majority of several
// independent Redis masters, the Redlock algorithm: each conn reaches one
// master, through any driver (adapters may be mixed). It offers the same
// API as a Client from New.
//
// Obtain sets the key on every master in parallel and succeeds once a
// majority holds our token, provided the lock is still valid: its validity
// is the TTL counted from the start of the try, less the drift margin, so
// the time the masters took to answer is subtracted. It fails fast, as soon
// as a majority can no longer be reached, and then releases the key on
// every master, stragglers included, in the background (Close waits for
// that). Release, Refresh and TTL act on every master; Refresh succeeds
// when a majority still holds the lock, TTL reports how long a majority still
// holds it (the shortest remaining lifetime within the longest-lived
// majority).
//
// Safety rule for masters without persistence: a master that restarts
// empty must stay down for at least the longest TTL in use before it
// rejoins, or it may let a second holder in beside the first. With the
// restart delayed past the TTL, every lock it held has expired everywhere
// by the time it answers again.
//
// Waiters poll (the hand-over queue is per master), and WithFencing and
// WithReplicas are not supported: they fail with ErrUnsupported. Give at
// least three masters; an odd number tolerates the most failures.
func NewQuorum(conns []driver.Conn, opts ...Option) (*Client, error) {
	if len(conns) < 3 {
		return nil, invalid("a quorum needs at least 3 masters, got %d", len(conns))
	}
	q := &quorumPath{}
	for i, conn := range conns {
		if err := checkConn(conn); err != nil {
			return nil, fmt.Errorf("master %d: %w", i, err)
		}
		if reflect.TypeOf(conn).Comparable() {
			for j, other := range conns[:i] {
				if reflect.TypeOf(other) == reflect.TypeOf(conn) && other == conn {
					return nil, invalid("masters %d and %d are the same driver connection: a quorum needs independent masters", j, i)
				}
			}
		}
		p, err := pathFor(conn)
		if err != nil {
			return nil, fmt.Errorf("master %d: %w", i, err)
		}
		q.members = append(q.members, p)
	}
	c := newClient(conns)
	c.path = q
	if err := c.applyDefaults(opts); err != nil {
		return nil, err
	}
	return c, nil
}

// quorumPath runs each operation on every member and counts the votes.
type quorumPath struct {
	members []path
	bg      tracker // calls still running after the outcome was decided
}

func (q *quorumPath) wait() { q.bg.close() }

func (q *quorumPath) canWait() bool  { return false }
func (q *quorumPath) canFence() bool { return false }
func (q *quorumPath) need() int      { return len(q.members)/2 + 1 }

type vote struct {
	ok  bool
	err error
}

// vote runs fn on every member in parallel and returns as soon as a
// majority said yes, or enough said no (or failed) that no majority can.
// Calls still running go on in the background; when they are all done,
// late runs, if not nil. pending reports whether any were left running.
func (q *quorumPath) vote(ctx context.Context, fn func(context.Context, path) (bool, error), late func()) (yes int, errs []error, pending bool) {
	n, need := len(q.members), q.need()
	results := make(chan vote, n)
	// n calls and the one that waits for stragglers, counted before any
	// starts: Close may be waiting already.
	if !q.bg.start(n + 1) {
		for range n {
			errs = append(errs, ErrClosed)
		}
		return 0, errs, false
	}
	for _, m := range q.members {
		go func() {
			defer q.bg.done()
			ok, err := fn(ctx, m)
			results <- vote{ok, err}
		}()
	}
	no, got := 0, 0
	for got < n && yes < need && no <= n-need {
		v := <-results
		got++
		switch {
		case v.err != nil:
			errs = append(errs, v.err)
			no++
		case v.ok:
			yes++
		default:
			no++
		}
	}
	rest := n - got
	if rest == 0 || late == nil {
		q.bg.done() // no straggler to wait for
		return yes, errs, rest > 0
	}
	go func() {
		defer q.bg.done()
		for range rest {
			<-results
		}
		late()
	}()
	return yes, errs, true
}

// outcome turns a vote that fell short into "not held" or, when failures
// rather than other owners decided it, an error.
func (q *quorumPath) outcome(yes int, errs []error) (bool, error) {
	if yes >= q.need() {
		return true, nil
	}
	if len(errs) > 0 && len(q.members)-len(errs) < q.need() {
		return false, errorf("relock: quorum of %d not reached, %d of %d masters failed: %w", q.need(), len(errs), len(q.members), errors.Join(errs...))
	}
	return false, nil
}

func (q *quorumPath) obtain(ctx context.Context, r *obtainReq) (obtainRes, error) {
	if r.settled != nil {
		select {
		case <-r.settled:
		case <-ctx.Done():
			return obtainRes{holder: -1}, ctx.Err()
		}
	}
	settled := make(chan struct{})
	r.settled = settled
	start := time.Now()
	sub := *r
	sub.mode = noQueue
	sub.settled = nil
	releaseAll := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(min(r.ttl, time.Second), 100*time.Millisecond))
		defer cancel()
		_, _ = q.releaseAll(cctx, r.keys, r.token)
	}
	// Calls that answer after the vote release what they took, unless the
	// vote was won.
	// A lost vote releases what the try took at once, in the background:
	// the call does not wait for it, the next try of the same token does
	// (settled).
	decided, released := make(chan struct{}), make(chan struct{})
	var won bool
	yes, errs, pending := q.vote(ctx, func(ctx context.Context, m path) (bool, error) {
		res, err := m.obtain(ctx, &sub)
		return res.ok, err
	}, func() {
		<-decided
		if !won {
			<-released
			releaseAll() // the stragglers too
		}
		close(settled)
	})
	won = yes >= q.need() && time.Since(start) < r.ttl-drift(r.ttl)
	close(decided)
	if !won {
		q.bg.goFunc(func() {
			releaseAll()
			close(released)
			if !pending {
				close(settled)
			}
		})
	} else if !pending {
		close(settled) // every member answered: nothing runs late
	}
	if won {
		return obtainRes{ok: true, holder: -1}, nil
	}
	if _, err := q.outcome(yes, errs); err != nil {
		return obtainRes{holder: -1}, err
	}
	return obtainRes{holder: -1}, nil
}

// all runs fn on every member in parallel, waits for all of them, and
// counts the yes votes and the errors.
func (q *quorumPath) all(ctx context.Context, fn func(context.Context, path) (bool, error)) (yes int, errs []error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range q.members {
		wg.Go(func() {
			ok, err := fn(ctx, m)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case ok:
				yes++
			}
		})
	}
	wg.Wait()
	return yes, errs
}

// releaseAll releases on every member and waits for all of them.
func (q *quorumPath) releaseAll(ctx context.Context, k lockKeys, token string) (int, []error) {
	return q.all(ctx, func(ctx context.Context, m path) (bool, error) { return m.release(ctx, k, token, true) })
}

// release releases on every member. It succeeds when a majority held the
// lock and released it; when fewer did, the lock was no longer ours (a
// majority had lost it), unless failures decided that.
func (q *quorumPath) release(ctx context.Context, k lockKeys, token string, leave bool) (bool, error) {
	released, errs := q.all(ctx, func(ctx context.Context, m path) (bool, error) { return m.release(ctx, k, token, leave) })
	return q.outcome(released, errs)
}

func (q *quorumPath) refresh(ctx context.Context, k lockKeys, token string, ttl time.Duration, _ *replicaWait) (bool, int, error) {
	yes, errs, _ := q.vote(ctx, func(ctx context.Context, m path) (bool, error) {
		ok, _, err := m.refresh(ctx, k, token, ttl, nil)
		return ok, err
	}, nil)
	ok, err := q.outcome(yes, errs)
	return ok, 0, err
}

// forever stands for a key without expiry while quorumPath.pttl ranks
// remaining lifetimes.
const forever = time.Duration(math.MaxInt64)

// pttl reports how long a majority still holds the lock: the need()-th
// longest remaining lifetime among the masters that hold our token. A
// master that answered late, or whose refresh is still on its way, does
// not shorten it while a majority holds the lock for longer.
func (q *quorumPath) pttl(ctx context.Context, k lockKeys, token string) (time.Duration, bool, error) {
	var mu sync.Mutex
	var left []time.Duration
	yes, errs := q.all(ctx, func(ctx context.Context, m path) (bool, error) {
		d, ok, err := m.pttl(ctx, k, token)
		if ok {
			if d < 0 {
				d = forever // no expiry on this master
			}
			mu.Lock()
			left = append(left, d)
			mu.Unlock()
		}
		return ok, err
	})
	ok, err := q.outcome(yes, errs)
	if !ok || err != nil || len(left) < q.need() {
		return 0, false, err
	}
	slices.SortFunc(left, func(a, b time.Duration) int { return cmp.Compare(b, a) })
	if d := left[q.need()-1]; d != forever {
		return d, true, nil
	}
	return -1, true, nil
}

// inspect reports the state a majority agrees on: the value a majority of
// masters hold, with how long a majority still holds it (as pttl does).
// Waiters are not counted: quorum waiters poll.
func (q *quorumPath) inspect(ctx context.Context, k lockKeys) (lockState, error) {
	var mu sync.Mutex
	var states []lockState
	_, errs := q.all(ctx, func(ctx context.Context, m path) (bool, error) {
		st, err := m.inspect(ctx, k)
		if err == nil {
			mu.Lock()
			states = append(states, st)
			mu.Unlock()
		}
		return err == nil, err
	})
	if len(states) < q.need() {
		return lockState{}, errorf("relock: quorum of %d not reached, %d of %d masters failed: %w", q.need(), len(errs), len(q.members), errors.Join(errs...))
	}
	count := map[string]int{}
	for _, st := range states {
		if st.exists {
			count[st.value]++
		}
	}
	for v, n := range count {
		if n < q.need() {
			continue
		}
		var left []time.Duration
		for _, st := range states {
			if st.exists && st.value == v {
				d := time.Duration(st.pttl) * time.Millisecond
				if st.pttl < 0 {
					d = forever
				}
				left = append(left, d)
			}
		}
		slices.SortFunc(left, func(a, b time.Duration) int { return cmp.Compare(b, a) })
		out := lockState{value: v, exists: true, pttl: -1}
		if d := left[q.need()-1]; d != forever {
			out.pttl = d.Milliseconds()
		}
		return out, nil
	}
	return lockState{pttl: -2}, nil
}
