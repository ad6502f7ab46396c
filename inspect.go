package relock

import (
	"context"
	"strings"
	"time"
)

// MaxMetadataLen is the longest metadata, in bytes, that WithMetadata
// accepts.
const MaxMetadataLen = 1024

// WithMetadata stores meta with the lock, for anyone to read with
// Client.Inspect: who holds it, since when, why. It lives in the lock's
// own value (token, "|", meta), so it is written in the same command as
// the lock, moves with a hand-over and goes with the key. At most
// MaxMetadataLen bytes; more makes Obtain fail with ErrInvalidArgument.
func WithMetadata(meta string) Option {
	return optionFunc(func(st *settings) { st.metadata = meta })
}

// WithKeyPrefix puts prefix before every key and pub/sub channel the
// Client uses: Obtain(ctx, "job", ...) then locks the Redis key
// prefix+"job", and the lock's waiter queue, waiter leases, fencing counter
// and hand-over channel start with prefix too (see docs/how-it-works.md,
// "Lock names and the keys relock reserves", and docs/permissions.md). So tenants can share one Redis as ACL
// users confined to their prefix (~prefix* &prefix*).
//
// Names in and out of the API are without the prefix: Lock.Key returns
// "job", which Inspect and Attach on the same Client take back as is;
// Lock.RedisKey, Event.Key and error messages give the Redis key.
//
// Every key of a lock stays in one hash slot of a Redis Cluster. A name's
// own hash tag decides its slot ("app:" + "{user:7}:lock" keeps the tag
// user:7) unless the prefix carries a tag ("{tenant}:"), which then decides
// the slot of all the Client's locks. New rejects, with
// ErrInvalidArgument, a prefix that opens a tag it does not close ("app{")
// or leaves empty ("{}:"), or that contains "}:relock:". Every client of a
// lock must use the same prefix: a client that names the same Redis key
// with another split ("app:job" without a prefix) excludes the others, but
// has its own queue and fencing counter.
//
// It is a Client setting: give it to New (or Open, NewQuorum). Obtain and
// Do fail with ErrInvalidArgument when given it, sending nothing.
func WithKeyPrefix(prefix string) Option {
	return optionFunc(func(st *settings) { st.prefix, st.prefixGiven = prefix, true })
}

// Info is what Client.Inspect found about a lock.
type Info struct {
	// Held is true while some owner holds the lock.
	Held bool
	// Token is the holder's token, when held.
	Token string
	// Metadata is what the holder gave WithMetadata, when held.
	Metadata string
	// TTL is the lock's remaining lifetime when held; -1 means the key has
	// no expiry (someone outside relock removed it).
	TTL time.Duration
	// Fence is the key's fencing counter: the holder's fencing number when
	// it obtained the lock WithFencing; 0 without a counter.
	Fence int64
	// Waiters is how many live waiters queue for a hand-over (waiters
	// that poll are not counted).
	Waiters int
}

// Inspect reads the state of the lock named key, whoever holds it: held or
// not, by which token, with what metadata, for how long, its fencing
// counter and its queue. It changes nothing. A key of another type gives
// ErrWrongType. On a quorum, Held means a majority holds one token, and
// TTL is how long that majority still holds it. key is the lock's name as
// Obtain took it and Lock.Key returns it: the Client's prefix goes before
// it.
//
// Inspect does not say since when the lock is held: Redis keeps no such
// time, and one derived from the TTL would be wrong after the first
// refresh. Put it in the metadata when it matters, as relock run does
// ("host=... pid=... start=2026-12-07T14:33:00Z cmd=..."); the value's
// format, token "|" metadata, stays as it is.
func (c *Client) Inspect(ctx context.Context, key string) (Info, error) {
	if c == nil {
		return Info{}, invalid("nil client")
	}
	if ctx == nil {
		return Info{}, invalid("nil context")
	}
	key = c.defaults.prefix + key
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	if c.closed.Load() {
		return Info{}, errorf("relock: inspect %q: %w", key, ErrClosed)
	}
	st, err := c.path.inspect(ctx, keysIn(key, len(c.defaults.prefix)))
	if err != nil {
		return Info{}, opError("inspect", key, err)
	}
	info := Info{Fence: st.fence, Waiters: st.waiters}
	if st.exists {
		info.Held = true
		info.Token, info.Metadata, _ = strings.Cut(st.value, "|")
		info.TTL = asDuration(st.pttl)
	}
	return info, nil
}

// Attach rebuilds a Lock from its key and token, in another process or
// request than the one that obtained it, so that it can be refreshed,
// released or checked there. It checks with Redis that the key still holds
// token (ErrNotHeld otherwise) and counts the lock's validity from the
// remaining TTL it finds; the Lock's Fence is the key's fencing counter.
// The owner check stays intact: Release and Refresh act only while the key
// holds token. key is the lock's name as Lock.Key returns it: the
// Client's prefix goes before it, as in Obtain.
//
// opts may be WithAutoRefresh, to keep the attached lock alive as Obtain
// does (it renews to the TTL the key had left when attached, at least
// MinTTL, until a Refresh sets another), and WithObserver. Options that
// only mean something when obtaining (WithFencing, WithMetadata,
// WithRetry, WithMaxWait, WithReplicas, WithMinHold, WithKeyPrefix) make Attach fail
// with ErrInvalidArgument, sending nothing. Without WithAutoRefresh an
// attached lock is not refreshed, whatever the Client's defaults: call
// Refresh.
func (c *Client) Attach(ctx context.Context, key, token string, opts ...Option) (*Lock, error) {
	if c == nil {
		return nil, invalid("nil client")
	}
	if ctx == nil {
		return nil, invalid("nil context")
	}
	key = c.defaults.prefix + key
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if !validToken(token) {
		return nil, invalid("token %q is not 32 lowercase hexadecimal digits", token)
	}
	var given settings
	for _, o := range opts {
		if o != nil {
			o.apply(&given)
		}
	}
	if given.fencing || given.metadata != "" || given.retry != nil || given.maxWait != 0 || given.replicas != nil || given.prefixGiven || given.minHold != 0 {
		return nil, invalid("Attach takes only WithAutoRefresh and WithObserver: fencing, metadata, retries, wait budgets, replicas, minimum holds and prefixes belong to Obtain or New")
	}
	if c.closed.Load() {
		return nil, errorf("relock: attach %q: %w", key, ErrClosed)
	}
	plen := len(c.defaults.prefix)
	keys := keysIn(key, plen)
	sent := time.Now()
	st, err := c.path.inspect(ctx, keys)
	if err != nil {
		return nil, opError("attach", key, err)
	}
	if !st.exists || !holds(st.value, token) {
		return nil, errorf("relock: attach %q: %w", key, ErrNotHeld)
	}
	ttl := asDuration(st.pttl)
	if ttl < 0 {
		ttl = MaxTTL // no expiry: valid until Redis says otherwise
	}
	_, meta, _ := strings.Cut(st.value, "|")
	l := &Lock{req: obtainReq{path: c.path, key: key, plen: plen, keys: keys, token: token, value: st.value, ttl: max(ttl, time.Millisecond), meta: meta}}
	l.req.setReleaseArgs()
	st2 := c.defaults
	st2.autoRefresh = given.autoRefresh
	if given.observer != nil {
		st2.observer = given.observer
	}
	if st2.autoRefresh {
		l.req.ttl = max(l.req.ttl, MinTTL)
	}
	return c.newLock(l, st.fence, sent, &st2)
}

func validToken(t string) bool {
	if len(t) != 32 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
