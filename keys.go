package relock

import "strings"

// Companion keys.
//
// Besides the lock key itself, which is exactly the name the caller gave
// after the Client's prefix (WithKeyPrefix), a lock may use companion keys
// and a channel: its waiter queue, its waiters' lease keys, its fencing
// counter, and the pub/sub channel that announces hand-overs. For a Client
// with prefix P (often "") and a lock named N, whose Redis key is P+N,
// their names are
//
//	P + "{" + tag + "}:relock:" + role + ":" + N     (role q, f or c; a read-write lock's r, rm, rq)
//	P + "{" + tag + "}:relock:w:" + N + ":" + token  (a waiter's lease)
//
// where tag is the text Redis Cluster hashes in P+N: its hash tag (the
// text between its first '{' and the first '}' after it, when not empty)
// or, without one, the whole of P+N. So:
//
//   - every key and channel of a lock starts with P, so that a Redis user
//     confined to P (ACL ~P* &P*) can run every operation;
//   - every key of one lock hashes to the lock key's slot (Cluster hashes
//     only the tag: P holds no '{', so the companion's first '{' is the one
//     before tag; or P holds the lock key's tag itself, which then comes
//     first in both), and scripts never meet CROSSSLOT;
//   - the mapping from (P, N, role) to key is injective: "}:relock:"
//     occurs once in a companion, right after tag (no lock key holds it,
//     see below, and the other parts cannot form it), which gives the role
//     and N; what precedes it is P + "{" + tag, and tag is determined by
//     P+N, so P too (a P that opens a tag it does not close gets no
//     companions, which rules out the one ambiguity);
//   - no companion is ever the lock key of another name: lock keys that
//     contain "}:relock:" are reserved and rejected with
//     ErrInvalidArgument.
//
// With P empty these are the names relock has used since issue 8. One
// Redis key reached through two splits (P "app:" and N "job", or P "" and
// N "app:job") is one lock, but its queue and fencing counter differ: the
// documentation (docs/how-it-works.md) asks every client of a lock to use
// the same prefix.
//
// A lock key whose tag cannot be carried that way gets no companions: its
// waiters poll, and WithFencing refuses it. That is a key that contains
// '}' but has no hash tag ("a}b", "{}x"), or a prefix that opens a tag it
// does not close ("app{"), which New rejects.

// reservedInfix follows the closing brace of every companion's tag.
const reservedInfix = ":relock:"

// reservedMark is what no lock key may contain: the closing brace of a
// companion's tag and the infix.
const reservedMark = "}" + reservedInfix

// lockKeys names the Redis keys and channel that serve one lock.
type lockKeys struct {
	lock    string
	queue   string // the waiter queue; "" when the key has no companions
	fence   string // the fencing counter
	waiter  string // prefix of waiter keys: waiter+token
	channel string // where hand-overs are announced

	// For a lock of ours (see obtainReq.init), the release script's KEYS
	// and ARGV, built once so that a release allocates nothing: the short
	// form for a release, the full one for a waiter that leaves (see
	// release.lua); nil otherwise.
	relKeys, relArgs, leaveKeys, leaveArgs []string
}

// keysFor returns the keys of the lock whose Redis key is key, taken by a
// Client without a prefix.
func keysFor(key string) lockKeys { return keysIn(key, 0) }

// keysIn returns the keys of the lock whose Redis key is key, of which the
// first plen bytes are the Client's prefix.
func keysIn(key string, plen int) lockKeys {
	k, _ := buildKeys(key, plen, nil)
	return k
}

// buildKeys returns the companions of the lock key key, whose first plen
// bytes are the Client's prefix, and, when hexToken is given, the token as
// a string, all sliced out of one allocation.
func buildKeys(key string, plen int, hexToken []byte) (lockKeys, string) {
	k := lockKeys{lock: key}
	prefix, name := key[:plen], key[plen:]
	tag, ok := companionTag(prefix, key)
	n := 0 // the length of one companion but the waiter prefix
	if ok {
		n = len(prefix) + len(tag) + 2 + len(reservedInfix) + 2 + len(name)
	}
	var b strings.Builder
	if n > 0 {
		b.Grow(len(hexToken) + 4*n + 1)
	} else {
		b.Grow(len(hexToken))
	}
	b.Write(hexToken)
	if ok {
		for i, role := range [4]string{"q:", "f:", "w:", "c:"} {
			b.WriteString(prefix)
			b.WriteByte('{')
			b.WriteString(tag)
			b.WriteByte('}')
			b.WriteString(reservedInfix)
			b.WriteString(role)
			b.WriteString(name)
			if i == 2 {
				b.WriteByte(':')
			}
		}
	}
	all := b.String()
	token, all := all[:len(hexToken)], all[len(hexToken):]
	if ok {
		k.queue, all = all[:n], all[n:]
		k.fence, all = all[:n], all[n:]
		k.waiter, all = all[:n+1], all[n+1:]
		k.channel = all
	}
	return k, token
}

// companionTag returns the tag that the companions of the lock key key,
// which starts with prefix, carry, or false when they cannot share its
// slot.
func companionTag(prefix, key string) (string, bool) {
	if strings.IndexByte(prefix, '{') >= 0 {
		// The key's first '{' is the prefix's, and so is a companion's:
		// they hash alike only when the prefix closes that tag itself.
		return prefixTag(prefix)
	}
	return hashTag(key)
}

// prefixTag returns the hash tag that prefix opens and closes, and false
// when it opens one that it does not close, or closes it at once ("{}").
func prefixTag(prefix string) (string, bool) {
	open := strings.IndexByte(prefix, '{')
	end := strings.IndexByte(prefix[open+1:], '}')
	if end <= 0 {
		return "", false
	}
	return prefix[open+1 : open+1+end], true
}

// hashTag returns the part of key that Redis Cluster hashes, when a
// companion can carry it as its own hash tag: the key's tag if it has one,
// else the whole key unless it contains '}'.
func hashTag(key string) (string, bool) {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			return key[open+1 : open+1+end], true
		}
	}
	if strings.IndexByte(key, '}') >= 0 {
		return "", false
	}
	return key, true
}

// reserved reports whether key may be a companion of some lock: it
// contains "}:relock:", which no lock key may.
func reserved(key string) bool {
	return strings.Contains(key, reservedMark)
}

// checkPrefix checks a Client's prefix (WithKeyPrefix): every key of the
// Client starts with it, so it must leave them usable.
func checkPrefix(prefix string) error {
	switch {
	case len(prefix) >= MaxKeyLen:
		return invalid("key prefix of %d bytes leaves no room for a name within %d", len(prefix), MaxKeyLen)
	case reserved(prefix):
		return invalid("key prefix %q contains %q, reserved for relock's own keys", prefix, reservedMark)
	case strings.IndexByte(prefix, '{') >= 0:
		if _, ok := prefixTag(prefix); !ok {
			return invalid("key prefix %q opens a hash tag that it does not close, or leaves empty: the companion keys of its locks could not share their slot; close it, as in {tenant}:", prefix)
		}
	}
	return nil
}

// companionOf returns the companion of role of the lock whose waiter queue
// is queue (see buildKeys): the same name with role in place of "q". A
// read-write lock (rwlock.go) keeps its readers ("r"), their metadata
// ("rm") and its own waiter queue ("rq") there. Roles hold no ':', so the
// names stay injective.
func companionOf(queue, role string) string {
	i := strings.Index(queue, reservedMark) + len(reservedMark) // at "q:"
	return queue[:i] + role + queue[i+1:]
}
