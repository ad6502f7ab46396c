package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// Exit codes of status and release, besides exitOK and exitError.
const (
	exitNotHeld    = 1 // status: the lock is free
	exitNotRelease = 1 // release: nothing released
)

const statusUsage = `usage: relock status [flags] KEY

Prints the state of the lock named KEY, whoever holds it: held or not, the
holder's token and metadata (relock run stores its host, pid and command
name), the remaining TTL, the key's fencing counter, and how many waiters
queue for a hand-over (waiters that poll are not counted). It changes
nothing.

A key that holds a string relock did not write (another library's lock,
say) shows as held, with its value instead of a token and metadata.

Exit status:
  0    the lock is held
  1    the lock is free
  69   Redis unavailable: nothing listens, no answer within
       -connect-timeout/-timeout, TLS mismatch, or the server refuses
       commands for now (EX_UNAVAILABLE)
  77   Redis refused for lack of permission (EX_NOPERM)
  125  relock failed: bad usage, or another error

Flags:
`

// keyFlags parses the flags (before or after KEY) and the single KEY
// argument of status and release. -h prints usage on stderr and gives
// flag.ErrHelp; a bad flag gives a one-line error.
func keyFlags(fs *flag.FlagSet, conn *connFlags, args []string, stderr io.Writer, usage string) (string, error) {
	fs.BoolVar(&conn.verbose, "v", false, "let the client library log on stderr")
	name := strings.TrimPrefix(fs.Name(), "relock ")
	rest, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, usage)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\n"+connHelp)
		return "", err
	}
	if err != nil {
		return "", flagError(name, err)
	}
	if len(rest) > 1 && rest[1] == "--" {
		rest = append(rest[:1], rest[2:]...)
	}
	switch {
	case len(rest) == 0:
		return "", errors.New("missing KEY")
	case len(rest) > 1:
		return "", fmt.Errorf("unexpected argument %q after KEY (relock %s takes one KEY)", rest[1], name)
	case rest[0] == "":
		return "", errors.New("empty KEY")
	}
	return rest[0], conn.check(fs)
}

// relockToken reports whether s has the form of the tokens relock draws:
// 32 lowercase hexadecimal digits. A held key whose value does not start
// with one was written by something else.
func relockToken(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// foreignValue returns the raw value of key when Inspect found it held by
// a value relock did not write, and whether it did.
func foreignValue(ctx context.Context, conn driver.Conn, key string, info relock.Info) (string, bool, error) {
	if !info.Held || relockToken(info.Token) {
		return "", false, nil
	}
	v, ok, err := conn.Get(ctx, key)
	if err != nil || !ok {
		return "", false, err
	}
	return v, true, nil
}

// fail reports err, the error of a Redis call of status or release, and
// returns its exit code.
func (c *connFlags) fail(stderr io.Writer, name string, err error) int {
	f := c.classify(err, true)
	fmt.Fprintf(stderr, "relock %s: %s\n", name, c.message(f))
	return f.code
}

// statusJSON is what status -json prints.
type statusJSON struct {
	Key      string `json:"key"`
	Held     bool   `json:"held"`
	Token    string `json:"token"`
	Metadata string `json:"metadata"`
	TTLms    int64  `json:"ttl_ms"` // -1: the key has no expiry
	Fence    int64  `json:"fence"`
	Waiters  int    `json:"waiters"`
	// Foreign is true when the key holds a string relock did not write;
	// Value is that string, and Token and Metadata are empty.
	Foreign bool   `json:"foreign"`
	Value   string `json:"value,omitempty"`
}

// runStatus is "relock status": it returns the exit code.
func runStatus(parent context.Context, args []string, stdout, stderr io.Writer) int {
	var conn connFlags
	var asJSON bool
	fs := flag.NewFlagSet("relock status", flag.ContinueOnError)
	conn.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print one JSON object: key, held, token, metadata, ttl_ms (-1: no expiry), fence, waiters, foreign, value")
	key, err := keyFlags(fs, &conn, args, stderr, statusUsage)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "relock status: %v\n", err)
		return exitError
	}
	client, raw, err := conn.open()
	if err != nil {
		fmt.Fprintf(stderr, "relock status: %v\n", err)
		return exitError
	}
	defer client.Close()
	// Inspect, perhaps GET.
	ctx, cancel := conn.callContext(parent, 2)
	defer cancel()
	info, err := client.Inspect(ctx, key)
	if err != nil {
		return conn.fail(stderr, "status", err)
	}
	value, foreign, err := foreignValue(ctx, raw, key, info)
	if err != nil {
		return conn.fail(stderr, "status", err)
	}
	if foreign {
		info.Token, info.Metadata = "", ""
	}

	if asJSON {
		out := statusJSON{Key: key, Held: info.Held, Token: info.Token, Metadata: info.Metadata,
			TTLms: info.TTL.Milliseconds(), Fence: info.Fence, Waiters: info.Waiters, Foreign: foreign, Value: value}
		if info.TTL < 0 {
			out.TTLms = -1
		}
		b, _ := json.Marshal(out)
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		printStatus(stdout, key, info, foreign, value)
	}
	if !info.Held {
		return exitNotHeld
	}
	return exitOK
}

func printStatus(w io.Writer, key string, info relock.Info, foreign bool, value string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "key\t%s\n", key)
	if info.Held && foreign {
		fmt.Fprintf(tw, "held\tyes, by a value relock did not write (another library's lock?)\n")
		ttl := info.TTL.String()
		if info.TTL < 0 {
			ttl = "none: the key has no expiry"
		}
		fmt.Fprintf(tw, "ttl\t%s\n", ttl)
		fmt.Fprintf(tw, "value\t%q\n", value)
	} else if info.Held {
		fmt.Fprintf(tw, "held\tyes\n")
		ttl := info.TTL.String()
		if info.TTL < 0 {
			ttl = "none: the key has no expiry (changed outside relock)"
		}
		fmt.Fprintf(tw, "ttl\t%s\n", ttl)
		fmt.Fprintf(tw, "token\t%s\n", info.Token)
		fmt.Fprintf(tw, "metadata\t%s\n", strings.ToValidUTF8(info.Metadata, "?"))
	} else {
		fmt.Fprintf(tw, "held\tno\n")
	}
	fmt.Fprintf(tw, "fence\t%d\n", info.Fence)
	fmt.Fprintf(tw, "waiters\t%d\n", info.Waiters)
	_ = tw.Flush()
}

const releaseUsage = `usage: relock release --force [flags] KEY

Releases the lock named KEY whoever holds it: for operators, when a holder
is known to be dead or stuck and its TTL is too long to wait for. The lock
goes to the first waiter queued for a hand-over, if any. The holder learns
of it at its next refresh: a relock run then stops its CMD and exits 122.
Without --force, relock release refuses. With -token, it releases only
while the key holds that token (as relock status printed it), so that a
lock that changed hands meanwhile is left alone.
A key that holds a string relock did not write (another library's lock, a
stale value) is deleted, provided it still holds the value relock status
would show: a value that changed meanwhile is left alone.

Exit status:
  0    released
  1    nothing released: the lock is free, or held under another token
  69   Redis unavailable (EX_UNAVAILABLE)
  77   Redis refused for lack of permission (EX_NOPERM)
  125  relock failed: bad usage (no --force), or another error

Flags:
`

// deleteIfScript deletes KEYS[1] if it holds ARGV[1].
const deleteIfScript = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`

// runRelease is "relock release": it returns the exit code.
func runRelease(parent context.Context, args []string, stdout, stderr io.Writer) int {
	var conn connFlags
	var force bool
	var token string
	fs := flag.NewFlagSet("relock release", flag.ContinueOnError)
	conn.register(fs)
	fs.BoolVar(&force, "force", false, "release the lock although relock does not hold it: required")
	fs.StringVar(&token, "token", "", "release only while the key holds this `token`")
	key, err := keyFlags(fs, &conn, args, stderr, releaseUsage)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	switch {
	case err != nil:
	case !force:
		err = errors.New("refusing to release a lock another process holds without --force")
	case token != "" && !relockToken(token):
		err = fmt.Errorf("-token %q: a relock token is 32 lowercase hexadecimal digits", token)
	}
	if err != nil {
		fmt.Fprintf(stderr, "relock release: %v\n", err)
		return exitError
	}
	client, raw, err := conn.open()
	if err != nil {
		fmt.Fprintf(stderr, "relock release: %v\n", err)
		return exitError
	}
	defer client.Close()
	// Inspect, perhaps GET, then Attach and Release: four calls at most.
	ctx, cancel := conn.callContext(parent, 4)
	defer cancel()

	if token == "" {
		info, err := client.Inspect(ctx, key)
		if err != nil {
			return conn.fail(stderr, "release", err)
		}
		if !info.Held {
			fmt.Fprintf(stderr, "relock release: %q is not held; nothing released\n", key)
			return exitNotRelease
		}
		value, foreign, err := foreignValue(ctx, raw, key, info)
		if err != nil {
			return conn.fail(stderr, "release", err)
		}
		if foreign {
			return releaseForeign(ctx, &conn, raw, key, value, stdout, stderr)
		}
		token = info.Token
	}
	lock, err := client.Attach(ctx, key, token)
	if err == nil {
		err = lock.Release(ctx)
	}
	switch {
	case errors.Is(err, relock.ErrNotHeld):
		fmt.Fprintf(stderr, "relock release: %q is not held under token %s (released, expired or taken meanwhile); nothing released\n", key, token)
		return exitNotRelease
	case err != nil:
		return conn.fail(stderr, "release", err)
	}
	fmt.Fprintf(stdout, "released %q (token %s)\n", key, token)
	return exitOK
}

// releaseForeign deletes key if it still holds value, a string relock did
// not write.
func releaseForeign(ctx context.Context, conn *connFlags, raw driver.Conn, key, value string, stdout, stderr io.Writer) int {
	s, ok := raw.(driver.Scripter)
	if !ok {
		fmt.Fprintf(stderr, "relock release: %q holds a value relock did not write, and driver %s runs no scripts to delete it safely\n", key, conn.driver)
		return exitError
	}
	reply, err := s.Eval(ctx, deleteIfScript, []string{key}, value)
	if err != nil {
		return conn.fail(stderr, "release", err)
	}
	if n, _ := reply.(int64); n != 1 {
		fmt.Fprintf(stderr, "relock release: %q no longer holds %q (changed meanwhile); nothing released\n", key, value)
		return exitNotRelease
	}
	fmt.Fprintf(stdout, "released %q (it held %q, a value relock did not write)\n", key, value)
	return exitOK
}
