// Command relock is the relock command-line tool.
//
// "relock run" runs a command while holding a lock, like flock(1) across
// machines:
//
//	relock run -ttl 30s nightly-report -- ./report.sh
//
// It waits for the lock (-n: not at all; -wait: at most so long), keeps it
// refreshed while the command runs, passes SIGINT, SIGTERM and SIGHUP on to
// the command, stops the command if the lock is lost, releases the lock at
// the end and exits with the command's exit status, or with one of its own
// codes: 75 not obtained (-E sets another), 69 Redis unavailable, 77 no
// permission, 122 lost while the command ran, 125 relock's own error or bad
// usage, 126 and 127 the command cannot run or is not found (checked before
// the lock is taken). Run "relock run -h" for the details.
//
// "relock leader NAME -- CMD" campaigns in the election NAME and runs CMD
// while it leads, with run's flags, signals and exit codes (75 not
// elected, 122 leadership lost).
//
// "relock hold KEY" takes the lock, prints its token and holds it until a
// signal; "relock status" and "relock release --force" are for operators;
// "relock --version" prints the version.
//
// The subcommand demo shows on any machine with Go that relock's
// locks exclude each other, through every registered adapter:
//
//	go run ./cmd/relock demo
//
// Without -url it starts an embedded miniredis, so no Redis server is
// needed; with -url redis://host:port/db it uses that server, touching only
// keys named relock-demo:<adapter>:<random>:... that it deletes afterwards.
// Run "relock demo -h" for its flags.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	// The adapters register the drivers "goredis", "redigo" and "rueidis",
	// which the demo opens by name with relock.Open.
	_ "github.com/relock-go/relock/adapters/goredis"
	_ "github.com/relock-go/relock/adapters/goredisv8"
	_ "github.com/relock-go/relock/adapters/radix"
	_ "github.com/relock-go/relock/adapters/redigo"
	_ "github.com/relock-go/relock/adapters/rueidis"
	_ "github.com/relock-go/relock/adapters/valkey"
)

func main() {
	ctx, stop := context.Background(), context.CancelFunc(func() {})
	if len(os.Args) < 2 || (os.Args[1] != "run" && os.Args[1] != "hold" && os.Args[1] != "leader") {
		// relock run, hold and leader handle the signals themselves.
		ctx, stop = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	}
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes of run. "relock run" passes on its command's exit status, so
// its own codes avoid the common ones: 1 and 2, the shell's 126, 127 and
// 128+N, and timeout(1)'s 124.
const (
	exitOK          = 0
	exitFailure     = 1   // the command ran and found a problem
	exitUsage       = 2   // bad command line (relock itself, demo)
	exitInterrupted = 130 // Ctrl-C or SIGTERM, as shells report SIGINT

	exitNotObtained = 75  // relock run, hold: the lock is held (-n) or -wait ran out; sysexits' EX_TEMPFAIL; -E sets another
	exitLost        = 122 // relock run: the lock was lost while CMD ran
	exitError       = 125 // relock run: relock's own failure, as coreutils' env, nice and timeout use 125
	exitCannotRun   = 126 // relock run: CMD found but not executable, as in shells
	exitNotFound    = 127 // relock run: CMD not found, as in shells
)

// run executes the subcommand named by args[0] and returns the process's
// exit code. It is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runRun(ctx, args[1:], stdout, stderr, false)
	case "hold":
		return runRun(ctx, args[1:], stdout, stderr, true)
	case "leader":
		return runLeader(ctx, args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionLine())
		return exitOK
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "release":
		return runRelease(ctx, args[1:], stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "relock: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: relock <command> [flags] [arguments]

Commands:
  run     relock run [flags] KEY [flags] [--] CMD [ARGS...]
          relock run [flags] KEY [flags] -c 'SHELL COMMAND'
          run CMD while holding the lock KEY: wait for it, keep it
          refreshed, pass signals on, stop CMD if the lock is lost
  hold    relock hold [flags] KEY
          take the lock KEY, print its token, hold it until SIGINT,
          SIGTERM or SIGHUP, then release it (exit 0)
  leader  relock leader [flags] NAME [flags] [--] CMD [ARGS...]
          campaign in the election NAME and run CMD only while leading,
          as relock run runs it under a lock; resign when CMD exits
  status  relock status [-json] KEY
          show whether KEY is held, its token, metadata, TTL, fence and
          waiters (exit 0 held, 1 free)
  release relock release --force [-token TOKEN] KEY
          release KEY whoever holds it, for operators (exit 0 released,
          1 nothing released)
  demo    contend for one lock from many workers through every adapter, and
          show that no counter update is lost (embedded Redis unless -url)
  version print relock's version (also --version)

Redis: -url URL (default $REDIS_URL, else `+defaultURL+`),
       -driver goredis|goredisv8|radix|redigo|rueidis|valkey (default `+defaultDriver+`),
       -timeout (per call, default `+defaultTimeout.String()+`),
       -connect-timeout (default `+defaultConnectTimeout.String()+`).
Flags go before or after KEY.

Exit status of relock run (and hold; leader, where 75 is not elected
and 122 leadership lost):
  CMD's own  CMD ran while the lock was held throughout (hold: 0)
  128+N      CMD was killed by signal N, or relock was interrupted by
             signal N while waiting for the lock
  75         the lock was not obtained (held, and -n or -wait ran out);
             -E N makes it N
  69         Redis unavailable: nothing listens, no answer in time, TLS
             mismatch, or the server refuses commands for now
  77         Redis refused for lack of permission (NOPERM, failed AUTH)
  122        the lock was lost while CMD ran; CMD was stopped
  125        relock failed: bad usage, or another error
  126, 127   CMD could not be run, or was not found (checked before the
             lock is taken)
status and release exit 69 and 77 as run does, and 125 on bad usage or
another error. relock with no or an unknown command, and demo on bad
usage, exit 2.

Run "relock <command> -h" for a command's flags.
`)
}

// versionLine is what relock --version prints: the module version the
// binary was built from (or "(devel)"), the VCS revision when the build
// recorded one, and the Go version.
func versionLine() string {
	v, rev, dirty := "(unknown)", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		v = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " " + rev
		if dirty {
			v += "+dirty"
		}
	}
	return "relock " + v + " " + runtime.Version()
}
