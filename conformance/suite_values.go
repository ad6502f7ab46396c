package conformance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
)

// The values the suite sends and expects are generated, not picked, so
// that a driver cannot pass by handling only tidy ones (whole seconds,
// replies without nils or numeric-looking strings, error texts that start
// with their code). The generator is seeded with valueSeed, printed by
// every subtest that uses it; RELOCK_CONFORMANCE_SEED replaces it, to
// explore further or to replay a failure seen with another seed.
const valueSeed = 20261207

// seedEnv names the environment variable that replaces valueSeed.
const seedEnv = "RELOCK_CONFORMANCE_SEED"

// newRand returns the generator of one subtest, and logs its seed.
func newRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(valueSeed)
	if s := os.Getenv(seedEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("$%s = %q: %v", seedEnv, s, err)
		}
		seed = n
	}
	t.Logf("values generated with seed %d (set $%s to change it)", seed, seedEnv)
	// Each subtest draws its own stream, so that adding one does not
	// change what the others get.
	var h uint64 = 14695981039346656037
	for _, b := range []byte(t.Name()[strings.IndexByte(t.Name()+"/", '/'):]) {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return rand.New(rand.NewPCG(seed, h))
}

// pttl reads key's remaining time to live in milliseconds through the
// driver itself: a script, or PTTL inside a transaction.
func pttl(t *testing.T, c driver.Conn, key string) int64 {
	t.Helper()
	var reply any
	switch {
	case isScripter(c):
		r, err := c.(driver.Scripter).Eval(bg(), "return redis.call('PTTL', KEYS[1])", []string{key})
		if err != nil {
			t.Fatalf("Eval PTTL: %v", err)
		}
		reply = r
	case isWatcher(c):
		err := c.(driver.Watcher).Watch(bg(), []string{key}, func(tx driver.Tx) error {
			r, err := tx.Exec(bg(), []string{"PTTL", key})
			if err == nil && len(r) == 1 {
				reply = r[0]
			}
			return err
		})
		if err != nil {
			t.Fatalf("Exec PTTL: %v", err)
		}
	default:
		t.Skip("driver implements neither driver.Scripter nor driver.Watcher: no way to read a TTL")
	}
	ms, ok := reply.(int64)
	if !ok {
		t.Fatalf("PTTL replied %#v (%T), want an int64", reply, reply)
	}
	return ms
}

func isScripter(c driver.Conn) bool { _, ok := c.(driver.Scripter); return ok }
func isWatcher(c driver.Conn) bool  { _, ok := c.(driver.Watcher); return ok }

// genTTL draws a TTL in whole milliseconds, never a whole second: from 1 ms
// to a day, spread over the orders of magnitude.
func genTTL(r *rand.Rand) time.Duration {
	var ms int64
	switch r.IntN(4) {
	case 0:
		ms = 1 + r.Int64N(999) // under a second
	case 1:
		ms = 1001 + r.Int64N(9*1000) // a few seconds
	case 2:
		ms = 10_001 + r.Int64N(3_600_000) // up to an hour
	default:
		ms = 3_600_001 + r.Int64N(86_400_000) // up to a day
	}
	if ms%1000 == 0 {
		ms++
	}
	return time.Duration(ms) * time.Millisecond
}

func testValues(t *testing.T, h Harness) {
	t.Run("TTL", func(t *testing.T) {
		// SetNX sends the TTL to the millisecond: PTTL right after it
		// reads the TTL less the time that passed, never rounded to a
		// second either way.
		e := newEnv(t, h)
		c := e.conn()
		r := newRand(t)
		for i := range 16 {
			ttl := genTTL(r)
			k := e.key(fmt.Sprintf("ttl%d", i))
			start := time.Now()
			if ok, err := c.SetNX(bg(), k, "v", ttl); err != nil || !ok {
				t.Fatalf("SetNX(%v) = %v, %v", ttl, ok, err)
			}
			got := pttl(t, c, k)
			passed := time.Since(start)
			// A shared server would keep the long ones for up to a day.
			t.Cleanup(func() { deleteKey(c, k) })
			want := ttl.Milliseconds()
			if got > want || got < want-passed.Milliseconds()-1 {
				t.Errorf("SetNX with a TTL of %v: PTTL = %d ms %v later, want %d ms at most and %d at least: the TTL was not sent to the millisecond (EX instead of PX?)", ttl, got, passed.Round(time.Millisecond), want, want-passed.Milliseconds()-1)
			}
		}
	})
	t.Run("Expiry", func(t *testing.T) {
		// A key lives for its TTL, not for the TTL rounded to a second:
		// it is there past the whole seconds and gone after the TTL.
		e := newEnv(t, h)
		c := e.conn()
		r := newRand(t)
		for try := range 3 {
			frac := time.Duration(300+r.IntN(400)) * time.Millisecond
			ttl := time.Second + frac
			k := e.key(fmt.Sprintf("k%d", try))
			start := time.Now()
			if ok, err := c.SetNX(bg(), k, "v", ttl); err != nil || !ok {
				t.Fatalf("SetNX(%v) = %v, %v", ttl, ok, err)
			}
			e.advance(time.Second + frac/2)
			_, ok, err := c.Get(bg(), k)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !ok && e.h.Advance == nil && time.Since(start) >= ttl {
				// The machine was too slow to tell: the TTL had run out
				// in real time by the time the Get was back.
				t.Logf("try %d: the Get came back %v after SetNX, past the TTL of %v: trying again", try, time.Since(start).Round(time.Millisecond), ttl)
				continue
			}
			if !ok {
				t.Fatalf("a key set with a TTL of %v was gone after %v: its TTL was rounded down to whole seconds", ttl, time.Second+frac/2)
			}
			e.advance(frac/2 + 100*time.Millisecond)
			if v, ok, err := c.Get(bg(), k); err != nil || ok {
				t.Fatalf("a key set with a TTL of %v still held %q (%v) after %v: its TTL was rounded up", ttl, v, err, ttl+100*time.Millisecond)
			}
			return
		}
		t.Skip("the machine was too slow three times to tell whether the TTL was rounded down")
	})
	t.Run("ScriptReplies", func(t *testing.T) {
		e, _, s := scripter(t, h)
		r := newRand(t)
		keys := []string{e.key("k")}
		for i := range 60 {
			lua, want := genReply(r, 0)
			got, err := s.Eval(bg(), "return "+lua, keys)
			if err != nil {
				t.Fatalf("reply %d: Eval(return %s): %v", i, lua, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("reply %d: Eval(return %s) = %#v, want %#v", i, lua, got, want)
			}
		}
	})
	t.Run("ExecReplies", func(t *testing.T) {
		e, c, w := watcher(t, h)
		_, scripts := c.(driver.Scripter)
		r := newRand(t)
		k, n := e.key("k"), e.key("n")
		kExists := false
		for round := range 8 {
			var cmds [][]string
			var want []any
			add := func(v any, cmd ...string) {
				cmds = append(cmds, cmd)
				want = append(want, v)
			}
			del := func() {
				if kExists {
					add(int64(1), "DEL", k)
				} else {
					add(int64(0), "DEL", k)
				}
				kExists = false
			}
			if scripts {
				// Every round has an array with a nil in it.
				lua, v := genReply(r, 1)
				add(append([]any{nil}, toSlice(v)...), "EVAL", "return {false, "+strings.TrimSuffix(strings.TrimPrefix(lua, "{"), "}")+"}", "0")
			}
			for range 6 {
				switch r.IntN(5) {
				case 0, 1:
					v := genString(r)
					add("OK", "SET", k, v, "PX", "10000")
					add(v, "GET", k)
					kExists = true
				case 2:
					add(nil, "GET", e.key("missing"))
				case 3:
					// INCR of a large or negative number: int64, whole.
					v := genInt(r, true)
					if v == 1<<63-1 {
						v--
					}
					add("OK", "SET", n, strconv.FormatInt(v, 10), "PX", "10000")
					add(v+1, "INCR", n)
					add(strconv.FormatInt(v+1, 10), "GET", n)
				default:
					if scripts {
						lua, v := genReply(r, 0)
						add(v, "EVAL", "return "+lua, "0")
					} else {
						del()
						add("OK", "SET", k, "", "PX", "10000")
						add("", "GET", k)
						kExists = true
					}
				}
			}
			del()
			var got []any
			err := w.Watch(bg(), []string{k, n}, func(tx driver.Tx) error {
				var err error
				got, err = tx.Exec(bg(), cmds...)
				return err
			})
			if err != nil {
				t.Fatalf("round %d: Exec(%q): %v", round, cmds, err)
			}
			if !reflect.DeepEqual(got, want) {
				for i := range min(len(got), len(want)) {
					if !reflect.DeepEqual(got[i], want[i]) {
						t.Fatalf("round %d: Exec reply %d to %q = %#v (%T), want %#v (%T)", round, i, cmds[i], got[i], got[i], want[i], want[i])
					}
				}
				t.Fatalf("round %d: Exec(%q) = %#v, want %#v", round, cmds, got, want)
			}
		}
	})
	t.Run("ErrorTexts", func(t *testing.T) { testErrorTexts(t, h) })
}

// genInt draws an integer: small, negative, or at the edges of what the
// path carries (a Lua number is a double: whole up to 2^53; a reply read
// straight from the server is a full int64).
func genInt(r *rand.Rand, full bool) int64 {
	edge := int64(1<<53 - 1)
	if full {
		edge = 1<<63 - 1
	}
	switch r.IntN(6) {
	case 0:
		return 0
	case 1:
		return r.Int64N(100)
	case 2:
		return -1 - r.Int64N(100)
	case 3:
		return edge - r.Int64N(3)
	case 4:
		return -edge + r.Int64N(3)
	default:
		return r.Int64N(edge) - r.Int64N(edge)
	}
}

// Strings that look like something else: numbers, words a client might
// read as nil or a status, nothing at all.
var trickyStrings = []string{
	"", "0", "42", "-7", "007", "3.14", "1e3", "9223372036854775807", "-9223372036854775808",
	"18446744073709551616", "OK", "nil", "(nil)", "false", "true", "QUEUED", " ", "a b", "ERR not an error",
	"-1", ":1", "+OK", "$-1", "line\r\nbreak",
}

func genString(r *rand.Rand) string {
	if r.IntN(4) == 0 {
		return strconv.FormatInt(genInt(r, true), 10)
	}
	return trickyStrings[r.IntN(len(trickyStrings))]
}

// luaQuote quotes s for Lua 5.1, whose escapes Go's quoting shares for the
// printable ASCII, \r and \n that genString draws.
func luaQuote(s string) string { return strconv.Quote(s) }

// genReply draws a script's return value: its Lua source and the Go
// value a driver must map it to (see the package doc of driver).
func genReply(r *rand.Rand, depth int) (string, any) {
	kinds := 5
	if depth >= 3 {
		kinds = 4 // no deeper arrays
	}
	switch r.IntN(kinds) {
	case 0: // Lua false: a nil bulk string, also inside an array
		return "false", nil
	case 1:
		n := genInt(r, false)
		return strconv.FormatInt(n, 10), n
	case 2:
		s := genString(r)
		return luaQuote(s), s
	case 3:
		s := genString(r)
		if s == "" || strings.ContainsAny(s, "\r\n") {
			s = "OK" // a status reply is one line, not empty
		}
		return "redis.status_reply(" + luaQuote(s) + ")", s
	default:
		n := r.IntN(5)
		parts := make([]string, n)
		vals := make([]any, n)
		for i := range n {
			parts[i], vals[i] = genReply(r, depth+1)
		}
		return "{" + strings.Join(parts, ", ") + "}", vals
	}
}

// classifiedWords are the codes driver.ReplyKind classifies.
var classifiedWords = []string{"NOSCRIPT", "WRONGTYPE", "NOPERM", "BUSY", "LOADING", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "OOM", "READONLY"}

// sentinels are every sentinel a driver's error may match.
var sentinels = []error{driver.ErrNoScript, driver.ErrWrongType, driver.ErrNoPermission, driver.ErrServerRefused, driver.ErrTxAborted}

var fillerWords = []string{"this", "user", "has", "no", "key", "script", "error", "replica", "busy", "loading", "of", "a", "while"}

// errorPlaces are where genErrorText puts a classified word.
const (
	placeStart  = iota // "NOPERM this user ..."
	placeGlued         // "NOPERMX this ...": the word glued to more letters
	placeMiddle        // "ERR no key NOPERM this ..."
	placeAbsent        // "ERR no key ..."
	errorPlaces
)

// genErrorText draws the text of an error reply with code at place, the
// rest filler words.
func genErrorText(r *rand.Rand, code string, place int) string {
	words := func(n int) string {
		w := make([]string, n)
		for i := range w {
			w[i] = fillerWords[r.IntN(len(fillerWords))]
		}
		return strings.Join(w, " ")
	}
	switch place {
	case placeStart:
		return code + " " + words(1+r.IntN(4))
	case placeGlued:
		return code + "X" + " " + words(1+r.IntN(3))
	case placeMiddle:
		return "ERR " + words(1+r.IntN(3)) + " " + code + " " + words(1+r.IntN(3))
	default:
		return "ERR " + words(1+r.IntN(5))
	}
}

// errorTexts returns one generated text for every classified word at every
// place, in a shuffled order.
func errorTexts(r *rand.Rand) []string {
	var out []string
	for _, code := range classifiedWords {
		for place := range errorPlaces {
			out = append(out, genErrorText(r, code, place))
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// checkClassified fails t unless err, the error a driver returned for an
// error reply whose text is text, matches exactly the sentinel that
// driver.ReplyKind gives for text, and no other.
func checkClassified(t *testing.T, what, text string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s for the error reply %q gave no error", what, text)
	}
	want := driver.ReplyKind(text)
	for _, s := range sentinels {
		switch {
		case s == want && !errors.Is(err, s):
			t.Fatalf("%s for the error reply %q: %v, want an error matching %v (the reply starts with its code)", what, text, err, s)
		case s != want && errors.Is(err, s):
			t.Fatalf("%s for the error reply %q: %v, which must not match %v (only a reply that starts with the code does)", what, text, err, s)
		}
	}
}

// testErrorTexts: a driver classifies an error reply by its start only,
// for replies from scripts, from inside EXEC and from plain commands.
func testErrorTexts(t *testing.T, h Harness) {
	t.Run("Script", func(t *testing.T) {
		e, _, s := scripter(t, h)
		r := newRand(t)
		keys := []string{e.key("k")}
		// At once: a client may wait before it tries a refused command
		// again, and the Conn is for concurrent use anyway.
		texts := errorTexts(r)
		errs := make([]error, len(texts))
		var wg sync.WaitGroup
		for i, text := range texts {
			wg.Go(func() {
				_, errs[i] = s.Eval(bg(), "return redis.error_reply("+luaQuote(text)+")", keys)
			})
		}
		wg.Wait()
		for i, text := range texts {
			checkClassified(t, "Eval", text, errs[i])
		}
	})
	t.Run("Exec", func(t *testing.T) {
		e, c, w := watcher(t, h)
		if _, ok := c.(driver.Scripter); !ok {
			t.Skip("driver does not implement driver.Scripter: no script to raise a chosen error inside EXEC")
		}
		r := newRand(t)
		k := e.key("k")
		for _, text := range errorTexts(r) {
			err := w.Watch(bg(), []string{k}, func(tx driver.Tx) error {
				_, err := tx.Exec(bg(), []string{"GET", k}, []string{"EVAL", "return redis.error_reply(" + luaQuote(text) + ")", "0"})
				return err
			})
			checkClassified(t, "Exec of a script inside EXEC", text, err)
		}
	})
	t.Run("Commands", func(t *testing.T) {
		// Replies of a plain command (GET, SET) come through the
		// client's own error type, not a script's: a server of the
		// suite's own answers them with chosen texts.
		e := newEnv(t, h)
		needAddr(t, h)
		r := newRand(t)
		var mu sync.Mutex
		current := "ERR conformance: no reply chosen"
		addr := replyServer(t, func([]string) string {
			// Every command gets the current text, also a client's retry.
			mu.Lock()
			defer mu.Unlock()
			return "-" + current + "\r\n"
		})
		c := e.connTo(addr)
		calls := []struct {
			name string
			run  func(ctx context.Context) error
		}{
			{"Get", func(ctx context.Context) error { _, _, err := c.Get(ctx, e.key("k")); return err }},
			{"SetNX", func(ctx context.Context) error { _, err := c.SetNX(ctx, e.key("k"), "v", time.Second); return err }},
		}
		for _, text := range errorTexts(r) {
			if startsRefused(text) {
				// A client may wait and try a refused command again, as
				// long as its context lets it (rueidis does for anything
				// that starts with LOADING, even LOADINGX):
				// the refusals are checked through scripts above. Here
				// the word goes in the middle, where it must not count.
				text = "ERR while " + text // not "ERR " alone, which some clients drop
			}
			mu.Lock()
			current = text
			mu.Unlock()
			cl := calls[r.IntN(len(calls))]
			ctx, cancel := context.WithTimeout(bg(), 5*time.Second)
			err := cl.run(ctx)
			cancel()
			checkClassified(t, cl.name, text, err)
		}
	})
}

// toSlice returns v's elements if v is an array, or v alone.
func toSlice(v any) []any {
	if a, ok := v.([]any); ok {
		return a
	}
	return []any{v}
}

// startsRefused reports whether text starts with one of the codes of
// driver.ErrServerRefused, as a word or glued to more letters.
func startsRefused(text string) bool {
	for _, code := range classifiedWords[3:] {
		if strings.HasPrefix(text, code) {
			return true
		}
	}
	return false
}

// deleteKey deletes key through the driver itself, as well as it can: a
// script, or DEL inside a transaction.
func deleteKey(c driver.Conn, key string) {
	switch {
	case isScripter(c):
		_, _ = c.(driver.Scripter).Eval(bg(), "return redis.call('DEL', KEYS[1])", []string{key})
	case isWatcher(c):
		_ = c.(driver.Watcher).Watch(bg(), []string{key}, func(tx driver.Tx) error {
			_, err := tx.Exec(bg(), []string{"DEL", key})
			return err
		})
	}
}
