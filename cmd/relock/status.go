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
	"time"

	"github.com/relock-go/relock"
)

// opTimeout bounds the Redis calls of status and release.
const opTimeout = 30 * time.Second

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

Exit status:
  0    the lock is held
  1    the lock is free
  125  relock failed: bad usage, Redis unreachable or in error

Flags:
`

// keyFlags parses the flags and the single KEY argument of status and
// release.
func keyFlags(fs *flag.FlagSet, conn *connFlags, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	switch {
	case fs.NArg() == 0:
		return "", errors.New("missing KEY")
	case fs.NArg() > 1:
		return "", fmt.Errorf("unexpected argument %q after KEY (flags go before KEY)", fs.Arg(1))
	case fs.Arg(0) == "":
		return "", errors.New("empty KEY")
	}
	return fs.Arg(0), conn.check()
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
}

// runStatus is "relock status": it returns the exit code.
func runStatus(parent context.Context, args []string, stdout, stderr io.Writer) int {
	var conn connFlags
	var asJSON bool
	fs := flag.NewFlagSet("relock status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conn.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print one JSON object: key, held, token, metadata, ttl_ms (-1: no expiry), fence, waiters")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), statusUsage)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), "\n"+connHelp)
	}
	key, err := keyFlags(fs, &conn, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "relock status: %v\n", err)
		return exitError
	}
	client, err := conn.open()
	if err != nil {
		fmt.Fprintf(stderr, "relock status: %v\n", err)
		return exitError
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(parent, opTimeout)
	defer cancel()
	info, err := client.Inspect(ctx, key)
	if err != nil {
		fmt.Fprintf(stderr, "relock status: %s\n", conn.hidePassword(err.Error()))
		return exitError
	}

	if asJSON {
		out := statusJSON{Key: key, Held: info.Held, Token: info.Token, Metadata: info.Metadata,
			TTLms: info.TTL.Milliseconds(), Fence: info.Fence, Waiters: info.Waiters}
		if info.TTL < 0 {
			out.TTLms = -1
		}
		b, _ := json.Marshal(out)
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		printStatus(stdout, key, info)
	}
	if !info.Held {
		return exitNotHeld
	}
	return exitOK
}

func printStatus(w io.Writer, key string, info relock.Info) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "key\t%s\n", key)
	if info.Held {
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

Exit status:
  0    released
  1    nothing released: the lock is free, or held under another token
  125  relock failed: bad usage (no --force), Redis unreachable or in error

Flags:
`

// runRelease is "relock release": it returns the exit code.
func runRelease(parent context.Context, args []string, stdout, stderr io.Writer) int {
	var conn connFlags
	var force bool
	var token string
	fs := flag.NewFlagSet("relock release", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conn.register(fs)
	fs.BoolVar(&force, "force", false, "release the lock although relock does not hold it: required")
	fs.StringVar(&token, "token", "", "release only while the key holds this `token`")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), releaseUsage)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), "\n"+connHelp)
	}
	key, err := keyFlags(fs, &conn, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err == nil && !force {
		err = errors.New("refusing to release a lock another process holds without --force")
	}
	if err != nil {
		fmt.Fprintf(stderr, "relock release: %v\n", err)
		return exitError
	}
	client, err := conn.open()
	if err != nil {
		fmt.Fprintf(stderr, "relock release: %v\n", err)
		return exitError
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(parent, opTimeout)
	defer cancel()

	if token == "" {
		info, err := client.Inspect(ctx, key)
		if err != nil {
			fmt.Fprintf(stderr, "relock release: %s\n", conn.hidePassword(err.Error()))
			return exitError
		}
		if !info.Held {
			fmt.Fprintf(stderr, "relock release: %q is not held; nothing released\n", key)
			return exitNotRelease
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
		fmt.Fprintf(stderr, "relock release: %s\n", conn.hidePassword(err.Error()))
		return exitError
	}
	fmt.Fprintf(stdout, "released %q (token %s)\n", key, token)
	return exitOK
}
