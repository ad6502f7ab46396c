package lockbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/relock-go/relock/internal/testkit/testredis"
)

// StartServer starts a private redis-server for one run, through
// testredis.StartServer (the binary at bin, or redis-server from
// $RELOCK_REDIS_SERVER or PATH when bin is empty): a free loopback port,
// persistence off, its log in a temporary directory. Close stops it and
// removes the directory; its Addr is what a Config needs.
func StartServer(bin string) (*testredis.Server, error) {
	srv, err := testredis.StartServer(testredis.Options{Bin: bin, Args: []string{"--loglevel", "warning"}})
	if errors.Is(err, testredis.ErrNoBinary) {
		return nil, fmt.Errorf("%w (give -url or -redis-server)", err)
	}
	return srv, err
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
