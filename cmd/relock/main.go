// Command relock is the relock command-line tool.
//
// Its first subcommand, demo, shows on any machine with Go that relock's
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
	"syscall"

	// The adapters register the drivers "goredis", "redigo" and "rueidis",
	// which the demo opens by name with relock.Open.
	_ "github.com/relock-go/relock/adapters/goredis"
	_ "github.com/relock-go/relock/adapters/redigo"
	_ "github.com/relock-go/relock/adapters/rueidis"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes of run.
const (
	exitOK          = 0
	exitFailure     = 1   // the command ran and found a problem
	exitUsage       = 2   // bad command line
	exitInterrupted = 130 // Ctrl-C or SIGTERM, as shells report SIGINT
)

// run executes the subcommand named by args[0] and returns the process's
// exit code. It is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
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
	fmt.Fprint(w, `usage: relock <command> [flags]

Commands:
  demo    contend for one lock from many workers through every adapter, and
          show that no counter update is lost (embedded Redis unless -url)

Run "relock <command> -h" for a command's flags.
`)
}
