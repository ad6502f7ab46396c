package relock

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/relock-go/relock/internal/scripts"
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

// With a prefix (issue 15.4), every companion and the channel start with
// it; the tag is the prefixed key's (its own, the prefix's, or the whole
// prefixed key).
func TestKeysInWithPrefix(t *testing.T) {
	comp := func(p, tag, name string) lockKeys {
		c := func(role string) string { return p + "{" + tag + "}:relock:" + role + ":" + name }
		return lockKeys{lock: p + name, queue: c("q"), fence: c("f"), waiter: c("w") + ":", channel: c("c")}
	}
	for _, tc := range []struct {
		prefix, name string
		want         lockKeys
	}{
		{"app:", "job", comp("app:", "app:job", "job")},
		{"app:", "{user:1}:lock", comp("app:", "user:1", "{user:1}:lock")},
		{"app:", "a{b", comp("app:", "app:a{b", "a{b")},
		{"{t}:", "job", comp("{t}:", "t", "job")},
		{"{t}:", "{x}y", comp("{t}:", "t", "{x}y")},
		{"a}b:", "{x}y", comp("a}b:", "x", "{x}y")},
		{"a}b:", "job", lockKeys{lock: "a}b:job"}}, // no tag, a '}': like "a}b"
		{"app{", "job", lockKeys{lock: "app{job"}}, // New rejects the prefix
		{"{}:", "job", lockKeys{lock: "{}:job"}},   // New rejects the prefix
		{"app:", "a}b", lockKeys{lock: "app:a}b"}},
	} {
		if got := keysIn(tc.prefix+tc.name, len(tc.prefix)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("keysIn(%q+%q) = %+v, want %+v", tc.prefix, tc.name, got, tc.want)
		}
	}
}

// New's rules for a prefix: it must not open a tag it leaves open or
// empty, nor contain the reserved mark, nor fill the key.
func TestCheckPrefix(t *testing.T) {
	for _, p := range []string{"", "app:", "{t}:", "a}b:", "{a}{", "{a}:{", "a{b}c{", "x:relock:"} {
		if err := checkPrefix(p); err != nil {
			t.Errorf("checkPrefix(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"app{", "{}:", "{", "a}b{", "x}:relock:", "{t}:relock:", strings.Repeat("p", MaxKeyLen)} {
		if err := checkPrefix(p); err == nil {
			t.Errorf("checkPrefix(%q) = nil, want an error", p)
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
	// A release sends the short form (release.lua): the lock's keys and
	// the token; a waiter that leaves, the full form.
	if got := r.keys.relKeys; len(got) != 3 || got[0] != r.key || got[1] != r.keys.queue || got[2] != r.keys.fence {
		t.Fatalf("release KEYS %q", got)
	}
	if got := r.keys.leaveKeys; len(got) != 3 || got[0] != r.key || got[1] != r.keys.queue || got[2] != r.keys.fence {
		t.Fatalf("leave KEYS %q", got)
	}
	if a, l := r.keys.relArgs, r.keys.leaveArgs; len(a) != 1 || a[0] != r.token || l[0] != r.token || l[3] != "leave" || l[1] != r.keys.waiter || l[2] != r.keys.channel || l[5] != fenceLifeArg {
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

// With a prefix, init names the companions after it, in the same
// allocation as the token.
func TestObtainReqInitWithPrefix(t *testing.T) {
	r := obtainReq{plen: len("app:")}
	r.init("app:job")
	want := keysIn("app:job", len("app:"))
	if r.keys.lock != "app:job" || r.keys.queue != want.queue || r.keys.fence != want.fence || r.keys.waiter != want.waiter || r.keys.channel != want.channel {
		t.Fatalf("init's keys %+v differ from keysIn's %+v", r.keys, want)
	}
	if got := r.keys.relKeys; len(got) != 3 || got[1] != "app:{app:job}:relock:q:job" || r.keys.leaveArgs[2] != "app:{app:job}:relock:c:job" {
		t.Fatalf("release KEYS %q, leave ARGV %q", got, r.keys.leaveArgs)
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
func names(key string) []string { return namesIn("", key) }

// namesIn is names for the lock named name on a Client with prefix: the
// lock key (prefix+name) first.
func namesIn(prefix, name string) []string {
	k := keysIn(prefix+name, len(prefix))
	out := []string{k.lock}
	if k.queue != "" {
		out = append(out, k.queue, k.fence, k.channel, k.waiter+tokA, k.waiter+tokB)
	}
	return out
}

// checkKeyProperties checks one name: every companion shares the lock
// key's slot, is reserved (so no lock can be named like it), and differs
// from the others.
func checkKeyProperties(t *testing.T, key string) { t.Helper(); checkKeyPropertiesIn(t, "", key) }

// checkKeyPropertiesIn is checkKeyProperties on a Client with prefix:
// also, every key and the channel start with the prefix.
func checkKeyPropertiesIn(t *testing.T, prefix, name string) {
	t.Helper()
	key := prefix + name
	if checkKey(key) != nil {
		return
	}
	all := namesIn(prefix, name)
	seen := map[string]bool{}
	for i, n := range all {
		if seen[n] {
			t.Fatalf("keysIn(%q+%q): %q used twice", prefix, name, n)
		}
		seen[n] = true
		if !strings.HasPrefix(n, prefix) {
			t.Fatalf("keysIn(%q+%q): %q does not start with the prefix", prefix, name, n)
		}
		if s, want := slot(n), slot(key); s != want {
			t.Fatalf("keysIn(%q+%q): %q is in slot %d, the lock key in %d", prefix, name, n, s, want)
		}
		if i > 0 && checkKey(n) == nil {
			t.Fatalf("keysIn(%q+%q): companion %q is accepted as a lock name", prefix, name, n)
		}
	}
}

// checkPair checks that two names share no key or channel.
func checkPair(t *testing.T, a, b string) { t.Helper(); checkPairIn(t, "", a, "", b) }

// checkPairIn checks that two (prefix, name) pairs share no key or
// channel, but the lock key when both make the same one (one key split two
// ways): then only their companions differ.
func checkPairIn(t *testing.T, pa, a, pb, b string) {
	t.Helper()
	checkKeyPropertiesIn(t, pa, a)
	checkKeyPropertiesIn(t, pb, b)
	if pa == pb && a == b || checkKey(pa+a) != nil || checkKey(pb+b) != nil {
		return
	}
	mine := map[string]bool{}
	for _, n := range namesIn(pa, a) {
		mine[n] = true
	}
	for i, n := range namesIn(pb, b) {
		if mine[n] && !(i == 0 && pa+a == pb+b) {
			t.Fatalf("(%q, %q) and (%q, %q) both use %q", pa, a, pb, b, n)
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
	n := 500 // pairs grow as n²: -short checks fewer (the map-based test below covers more)
	if testing.Short() {
		n = 150
	}
	gen := make([]string, 0, n+n/5)
	for range n {
		gen = append(gen, genName(r))
	}
	// Names equal to other names' companions, as a user might try.
	for _, name := range gen[:n/5] {
		gen = append(gen, names(name)[1:]...)
	}
	for i, a := range gen {
		for _, b := range gen[i+1:] {
			checkPair(t, a, b)
		}
	}
}

// prefixPieces make prefixes: colons, closed, open and empty tags, stray
// braces, the reserved infix.
var prefixPieces = []string{"app:", "{t}:", "{", "}", "{}", ":", "a", "relock", ":relock:", "{app}", "}:", "\x00", "q:"}

func genPrefix(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(4) {
		b.WriteString(prefixPieces[r.IntN(len(prefixPieces))])
	}
	return b.String()
}

// The property test with prefixes (issue 15.4): generated (prefix, name)
// pairs, the same keys split at other places, and names equal to others'
// companions, taken whole or after their prefix. Each pair's properties
// are checked once, then every name it uses against those of all the
// others at once: only pairs that make the same lock key share it, and
// nothing else.
func TestKeysInjectiveAndSlottedWithPrefixes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	type pn struct{ p, n string }
	gen := make([]pn, 0, 30000)
	for range 5000 {
		gen = append(gen, pn{genPrefix(r), genName(r)})
	}
	for _, x := range gen[:2000] {
		key := x.p + x.n
		i := r.IntN(len(key)) // another split of the same key
		gen = append(gen, pn{key[:i], key[i:]}, pn{"", key})
		for _, c := range namesIn(x.p, x.n)[1:] {
			gen = append(gen, pn{x.p, c[len(x.p):]}, pn{"", c})
		}
	}
	type use struct {
		pn
		lock bool // the name is this pair's lock key
	}
	users := map[string]use{}
	checked := map[pn]bool{}
	for _, x := range gen {
		if checked[x] || checkKey(x.p+x.n) != nil {
			continue
		}
		checked[x] = true
		checkKeyPropertiesIn(t, x.p, x.n)
		for i, n := range namesIn(x.p, x.n) {
			u, dup := users[n]
			if dup && !(i == 0 && u.lock) {
				t.Fatalf("(%q, %q) and (%q, %q) both use %q", u.p, u.n, x.p, x.n, n)
			}
			users[n] = use{x, i == 0}
		}
	}
	if len(checked) < 5000 { // most generated pairs are distinct and valid
		t.Fatalf("only %d pairs checked", len(checked))
	}
}

// FuzzKeysWithPrefixes is FuzzKeys with a prefix for each name.
func FuzzKeysWithPrefixes(f *testing.F) {
	f.Add("app:", "job", "", "app:job")
	f.Add("app:", "job", "app", ":job")
	f.Add("{t}:", "{x}y", "{t}:{t}", ":relock:q:{x}y")
	f.Add("a", "{b", "a{a", "{b")
	f.Add("a}b:", "{x}", "", "a}b:{x}")
	f.Fuzz(func(t *testing.T, pa, a, pb, b string) {
		checkPairIn(t, pa, a, pb, b)
		for _, n := range namesIn(pa, a)[1:] {
			checkPairIn(t, pa, strings.TrimPrefix(n, pa), pb, b)
			checkPairIn(t, "", n, pb, b)
		}
	})
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

// The short form of the release script (release.lua) names a lock's
// waiter keys and channel after its queue (as the fencing counter would
// be), by replacing
// the role that follows the first "}:relock:", and gives the counter
// fenceLife, which it spells out: both must agree with buildKeys and
// paths.go.
func TestReleaseScriptDerivesCompanions(t *testing.T) {
	if !strings.Contains(scripts.Release.Src, "'"+fenceLifeArg+"'") {
		t.Fatalf("release.lua does not give a fencing counter fenceLife (%s ms)", fenceLifeArg)
	}
	derive := func(queue string) (fence, waiter, channel string) {
		i := strings.Index(queue, "}:relock:q:")
		base, name := queue[:i+9], queue[i+11:]
		return base + "f:" + name, base + "w:" + name + ":", base + "c:" + name
	}
	for _, c := range []struct {
		key  string
		plen int
	}{
		{"job", 0}, {"{user:1}:job", 0}, {"app:job", 4}, {"app:{u}:job", 4}, {"{t}:job", 4},
		{"a:relock:q:b", 0}, {"{x}:relock:q:y", 0}, {"p:q:{a}b", 4},
	} {
		k := keysIn(c.key, c.plen)
		if k.queue == "" {
			t.Fatalf("%q: no companions", c.key)
		}
		f, w, ch := derive(k.queue)
		if f != k.fence || w != k.waiter || ch != k.channel {
			t.Errorf("%q (prefix %q): derived %q %q %q, want %q %q %q", c.key, c.key[:c.plen], f, w, ch, k.fence, k.waiter, k.channel)
		}
	}
}

// TestSemCompanionNames pins the names of a semaphore's companion keys,
// which Redis already holds for semaphores in use: the lock's queue name
// with the role in place of "q", for keys with and without a prefix, a
// hash tag of their own, or a tag in the prefix.
func TestSemCompanionNames(t *testing.T) {
	for _, tc := range []struct {
		key  string
		plen int
		want string
	}{
		{"pool", 0, "{pool}:relock:sh:pool"},
		{"{user:1}:pool", 0, "{user:1}:relock:sh:{user:1}:pool"},
		{"app:pool", 4, "app:{app:pool}:relock:sh:pool"},
		{"{app}:pool", 6, "{app}:{app}:relock:sh:pool"},
		{"a{b", 0, "{a{b}:relock:sh:a{b"},
	} {
		if got := companionOf(keysIn(tc.key, tc.plen).queue, semHoldRole); got != tc.want {
			t.Errorf("the holders' companion of %q (prefix length %d) = %q, want %q", tc.key, tc.plen, got, tc.want)
		}
	}
}
