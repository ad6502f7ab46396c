package relock

import "strings"

// Companion keys.
//
// Besides the lock key itself, which is exactly the name the caller gave,
// a lock may use companion keys and a channel: its waiter queue, its
// waiters' lease keys, its fencing counter, and the pub/sub channel that
// announces hand-overs. Their names are
//
//	"{" + tag + "}:relock:" + role + ":" + name     (role q, f or c)
//	"{" + tag + "}:relock:w:" + name + ":" + token  (a waiter's lease)
//
// where tag is the name's own hash tag if it has one (the text between its
// first '{' and the first '}' after it, when not empty), and otherwise the
// whole name. So:
//
//   - every key of one lock hashes to the lock key's slot (Redis Cluster
//     hashes only the tag), and scripts never meet CROSSSLOT;
//   - the mapping from (name, role) to key is injective: the tag holds no
//     '}', so the first '}' ends it, the role holds no ':', and the rest is
//     the whole name (a waiter's token is 32 hex digits at the end), so two
//     distinct names never share a key or a channel;
//   - no companion is ever the lock key of another name: names of the form
//     "{tag}:relock:..." are reserved and rejected with ErrInvalidArgument.
//
// A name that contains '}' but has no hash tag ("a}b", "{}x") cannot put a
// companion in its slot that way: it gets none. Its waiters poll, and
// WithFencing refuses it.

// reservedInfix follows the closing brace of every companion key.
const reservedInfix = ":relock:"

// lockKeys names the Redis keys and channel that serve one lock.
type lockKeys struct {
	lock    string
	queue   string // the waiter queue; "" when the key has no companions
	fence   string // the fencing counter
	waiter  string // prefix of waiter keys: waiter+token
	channel string // where hand-overs are announced

	// For a lock of ours (see obtainReq.init), the release script's KEYS
	// and ARGV, built once so that a release allocates nothing; nil
	// otherwise.
	relKeys, relArgs, leaveArgs []string
}

func keysFor(key string) lockKeys {
	k, _ := buildKeys(key, nil)
	return k
}

// buildKeys returns key's companions and, when hexToken is given, the
// token as a string, all sliced out of one allocation.
func buildKeys(key string, hexToken []byte) (lockKeys, string) {
	k := lockKeys{lock: key}
	tag, ok := hashTag(key)
	n := 0 // the length of one companion but the waiter prefix
	if ok {
		n = len(tag) + 2 + len(reservedInfix) + 2 + len(key)
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
			b.WriteByte('{')
			b.WriteString(tag)
			b.WriteByte('}')
			b.WriteString(reservedInfix)
			b.WriteString(role)
			b.WriteString(key)
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

// reserved reports whether key has the form of a companion key,
// "{tag}:relock:...", which no lock may be named.
func reserved(key string) bool {
	if len(key) < 2 || key[0] != '{' {
		return false
	}
	end := strings.IndexByte(key[1:], '}')
	return end > 0 && strings.HasPrefix(key[end+2:], reservedInfix)
}
