//go:build unix

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/relock-go/relock"
)

// Defaults of "relock run".
const (
	defaultRunTTL = 15 * time.Second
	defaultGrace  = 5 * time.Second
	// releaseTimeout bounds the release at the end, and the clean-up after
	// an interrupted wait.
	releaseTimeout = 5 * time.Second
)

// forwarded are the signals that relock run passes on to CMD. Before CMD
// starts they end the wait for the lock.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// runConfig is the command line of "relock run" and "relock hold".
type runConfig struct {
	conn         connFlags
	hold         bool // relock hold: no CMD, print the token, hold until a signal
	ttl          time.Duration
	nonblock     bool
	wait         time.Duration
	conflictCode int // exit status when the lock is not obtained (-E)
	fence        bool
	killSignal   signalFlag
	grace        time.Duration
	verbose      bool
	meta         string
	shell        string // -c: CMD is sh -c shell
	key          string
	argv         []string // CMD and its arguments
	path         string   // CMD resolved in $PATH
	permits      int      // -permits: a permit of the semaphore KEY (permits.go)
}

// secondsFlag is a flag.Value for a duration given as seconds, as
// flock -w takes it (5, 0.5), or with a unit (500ms, 2m).
type secondsFlag struct{ d *time.Duration }

func (s secondsFlag) String() string {
	if s.d == nil {
		return ""
	}
	return s.d.String()
}

func (s secondsFlag) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > float64(math.MaxInt64/int64(time.Second)) {
			return errors.New("out of range")
		}
		*s.d = time.Duration(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("want seconds (5, 0.5) or a duration (30s, 2m)")
	}
	*s.d = d
	return nil
}

// signalFlag is a flag.Value naming a signal: TERM, SIGTERM or 15.
type signalFlag struct{ sig syscall.Signal }

func (s *signalFlag) String() string {
	if s == nil || s.sig == 0 {
		return ""
	}
	return unix.SignalName(s.sig)
}

func (s *signalFlag) Set(v string) error {
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 || unix.SignalName(syscall.Signal(n)) == "" {
			return fmt.Errorf("no signal numbered %d", n)
		}
		s.sig = syscall.Signal(n)
		return nil
	}
	name := strings.ToUpper(v)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return fmt.Errorf("unknown signal %q", v)
	}
	s.sig = sig
	return nil
}

const runUsage = `usage: relock run [flags] KEY [flags] [--] CMD [ARGS...]
       relock run [flags] KEY [flags] -c 'SHELL COMMAND'

Runs CMD while holding the lock named KEY, like flock(1) across machines.
relock waits for the lock (unless -n), refreshes it every TTL/3 while CMD
runs, releases it when CMD exits, and exits with CMD's exit status.
Flags go before or after KEY; "--" ends them, and everything after the
flags is CMD. With -c, /bin/sh -c runs the string instead of CMD. CMD is
looked up in $PATH before the lock is taken: a CMD that is not found
exits 127 (126 if not executable) without touching Redis.

CMD runs in its own process group, with these in its environment:
  RELOCK_KEY    the lock's key
  RELOCK_TOKEN  the lock's random token (relock status shows the holder's)
  RELOCK_FENCE  the fencing number, strictly increasing across the key's
                holders (not set with -fence=false)
The lock carries -meta (by default relock's host and pid, when it started
asking for the lock, and CMD's name) for "relock status" to show.
SIGINT, SIGTERM and SIGHUP sent to relock are passed on to CMD's process
group. When relock runs in the foreground of a terminal (on its stdin,
stdout or stderr), CMD gets the terminal: Ctrl-C and Ctrl-\ go to CMD directly, and Ctrl-Z stops
CMD and relock with it (a stopped relock does not refresh the lock: it is
lost if stopped longer than the TTL). If the lock is
lost while CMD runs (the key expired, was deleted or taken, or Redis was
unreachable for the whole TTL), relock sends -kill-signal to CMD's process
group, SIGKILL after -grace, and exits 122 whatever CMD returns. If relock
itself is killed with SIGKILL, the kernel sends CMD SIGKILL (Linux).
To hold a lock without a command, see relock hold.

Exit status:
  CMD's own     CMD ran while the lock was held throughout
  128+N         CMD was killed by signal N, or relock was interrupted by
                signal N while it waited for the lock (CMD did not run)
  75            the lock was not obtained: held by another owner and -n
                given, or the -wait budget ran out (EX_TEMPFAIL; -E sets
                another)
  69            Redis unavailable: nothing listens, no answer within
                -connect-timeout/-timeout, TLS mismatch, or the server
                refuses commands for now (EX_UNAVAILABLE)
  77            Redis refused for lack of permission: NOPERM, failed AUTH
                (EX_NOPERM)
  122           the lock was lost while CMD ran; CMD was stopped
  125           relock failed: bad usage, or another error of its own or
                of Redis
  126, 127      CMD could not be run, or was not found (as in shells)

Flags:
`

const holdUsage = `usage: relock hold [flags] KEY [flags]

Takes the lock named KEY, prints its token on stdout, and holds it,
refreshed every TTL/3, until relock gets SIGINT, SIGTERM or SIGHUP; then
it releases the lock and exits 0. Like etcdctl lock without a command: a
script can take a lock in the background and end it with kill.

  relock hold -ttl 1m deploy > token & holder=$!
  ...
  kill $holder; wait $holder

Exit status:
  0             the lock was held until the signal, and released
  75            the lock was not obtained (-n, -wait; -E sets another)
  69            Redis unavailable (EX_UNAVAILABLE)
  77            Redis refused for lack of permission (EX_NOPERM)
  122           the lock was lost while held
  125           relock failed: bad usage, or another error

Flags:
`

// parseRunFlags parses the command line of "relock run", or with hold of
// "relock hold".
func parseRunFlags(args []string, stderr io.Writer, hold bool) (runConfig, error) {
	cfg := runConfig{killSignal: signalFlag{syscall.SIGTERM}, hold: hold, conflictCode: exitNotObtained}
	name, usage := "run", runUsage
	if hold {
		name, usage = "hold", holdUsage
	}
	fs := flag.NewFlagSet("relock "+name, flag.ContinueOnError)
	cfg.conn.register(fs)
	fs.DurationVar(&cfg.ttl, "ttl", defaultRunTTL, "lock TTL, refreshed every TTL/3: how long the lock outlives a relock that was killed")
	fs.BoolVar(&cfg.nonblock, "n", false, "do not wait: exit 75 (or -E) at once if the lock is held")
	fs.BoolVar(&cfg.nonblock, "nonblock", false, "same as -n")
	fs.Var(secondsFlag{&cfg.wait}, "wait", "give up, with exit status 75 (or -E), after waiting so many `seconds` (5, 0.5) or so long (30s, 2m) for the lock; 0 waits until it is free")
	fs.Var(secondsFlag{&cfg.wait}, "w", "same as -wait `seconds`")
	fs.IntVar(&cfg.conflictCode, "E", exitNotObtained, "exit `status` when the lock is not obtained (-n, -wait), as flock -E")
	fs.IntVar(&cfg.conflictCode, "conflict-exit-code", exitNotObtained, "same as -E")
	fs.BoolVar(&cfg.fence, "fence", true, "draw a fencing number (RELOCK_FENCE) from a counter kept next to the lock key (it expires a day after last use); a key containing '}' then needs a {hash tag}")
	if !hold {
		fs.StringVar(&cfg.shell, "c", "", "run this shell `command` with /bin/sh -c instead of CMD")
		fs.Var(&cfg.killSignal, "kill-signal", "`signal` sent to CMD's process group when the lock is lost (name or number)")
		fs.DurationVar(&cfg.grace, "grace", defaultGrace, "after -kill-signal, wait this long for CMD to exit, then send SIGKILL")
	}
	defaultMeta := "host=HOST pid=PID start=TIME cmd=CMD's name"
	if hold {
		defaultMeta = "host=HOST pid=PID start=TIME cmd=hold"
	}
	fs.StringVar(&cfg.meta, "meta", "", "`text` stored with the lock for relock status to show (at most "+strconv.Itoa(relock.MaxMetadataLen)+" bytes); default "+defaultMeta)
	registerPermits(fs, &cfg)
	fs.BoolVar(&cfg.verbose, "v", false, "report on stderr when the lock is obtained, refreshed and released (failed refreshes are always reported), and let the client library log")
	rest, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, usage)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\n"+connHelp)
		return cfg, err
	}
	if err != nil {
		return cfg, flagError(name, err)
	}
	cfg.conn.verbose = cfg.verbose
	switch {
	case len(rest) == 0 && hold:
		return cfg, errors.New("missing KEY")
	case len(rest) == 0:
		return cfg, errors.New("missing KEY and CMD (see relock run -h)")
	case rest[0] == "":
		return cfg, errors.New("empty KEY")
	}
	cfg.key, rest = rest[0], rest[1:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	switch {
	case hold && len(rest) > 0:
		return cfg, fmt.Errorf("unexpected %q after KEY: relock hold runs no command (see relock run)", rest[0])
	case hold:
	case cfg.shell != "" && len(rest) > 0:
		return cfg, fmt.Errorf("-c and CMD %q: give one of them", rest[0])
	case cfg.shell != "":
		cfg.argv = []string{"/bin/sh", "-c", cfg.shell}
	case len(rest) == 0:
		return cfg, errors.New("missing CMD after KEY (relock hold KEY holds a lock without one)")
	default:
		cfg.argv = rest
	}
	metaSet := false
	fs.Visit(func(f *flag.Flag) { metaSet = metaSet || f.Name == "meta" })
	if !metaSet {
		host, _ := os.Hostname()
		what := "hold"
		if len(cfg.argv) > 0 {
			what = filepath.Base(cfg.argv[0])
		}
		// start: when relock started asking for the lock (UTC, RFC 3339), so
		// that relock status shows how long it has been held at most.
		start := time.Now().UTC().Format(time.RFC3339)
		cfg.meta = fmt.Sprintf("host=%s pid=%d start=%s cmd=%s", host, os.Getpid(), start, what)
		if len(cfg.meta) > relock.MaxMetadataLen {
			cfg.meta = strings.ToValidUTF8(cfg.meta[:relock.MaxMetadataLen], "")
		}
	}
	switch {
	case len(cfg.meta) > relock.MaxMetadataLen:
		return cfg, fmt.Errorf("-meta: %d bytes, at most %d", len(cfg.meta), relock.MaxMetadataLen)
	case cfg.ttl < relock.MinTTL || cfg.ttl > relock.MaxTTL:
		return cfg, fmt.Errorf("-ttl %v: want %v to %v", cfg.ttl, relock.MinTTL, relock.MaxTTL)
	case cfg.wait < 0:
		return cfg, fmt.Errorf("-wait %v: must not be negative", cfg.wait)
	case cfg.nonblock && cfg.wait > 0:
		return cfg, errors.New("-n and -wait: give one of them")
	case cfg.grace < 0:
		return cfg, fmt.Errorf("-grace %v: must not be negative", cfg.grace)
	case cfg.permits < 0:
		return cfg, fmt.Errorf("-permits %d: want 1 or more (0: the lock)", cfg.permits)
	case cfg.conflictCode < 0 || cfg.conflictCode > 255:
		return cfg, fmt.Errorf("-E %d: want 0 to 255", cfg.conflictCode)
	}
	return cfg, cfg.conn.check(fs)
}

// resolve looks CMD up as exec would, before the lock is taken: it
// returns the exit status for a CMD that cannot run (127 not found, 126
// not executable) and the error, or exitOK.
func (cfg *runConfig) resolve() (int, error) {
	if cfg.hold {
		return exitOK, nil
	}
	path, err := exec.LookPath(cfg.argv[0])
	switch {
	case err == nil:
		cfg.path = path
		return exitOK, nil
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
		return exitNotFound, err
	}
	return exitCannotRun, err
}

// runner is one "relock run" in progress.
type runner struct {
	cfg  runConfig
	sigs chan os.Signal
	hold bool // relock hold

	leader bool     // relock leader (leader.go)
	env    []string // added to CMD's environment

	mu     sync.Mutex // serialises writes to stderr
	stderr io.Writer
}

// logf writes one line to stderr. It is safe for concurrent use: the
// observer calls it from the refresh goroutine.
func (r *runner) logf(format string, args ...any) {
	name := "relock run: "
	if r.hold {
		name = "relock hold: "
	}
	if r.leader {
		name = "relock leader: "
	}
	line := fmt.Sprintf(name+format+"\n", args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = io.WriteString(r.stderr, line)
}

// observe reports what the auto-refresh does: a failed refresh always (the
// lock may be lost soon), a successful one with -v.
func (r *runner) observe(e relock.Event) {
	switch {
	case e.Kind == relock.EventRefreshFailed:
		r.logf("refresh of %q failed, the lock is lost unless one succeeds in time: %s", e.Key, r.cfg.conn.hidePassword(fmt.Sprint(e.Err)))
	case e.Kind == relock.EventRefreshed && r.cfg.verbose:
		r.logf("refreshed %q (ttl %v)", e.Key, e.TTL)
	}
}

// failf reports an error of relock's own and returns exitError.
func (r *runner) failf(format string, args ...any) int {
	r.logf("%s", r.cfg.conn.hidePassword(fmt.Sprintf(format, args...)))
	return exitError
}

// runRun is "relock run", or with hold "relock hold": it returns the exit
// code. A cancelled parent counts as SIGTERM.
func runRun(parent context.Context, args []string, stdout, stderr io.Writer, hold bool) int {
	cfg, err := parseRunFlags(args, stderr, hold)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	r := &runner{cfg: cfg, stderr: stderr, sigs: make(chan os.Signal, 8), hold: hold}
	if err != nil {
		return r.failf("%v", err)
	}
	client, code := r.start(parent, "the lock was not taken")
	if client == nil {
		return code
	}
	defer signal.Stop(r.sigs)
	defer client.Close()

	lock, code := r.obtain(parent, client)
	if lock == nil {
		return code
	}
	if hold {
		return r.holdUntilSignal(parent, lock, stdout)
	}
	return r.runHolding(parent, lock)
}

// check makes sure that Redis answers before the lock is sought, within
// -connect-timeout plus -timeout: a server that does not answer is
// reported as unavailable (69), not as a lock that is held. It returns
// exitOK, or the exit code after reporting.
func (r *runner) check(parent context.Context, client *relock.Client) int {
	ctx, cancel := r.cfg.conn.callContext(parent, 1)
	defer cancel()
	err := r.cfg.look(ctx, client)
	if err == nil || parent.Err() != nil {
		// An interrupted check: obtain sees the signal or the context.
		return exitOK
	}
	return r.fail(err)
}

// fail reports err, the error of a Redis call, and returns its exit code:
// exitUnavailable (with the likely cause), exitNoPermission or exitError.
func (r *runner) fail(err error) int {
	f := r.cfg.conn.classify(err, true)
	if f.code == exitError && errors.Is(err, relock.ErrInvalidArgument) && r.cfg.fence && strings.Contains(r.cfg.key, "}") {
		return r.failf("%v (a key with '}' needs a {hash tag} for its fencing counter, or -fence=false)", err)
	}
	r.logf("%s", r.cfg.conn.message(f))
	return f.code
}

// obtain takes the lock as the flags say. It returns the lock, or nil and
// the exit code.
func (r *runner) obtain(parent context.Context, client *relock.Client) (*relock.Lock, int) {
	cfg := r.cfg
	opts := []relock.Option{relock.WithAutoRefresh(), relock.WithMetadata(cfg.meta)}
	if cfg.fence {
		opts = append(opts, relock.WithFencing())
	}
	var lock *relock.Lock
	code := r.seek(parent, client, seeking{
		opts:    opts,
		begin:   fmt.Sprintf("obtaining %q (ttl %v)", cfg.key, cfg.ttl),
		waiting: fmt.Sprintf("while waiting for %q; %s", cfg.key, r.notRun()),
		take: func(ctx context.Context, opts []relock.Option) (heldLock, error) {
			l, err := cfg.take(ctx, client, opts)
			if l == nil {
				return nil, err // no typed nil in the interface
			}
			lock = l
			return l, err
		},
		look:  func(ctx context.Context) error { return cfg.look(ctx, client) },
		taken: fmt.Sprintf("lock %q not obtained: ", cfg.key),
		held:  "it is held (-n)",
		still: "still held after -wait %v",
		won: func(h heldLock, took time.Duration) string {
			fence := ""
			if cfg.fence {
				fence = fmt.Sprintf(" (fence %d)", h.Fence())
			}
			return fmt.Sprintf("obtained %q after %v%s", cfg.key, took.Round(time.Millisecond), fence)
		},
	})
	if code != exitOK {
		return nil, code
	}
	return lock, exitOK
}

// seeking is what obtain (a lock) and campaign (a term) tell seek: the
// options besides -n and -wait, how to take it and to look at the key
// once more, and what to log.
type seeking struct {
	opts  []relock.Option
	take  func(ctx context.Context, opts []relock.Option) (heldLock, error)
	look  func(ctx context.Context) error
	begin string // with -v, before
	// waiting ends the line that reports an interruption.
	waiting string
	// taken, then held (-n) or still (with -wait's value), report that
	// another has it.
	taken, held, still string
	won                func(h heldLock, took time.Duration) string // with -v
}

// seek waits for what s.take gets, as the flags say: at once (-n), up to
// -wait, or until a signal, which ends the wait (and what was got after it
// is let go). Not getting it is told apart from Redis that stopped
// answering by a last look at the key. It returns exitOK, or the exit code
// after reporting.
func (r *runner) seek(parent context.Context, client *relock.Client, s seeking) int {
	cfg := r.cfg
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	got := make(chan struct{})
	watched := make(chan os.Signal, 1)
	go func() {
		defer close(watched)
		select {
		case s := <-r.sigs:
			watched <- s
			cancel(fmt.Errorf("interrupted by %s", unix.SignalName(s.(syscall.Signal))))
		case <-got:
		}
	}()

	opts := s.opts
	switch {
	case cfg.nonblock:
		opts = append(opts, relock.WithRetry(relock.NoRetry()))
	case cfg.wait > 0:
		opts = append(opts, relock.WithMaxWait(cfg.wait))
	}
	if cfg.verbose {
		r.logf("%s", s.begin)
	}
	start := time.Now()
	h, err := s.take(ctx, opts)
	close(got)
	sig, interrupted := <-watched

	switch {
	case interrupted || parent.Err() != nil:
		if h != nil {
			if rerr := r.release(h); rerr != nil {
				r.logf("release %q: %v", cfg.key, rerr)
			}
		}
		r.logf("%v %s", context.Cause(ctx), s.waiting)
		return signalExit(sig)
	case errors.Is(err, relock.ErrNotObtained) && !errors.Is(err, relock.ErrUnavailable):
		// Not obtained: because another owner holds it, or because Redis
		// stopped answering while relock waited (a core that does not say
		// ErrUnavailable reports that as not obtained too). A last look
		// tells which.
		cctx, ccancel := cfg.conn.callContext(context.Background(), 1)
		ierr := s.look(cctx)
		ccancel()
		if ierr != nil {
			// The holder seen earlier may be gone: what is known now is
			// that Redis does not answer.
			return r.fail(fmt.Errorf("%w; before that: %v", ierr, err))
		}
		why := s.held
		if !cfg.nonblock {
			why = fmt.Sprintf(s.still, cfg.wait)
		}
		r.logf("%s%s", s.taken, why)
		return cfg.conflictCode
	case err != nil:
		return r.fail(err)
	}
	if cfg.verbose {
		r.logf("%s", s.won(h, time.Since(start)))
	}
	return exitOK
}

// start resolves the flags, takes the signals to pass on, opens the Client
// and checks that Redis answers; notTaken ends the line that reports a
// failed resolution. It returns the Client (the caller closes it), or nil
// and the exit code.
func (r *runner) start(parent context.Context, notTaken string) (*relock.Client, int) {
	if code, err := r.cfg.resolve(); err != nil {
		r.logf("%v; %s", err, notTaken)
		return nil, code
	}
	// From here on the signals are ours to pass on, not to end relock.
	signal.Notify(r.sigs, forwarded...)
	client, _, err := r.cfg.conn.open(relock.WithObserver(relock.ObserverFunc(r.observe)))
	if err != nil {
		signal.Stop(r.sigs)
		return nil, r.failf("%v", err)
	}
	if code := r.check(parent, client); code != exitOK {
		client.Close()
		signal.Stop(r.sigs)
		return nil, code
	}
	return client, exitOK
}

// notRun says what did not happen because the lock was not obtained.
func (r *runner) notRun() string {
	if r.hold {
		return "not held"
	}
	return "CMD not run"
}

// holdUntilSignal is relock hold once the lock is obtained: it prints the
// token and holds the lock until SIGINT, SIGTERM or SIGHUP (or the end of
// parent), then releases it and returns exitOK; exitLost if it is lost
// first.
func (r *runner) holdUntilSignal(parent context.Context, lock *relock.Lock, stdout io.Writer) int {
	if _, err := fmt.Fprintln(stdout, lock.Token()); err != nil {
		r.logf("print the token: %v; releasing %q", err, r.cfg.key)
		if rerr := r.release(lock); rerr != nil {
			r.logf("release %q: %v", r.cfg.key, rerr)
		}
		return exitError
	}
	select {
	case <-lock.Done():
		r.logf("lock %q lost while held (%v); exit %d", r.cfg.key, lock.Err(), exitLost)
		return exitLost
	case s := <-r.sigs:
		if r.cfg.verbose {
			r.logf("%s: releasing %q", unix.SignalName(s.(syscall.Signal)), r.cfg.key)
		}
	case <-parent.Done():
	}
	switch err := r.release(lock); {
	case errors.Is(err, relock.ErrNotHeld):
		r.logf("lock %q was not ours at the end (%v); exit %d", r.cfg.key, err, exitLost)
		return exitLost
	case err != nil:
		r.logf("release %q: %s (it expires within %v)", r.cfg.key, r.cfg.conn.hidePassword(err.Error()), r.cfg.ttl)
	case r.cfg.verbose:
		r.logf("released %q", r.cfg.key)
	}
	return exitOK
}

// signalExit is the exit code for an interruption by sig: 128+N as shells
// report it, exitInterrupted when no signal but a cancelled context.
func signalExit(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return exitInterrupted
}

// release releases lock within releaseTimeout and returns the error.
func (r *runner) release(lock heldLock) error {
	ctx, cancel := context.WithTimeout(context.Background(), min(releaseTimeout, r.cfg.ttl+time.Second))
	defer cancel()
	return lock.Release(ctx)
}

// runHolding runs CMD while lock is held, stops it if the lock is lost,
// releases the lock, and returns the exit code.
func (r *runner) runHolding(parent context.Context, lock heldLock) int {
	cfg := r.cfg
	cmd := exec.Command(cfg.argv[0], cfg.argv[1:]...)
	if cfg.path != "" {
		cmd.Path = cfg.path // as resolved before the lock was taken
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "RELOCK_KEY="+cfg.key, "RELOCK_TOKEN="+lock.Token())
	if cfg.fence {
		cmd.Env = append(cmd.Env, "RELOCK_FENCE="+strconv.FormatInt(lock.Fence(), 10))
	}
	cmd.Env = append(cmd.Env, r.env...)
	tty := foregroundTTY()
	cmd.SysProcAttr = childAttr(tty)

	p, err := startChild(cmd, tty >= 0)
	if err != nil {
		if tty >= 0 {
			takeTerminal(tty)
		}
		code := exitCannotRun
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = exitNotFound
		}
		if rerr := r.release(lock); rerr != nil {
			r.logf("release %q: %v", cfg.key, rerr)
		}
		r.logf("%v", err)
		return code
	}
	if tty >= 0 {
		defer takeTerminal(tty)
	}

	lost := lock.Done()
	interrupt := parent.Done()
	var lostErr error
	var graceOver <-chan time.Time
	var end *childEnd
	for end == nil {
		select {
		case e := <-p.exited:
			end = &e
		case s := <-r.sigs:
			p.signal(s.(syscall.Signal))
		case <-interrupt:
			interrupt = nil
			p.signal(syscall.SIGTERM)
		case <-p.stopped:
			r.suspend(tty, p)
		case <-lost:
			lost = nil
			lostErr = lock.Err()
			r.logf("lock %q lost while CMD ran (%v); sending %v to CMD", cfg.key, lostErr, cfg.killSignal.String())
			p.signal(cfg.killSignal.sig)
			p.signal(syscall.SIGCONT) // a stopped CMD acts on it too
			t := time.NewTimer(cfg.grace)
			defer t.Stop()
			graceOver = t.C
		case <-graceOver:
			graceOver = nil
			r.logf("CMD still running %v after %v; sending SIGKILL", cfg.grace, cfg.killSignal.String())
			p.signal(syscall.SIGKILL)
		}
	}
	if end.err != nil {
		// CMD cannot be waited for: make sure it is gone before the lock is.
		p.signal(syscall.SIGKILL)
		r.logf("wait for CMD: %v", end.err)
		if rerr := r.release(lock); rerr != nil {
			r.logf("release %q: %v", cfg.key, rerr)
		}
		return exitError
	}

	// The lock might have ended while CMD was exiting: count it as lost.
	if lostErr == nil {
		lostErr = lock.Err()
	}
	if lostErr != nil {
		if graceOver != nil && p.groupAlive() {
			// CMD is gone, but processes it started ignore -kill-signal:
			// they get SIGKILL after -grace as CMD would have.
			<-graceOver
			r.logf("processes of CMD still running %v after %v; sending SIGKILL", cfg.grace, cfg.killSignal.String())
			p.signal(syscall.SIGKILL)
		}
		r.logf("exit %d: the lock was lost while CMD ran", exitLost)
		return exitLost
	}
	rerr := r.release(lock)
	switch {
	case errors.Is(rerr, relock.ErrNotHeld):
		// Deleted or taken behind our back since the last refresh: another
		// owner may have held the lock while CMD ran.
		r.logf("lock %q was not ours when CMD ended (%v); exit %d", cfg.key, rerr, exitLost)
		return exitLost
	case rerr != nil:
		// The lock was valid when CMD ended; it expires by itself.
		r.logf("release %q: %v (it expires within %v)", cfg.key, r.cfg.conn.hidePassword(rerr.Error()), cfg.ttl)
	case cfg.verbose:
		r.logf("released %q", cfg.key)
	}
	return exitStatus(end.status)
}

// exitStatus is the shell's view of how CMD ended: its exit code, or
// 128+N when signal N killed it.
func exitStatus(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// suspend is job control for a CMD that has the terminal: when CMD is
// stopped (Ctrl-Z), relock takes the terminal back and stops itself, so
// that the shell sees the job stopped and gets the terminal. Once
// continued (fg or bg), it gives the terminal back to CMD if the shell gave
// it to relock, and continues CMD. The lock is not refreshed while relock
// is stopped: stopped longer than its validity, it is lost when relock
// continues, and CMD is stopped as for any loss.
func (r *runner) suspend(tty int, p *child) {
	takeTerminal(tty)
	stopSelf()
	// Continued.
	if foregroundTTY() == tty {
		giveTerminal(tty, p.pid)
	}
	p.signal(syscall.SIGCONT)
	p.resume <- struct{}{}
}

// child is CMD, started.
type child struct {
	pid     int // also its process group's ID
	exited  chan childEnd
	stopped chan struct{} // CMD was stopped (job control only)
	resume  chan struct{} // sent when the stop has been handled
}

// childEnd is how CMD ended, or why it could not be waited for.
type childEnd struct {
	status syscall.WaitStatus
	err    error
}

// signal sends sig to CMD's process group. Errors (the group is gone) are
// of no interest: exited reports the end.
func (c *child) signal(sig syscall.Signal) {
	_ = syscall.Kill(-c.pid, sig)
}

// groupAlive reports whether some process is left in CMD's process group.
func (c *child) groupAlive() bool {
	return syscall.Kill(-c.pid, 0) == nil
}

// startChild starts cmd and waits for it in a goroutine locked to its OS
// thread, which lives as long as the child: the parent-death signal
// (Linux) is tied to the thread that started the child, not the process.
// With jobControl, a stop of CMD is reported on stopped, and the wait goes
// on once resume is sent.
func startChild(cmd *exec.Cmd, jobControl bool) (*child, error) {
	c := &child{exited: make(chan childEnd, 1), stopped: make(chan struct{}), resume: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		c.pid = cmd.Process.Pid
		started <- nil
		// Wait4 rather than cmd.Wait, which cannot report stops. The
		// standard streams are files: cmd.Wait would have nothing else to
		// do but release the process handle.
		defer cmd.Process.Release()
		options := 0
		if jobControl {
			options = syscall.WUNTRACED
		}
		for {
			var ws syscall.WaitStatus
			_, err := syscall.Wait4(c.pid, &ws, options, nil)
			switch {
			case errors.Is(err, syscall.EINTR):
				continue
			case err != nil:
				c.exited <- childEnd{err: err}
				return
			case ws.Stopped():
				c.stopped <- struct{}{}
				<-c.resume
				continue
			}
			c.exited <- childEnd{status: ws}
			return
		}
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return c, nil
}
