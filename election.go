package relock

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/backoff"
)

// ErrNoLeader reports that nobody leads an election: Election.Leader found
// its lock free.
var ErrNoLeader = errors.New("no leader")

// ObserveInterval is how often Election.Observe reads the election's lock
// unless WithObserveInterval says otherwise. Hand-overs announced on pub/sub
// are seen at once; the reads catch what is not announced: a leader that
// resigned with nobody waiting, a free lock taken by a campaigner, a dead
// leader's key expiring (read when it is due to expire, whatever the
// interval).
const ObserveInterval = 250 * time.Millisecond

// WithObserveInterval sets how often Election.Observe reads the
// election's lock (ObserveInterval by default; d <= 0 keeps the default).
// It is an option of Client.Election only: given to New or Obtain it does
// nothing.
func WithObserveInterval(d time.Duration) Option { return observeInterval(d) }

type observeInterval time.Duration

func (observeInterval) apply(*settings) {}

// An Election elects one leader at a time among the processes that
// campaign for the same name, as etcd's concurrency.Election does, on a
// Lock: the leader is the holder of the lock named name, its campaign value
// is the lock's metadata, and its term is an auto-refreshed, fenced Lock.
// Campaigners wait in the lock's queue and are handed leadership in turn
// where the driver can (scripting and pub/sub), and poll otherwise. It is
// safe for concurrent use, and holds no resources: make one per name, or
// one per call.
type Election struct {
	c        *Client
	name     string
	opts     []Option
	interval time.Duration
}

// Election returns the election named name: the lock key name (after the
// Client's prefix), so that Inspect, Attach and the relock command see the
// leader's lock under that name. opts apply to every Campaign as to Obtain
// (WithMaxWait bounds how long a campaign waits, WithRetry(NoRetry())
// makes it try once, WithReplicas, WithObserver, ...), and
// WithObserveInterval to Observe. A Campaign always adds WithMetadata (the
// value), WithFencing and WithAutoRefresh.
func (c *Client) Election(name string, opts ...Option) *Election {
	e := &Election{c: c, name: name, interval: ObserveInterval}
	for _, o := range opts {
		if d, ok := o.(observeInterval); ok {
			if d > 0 {
				e.interval = time.Duration(d)
			}
			continue
		}
		e.opts = append(e.opts, o)
	}
	return e
}

// Campaign waits until this caller leads the election, and returns its
// term: it obtains the election's lock for ttl, with value as its metadata
// (at most MaxMetadataLen bytes), a fencing number and auto-refresh. It
// waits as Obtain does, until elected, or until ctx or the Election's
// WithMaxWait ends the wait (an error matching ErrNotObtained), and fails
// as Obtain does (ErrUnavailable, ErrInvalidArgument, ErrClosed, ...). A
// key that cannot be fenced (a name with '}' but no hash tag; a quorum)
// fails with ErrInvalidArgument or ErrUnsupported.
//
// ttl is how long the others wait for a leader that died: the term is
// refreshed every ttl/3 while the process runs, and ends when a refresh
// fails for longer than its validity.
func (e *Election) Campaign(ctx context.Context, value string, ttl time.Duration) (*Term, error) {
	if e == nil || e.c == nil {
		return nil, invalid("nil election or client")
	}
	opts := make([]Option, 0, len(e.opts)+3)
	opts = append(append(opts, e.opts...), WithMetadata(value), WithFencing(), WithAutoRefresh())
	l, err := e.c.Obtain(ctx, e.name, ttl, opts...)
	if err != nil {
		return nil, err
	}
	if c := l.confirming; c != nil {
		// Handed over on its claim: a term starts once the key holds its
		// TTL, so that Leader and Observe, read by anyone, show the term
		// the leader asked for (a round trip more; bounded by the claim).
		<-c
		if err := l.Err(); err != nil {
			return nil, errorf("relock: campaign %q: %w: %w", l.req.key, ErrNotObtained, err)
		}
	}
	t := &Term{l: l, value: value}
	t.life, t.end = context.WithCancelCause(l.lifeCtx())
	return t, nil
}

// A Term is one leadership: the election's lock, obtained by Campaign,
// kept alive until Resign, its loss, or Client.Close. Its methods are safe
// for concurrent use, and on a nil *Term (zero values; Done closed).
//
// Done closes when the term ends, before anyone else can lead: the term
// ends when its validity (ValidUntil) runs out without a successful
// refresh, which is before Redis drops the key for another campaigner to
// take, or as soon as a refresh finds the key gone or another's, or when
// Resign begins, before the lock is handed on. A leader that stops acting
// when Done closes never acts alongside the next leader, unless the key
// is lost from outside relock's control (deleted by hand, a server that
// restarts empty, a failover to a replica that missed the write): the
// fencing number guards that case.
type Term struct {
	l     *Lock
	value string
	life  context.Context // ends with the lock, or when Resign begins
	end   context.CancelCauseFunc
}

// Value returns the value the leader campaigned with.
func (t *Term) Value() string {
	if t == nil {
		return ""
	}
	return t.value
}

// Token returns the term's token, which Leader.Token shows to whoever
// reads the election: a process compares it with its own term's to tell
// whether it is the leader read.
func (t *Term) Token() string {
	if t == nil {
		return ""
	}
	return t.l.Token()
}

// Fence returns the term's fencing number: it strictly increases from
// one term of the election to the next. Pass it with every write the
// leader makes to storage that rejects numbers lower than the highest it
// has seen.
func (t *Term) Fence() int64 {
	if t == nil {
		return 0
	}
	return t.l.Fence()
}

// ValidUntil returns the moment until which the term holds if nothing more
// is heard from Redis (see Lock.ValidUntil); each refresh moves it on.
func (t *Term) ValidUntil() time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.l.ValidUntil()
}

// Done returns a channel that is closed when the term ends: resigned,
// lost, past its validity, or the Client closed.
func (t *Term) Done() <-chan struct{} {
	if t == nil {
		return closedChan
	}
	t.l.lifeCtx() // ends the lock now if its validity has run out
	return t.life.Done()
}

// Err returns nil while the term lasts, and then why it ended: an error
// matching ErrReleased once Resign began, ErrLost (the lock was lost, or
// its validity ran out), or ErrClosed (Client.Close).
func (t *Term) Err() error {
	if t == nil {
		return invalid("nil term")
	}
	if err := t.l.Err(); err != nil {
		return err
	}
	if t.life.Err() != nil {
		return context.Cause(t.life)
	}
	return nil
}

// Resign ends the term and gives up leadership: Done closes first, then
// the lock is released, handed to the next campaigner in line. It returns
// what Lock.Release returns: nil once released (also when called again),
// an error matching ErrNotHeld and ErrLost when the term had been lost.
// When the release fails (ErrUnavailable), the term has ended all the
// same, and the key expires within its TTL. ctx bounds the call as it
// bounds Release (an ended ctx still releases, within ReleaseTimeout).
func (t *Term) Resign(ctx context.Context) error {
	if t == nil {
		return invalid("nil term")
	}
	if ctx == nil {
		return invalid("nil context")
	}
	t.end(t.l.because(ErrReleased))
	return t.l.Release(ctx)
}

// Leader is who leads an election, as Election.Leader and Election.Observe
// read it. Observe sends the zero Leader (Token "") when nobody leads.
type Leader struct {
	// Value is what the leader gave Campaign.
	Value string
	// Token identifies the term: the leader's Term.Token.
	Token string
	// Fence is the term's fencing number (the election lock's fencing
	// counter).
	Fence int64
	// TTL is what was left of the leader's key when read; -1: the key has
	// no expiry (someone outside relock removed it).
	TTL time.Duration
}

// Leader reads who leads the election now, with one Inspect of its lock.
// Nobody leading gives an error matching ErrNoLeader; other errors are
// Inspect's.
func (e *Election) Leader(ctx context.Context) (Leader, error) {
	if e == nil || e.c == nil {
		return Leader{}, invalid("nil election or client")
	}
	info, err := e.c.Inspect(ctx, e.name)
	if err != nil {
		return Leader{}, err
	}
	if !info.Held {
		return Leader{}, errorf("relock: election %q: %w", e.c.defaults.prefix+e.name, ErrNoLeader)
	}
	return leaderOf(info), nil
}

func leaderOf(info Info) Leader {
	if !info.Held {
		return Leader{}
	}
	return Leader{Value: info.Metadata, Token: info.Token, Fence: info.Fence, TTL: info.TTL}
}

// Observe follows the election's leadership: the returned channel receives
// the leader as first read, then each change (a new term, or nobody
// leading: the zero Leader), until ctx ends or the Client closes, and is
// then closed; no goroutine of it outlives either. A receiver that falls
// behind gets the latest leader, not every one in between: the channel
// holds one value, replaced when a newer comes.
//
// Where the driver has scripting and pub/sub (the three adapters), Observe
// holds a subscription connection of its own to the election's hand-over
// channel, so hand-overs to waiting campaigners are seen at once; it also
// reads the lock with Inspect every interval (ObserveInterval, or
// WithObserveInterval), more often for a while after a change or a
// failed read, and when the leader's key is due to expire: that catches
// what pub/sub does not announce, and everything on drivers without it.
// While Redis does not answer, nothing is sent. A name Inspect refuses for good (invalid,
// ErrWrongType, ErrNoPermission) closes the channel at once: Leader
// tells why.
//
// A leader seen by Observe may be one whose term has just ended (Observe
// reads Redis, and Term.Done closes before the key is gone); after a
// hand-over it may, rarely, be a campaigner that died before confirming
// it, replaced within 250 ms.
func (e *Election) Observe(ctx context.Context) <-chan Leader {
	out := make(chan Leader, 1)
	if e == nil || e.c == nil || ctx == nil || ctx.Err() != nil {
		close(out)
		return out
	}
	c := e.c
	key := c.defaults.prefix + e.name
	if checkKey(key) != nil || c.closed.Load() || !c.cleanups.start(1) {
		close(out)
		return out
	}
	go func() {
		defer c.cleanups.done()
		defer close(out)
		octx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(c.life, cancel)() // Client.Close ends it too
		e.observe(octx, out, keysIn(key, len(c.defaults.prefix)))
	}()
	return out
}

// observeInspectTimeout bounds each read of Observe.
const observeInspectTimeout = 5 * time.Second

// observe reads the election until ctx ends, sending each change to out.
func (e *Election) observe(ctx context.Context, out chan Leader, keys lockKeys) {
	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer wg.Wait() // after cancel
	defer cancel()
	if n := e.c.notifier; n != nil && keys.channel != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			listen(ctx, n.sub, keys.channel, wake)
		}()
	}
	const soonest = 10 * time.Millisecond
	var last Leader
	sent := false
	soon := e.interval // after a change: soonest, doubling up to the interval
	retry := soonest   // after a failed read: doubling up to a second
	t := time.NewTimer(e.interval)
	defer t.Stop()
	for {
		ictx, icancel := context.WithTimeout(ctx, observeInspectTimeout)
		info, err := e.c.Inspect(ictx, e.name)
		icancel()
		wait := e.interval
		switch {
		case err == nil:
			retry = soonest
			cur := leaderOf(info)
			if !sent || cur.Token != last.Token {
				offer(out, cur)
				if sent {
					soon = soonest
				}
				last, sent = cur, true
			}
			if info.Held && info.TTL >= 0 {
				wait = min(wait, info.TTL+time.Millisecond) // due to expire
			}
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrInvalidArgument), errors.Is(err, ErrWrongType),
			errors.Is(err, ErrNoPermission), errors.Is(err, ErrUnsupported), errors.Is(err, ErrClosed):
			return
		default: // Redis did not answer, or refused for now
			wait = min(wait, retry)
			retry = min(2*retry, time.Second)
		}
		if soon < e.interval {
			wait = min(wait, soon)
			soon *= 2
		}
		t.Reset(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
	}
}

// offer sends l on out, which holds one value, replacing a value the
// receiver has not taken yet. Only one goroutine sends on out.
func offer(out chan Leader, l Leader) {
	select {
	case out <- l:
		return
	default:
	}
	select {
	case <-out:
	default:
	}
	out <- l
}

// listen keeps a subscription to channel open until ctx ends, reopening
// it with backoff when it breaks, and pokes wake for every message on it
// and each time it (re)subscribes, since announcements may have been
// missed meanwhile.
func listen(ctx context.Context, sub driver.Subscriber, channel string, wake chan struct{}) {
	poke := func(string, string) {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	var b backoff.Backoff
	for {
		start := time.Now()
		sctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
		s, err := sub.Subscribe(sctx, poke)
		if err == nil {
			if err = s.Add(sctx, channel); err != nil {
				_ = s.Close()
			}
		}
		cancel()
		if err != nil && classify(err).permanent() {
			return // NOPERM on the channel, say: Observe polls
		}
		if err == nil {
			poke("", "")
			select {
			case <-ctx.Done():
			case <-s.Done():
			}
			_ = s.Close()
			if time.Since(start) > backoff.Max {
				b.Reset()
			}
		}
		if ctx.Err() != nil || !b.Wait(ctx.Done()) {
			return
		}
	}
}
