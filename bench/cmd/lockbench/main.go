// Command lockbench runs relock (through each adapter) and its peers —
// redsync, bsm/redislock, rueidislock and a raw SET NX loop — side by side
// against one Redis in one run, one contender at a time, and prints
// markdown tables. See bench/README.md.
//
//	cd bench && go run ./cmd/lockbench                # starts its own redis-server
//	cd bench && go run ./cmd/lockbench -url redis://127.0.0.1:6379/0
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/relock-go/relock/bench/internal/lockbench"
	"github.com/relock-go/relock/tests/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lockbench:", err)
		os.Exit(1)
	}
}

// run is the command: args are its flags, the report goes to stdout and
// progress to stderr. Interrupting ctx ends the run early, with the tables
// so far.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lockbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		url         = fs.String("url", "", "Redis to use, redis://host:port/db; default: start a private redis-server on a free loopback port")
		serverBin   = fs.String("redis-server", "", "redis-server binary to start when -url is not given (default: from PATH)")
		uncDur      = fs.Duration("duration", 2*time.Second, "duration of the uncontended scenario, per contender")
		conDur      = fs.Duration("contended-duration", 3*time.Second, "duration of each contended scenario, per contender")
		only        = fs.String("only", "", "regexp: run only the contenders whose name matches")
		scenarios   = fs.String("scenarios", "uncontended,contended-16,contended-64", "comma-separated: uncontended, contended-N (N workers on one key)")
		workers     = fs.Int("workers", 16, "workers of the uncontended scenario, each on its own key")
		hold        = fs.Duration("hold", time.Millisecond, "contended: how long a worker holds the lock")
		think       = fs.Duration("think", time.Millisecond, "contended: how long a worker waits after a release before it asks again")
		ttl         = fs.Duration("ttl", 10*time.Second, "lock TTL asked for by the contenders that take one")
		drain       = fs.Duration("drain", 10*time.Second, "how long after a scenario's end an Obtain already waiting may go on (the bound of its context)")
		clients     = fs.String("clients", "shared", "shared: one client/locker per contender, used by all workers; per-worker: one per worker, like separate processes")
		pool        = fs.Int("pool", 0, "pool size of pooled clients (go-redis PoolSize, redigo MaxIdle); default: the most workers of any scenario + 16")
		cmdStats    = fs.Bool("cmdstats", true, "count Redis commands with CONFIG RESETSTAT / INFO commandstats (resets the server's statistics)")
		out         = fs.String("o", "", "also write the markdown report to this file")
		list        = fs.Bool("list", false, "list the contenders and exit")
		pauseBetwee = fs.Duration("pause", 200*time.Millisecond, "pause (and GC) between contenders")
		rounds      = fs.Int("rounds", 1, "run every scenario this many times, contenders interleaved, and report each contender's median round")
		note        = fs.String("note", "", "a line of free text for the report's header (what was measured, which relock)")
		cpuProfile  = fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		latencies   = fs.String("latency", "0", "comma-separated one-way latencies (e.g. 0,500us,2ms): for each, the whole run goes through a TCP proxy that delays every chunk by it in each direction (0: straight to Redis); each latency gets its own tables")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}

	all := lockbench.Contenders()
	if *list {
		lockbench.WriteContenders(stdout, all)
		return nil
	}
	var re *regexp.Regexp
	if *only != "" {
		var err error
		if re, err = regexp.Compile(*only); err != nil {
			return fmt.Errorf("-only: %w", err)
		}
	}
	var selected []lockbench.Contender
	for _, c := range all {
		if re == nil || re.MatchString(c.Name) {
			selected = append(selected, c)
		}
	}
	if len(selected) == 0 {
		return fmt.Errorf("-only %q matches no contender (see -list)", *only)
	}
	scs, err := lockbench.ParseScenarios(*scenarios, *workers)
	if err != nil {
		return err
	}
	var perWorker bool
	switch *clients {
	case "shared":
	case "per-worker":
		perWorker = true
	default:
		return fmt.Errorf("-clients %q: want shared or per-worker", *clients)
	}
	maxWorkers := 0
	for _, sc := range scs {
		maxWorkers = max(maxWorkers, sc.Workers)
	}
	if *pool <= 0 {
		*pool = maxWorkers + 16
	}
	if *rounds < 1 {
		return errors.New("-rounds must be at least 1")
	}
	for _, d := range []*time.Duration{uncDur, conDur} {
		if *d <= 0 {
			return errors.New("durations must be positive")
		}
	}
	var lats []time.Duration
	for _, f := range strings.Split(*latencies, ",") {
		f = strings.TrimSpace(f)
		if f == "0" {
			lats = append(lats, 0)
			continue
		}
		d, err := time.ParseDuration(f)
		if err != nil || d < 0 {
			return fmt.Errorf("-latency: %q is not a duration >= 0", f)
		}
		lats = append(lats, d)
	}

	cfg := lockbench.Config{TTL: *ttl, PoolSize: *pool}
	own := *url == ""
	if own {
		srv, err := lockbench.StartServer(*serverBin)
		if err != nil {
			return err
		}
		defer srv.Close()
		cfg.Addr = srv.Addr()
	} else {
		if cfg.Addr, cfg.DB, cfg.Password, err = lockbench.ParseURL(*url); err != nil {
			return fmt.Errorf("-url: %w", err)
		}
	}
	admin := lockbench.NewAdmin(cfg)
	defer admin.Close()
	if err := admin.Ping(ctx); err != nil {
		return fmt.Errorf("redis at %s: %w", cfg.Addr, err)
	}
	version, err := admin.Info(ctx, "server", "redis_version")
	if err != nil {
		version = "unknown"
	}

	p := lockbench.Params{
		UncontendedDuration: *uncDur,
		ContendedDuration:   *conDur,
		Hold:                *hold,
		Think:               *think,
		Drain:               *drain,
		PerWorkerClients:    perWorker,
		CommandStats:        *cmdStats,
		KeyPrefix:           fmt.Sprintf("lockbench:%d", time.Now().UnixNano()),
	}

	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = io.MultiWriter(stdout, f)
	}
	lockbench.WriteHeader(w, lockbench.Env{
		Date:         time.Now(),
		GoVersion:    runtime.Version(),
		OSArch:       runtime.GOOS + "/" + runtime.GOARCH,
		GOMAXPROCS:   runtime.GOMAXPROCS(0),
		NumCPU:       runtime.NumCPU(),
		CPUModel:     lockbench.CPUModel(),
		RedisVersion: version,
		RedisAddr:    cfg.Addr,
		OwnServer:    own,
		TTL:          *ttl,
		Relock:       relockVersion(),
		Note:         *note,
		Params:       p,
	})

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	began := time.Now()
	for _, lat := range lats {
		ccfg := cfg // the contenders' Redis: straight, or through the proxy
		label := ""
		if lat > 0 {
			proxy, err := chaos.NewProxy(cfg.Addr, lat, lat)
			if err != nil {
				return err
			}
			defer proxy.Close()
			ccfg.Addr = proxy.Addr()
			label = fmt.Sprintf("+%v ", lat)
			fmt.Fprintf(w, "# Network latency: %v each way (a TCP proxy in front of Redis, %v added to each round trip)\n\n", lat, 2*lat)
		} else if len(lats) > 1 {
			fmt.Fprintf(w, "# Network latency: none (loopback)\n\n")
		}
		if err := runScenarios(ctx, w, stderr, label, scs, selected, *rounds, *pauseBetwee, ccfg, p, admin); err != nil {
			break
		}
	}
	lockbench.WriteContenders(w, selected)
	fmt.Fprintf(stderr, "done in %v\n", time.Since(began).Round(time.Second))
	return nil
}

// runScenarios runs every scenario, its rounds interleaving the contenders,
// and writes each scenario's table; it returns ctx's error when
// interrupted.
func runScenarios(ctx context.Context, w, stderr io.Writer, label string, scs []lockbench.Scenario, selected []lockbench.Contender, rounds int, pause time.Duration, cfg lockbench.Config, p lockbench.Params, admin *lockbench.Admin) error {
	for _, sc := range scs {
		runs := make([][]*lockbench.Result, len(selected))
		for round := 1; round <= rounds; round++ {
			for i, c := range selected {
				if ctx.Err() != nil {
					break
				}
				fmt.Fprintf(stderr, "%s%-12s %d/%d %-28s ", label, sc.Name, round, rounds, c.Name)
				t0 := time.Now()
				r := lockbench.Run(ctx, c, sc, cfg, p, admin)
				runs[i] = append(runs[i], r)
				fmt.Fprintln(stderr, progress(r, time.Since(t0)))
				runtime.GC()
				time.Sleep(pause)
			}
		}
		var results []*lockbench.Result
		for _, rs := range runs {
			if len(rs) > 0 {
				results = append(results, lockbench.Median(rs))
			}
		}
		lockbench.WriteTable(w, sc, p, results)
		if ctx.Err() != nil {
			fmt.Fprintln(w, "(interrupted)")
			return ctx.Err()
		}
	}
	return nil
}

// relockVersion says which relock was built in, best effort: the module's
// directory (the replace target) and, when it is a git work tree, its
// commit and whether it had uncommitted changes.
func relockVersion() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/relock-go/relock").Output()
	if err != nil {
		return ""
	}
	dir := strings.TrimSpace(string(out))
	desc, err := exec.CommandContext(ctx, "git", "-C", dir, "describe", "--always", "--dirty").Output()
	if err != nil {
		return dir
	}
	return dir + " at " + strings.TrimSpace(string(desc))
}

func progress(r *lockbench.Result, took time.Duration) string {
	if r.SetupErr != nil {
		return "failed: " + r.SetupErr.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%8.0f/s", r.Rate())
	if r.Scenario.Kind == lockbench.Contended {
		fmt.Fprintf(&b, "  held %5.1f%%  violations %d", 100*r.HeldShare(), r.Violations)
	}
	if r.Errors > 0 {
		fmt.Fprintf(&b, "  errors %d", r.Errors)
	}
	fmt.Fprintf(&b, "  (%v)", took.Round(10*time.Millisecond))
	return b.String()
}
