package lockbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	goredislib "github.com/redis/go-redis/v9"
)

// Server is a redis-server process started for one run.
type Server struct {
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartServer starts `redis-server` (found on PATH, or at bin when not
// empty) on a free loopback port with persistence off, and waits until it
// answers PING. Stop kills it.
func StartServer(ctx context.Context, bin string) (*Server, error) {
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			return nil, fmt.Errorf("redis-server not found on PATH (give -url or -redis-server): %w", err)
		}
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s, err := startOn(ctx, bin, port)
		if err == nil {
			return s, nil
		}
		lastErr = err // most likely someone took the port between probe and start
	}
	return nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startOn(ctx context.Context, bin string, port int) (*Server, error) {
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--protected-mode", "no",
		"--loglevel", "warning",
	)
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()

	rdb := goredislib.NewClient(&goredislib.Options{Addr: s.Addr, MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("redis-server exited: %s", strings.TrimSpace(out.String()))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Stop()
			return nil, fmt.Errorf("redis-server on %s did not answer: %w", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server and waits for it to exit. Safe to call twice.
func (s *Server) Stop() {
	if s == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(os.Kill)
	<-s.done
}

// Admin is the harness's own connection to Redis, for statistics.
type Admin struct {
	rdb *goredislib.Client
}

// NewAdmin connects to the server the contenders use.
func NewAdmin(cfg Config) *Admin {
	return &Admin{rdb: goredislib.NewClient(&goredislib.Options{
		Addr: cfg.Addr, DB: cfg.DB, Password: cfg.Password, PoolSize: 2,
	})}
}

// Close closes the connection.
func (a *Admin) Close() error { return a.rdb.Close() }

// Ping checks the server answers.
func (a *Admin) Ping(ctx context.Context) error { return a.rdb.Ping(ctx).Err() }

// Info returns one field of INFO server (for example "redis_version").
func (a *Admin) Info(ctx context.Context, section, field string) (string, error) {
	s, err := a.rdb.Info(ctx, section).Result()
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok && k == field {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO %s has no %s", section, field)
}

// ResetStats runs CONFIG RESETSTAT, zeroing INFO commandstats.
func (a *Admin) ResetStats(ctx context.Context) error {
	return a.rdb.ConfigResetStat(ctx).Err()
}

// CommandStats returns the calls per command since the last ResetStats,
// leaving out the harness's own CONFIG and INFO.
func (a *Admin) CommandStats(ctx context.Context) (map[string]int64, error) {
	s, err := a.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	return parseCommandStats(s)
}

// parseCommandStats reads lines like
// "cmdstat_set:calls=12,usec=34,usec_per_call=2.8,rejected_calls=0,failed_calls=0".
func parseCommandStats(info string) (map[string]int64, error) {
	out := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		if name == "info" || strings.HasPrefix(name, "config") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok && k == "calls" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("commandstats %q: %w", line, err)
				}
				out[name] = n
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// sumCalls adds up the calls of every command.
func sumCalls(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// topCommands formats the commands by calls per unit, largest first.
func topCommands(m map[string]int64, per int64) string {
	if per <= 0 || len(m) == 0 {
		return ""
	}
	type kv struct {
		k string
		v int64
	}
	var kvs []kv
	for k, v := range m {
		kvs = append(kvs, kv{k, v})
	}
	sort.Slice(kvs, func(i, j int) bool {
		if kvs[i].v != kvs[j].v {
			return kvs[i].v > kvs[j].v
		}
		return kvs[i].k < kvs[j].k
	})
	var parts []string
	for _, e := range kvs {
		parts = append(parts, fmt.Sprintf("%s %.2f", e.k, float64(e.v)/float64(per)))
	}
	return strings.Join(parts, ", ")
}

// ParseURL turns a redis:// URL into the fields a Config needs.
func ParseURL(u string) (addr string, db int, password string, err error) {
	opt, err := goredislib.ParseURL(u)
	if err != nil {
		return "", 0, "", err
	}
	if opt.TLSConfig != nil {
		return "", 0, "", errors.New("rediss:// is not supported by the benchmark")
	}
	return opt.Addr, opt.DB, opt.Password, nil
}
