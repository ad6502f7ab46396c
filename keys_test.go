package relock

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestKeysFor(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want lockKeys
	}{
		{"job", lockKeys{lock: "job", queue: "{job}:relock:q:job", fence: "{job}:relock:f:job", waiter: "{job}:relock:w:job:", channel: "{job}:relock:c:job"}},
		{"{job}", lockKeys{lock: "{job}", queue: "{job}:relock:q:{job}", fence: "{job}:relock:f:{job}", waiter: "{job}:relock:w:{job}:", channel: "{job}:relock:c:{job}"}},
		{"{user:1}:lock", lockKeys{lock: "{user:1}:lock", queue: "{user:1}:relock:q:{user:1}:lock", fence: "{user:1}:relock:f:{user:1}:lock", waiter: "{user:1}:relock:w:{user:1}:lock:", channel: "{user:1}:relock:c:{user:1}:lock"}},
		{"a{b", lockKeys{lock: "a{b", queue: "{a{b}:relock:q:a{b", fence: "{a{b}:relock:f:a{b", waiter: "{a{b}:relock:w:a{b:", channel: "{a{b}:relock:c:a{b"}},
		{"a}b", lockKeys{lock: "a}b"}},
		{"{}x", lockKeys{lock: "{}x"}},
	} {
		if got := keysFor(tc.key); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("keysFor(%q) = %+v, want %+v", tc.key, got, tc.want)
		}
	}
}

// The sequence of issue 8: "job" and "{job}" used to share a queue, so a
// release of one handed the other to a waiter.
func TestKeysForJobAndTaggedJobShareNothing(t *testing.T) {
	checkPair(t, "job", "{job}")
	checkPair(t, "job", "{job}:q")
	checkPair(t, "x", "{x}:relock:q:x") // rejected as a name: see checkPair
}

// A lock's own token and companions come from one allocation, and its
// release arguments are built once.
func TestObtainReqInit(t *testing.T) {
	var r obtainReq
	r.init("{user:1}:lock")
	if !validToken(r.token) || r.value != r.token {
		t.Fatalf("token %q value %q", r.token, r.value)
	}
	if want := keysFor("{user:1}:lock"); r.keys.queue != want.queue || r.keys.channel != want.channel || r.keys.waiter != want.waiter || r.keys.fence != want.fence {
		t.Fatalf("init's keys %+v differ from keysFor's %+v", r.keys, want)
	}
	if got := r.keys.relKeys; len(got) != 3 || got[0] != r.key || got[1] != r.keys.queue || got[2] != r.keys.fence {
		t.Fatalf("release KEYS %q", got)
	}
	if a, l := r.keys.relArgs, r.keys.leaveArgs; a[0] != r.token || a[3] != "" || l[3] != "leave" || a[1] != r.keys.waiter || a[2] != r.keys.channel {
		t.Fatalf("release ARGV %q, leave ARGV %q", a, l)
	}
	var s obtainReq
	s.init("a}b") // no companions
	if s.keys.queue != "" || len(s.keys.relKeys) != 1 || !validToken(s.token) {
		t.Fatalf("init(a}b) = %+v", s)
	}
	if r.token == s.token {
		t.Fatal("two requests drew the same token")
	}
}

// crc16 is Redis Cluster's key hash (CRC16-CCITT, XMODEM).
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slot is the Redis Cluster hash slot of key, honouring hash tags.
func slot(key string) uint16 {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	return crc16(key) % 16384
}

const tokA, tokB = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"

// names returns every key and channel the lock named key may use, with
// waiter keys for two tokens; empty names are left out.
func names(key string) []string {
	k := keysFor(key)
	out := []string{k.lock}
	if k.queue != "" {
		out = append(out, k.queue, k.fence, k.channel, k.waiter+tokA, k.waiter+tokB)
	}
	return out
}

// checkKeyProperties checks one name: every companion shares the lock
// key's slot, is reserved (so no lock can be named like it), and differs
// from the others.
func checkKeyProperties(t *testing.T, key string) {
	t.Helper()
	if checkKey(key) != nil {
		return
	}
	all := names(key)
	seen := map[string]bool{}
	for i, n := range all {
		if seen[n] {
			t.Fatalf("keysFor(%q): %q used twice", key, n)
		}
		seen[n] = true
		if s, want := slot(n), slot(key); s != want {
			t.Fatalf("keysFor(%q): %q is in slot %d, the lock key in %d", key, n, s, want)
		}
		if i > 0 && checkKey(n) == nil {
			t.Fatalf("keysFor(%q): companion %q is accepted as a lock name", key, n)
		}
	}
}

// checkPair checks that two names share no key or channel.
func checkPair(t *testing.T, a, b string) {
	t.Helper()
	checkKeyProperties(t, a)
	checkKeyProperties(t, b)
	if a == b || checkKey(a) != nil || checkKey(b) != nil {
		return
	}
	mine := map[string]bool{}
	for _, n := range names(a) {
		mine[n] = true
	}
	for _, n := range names(b) {
		if mine[n] {
			t.Fatalf("names %q and %q both use %q", a, b, n)
		}
	}
}

// pieces that make names interesting: braces, empty and nested tags,
// colons, the reserved infix, binary bytes.
var pieces = []string{"{", "}", "{}", ":", "a", "b", "job", "relock", ":relock:", "q", "w", "c", "f", "\x00", "\xff", "{job}", ":q", "user:1"}

func genName(r *rand.Rand) string {
	var b strings.Builder
	for range 1 + r.IntN(6) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// A property test over generated names: every pair is checked, and every
// name against the companions of the others.
func TestKeysInjectiveAndSlotted(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gen := make([]string, 0, 600)
	for range 500 {
		gen = append(gen, genName(r))
	}
	// Names equal to other names' companions, as a user might try.
	for _, n := range gen[:100] {
		gen = append(gen, names(n)[1:]...)
	}
	for i, a := range gen {
		for _, b := range gen[i+1:] {
			checkPair(t, a, b)
		}
	}
}

func FuzzKeys(f *testing.F) {
	f.Add("job", "{job}")
	f.Add("{a}b", "{a}:relock:q:{a}b")
	f.Add("{}x", "x}")
	f.Add("a{{b}c", "{{b}")
	f.Fuzz(func(t *testing.T, a, b string) {
		checkPair(t, a, b)
		// Every companion of a, taken as a name, meets its own rules.
		for _, n := range names(a)[1:] {
			checkPair(t, n, b)
		}
	})
}
