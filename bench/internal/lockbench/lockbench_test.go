package lockbench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/relock-go/relock/internal/testkit/testredis"
)

// startRedis starts a private redis-server for the test, or skips when
// there is none (fails instead when RELOCK_REQUIRE_REDIS=1, as in CI).
func startRedis(t *testing.T) Config {
	t.Helper()
	srv := testredis.Start(t)
	return Config{Addr: srv.Addr(), TTL: 10 * time.Second, PoolSize: 32}
}

// TestEveryContender runs each contender briefly in both scenario kinds
// against a real server: every one must obtain locks, and relock must
// never let two workers in at once nor report an error. Peers' violations
// and errors are logged, not failed on.
func TestEveryContender(t *testing.T) {
	cfg := startRedis(t)
	admin := NewAdmin(cfg)
	defer admin.Close()
	p := Params{
		UncontendedDuration: 100 * time.Millisecond,
		ContendedDuration:   200 * time.Millisecond,
		Hold:                time.Millisecond,
		Think:               time.Millisecond,
		Drain:               2 * time.Second,
		CommandStats:        true,
		KeyPrefix:           "lockbench-test",
	}
	scenarios := []Scenario{
		{Name: "uncontended", Kind: Uncontended, Workers: 4},
		{Name: "contended-8", Kind: Contended, Workers: 8},
	}
	cs := Contenders()
	if len(cs) < 13 {
		t.Fatalf("only %d contenders", len(cs))
	}
	names := map[string]bool{}
	for _, c := range cs {
		if names[c.Name] {
			t.Fatalf("duplicate contender name %q", c.Name)
		}
		names[c.Name] = true
	}
	if !names[RawName] {
		t.Fatalf("no %s contender", RawName)
	}
	// Every contender runs on a known client, and that client has its raw
	// loop, so every uncontended rate has its baseline.
	for _, c := range cs {
		switch c.Client {
		case "goredis", "redigo", "rueidis":
		case "goredisv8", "valkey", "radix":
			if c.Raw == "" {
				t.Errorf("%s: client %q has no raw loop of its own; want Raw set", c.Name, c.Client)
			}
		default:
			t.Errorf("%s: client %q, want one of the six adapters' clients", c.Name, c.Client)
		}
		if !names[RawFor(c)] {
			t.Errorf("%s: no raw loop %s to compare with", c.Name, RawFor(c))
		}
	}
	for _, want := range []string{"relock/redigo/default", "raw/redigo", "rueidislock/best", "raw/rueidis"} {
		if !names[want] {
			t.Errorf("no contender %s", want)
		}
	}
	if got := RawFor(byName(cs, "rueidislock/best")); got != "raw/rueidis" {
		t.Errorf("rueidislock is compared with %s, want raw/rueidis", got)
	}
	if got := RawFor(byName(cs, "redislock/default")); got != "raw/goredis" {
		t.Errorf("redislock is compared with %s, want raw/goredis", got)
	}

	for _, c := range cs {
		t.Run(strings.ReplaceAll(c.Name, "/", "_"), func(t *testing.T) {
			for _, sc := range scenarios {
				for _, perWorker := range []bool{false, true} {
					if perWorker && (sc.Kind == Uncontended || testing.Short()) {
						// Under -short the per-worker clients are left to
						// the full run: 29 contenders, a contended run of
						// 200 ms and its drain each.
						continue
					}
					p := p
					p.PerWorkerClients = perWorker
					r := Run(context.Background(), c, sc, cfg, p, admin)
					if r.SetupErr != nil {
						t.Fatalf("%s (per-worker %v): %v", sc.Name, perWorker, r.SetupErr)
					}
					if r.Acquisitions == 0 {
						t.Errorf("%s (per-worker %v): no acquisition", sc.Name, perWorker)
					}
					if r.Sent <= 0 || r.Commands <= 0 {
						t.Errorf("%s: sent %d, commands %d: counting is broken", sc.Name, r.Sent, r.Commands)
					}
					if len(r.PerWorker) != sc.Workers {
						t.Errorf("%s: %d per-worker tallies, want %d", sc.Name, len(r.PerWorker), sc.Workers)
					}
					if c.MustExclude {
						if r.Unfinished > 0 {
							t.Errorf("%s (per-worker %v): %d obtains still waiting at the drain's end", sc.Name, perWorker, r.Unfinished)
						}
						if r.Violations != 0 {
							t.Errorf("%s (per-worker %v): %d mutual-exclusion violations", sc.Name, perWorker, r.Violations)
						}
						if r.Errors != 0 {
							t.Errorf("%s (per-worker %v): %d errors, first: %s", sc.Name, perWorker, r.Errors, r.FirstError)
						}
					} else if r.Violations != 0 || r.Errors != 0 || r.Unfinished != 0 {
						t.Logf("%s (per-worker %v): peer had %d violations, %d errors (%s), %d obtains still waiting at the drain's end",
							sc.Name, perWorker, r.Violations, r.Errors, r.FirstError, r.Unfinished)
					}
					t.Logf("%s per-worker=%v: %d acquisitions, %.0f/s, held %.0f%%, %.1f sent/acq, %.1f calls/acq, %d give-ups",
						sc.Name, perWorker, r.Acquisitions, r.Rate(), 100*r.HeldShare(),
						r.SentPerAcquisition(), r.CommandsPerAcquisition(), r.GiveUps)
				}
			}
		})
	}
}

// TestExclusionGuard checks that the guard sees an overlap: a "lock" that
// excludes nobody must be reported.
func TestExclusionGuard(t *testing.T) {
	c := Contender{Name: "nolock", Open: func(Config) (Session, error) { return noLock{}, nil }}
	p := Params{ContendedDuration: 100 * time.Millisecond, Hold: time.Millisecond, Drain: time.Second}
	r := Run(context.Background(), c, Scenario{Name: "contended-8", Kind: Contended, Workers: 8}, Config{}, p, nil)
	if r.SetupErr != nil {
		t.Fatal(r.SetupErr)
	}
	if r.Violations == 0 {
		t.Fatalf("no violation seen with %d acquisitions by 8 workers of a lock that excludes nobody", r.Acquisitions)
	}
	if r.HeldShare() <= 1 {
		t.Errorf("held share %.2f: overlapping holds should add up past 100%%", r.HeldShare())
	}
}

// TestPermitGuard checks the guard of a contender with permits: 8 workers
// of a lock that excludes nobody exceed 4 permits, and never 8.
func TestPermitGuard(t *testing.T) {
	p := Params{ContendedDuration: 100 * time.Millisecond, Hold: time.Millisecond, Drain: time.Second}
	sc := Scenario{Name: "contended-8", Kind: Contended, Workers: 8}
	for _, permits := range []int{4, 8} {
		c := Contender{Name: "nolock", Permits: permits, Open: func(Config) (Session, error) { return noLock{}, nil }}
		r := Run(context.Background(), c, sc, Config{}, p, nil)
		if r.SetupErr != nil {
			t.Fatal(r.SetupErr)
		}
		switch {
		case permits < sc.Workers && r.Violations == 0:
			t.Errorf("%d permits: no violation seen with %d acquisitions by %d workers of a lock that excludes nobody", permits, r.Acquisitions, sc.Workers)
		case permits >= sc.Workers && r.Violations != 0:
			t.Errorf("%d permits: %d violations with only %d workers", permits, r.Violations, sc.Workers)
		}
	}
}

type noLock struct{}

func (noLock) Lock(context.Context, string) (Unlock, error) {
	return func(context.Context) error { return nil }, nil
}
func (noLock) Close() error { return nil }

// TestGiveUpsAreRetried checks that a library that gives up is called again
// and its give-ups counted, and that the wait runs from the first call.
func TestGiveUpsAreRetried(t *testing.T) {
	s := &flaky{}
	c := Contender{Name: "flaky", Open: func(Config) (Session, error) { return s, nil }}
	p := Params{ContendedDuration: 50 * time.Millisecond, Drain: time.Second}
	r := Run(context.Background(), c, Scenario{Name: "contended-1", Kind: Contended, Workers: 1}, Config{}, p, nil)
	if r.SetupErr != nil {
		t.Fatal(r.SetupErr)
	}
	if r.GiveUps == 0 || r.Acquisitions == 0 {
		t.Fatalf("give-ups %d, acquisitions %d", r.GiveUps, r.Acquisitions)
	}
	if r.Errors != 0 {
		t.Fatalf("give-ups counted as errors: %d (%s)", r.Errors, r.FirstError)
	}
	if r.Percentile(0.5) < 2*time.Millisecond {
		t.Errorf("median wait %v: the wait should include the calls that gave up (2 x 1ms)", r.Percentile(0.5))
	}
}

// flaky gives up twice (after 1 ms each), then succeeds.
type flaky struct{ n int }

func (f *flaky) Lock(ctx context.Context, _ string) (Unlock, error) {
	f.n++
	if f.n%3 != 0 {
		time.Sleep(time.Millisecond)
		return nil, gaveUp(ctx, context.DeadlineExceeded)
	}
	return func(context.Context) error { return nil }, nil
}
func (f *flaky) Close() error { return nil }

func TestParseScenarios(t *testing.T) {
	got, err := ParseScenarios("uncontended, contended-16,contended-64,contended", 16)
	if err != nil {
		t.Fatal(err)
	}
	want := []Scenario{
		{"uncontended", Uncontended, 16},
		{"contended-16", Contended, 16},
		{"contended-64", Contended, 64},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"", "contended-0", "contended-x", "other"} {
		if _, err := ParseScenarios(bad, 16); err == nil {
			t.Errorf("ParseScenarios(%q) accepted", bad)
		}
	}
}

func TestParseCommandStats(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_set:calls=12,usec=34,usec_per_call=2.83,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_evalsha:calls=5,usec=50,usec_per_call=10.00,rejected_calls=0,failed_calls=1\r\n" +
		"cmdstat_config|resetstat:calls=1,usec=9,usec_per_call=9.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_info:calls=3,usec=9,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n"
	m, err := parseCommandStats(info)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m["set"] != 12 || m["evalsha"] != 5 || sumCalls(m) != 17 {
		t.Fatalf("got %v", m)
	}
	if got := topCommands(m, 5); got != "set 2.40, evalsha 1.00" {
		t.Errorf("topCommands = %q", got)
	}
}

func TestPercentile(t *testing.T) {
	r := &Result{}
	if r.Percentile(0.5) != 0 {
		t.Error("empty")
	}
	for i := 1; i <= 100; i++ {
		r.Waits = append(r.Waits, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{0.5: 50, 0.99: 99, 1: 100, 0: 1} {
		if got := r.Percentile(p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
}

func byName(cs []Contender, name string) Contender {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return Contender{Name: name}
}

func TestReport(t *testing.T) {
	cs := Contenders()
	other, raw := byName(cs, "relock/goredis/default"), byName(cs, RawName)
	if raw.Library != "raw" || other.Library != "relock" {
		t.Fatalf("contenders %+v, %+v", other, raw)
	}
	p := Params{UncontendedDuration: time.Second, ContendedDuration: time.Second}
	unc := Scenario{Name: "uncontended", Kind: Uncontended, Workers: 2}
	results := []*Result{
		{Contender: other, Scenario: unc, Window: time.Second, Acquisitions: 950, Sent: 1900, Commands: 5700},
		{Contender: raw, Scenario: unc, Window: time.Second, Acquisitions: 1000, Sent: 2000, Commands: 4000},
	}
	var b bytes.Buffer
	WriteTable(&b, unc, p, results)
	if !strings.Contains(b.String(), "| 950 | 0.95x |") || !strings.Contains(b.String(), "| 2.0 | 6.0 |") {
		t.Errorf("uncontended table:\n%s", b.String())
	}
	// Each contender is compared with the raw loop on its own client:
	// relock/redigo and raw/redigo, rueidislock and raw/rueidis; without
	// that raw loop in the run, no ratio.
	b.Reset()
	WriteTable(&b, unc, p, []*Result{
		{Contender: byName(cs, "relock/redigo/default"), Scenario: unc, Window: time.Second, Acquisitions: 1100},
		{Contender: byName(cs, "rueidislock/best"), Scenario: unc, Window: time.Second, Acquisitions: 900},
		{Contender: byName(cs, "relock/rueidis/default"), Scenario: unc, Window: time.Second, Acquisitions: 700},
		{Contender: raw, Scenario: unc, Window: time.Second, Acquisitions: 500},
		{Contender: byName(cs, "raw/redigo"), Scenario: unc, Window: time.Second, Acquisitions: 1000},
	})
	for _, want := range []string{
		"| relock/redigo/default | 1100 | 1.10x |",
		"| rueidislock/best | 900 | – |",
		"| relock/rueidis/default | 700 | – |",
		"| raw/goredis | 500 | 1.00x |",
		"| raw/redigo | 1000 | 1.00x |",
		"vs raw/<same client>",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("uncontended table lacks %q:\n%s", want, b.String())
		}
	}
	con := Scenario{Name: "contended-2", Kind: Contended, Workers: 2}
	b.Reset()
	WriteTable(&b, con, p, []*Result{{
		Contender: other, Scenario: con, Window: time.Second, Acquisitions: 10,
		Held: 600 * time.Millisecond, PerWorker: []int64{4, 6}, Commands: -1, Sent: 30,
		Waits: []time.Duration{time.Millisecond, 2 * time.Millisecond},
	}})
	if !strings.Contains(b.String(), "| 60.0% | 60 ms | 10 | 1.00 ms | 2.00 ms | 2.00 ms | 4–6 | 1.5 | 3.0 | – | 0 | 0 | 0 | 0 |") {
		t.Errorf("contended table:\n%s", b.String())
	}
}

func TestMedian(t *testing.T) {
	unc := Scenario{Name: "uncontended", Kind: Uncontended, Workers: 1}
	mk := func(n int64) *Result {
		return &Result{Scenario: unc, Window: time.Second, Acquisitions: n}
	}
	m := Median([]*Result{mk(30), mk(10), mk(20)})
	if m.Acquisitions != 20 {
		t.Errorf("median of 30, 10, 20 = %d", m.Acquisitions)
	}
	if len(m.Rounds) != 3 || m.Rounds[0] != 30 || m.Rounds[1] != 10 || m.Rounds[2] != 20 {
		t.Errorf("rounds %v, want the rates in run order", m.Rounds)
	}
	if m := Median([]*Result{mk(10), mk(40)}); m.Acquisitions != 10 {
		t.Errorf("median of two = %d, want the lower", m.Acquisitions)
	}
	failed := &Result{Scenario: unc, SetupErr: context.Canceled}
	if m := Median([]*Result{failed, mk(5)}); m.Acquisitions != 5 {
		t.Errorf("a failed round was chosen")
	}
	if m := Median([]*Result{failed}); m.SetupErr == nil {
		t.Errorf("all rounds failed, but no setup error")
	}
}
