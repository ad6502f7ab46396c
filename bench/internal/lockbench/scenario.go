package lockbench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is a scenario kind.
type Kind int

const (
	// Uncontended: each worker locks and unlocks its own key.
	Uncontended Kind = iota
	// Contended: every worker takes turns on one key.
	Contended
)

// Scenario is one scenario of a run.
type Scenario struct {
	Name    string // "uncontended", "contended-16", ...
	Kind    Kind
	Workers int
}

// ParseScenarios reads a comma-separated list of "uncontended" and
// "contended-N" (N workers on one key); "contended" alone means
// contended-16. uncontendedWorkers is the worker count of "uncontended".
func ParseScenarios(list string, uncontendedWorkers int) ([]Scenario, error) {
	var out []Scenario
	seen := map[string]bool{}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		var sc Scenario
		switch {
		case f == "":
			continue
		case f == "uncontended":
			sc = Scenario{Name: f, Kind: Uncontended, Workers: uncontendedWorkers}
		case f == "contended":
			sc = Scenario{Name: "contended-16", Kind: Contended, Workers: 16}
		case strings.HasPrefix(f, "contended-"):
			n, err := strconv.Atoi(strings.TrimPrefix(f, "contended-"))
			if err != nil || n < 1 {
				return nil, fmt.Errorf("scenario %q: want contended-N with N >= 1", f)
			}
			sc = Scenario{Name: f, Kind: Contended, Workers: n}
		default:
			return nil, fmt.Errorf("unknown scenario %q (want uncontended or contended-N)", f)
		}
		if sc.Workers < 1 {
			return nil, fmt.Errorf("scenario %q: no workers", f)
		}
		if !seen[sc.Name] {
			seen[sc.Name] = true
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no scenario selected")
	}
	return out, nil
}

// Params are the knobs of a run, shared by all scenarios.
type Params struct {
	UncontendedDuration time.Duration
	ContendedDuration   time.Duration
	// Hold is how long a contended worker keeps the lock (time.Sleep), Think
	// how long it waits after releasing before it asks again.
	Hold, Think time.Duration
	// Drain bounds how long past the end of a scenario an Obtain that was
	// already waiting may go on; it is the "generous context" of each Obtain.
	Drain time.Duration
	// PerWorkerClients opens one Session (clients, locker) per worker, as
	// separate processes would have, instead of one shared by all workers.
	PerWorkerClients bool
	// CommandStats resets INFO commandstats before each scenario and reads
	// it after, to count Redis commands per acquisition.
	CommandStats bool
	// KeyPrefix keeps the keys of a run apart from other runs.
	KeyPrefix string
}

// Result is what one contender did in one scenario.
type Result struct {
	Contender Contender
	Scenario  Scenario
	// SetupErr is set when the contender could not be opened or warmed up;
	// nothing else is then meaningful.
	SetupErr error

	Window time.Duration // the scenario's measured wall time
	Wall   time.Duration // from start until the last worker stopped

	// Acquisitions obtained within the window (pairs, uncontended).
	Acquisitions int64
	// DrainAcquisitions were obtained after the window by Obtains that
	// started inside it (contended only); released at once, not counted as
	// throughput, but their waits are in Waits and their commands in
	// Commands.
	DrainAcquisitions int64
	// Unfinished Obtains were still waiting when the drain ended.
	Unfinished int64

	// Held is the summed hold time inside the window (contended).
	Held time.Duration
	// Waits: obtain call start (the first call, when the library gave up
	// and was called again) to success; uncontended: lock+unlock pair time.
	Waits []time.Duration // sorted
	// PerWorker are the acquisitions per worker within the window.
	PerWorker []int64

	GiveUps    int64
	Errors     int64
	FirstError string
	// Violations counts obtains that returned while another worker was
	// inside the section.
	Violations int64

	// Rounds, when the scenario ran more than once, holds each round's rate
	// (uncontended) or hold share (contended); the other fields are those
	// of the median round.
	Rounds []float64
	// RoundRates and RoundP99s, for a contended scenario run more than
	// once, are each round's acquisitions per second and wait p99, in run
	// order: the spread around the median round.
	RoundRates []float64
	RoundP99s  []time.Duration

	// Sent is the number of commands the contender's clients sent.
	Sent int64
	// Commands is the number of commands Redis ran during the scenario
	// (INFO commandstats: those a Lua script calls included), -1 when not
	// counted; CommandsBy breaks it down by command.
	Commands   int64
	CommandsBy map[string]int64
}

// Median returns, of several rounds of one contender in one scenario, the
// round with the median rate (uncontended) or hold share (contended), with
// Rounds set to every round's value of that metric, in run order. Rounds
// that failed to set up are returned only when all failed.
func Median(rounds []*Result) *Result {
	var ok []*Result
	for _, r := range rounds {
		if r.SetupErr == nil {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return rounds[len(rounds)-1]
	}
	metric := func(r *Result) float64 {
		if r.Scenario.Kind == Contended {
			return r.HeldShare()
		}
		return r.Rate()
	}
	values := make([]float64, len(ok))
	for i, r := range ok {
		values[i] = metric(r)
	}
	sorted := slices.Clone(ok)
	slices.SortStableFunc(sorted, func(a, b *Result) int {
		switch ma, mb := metric(a), metric(b); {
		case ma < mb:
			return -1
		case ma > mb:
			return 1
		}
		return 0
	})
	m := *sorted[(len(sorted)-1)/2]
	m.Rounds = values
	if m.Scenario.Kind == Contended {
		for _, r := range ok {
			m.RoundRates = append(m.RoundRates, r.Rate())
			m.RoundP99s = append(m.RoundP99s, r.Percentile(0.99))
		}
	}
	return &m
}

// Rate is acquisitions (pairs) per second of window.
func (r *Result) Rate() float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(r.Acquisitions) / r.Window.Seconds()
}

// HeldShare is the share of the window during which the lock was held.
func (r *Result) HeldShare() float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(r.Held) / float64(r.Window)
}

// MeanHold is the average hold per acquisition within the window: the
// configured hold plus however much the sleep overshot. A client short of
// CPU stretches it, which raises HeldShare without the lock doing more work.
func (r *Result) MeanHold() time.Duration {
	if r.Acquisitions == 0 {
		return 0
	}
	return r.Held / time.Duration(r.Acquisitions)
}

// Percentile returns the p-quantile (0..1) of Waits, 0 without samples.
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.Waits) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(r.Waits)))) - 1
	i = min(max(i, 0), len(r.Waits)-1)
	return r.Waits[i]
}

// SentPerAcquisition counts the commands sent per obtained lock, drain
// included.
func (r *Result) SentPerAcquisition() float64 {
	n := r.Acquisitions + r.DrainAcquisitions
	if n == 0 {
		return -1
	}
	return float64(r.Sent) / float64(n)
}

// CommandsPerAcquisition counts the commands Redis ran per obtained lock,
// drain included; -1 when not counted.
func (r *Result) CommandsPerAcquisition() float64 {
	n := r.Acquisitions + r.DrainAcquisitions
	if r.Commands < 0 || n == 0 {
		return -1
	}
	return float64(r.Commands) / float64(n)
}

// workerStats is one worker's tally, merged after the run.
type workerStats struct {
	acq, drainAcq, unfinished int64
	held                      time.Duration
	waits                     []time.Duration
	giveUps, errors           int64
	firstErr                  string
}

func (w *workerStats) fail(err error) {
	w.errors++
	if w.firstErr == "" {
		w.firstErr = err.Error()
	}
}

// releaseTimeout bounds each release.
const releaseTimeout = 5 * time.Second

// Run runs one contender in one scenario: it opens the session(s), warms
// them up (so that connections are dialled and scripts loaded before
// counting), resets the command statistics, runs the workers and closes
// the sessions.
func Run(ctx context.Context, c Contender, sc Scenario, cfg Config, p Params, admin *Admin) *Result {
	res := &Result{Contender: c, Scenario: sc, Commands: -1}
	var sent atomic.Int64
	cfg.Sent = &sent
	nSessions := 1
	if p.PerWorkerClients {
		nSessions = sc.Workers
	}
	sessions := make([]Session, 0, nSessions)
	defer func() {
		for _, s := range sessions {
			_ = s.Close()
		}
	}()
	for range nSessions {
		s, err := c.Open(cfg)
		if err != nil {
			res.SetupErr = fmt.Errorf("open: %w", err)
			return res
		}
		sessions = append(sessions, s)
	}
	session := func(w int) Session { return sessions[w%len(sessions)] }
	prefix := p.KeyPrefix + ":" + sc.Name + ":" + c.Name

	if err := warmUp(ctx, sc.Workers, session, prefix); err != nil {
		res.SetupErr = fmt.Errorf("warm-up: %w", err)
		return res
	}
	sent.Store(0)
	if p.CommandStats {
		if err := admin.ResetStats(ctx); err != nil {
			res.SetupErr = fmt.Errorf("CONFIG RESETSTAT: %w", err)
			return res
		}
	}

	stats := make([]workerStats, sc.Workers)
	var wg sync.WaitGroup
	start := time.Now()
	switch sc.Kind {
	case Uncontended:
		res.Window = p.UncontendedDuration
		end := start.Add(p.UncontendedDuration)
		for w := range sc.Workers {
			wg.Go(func() {
				uncontendedWorker(ctx, session(w), prefix+":"+strconv.Itoa(w), end, p.Drain, &stats[w])
			})
		}
	case Contended:
		res.Window = p.ContendedDuration
		end := start.Add(p.ContendedDuration)
		var inSection, violations atomic.Int64
		for w := range sc.Workers {
			wg.Go(func() {
				contendedWorker(ctx, session(w), prefix, end, p, int64(max(c.Permits, 1)), &inSection, &violations, &stats[w])
			})
		}
		defer func() {
			res.Violations = violations.Load()
			for _, s := range sessions {
				if sc, ok := s.(selfChecked); ok {
					res.Violations += sc.Violations()
				}
			}
		}()
	}
	wg.Wait()
	res.Wall = time.Since(start)
	res.Sent = sent.Load()

	for _, st := range stats {
		res.Acquisitions += st.acq
		res.DrainAcquisitions += st.drainAcq
		res.Unfinished += st.unfinished
		res.Held += st.held
		res.Waits = append(res.Waits, st.waits...)
		res.PerWorker = append(res.PerWorker, st.acq)
		res.GiveUps += st.giveUps
		res.Errors += st.errors
		if res.FirstError == "" {
			res.FirstError = st.firstErr
		}
	}
	slices.Sort(res.Waits)

	if p.CommandStats {
		m, err := admin.CommandStats(context.WithoutCancel(ctx))
		if err == nil {
			res.CommandsBy = m
			res.Commands = sumCalls(m)
		} else if res.FirstError == "" {
			res.FirstError = "INFO commandstats: " + err.Error()
		}
	}
	return res
}

// warmUp has every worker lock and unlock a key of its own at about the
// same time, so that pools hold as many connections as the run will use
// and scripts are in the server's cache.
func warmUp(ctx context.Context, workers int, session func(int) Session, prefix string) error {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, workers)
	gate := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			<-gate
			for i := range 2 {
				var st workerStats
				u, err := obtain(wctx, session(w), fmt.Sprintf("%s:warmup:%d:%d", prefix, w, i), &st)
				if err != nil && st.firstErr != "" {
					err = fmt.Errorf("%w; first error: %s", err, st.firstErr)
				}
				if err != nil {
					errs[w] = err
					return
				}
				if err := u(wctx); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	close(gate)
	wg.Wait()
	return errors.Join(errs...)
}

// obtain calls Lock until it succeeds or ctx ends, counting the library's
// give-ups (the caller's loop that a library without waiting needs) and
// errors. After an error it pauses 1 ms so a broken server is not spun on.
func obtain(ctx context.Context, s Session, key string, st *workerStats) (Unlock, error) {
	for {
		u, err := s.Lock(ctx, key)
		switch {
		case err == nil:
			return u, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, ErrGaveUp):
			st.giveUps++
			continue
		}
		st.fail(err)
		t := time.NewTimer(time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func release(ctx context.Context, u Unlock, st *workerStats) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := u(rctx); err != nil {
		st.fail(fmt.Errorf("release: %w", err))
	}
}

func uncontendedWorker(ctx context.Context, s Session, key string, end time.Time, drain time.Duration, st *workerStats) {
	octx, cancel := context.WithDeadline(ctx, end.Add(drain))
	defer cancel()
	for {
		t0 := time.Now()
		if !t0.Before(end) || ctx.Err() != nil {
			return
		}
		u, err := obtain(octx, s, key, st)
		if err != nil {
			st.unfinished++
			return
		}
		release(octx, u, st)
		st.waits = append(st.waits, time.Since(t0))
		st.acq++
	}
}

func contendedWorker(ctx context.Context, s Session, key string, end time.Time, p Params, permits int64,
	inSection, violations *atomic.Int64, st *workerStats) {
	for {
		t0 := time.Now()
		if !t0.Before(end) || ctx.Err() != nil {
			return
		}
		// The generous context of one Obtain: until the drain's end.
		octx, cancel := context.WithDeadline(ctx, end.Add(p.Drain))
		u, err := obtain(octx, s, key, st)
		got := time.Now()
		if err != nil {
			cancel()
			st.unfinished++
			return
		}
		st.waits = append(st.waits, got.Sub(t0))
		if inSection.Add(1) > permits {
			violations.Add(1)
		}
		inWindow := got.Before(end)
		if inWindow {
			time.Sleep(p.Hold)
		}
		inSection.Add(-1)
		if inWindow {
			rel := time.Now()
			if rel.After(end) {
				rel = end
			}
			st.held += rel.Sub(got)
			st.acq++
		} else {
			st.drainAcq++
		}
		release(octx, u, st)
		cancel()
		if inWindow && p.Think > 0 {
			time.Sleep(p.Think)
		}
	}
}
