package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
)

// Retry strategy of the demo's clients: short waits, so that a released lock
// is taken again quickly and the demo finishes in a few seconds.
const (
	demoRetryMin = time.Millisecond
	demoRetryMax = 10 * time.Millisecond
)

// noLockRow names the table row of the run without a lock.
const noLockRow = "(no lock)"

// counterTTL is the expiry of the demo's counter keys: they are deleted at
// the end, and expire by themselves if the demo is killed before that.
const counterTTL = 10 * time.Minute

// demoConfig is the demo's command line.
type demoConfig struct {
	url      string
	workers  int
	rounds   int
	ttl      time.Duration
	pause    time.Duration
	timeout  time.Duration
	adapters []string
	verbose  bool // -v: the client libraries may log
}

// demoRow is the outcome of one run: one adapter, or no lock at all.
type demoRow struct {
	name         string
	locked       bool
	workers      int
	acquisitions int             // locks obtained
	expected     int             // increments completed (GET and SET both done)
	actual       int64           // the counter's final value in Redis
	waits        []time.Duration // time each Obtain took, sorted
	elapsed      time.Duration
	err          error
	stopped      bool // by the timeout or an interrupt
}

func (r *demoRow) lost() int64 { return int64(r.expected) - r.actual }

// failed reports a row that errored, or a lock row that lost an update.
// The no-lock row is there to lose updates.
func (r *demoRow) failed() bool {
	return r.err != nil || (r.locked && r.lost() != 0)
}

func parseDemoFlags(args []string, stderr io.Writer) (demoConfig, error) {
	var cfg demoConfig
	var adapters string
	all := relock.Drivers()
	fs := flag.NewFlagSet("relock demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.url, "url", "", "Redis `URL` (redis://host:port/db); empty starts an embedded miniredis")
	fs.IntVar(&cfg.workers, "workers", 8, "`number` of workers contending for the lock")
	fs.IntVar(&cfg.rounds, "rounds", 50, "increments per worker, one lock acquisition each")
	fs.DurationVar(&cfg.ttl, "ttl", 2*time.Second, "lock TTL")
	fs.DurationVar(&cfg.pause, "pause", 200*time.Microsecond, "sleep between a worker's GET and SET of the counter, to widen the race window")
	fs.DurationVar(&cfg.timeout, "timeout", 60*time.Second, "give up after this long")
	fs.StringVar(&adapters, "adapters", strings.Join(all, ","), "comma-separated `drivers` to run")
	fs.BoolVar(&cfg.verbose, "v", false, "let the client libraries log on stderr (go-redis's dial failures)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: relock demo [flags]

Runs -workers goroutines that each increment a counter stored in Redis
-rounds times with a non-atomic GET, sleep, SET. They do it once without a
lock, which loses updates, then once per adapter around one relock lock,
which must lose none. Exits 1 if an adapter loses an update or fails.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case cfg.workers < 1 || cfg.workers > 1000:
		return cfg, fmt.Errorf("-workers %d: want 1 to 1000", cfg.workers)
	case cfg.rounds < 1 || cfg.rounds > 1_000_000:
		return cfg, fmt.Errorf("-rounds %d: want 1 to 1000000", cfg.rounds)
	case cfg.ttl < relock.MinTTL || cfg.ttl > relock.MaxTTL:
		return cfg, fmt.Errorf("-ttl %v: want %v to %v", cfg.ttl, relock.MinTTL, relock.MaxTTL)
	case cfg.pause < 0:
		return cfg, fmt.Errorf("-pause %v: must not be negative", cfg.pause)
	case cfg.timeout <= 0:
		return cfg, fmt.Errorf("-timeout %v: must be positive", cfg.timeout)
	}
	for _, a := range strings.Split(adapters, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !slices.Contains(all, a) {
			return cfg, fmt.Errorf("-adapters: unknown driver %q (registered: %s)", a, strings.Join(all, ", "))
		}
		if !slices.Contains(cfg.adapters, a) {
			cfg.adapters = append(cfg.adapters, a)
		}
	}
	if len(cfg.adapters) == 0 {
		return cfg, errors.New("-adapters: no driver named")
	}
	return cfg, nil
}

// runDemo is "relock demo": it returns the exit code.
func runDemo(parent context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseDemoFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "relock demo: %v\n", err)
		return exitUsage
	}

	if !cfg.verbose {
		redis.SetLogger(quietLogger{})
	}
	ctx, cancel := context.WithTimeout(parent, cfg.timeout)
	defer cancel()

	where := cfg.url
	if cfg.url == "" {
		addr, stop, err := startEmbedded()
		if err != nil {
			fmt.Fprintf(stderr, "relock demo: start embedded miniredis: %v\n", err)
			return exitFailure
		}
		defer stop()
		cfg.url = "redis://" + addr
		where = "embedded miniredis at " + addr + " (pass -url redis://host:port/db for a real server)"
	}

	// The counter lives in Redis and is read and written with a plain
	// go-redis client: relock's driver interface only locks.
	opt, err := redis.ParseURL(cfg.url)
	if err != nil {
		fmt.Fprintf(stderr, "relock demo: -url: %v\n", err)
		return exitUsage
	}
	opt.PoolSize = max(opt.PoolSize, cfg.workers+1)
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		fmt.Fprintf(stderr, "relock demo: cannot reach Redis at %s: %v\n", redactURL(cfg.url), err)
		return exitCode(parent, exitFailure)
	}

	runID := randomID()
	fmt.Fprintf(stdout, "redis:  %s\n", redactWhere(where))
	fmt.Fprintf(stdout, "demo:   %d workers x %d increments (GET counter, sleep %v, SET counter+1), lock TTL %v, retry ExponentialRetry(%v, %v), run %s\n\n",
		cfg.workers, cfg.rounds, cfg.pause, cfg.ttl, demoRetryMin, demoRetryMax, runID)

	rows := []*demoRow{runNoLock(ctx, rdb, cfg, runID)}
	for _, name := range cfg.adapters {
		if ctx.Err() != nil {
			break
		}
		rows = append(rows, runAdapter(ctx, rdb, cfg, name, runID))
	}

	printTable(stdout, rows)
	fmt.Fprintln(stdout)

	var failed []string
	for _, r := range rows {
		if r.err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", r.name, r.err)
		}
		if r.failed() {
			failed = append(failed, r.name)
		}
	}
	switch {
	case parent.Err() != nil:
		fmt.Fprintln(stderr, "relock demo: interrupted")
		return exitInterrupted
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "relock demo: gave up after -timeout %v\n", cfg.timeout)
		return exitFailure
	case len(rows) != len(cfg.adapters)+1:
		return exitFailure
	case len(failed) > 0:
		fmt.Fprintf(stdout, "FAIL: %s lost updates or failed.\n", strings.Join(failed, ", "))
		return exitFailure
	}
	through := strings.Join(cfg.adapters, ", ")
	if lost := rows[0].lost(); lost > 0 {
		fmt.Fprintf(stdout, "Without a lock %d of %d updates were lost; with the lock none was, through %s.\n", lost, rows[0].expected, through)
	} else {
		fmt.Fprintf(stdout, "Without a lock no update happened to be lost this time (races depend on timing); with the lock none was, through %s.\n", through)
	}
	return exitOK
}

// startEmbedded starts a miniredis server and returns its address and a
// function that stops it. miniredis expires keys only when told to, so a
// goroutine advances its clock in step with the real one: lock TTLs then
// run out as they would on Redis.
func startEmbedded() (addr string, stop func(), err error) {
	mr, err := miniredis.Run()
	if err != nil {
		return "", nil, err
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				mr.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return mr.Addr(), func() {
		close(done)
		wg.Wait()
		mr.Close()
	}, nil
}

// exitCode returns code, or exitInterrupted when parent was cancelled.
func exitCode(parent context.Context, code int) int {
	if parent.Err() != nil {
		return exitInterrupted
	}
	return code
}

// runNoLock runs the workers without a lock, to show that the
// read-modify-write does lose updates when nothing excludes the workers.
func runNoLock(ctx context.Context, rdb *redis.Client, cfg demoConfig, runID string) *demoRow {
	counter := fmt.Sprintf("relock-demo:nolock:%s:counter", runID)
	row := &demoRow{name: noLockRow, workers: cfg.workers}
	runWorkers(ctx, rdb, cfg, counter, row, nil)
	return row
}

// runAdapter opens a relock client through the named driver and runs the
// workers around one lock.
func runAdapter(ctx context.Context, rdb *redis.Client, cfg demoConfig, name, runID string) *demoRow {
	row := &demoRow{name: name, locked: true, workers: cfg.workers}
	client, err := relock.Open(name, cfg.url,
		relock.WithRetry(relock.ExponentialRetry(demoRetryMin, demoRetryMax)))
	if err != nil {
		row.err = err
		return row
	}
	defer client.Close()
	base := fmt.Sprintf("relock-demo:%s:%s", name, runID)
	lockKey, counter := base+":lock", base+":counter"
	defer func() {
		// Normally already gone: every lock was released.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = rdb.Del(dctx, lockKey).Err()
	}()

	obtain := func(ctx context.Context) (*relock.Lock, error) {
		return client.Obtain(ctx, lockKey, cfg.ttl)
	}
	runWorkers(ctx, rdb, cfg, counter, row, obtain)
	return row
}

// runWorkers runs cfg.workers goroutines that each increment counter
// cfg.rounds times, holding a lock from obtain around each increment (none
// when obtain is nil), and fills in row. The first error stops every worker.
// The counter key is deleted at the end.
func runWorkers(parent context.Context, rdb *redis.Client, cfg demoConfig, counter string,
	row *demoRow, obtain func(context.Context) (*relock.Lock, error)) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 5*time.Second)
		defer cancel()
		_ = rdb.Del(dctx, counter).Err()
	}()

	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	type tally struct {
		acquired, done int
		waits          []time.Duration
	}
	tallies := make([]tally, cfg.workers)

	start := time.Now()
	for w := range cfg.workers {
		wg.Add(1)
		go func(t *tally) {
			defer wg.Done()
			t.waits = make([]time.Duration, 0, cfg.rounds)
			for range cfg.rounds {
				var lock *relock.Lock
				if obtain != nil {
					t0 := time.Now()
					l, err := obtain(ctx)
					if err != nil {
						fail(err)
						return
					}
					t.waits = append(t.waits, time.Since(t0))
					t.acquired++
					lock = l
				}
				err := increment(ctx, rdb, counter, cfg.pause)
				if err == nil {
					t.done++
				}
				if lock != nil {
					if rerr := release(ctx, lock); rerr != nil && err == nil {
						err = rerr
					}
				}
				if err != nil {
					fail(err)
					return
				}
			}
		}(&tallies[w])
	}
	wg.Wait()
	row.elapsed = time.Since(start)

	for _, t := range tallies {
		row.acquisitions += t.acquired
		row.expected += t.done
		row.waits = append(row.waits, t.waits...)
	}
	slices.Sort(row.waits)
	row.err = firstErr
	if firstErr != nil && parent.Err() != nil {
		row.err = fmt.Errorf("stopped: %w", context.Cause(parent))
		row.stopped = true
	}

	// Read the result even when the run stopped early, so the row shows
	// what happened so far.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(parent), 5*time.Second)
	defer rcancel()
	n, err := rdb.Get(rctx, counter).Int64()
	if errors.Is(err, redis.Nil) {
		n, err = 0, nil
	}
	if err != nil && row.err == nil {
		row.err = fmt.Errorf("read counter: %w", err)
	}
	row.actual = n
}

// increment is the deliberately racy read-modify-write: GET, pause, SET.
func increment(ctx context.Context, rdb *redis.Client, key string, pause time.Duration) error {
	n, err := rdb.Get(ctx, key).Int64()
	if errors.Is(err, redis.Nil) {
		n, err = 0, nil
	}
	if err != nil {
		return fmt.Errorf("GET counter: %w", err)
	}
	if pause > 0 {
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if err := rdb.Set(ctx, key, n+1, counterTTL).Err(); err != nil {
		return fmt.Errorf("SET counter: %w", err)
	}
	return nil
}

// release releases lock even when ctx is over (the run was stopped), so the
// lock does not linger until its TTL. ErrNotHeld means the lock expired
// while held: -ttl is too short for the critical section, and the counter
// may have lost updates.
func release(ctx context.Context, lock *relock.Lock) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := lock.Release(rctx)
	if errors.Is(err, relock.ErrNotHeld) {
		return fmt.Errorf("%w: the lock expired while held (is -ttl shorter than one increment?)", err)
	}
	return err
}

func printTable(w io.Writer, rows []*demoRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADAPTER\tWORKERS\tACQUISITIONS\tEXPECTED\tACTUAL\tLOST\tWAIT P50\tWAIT P99\tWAIT MAX\tELAPSED\tRESULT")
	for _, r := range rows {
		acq, p50, p99, pmax := "-", "-", "-", "-"
		if r.locked {
			acq = fmt.Sprint(r.acquisitions)
			p50, p99 = fmtDur(percentile(r.waits, 0.50)), fmtDur(percentile(r.waits, 0.99))
			pmax = fmtDur(percentile(r.waits, 1))
		}
		result := "ok"
		switch {
		case r.stopped:
			result = "stopped"
		case r.err != nil:
			result = "ERROR"
		case !r.locked:
			result = "lost updates expected without a lock"
		case r.lost() != 0:
			result = "LOST UPDATES"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n",
			r.name, r.workers, acq, r.expected, r.actual, r.lost(), p50, p99, pmax, fmtDur(r.elapsed), result)
	}
	_ = tw.Flush()
}

// percentile returns the nearest-rank p-quantile of sorted, 0 when empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// redactURL hides a password in a Redis URL before it is printed.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func redactWhere(where string) string {
	if strings.HasPrefix(where, "redis://") || strings.HasPrefix(where, "rediss://") {
		return redactURL(where)
	}
	return where
}
