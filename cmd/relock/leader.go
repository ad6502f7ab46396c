//go:build unix

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/relock-go/relock"
)

// "relock leader" is "relock run" for an election: it campaigns with
// Client.Election(NAME).Campaign instead of obtaining a lock, and runs CMD
// for as long as the term lasts. It is a subcommand of its own rather than
// "relock run --leader" because its command line differs where it matters:
// NAME is an election whose leader is known by a value (-value, not
// -meta), the term is always fenced (no -fence), and the end of CMD is a
// resignation that hands leadership to the next campaigner. Everything
// else (flags, signals, the escalation when the term is lost, exit codes)
// is relock run's, through the same runner.

// heldLock is what runHolding needs of a lock: *relock.Lock, or a term
// (leaderTerm).
type heldLock interface {
	Done() <-chan struct{}
	Err() error
	Token() string
	Fence() int64
	Release(ctx context.Context) error
}

// leaderTerm is a *relock.Term as runHolding sees it: releasing it
// resigns.
type leaderTerm struct{ *relock.Term }

func (t leaderTerm) Release(ctx context.Context) error { return t.Resign(ctx) }

const leaderUsage = `usage: relock leader [flags] NAME [flags] [--] CMD [ARGS...]
       relock leader [flags] NAME [flags] -c 'SHELL COMMAND'

Campaigns in the election NAME and, once elected, runs CMD while it leads:
a CMD that runs on one machine at a time among those that run
"relock leader NAME", and on another as soon as it ends or its machine
dies (after -ttl). relock waits to be elected (unless -n), keeps the term
refreshed every TTL/3 while CMD runs, resigns when CMD exits (the next
campaigner in line is elected at once) and exits with CMD's exit status.
The leader's lock is the key NAME: "relock status NAME" shows who leads
(its value), the fence and the campaigners waiting.

CMD runs in its own process group, with these in its environment:
  RELOCK_ELECTION  the election's name, NAME
  RELOCK_VALUE     the value relock campaigned with (-value)
  RELOCK_FENCE     the term's fencing number, strictly increasing from one
                   term of the election to the next
  RELOCK_KEY       NAME, and RELOCK_TOKEN the term's token, as relock run
                   sets them
Signals, the terminal and a lost term are handled as by relock run: if
leadership is lost while CMD runs (the key expired, was deleted or taken,
or Redis was unreachable for the whole TTL), relock sends -kill-signal to
CMD's process group, SIGKILL after -grace, and exits 122.

Exit status:
  CMD's own     CMD ran while relock led throughout
  128+N         CMD was killed by signal N, or relock was interrupted by
                signal N while it campaigned (CMD did not run)
  75            not elected: another leads and -n given, or the -wait
                budget ran out (EX_TEMPFAIL; -E sets another)
  69            Redis unavailable (EX_UNAVAILABLE)
  77            Redis refused for lack of permission (EX_NOPERM)
  122           leadership was lost while CMD ran; CMD was stopped
  125           relock failed: bad usage, or another error
  126, 127      CMD could not be run, or was not found (as in shells)

Flags:
`

// parseLeaderFlags parses the command line of "relock leader" into a
// runConfig: key is the election's name, meta the campaign value.
func parseLeaderFlags(args []string, stderr io.Writer) (runConfig, error) {
	cfg := runConfig{killSignal: signalFlag{syscall.SIGTERM}, conflictCode: exitNotObtained, fence: true}
	fs := flag.NewFlagSet("relock leader", flag.ContinueOnError)
	cfg.conn.register(fs)
	fs.DurationVar(&cfg.ttl, "ttl", defaultRunTTL, "term TTL, refreshed every TTL/3: how long the others wait for a leader that was killed")
	fs.BoolVar(&cfg.nonblock, "n", false, "do not wait: exit 75 (or -E) at once if another leads")
	fs.BoolVar(&cfg.nonblock, "nonblock", false, "same as -n")
	fs.Var(secondsFlag{&cfg.wait}, "wait", "give up, with exit status 75 (or -E), after campaigning so many `seconds` (5, 0.5) or so long (30s, 2m); 0 waits until elected")
	fs.Var(secondsFlag{&cfg.wait}, "w", "same as -wait `seconds`")
	fs.IntVar(&cfg.conflictCode, "E", exitNotObtained, "exit `status` when not elected (-n, -wait), as flock -E")
	fs.IntVar(&cfg.conflictCode, "conflict-exit-code", exitNotObtained, "same as -E")
	fs.StringVar(&cfg.shell, "c", "", "run this shell `command` with /bin/sh -c instead of CMD")
	fs.Var(&cfg.killSignal, "kill-signal", "`signal` sent to CMD's process group when leadership is lost (name or number)")
	fs.DurationVar(&cfg.grace, "grace", defaultGrace, "after -kill-signal, wait this long for CMD to exit, then send SIGKILL")
	fs.StringVar(&cfg.meta, "value", "", "the `value` to campaign with, which relock status shows as the leader's metadata and CMD gets as RELOCK_VALUE (at most "+strconv.Itoa(relock.MaxMetadataLen)+" bytes); default HOST:PID")
	fs.BoolVar(&cfg.verbose, "v", false, "report on stderr when elected, refreshed and resigned (failed refreshes are always reported), and let the client library log")
	rest, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, leaderUsage)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\n"+connHelp)
		return cfg, err
	}
	if err != nil {
		return cfg, flagError("leader", err)
	}
	cfg.conn.verbose = cfg.verbose
	switch {
	case len(rest) == 0:
		return cfg, errors.New("missing NAME and CMD (see relock leader -h)")
	case rest[0] == "":
		return cfg, errors.New("empty NAME")
	}
	cfg.key, rest = rest[0], rest[1:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	switch {
	case cfg.shell != "" && len(rest) > 0:
		return cfg, fmt.Errorf("-c and CMD %q: give one of them", rest[0])
	case cfg.shell != "":
		cfg.argv = []string{"/bin/sh", "-c", cfg.shell}
	case len(rest) == 0:
		return cfg, errors.New("missing CMD after NAME")
	default:
		cfg.argv = rest
	}
	valueSet := false
	fs.Visit(func(f *flag.Flag) { valueSet = valueSet || f.Name == "value" })
	if !valueSet {
		host, _ := os.Hostname()
		cfg.meta = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	switch {
	case cfg.meta == "":
		return cfg, errors.New("-value: empty")
	case len(cfg.meta) > relock.MaxMetadataLen:
		return cfg, fmt.Errorf("-value: %d bytes, at most %d", len(cfg.meta), relock.MaxMetadataLen)
	case cfg.ttl < relock.MinTTL || cfg.ttl > relock.MaxTTL:
		return cfg, fmt.Errorf("-ttl %v: want %v to %v", cfg.ttl, relock.MinTTL, relock.MaxTTL)
	case cfg.wait < 0:
		return cfg, fmt.Errorf("-wait %v: must not be negative", cfg.wait)
	case cfg.nonblock && cfg.wait > 0:
		return cfg, errors.New("-n and -wait: give one of them")
	case cfg.grace < 0:
		return cfg, fmt.Errorf("-grace %v: must not be negative", cfg.grace)
	case cfg.conflictCode < 0 || cfg.conflictCode > 255:
		return cfg, fmt.Errorf("-E %d: want 0 to 255", cfg.conflictCode)
	}
	return cfg, cfg.conn.check(fs)
}

// runLeader is "relock leader": it returns the exit code. A cancelled
// parent counts as SIGTERM.
func runLeader(parent context.Context, args []string, _, stderr io.Writer) int {
	cfg, err := parseLeaderFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	r := &runner{cfg: cfg, stderr: stderr, sigs: make(chan os.Signal, 8), leader: true}
	if err != nil {
		return r.failf("%v", err)
	}
	client, code := r.start(parent, "no campaign was started")
	if client == nil {
		return code
	}
	defer signal.Stop(r.sigs)
	defer client.Close()
	term, code := r.campaign(parent, client)
	if term == nil {
		return code
	}
	r.env = []string{"RELOCK_ELECTION=" + cfg.key, "RELOCK_VALUE=" + cfg.meta}
	return r.runHolding(parent, leaderTerm{term})
}

// campaign waits to be elected as the flags say, as obtain waits for a
// lock. It returns the term, or nil and the exit code.
func (r *runner) campaign(parent context.Context, client *relock.Client) (*relock.Term, int) {
	cfg := r.cfg
	var term *relock.Term
	var opts []relock.Option
	code := r.seek(parent, client, seeking{
		opts:    opts,
		begin:   fmt.Sprintf("campaigning in %q as %q (ttl %v)", cfg.key, cfg.meta, cfg.ttl),
		waiting: fmt.Sprintf("while campaigning in %q; CMD not run", cfg.key),
		take: func(ctx context.Context, opts []relock.Option) (heldLock, error) {
			t, err := client.Election(cfg.key, opts...).Campaign(ctx, cfg.meta, cfg.ttl)
			if t == nil {
				return nil, err // no typed nil in the interface
			}
			term = t
			return leaderTerm{t}, err
		},
		look: func(ctx context.Context) error {
			_, err := client.Inspect(ctx, cfg.key)
			return err
		},
		taken: fmt.Sprintf("not elected in %q: ", cfg.key),
		held:  "another leads (-n)",
		still: "another still leads after -wait %v",
		won: func(h heldLock, took time.Duration) string {
			return fmt.Sprintf("elected in %q after %v (fence %d)", cfg.key, took.Round(time.Millisecond), h.Fence())
		},
	})
	if code != exitOK {
		return nil, code
	}
	return term, exitOK
}
