package relock

import "strings"

// lockKeys names the Redis keys and channel that serve one lock. The
// companions of the lock key share its hash slot, so that a script touching
// them all works in a Redis Cluster: they keep the key's own hash tag, or
// make the whole key their tag. A key with '}' but no hash tag cannot share
// its slot that way: it gets no companions (no queue, no fencing), and its
// waiters poll.
type lockKeys struct {
	lock    string
	queue   string // the waiter queue; "" when the key has no companions
	fence   string // the fencing counter
	waiter  string // prefix of waiter keys: waiter+token
	channel string // where hand-overs are announced
}

func keysFor(key string) lockKeys {
	k := lockKeys{lock: key}
	base, ok := slotBase(key)
	if !ok {
		return k
	}
	// One allocation for the four names, sliced out of it.
	all := base + ":q" + base + ":fence" + base + ":w:" + base + ":ch"
	n := len(base)
	k.queue, all = all[:n+2], all[n+2:]
	k.fence, all = all[:n+6], all[n+6:]
	k.waiter, all = all[:n+3], all[n+3:]
	k.channel = all
	return k
}

// slotBase returns the prefix for companion keys in key's hash slot.
func slotBase(key string) (string, bool) {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			return key, true // key has a hash tag: keep it
		}
	}
	if strings.IndexByte(key, '}') >= 0 {
		return "", false
	}
	return "{" + key + "}", true
}
