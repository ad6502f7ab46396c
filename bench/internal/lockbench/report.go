package lockbench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Env describes where a run happened, for the report's header.
type Env struct {
	Date         time.Time
	GoVersion    string
	OSArch       string
	GOMAXPROCS   int
	NumCPU       int
	CPUModel     string
	RedisVersion string
	RedisAddr    string
	OwnServer    bool // lockbench started the server: no other client pollutes the counts
	TTL          time.Duration
	Relock       string // which relock was built in, if known
	Note         string
	Params       Params
}

// CPUModel returns the first "model name" of /proc/cpuinfo, or "unknown".
func CPUModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// WriteHeader writes the run's description in markdown.
func WriteHeader(w io.Writer, e Env) {
	p := e.Params
	fmt.Fprintf(w, "# lockbench\n\n")
	if e.Note != "" {
		fmt.Fprintf(w, "- note: %s\n", e.Note)
	}
	fmt.Fprintf(w, "- date: %s\n", e.Date.Format("2006-01-02 15:04:05 MST"))
	if e.Relock != "" {
		fmt.Fprintf(w, "- relock: %s\n", e.Relock)
	}
	fmt.Fprintf(w, "- Go: %s %s, GOMAXPROCS %d, %d CPUs\n", e.GoVersion, e.OSArch, e.GOMAXPROCS, e.NumCPU)
	fmt.Fprintf(w, "- CPU: %s\n", e.CPUModel)
	server := "given by -url: other clients of this server would add to the command counts"
	if e.OwnServer {
		server = "private redis-server started by lockbench, persistence off, no other client"
	}
	fmt.Fprintf(w, "- Redis: %s at %s (%s)\n", e.RedisVersion, e.RedisAddr, server)
	clients := "one Session (client, locker) shared by all workers of a scenario"
	if p.PerWorkerClients {
		clients = "one Session (client, locker) per worker, as separate processes would have"
	}
	fmt.Fprintf(w, "- clients: %s\n", clients)
	fmt.Fprintf(w, "- uncontended: %v per contender; contended: %v per contender, hold %v, think %v, in-flight Obtains may finish up to %v after the end\n",
		p.UncontendedDuration, p.ContendedDuration, p.Hold, p.Think, p.Drain)
	fmt.Fprintf(w, "- lock TTL asked for: %v (libraries run with defaults keep their own)\n\n", e.TTL)
}

// WriteTable writes one scenario's results as a markdown table. With more
// than one round, each row is the contender's median round (see Median).
func WriteTable(w io.Writer, sc Scenario, p Params, results []*Result) {
	rounds := ""
	for _, r := range results {
		if len(r.Rounds) > 1 {
			rounds = fmt.Sprintf("; median of %d rounds", len(r.Rounds))
			break
		}
	}
	switch sc.Kind {
	case Uncontended:
		fmt.Fprintf(w, "## %s: %d workers, each on its own key, lock+unlock for %v%s\n\n", sc.Name, sc.Workers, p.UncontendedDuration, rounds)
		writeUncontended(w, results)
	case Contended:
		fmt.Fprintf(w, "## %s: %d workers on one key, hold %v, think %v, for %v%s\n\n", sc.Name, sc.Workers, p.Hold, p.Think, p.ContendedDuration, rounds)
		writeContended(w, results)
	}
	writeCommands(w, results)
}

func writeUncontended(w io.Writer, results []*Result) {
	raw := map[string]float64{} // raw loop's rate by contender name
	for _, r := range results {
		if r.Contender.Library == "raw" && r.SetupErr == nil {
			raw[r.Contender.Name] = r.Rate()
		}
	}
	fmt.Fprintln(w, "| contender | pairs/s | vs raw/<same client> | pair p50 | pair p99 | sent/pair | calls/pair | errors |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range results {
		if r.SetupErr != nil {
			fmt.Fprintf(w, "| %s | failed: %s |||||||\n", r.Contender.Name, oneLine(r.SetupErr.Error()))
			continue
		}
		ratio := "–"
		base := RawFor(r.Contender)
		if v := raw[base]; v > 0 {
			ratio = fmt.Sprintf("%.2fx", r.Rate()/v)
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s | %s | %d |\n",
			r.Contender.Name, r.Rate(), ratio, dur(r.Percentile(0.5)), dur(r.Percentile(0.99)),
			cmds(r.SentPerAcquisition()), cmds(r.CommandsPerAcquisition()), r.Errors)
	}
	fmt.Fprintln(w)
}

func writeContended(w io.Writer, results []*Result) {
	fmt.Fprintln(w, "| contender | held | hold avg | acq/s | wait p50 | wait p99 | wait max | per worker min–max | max/min | sent/acq | calls/acq | give-ups | errors | stuck | violations |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range results {
		if r.SetupErr != nil {
			fmt.Fprintf(w, "| %s | failed: %s ||||||||||||||\n", r.Contender.Name, oneLine(r.SetupErr.Error()))
			continue
		}
		lo, hi := int64(0), int64(0)
		if len(r.PerWorker) > 0 {
			lo, hi = slices.Min(r.PerWorker), slices.Max(r.PerWorker)
		}
		ratio := "∞"
		if lo > 0 {
			ratio = fmt.Sprintf("%.1f", float64(hi)/float64(lo))
		}
		fmt.Fprintf(w, "| %s | %.1f%% | %s | %.0f | %s | %s | %s | %d–%d | %s | %s | %s | %d | %d | %d | %d |\n",
			r.Contender.Name, 100*r.HeldShare(), dur(r.MeanHold()), r.Rate(),
			dur(r.Percentile(0.5)), dur(r.Percentile(0.99)), dur(r.Percentile(1)),
			lo, hi, ratio, cmds(r.SentPerAcquisition()), cmds(r.CommandsPerAcquisition()),
			r.GiveUps, r.Errors, r.Unfinished, r.Violations)
	}
	fmt.Fprintln(w)
}

// writeCommands lists, per contender, the Redis commands per acquisition by
// name, and anything unusual (errors, unfinished Obtains).
func writeCommands(w io.Writer, results []*Result) {
	var lines []string
	for _, r := range results {
		if r.SetupErr != nil {
			continue
		}
		var notes []string
		if t := topCommands(r.CommandsBy, r.Acquisitions+r.DrainAcquisitions); t != "" {
			notes = append(notes, t)
		}
		if r.DrainAcquisitions > 0 || r.Unfinished > 0 {
			notes = append(notes, fmt.Sprintf("%d obtained after the end, %d still waiting at the drain's end", r.DrainAcquisitions, r.Unfinished))
		}
		if r.FirstError != "" {
			notes = append(notes, "first error: "+oneLine(r.FirstError))
		}
		if len(r.Rounds) > 1 {
			var vs []string
			for _, v := range r.Rounds {
				if r.Scenario.Kind == Contended {
					vs = append(vs, fmt.Sprintf("%.1f%%", 100*v))
				} else {
					vs = append(vs, fmt.Sprintf("%.0f", v))
				}
			}
			what := "pairs/s"
			if r.Scenario.Kind == Contended {
				what = "held"
			}
			notes = append(notes, fmt.Sprintf("rounds (%s): %s", what, strings.Join(vs, ", ")))
			if len(r.RoundRates) > 1 {
				var rs, ps []string
				for i, v := range r.RoundRates {
					rs = append(rs, fmt.Sprintf("%.0f", v))
					ps = append(ps, dur(r.RoundP99s[i]))
				}
				notes = append(notes, fmt.Sprintf("rounds (acq/s): %s; rounds (wait p99): %s", strings.Join(rs, ", "), strings.Join(ps, ", ")))
			}
		}
		if len(notes) > 0 {
			lines = append(lines, fmt.Sprintf("- %s: %s", r.Contender.Name, strings.Join(notes, "; ")))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(w, "<details><summary>Commands Redis ran per acquisition (INFO commandstats, script calls included), by command; notes</summary>")
		fmt.Fprintln(w)
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "</details>")
		fmt.Fprintln(w)
	}
}

// WriteContenders lists the contenders' settings.
func WriteContenders(w io.Writer, cs []Contender) {
	fmt.Fprintln(w, "## Contenders")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| contender | settings |")
	fmt.Fprintln(w, "|---|---|")
	for _, c := range cs {
		fmt.Fprintf(w, "| %s | %s |\n", c.Name, c.Settings)
	}
	fmt.Fprintln(w)
}

func dur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d == 0:
		return "0"
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.0f ms", ms)
	default:
		return fmt.Sprintf("%.2f s", ms/1000)
	}
}

func cmds(v float64) string {
	if v < 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", v)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
