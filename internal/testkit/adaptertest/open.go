package adaptertest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// CheckOpen checks the rules that every driver's Open follows (docs/adapters.md,
// "By driver name"): a malformed URL or an unknown query option fails Open with
// an error matching relock.ErrInvalidArgument that does not show the
// password; Open does not dial, so an unreachable server, a wrong password
// or rediss:// to a plain server surface on the first call, within its
// context; a password given to a server that needs none is accepted.
// badDSNs are more URLs the driver must reject. It starts private servers,
// and skips those parts in -short mode.
func CheckOpen(t *testing.T, d driver.Driver, badDSNs ...string) {
	t.Run("invalid", func(t *testing.T) {
		for _, dsn := range append([]string{
			"",
			"127.0.0.1:6379",
			"http://127.0.0.1:6379",
			"redis://user:s3cret@127.0.0.1:6379/notadb",
			"redis://user:s3cret@%zz",
			"redis://user:s3cret@127.0.0.1:6379/0?bogus=1",
		}, badDSNs...) {
			c, err := d.Open(dsn)
			if err == nil {
				_ = c.Close()
				t.Errorf("Open(%q) succeeded", dsn)
				continue
			}
			if !errors.Is(err, relock.ErrInvalidArgument) {
				t.Errorf("Open(%q): %v; want an error matching relock.ErrInvalidArgument", dsn, err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Open(%q): the error shows the password: %v", dsn, err)
			}
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		checkFirstCallFails(t, d, "redis://127.0.0.1:1")
	})
	if testing.Short() {
		return
	}
	t.Run("password without auth", func(t *testing.T) {
		srv := testredis.Start(t)
		for _, dsn := range []string{
			"redis://:anything@" + srv.Addr(),
			"redis://default:anything@" + srv.Addr(),
		} {
			checkWorks(t, d, dsn)
		}
	})
	t.Run("requirepass", func(t *testing.T) {
		// testredis.Start checks the server with PING, which a password
		// would refuse: the password is set afterwards.
		srv := testredis.Start(t)
		if _, err := srv.Do("CONFIG", "SET", "requirepass", "s3cret"); err != nil {
			t.Fatalf("CONFIG SET requirepass: %v", err)
		}
		checkWorks(t, d, "redis://:s3cret@"+srv.Addr())
		checkFirstCallFails(t, d, "redis://:wrong@"+srv.Addr())
		checkFirstCallFails(t, d, "redis://"+srv.Addr())
	})
	t.Run("rediss to a plain server", func(t *testing.T) {
		checkFirstCallFails(t, d, "rediss://"+testredis.Start(t).Addr())
	})
}

// checkWorks opens dsn and runs SET NX and GET through it.
func checkWorks(t *testing.T, d driver.Driver, dsn string) {
	t.Helper()
	c, err := d.Open(dsn)
	if err != nil {
		t.Fatalf("Open(%q): %v", dsn, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key := Channel("open")
	if ok, err := c.SetNX(ctx, key, "v", time.Minute); !ok || err != nil {
		t.Fatalf("Open(%q): SetNX = %v, %v", dsn, ok, err)
	}
	if v, ok, err := c.Get(ctx, key); v != "v" || !ok || err != nil {
		t.Fatalf("Open(%q): Get = %q, %v, %v", dsn, v, ok, err)
	}
}

// checkFirstCallFails opens dsn, which must succeed, and checks that the
// first call fails, within its context's deadline and CallLimit.
func checkFirstCallFails(t *testing.T, d driver.Driver, dsn string) {
	t.Helper()
	c, err := d.Open(dsn)
	if err != nil {
		t.Fatalf("Open(%q) failed, but must not dial: %v", dsn, err)
	}
	defer func() {
		start := time.Now()
		_ = c.Close()
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("Close after Open(%q) took %v", dsn, took)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), CallDeadline)
	defer cancel()
	start := time.Now()
	_, _, err = c.Get(ctx, "relock-test:open")
	took := time.Since(start)
	if err == nil {
		t.Fatalf("Open(%q): the first call succeeded", dsn)
	}
	if took > CallLimit {
		t.Errorf("Open(%q): the first call failed after %v, above %v: %v", dsn, took, CallLimit, err)
	}
	t.Logf("Open(%q): the first call failed after %v: %v", dsn, took.Round(time.Millisecond), err)
}

// CheckOpenURL opens dsn with d (a cluster or sentinel URL, say) and
// obtains and releases a lock through it.
func CheckOpenURL(t *testing.T, d driver.Driver, dsn string) {
	t.Helper()
	c, err := d.Open(dsn)
	if err != nil {
		t.Fatalf("Open(%q): %v", dsn, err)
	}
	client, err := relock.New(c)
	if err != nil {
		_ = c.Close()
		t.Fatalf("relock.New over Open(%q): %v", dsn, err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lock, err := client.Obtain(ctx, Channel("open-url"), time.Minute)
	if err != nil {
		t.Fatalf("Obtain through Open(%q): %v", dsn, err)
	}
	if err := lock.Release(ctx); err != nil {
		t.Fatalf("Release through Open(%q): %v", dsn, err)
	}
}

// ClusterURL returns the URL of c's cluster form: the first node, with
// the others as addr options.
func ClusterURL(c *testredis.Cluster) string {
	addrs := c.Addrs()
	q := make([]string, 0, len(addrs)-1)
	for _, a := range addrs[1:] {
		q = append(q, "addr="+a)
	}
	return "redis://" + addrs[0] + "?" + strings.Join(q, "&")
}

// SentinelURL returns the URL of s's sentinel form: the first sentinel,
// the master name, and the other sentinels as addr options.
func SentinelURL(s *testredis.Sentinel) string {
	addrs := s.SentinelAddrs()
	u := "redis://" + addrs[0] + "?master_name=" + s.MasterName()
	for _, a := range addrs[1:] {
		u += "&addr=" + a
	}
	return u
}

// CheckOpenVocabulary checks the query options that every adapter's Open
// takes alike (README, "DSN options"): the database as the URL's path and
// as db=, pool_size, dial_timeout, read_timeout, write_timeout and
// client_name, and unix:// URLs. It starts a private server listening on a
// Unix socket too, and is skipped in -short mode.
func CheckOpenVocabulary(t *testing.T, d driver.Driver) {
	if testing.Short() {
		t.Skip("starts a private server")
	}
	dir, err := os.MkdirTemp("", "rlv") // short: a socket path has ~100 bytes at most
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "r.sock")
	srv := testredis.Start(t, "--unixsocket", sock, "--unixsocketperm", "700")
	const opts = "pool_size=4&dial_timeout=2s&read_timeout=2s&write_timeout=2s&client_name=relock-vocab"
	for _, tc := range []struct{ dsn, db string }{
		{"redis://" + srv.Addr() + "/3?" + opts, "db3"},
		{"redis://" + srv.Addr() + "?db=4&" + opts, "db4"},
		{"unix://" + sock + "?db=5&" + opts, "db5"},
	} {
		c, err := d.Open(tc.dsn)
		if err != nil {
			t.Errorf("Open(%q): %v", tc.dsn, err)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		key := Channel("vocab")
		if ok, err := c.SetNX(ctx, key, "v", time.Minute); !ok || err != nil {
			t.Errorf("Open(%q): SetNX = %v, %v", tc.dsn, ok, err)
		}
		cancel()
		info, err := srv.Do("INFO", "keyspace")
		if s, _ := info.(string); err != nil || !strings.Contains(s, tc.db+":keys=1") {
			t.Errorf("Open(%q): INFO keyspace = %q, %v; want the key in %s", tc.dsn, info, err, tc.db)
		}
		list, err := srv.Do("CLIENT", "LIST")
		if s, _ := list.(string); err != nil || !strings.Contains(s, "name=relock-vocab") {
			t.Errorf("Open(%q): CLIENT LIST shows no connection named relock-vocab: %v", tc.dsn, err)
		}
		_ = c.Close()
		if _, err := srv.Do("FLUSHALL"); err != nil {
			t.Fatal(err)
		}
	}
	for _, dsn := range []string{
		"redis://" + srv.Addr() + "?pool_size=many",
		"redis://" + srv.Addr() + "?read_timeout=soon",
		"unix://",
	} {
		if c, err := d.Open(dsn); !errors.Is(err, relock.ErrInvalidArgument) {
			if err == nil {
				_ = c.Close()
			}
			t.Errorf("Open(%q) = %v, want an error matching relock.ErrInvalidArgument", dsn, err)
		}
	}
}
