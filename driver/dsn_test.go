package driver_test

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		dsn   string
		extra []string
		want  driver.URL
	}{
		{"redis://127.0.0.1:6379", nil, driver.URL{Network: "tcp", Addrs: []string{"127.0.0.1:6379"}}},
		{"redis://localhost", nil, driver.URL{Network: "tcp", Addrs: []string{"localhost:6379"}}},
		{"redis://[::1]/2", nil, driver.URL{Network: "tcp", Addrs: []string{"[::1]:6379"}, DB: 2}},
		{"rediss://u:p%40ss@h:1/3?db=3", nil, driver.URL{Network: "tcp", Addrs: []string{"h:1"}, TLS: true, DB: 3, Username: "u", Password: "p@ss"}},
		{"redis://secret@h", nil, driver.URL{Network: "tcp", Addrs: []string{"h:6379"}, Password: "secret"}},
		{"redis://:pw@h", nil, driver.URL{Network: "tcp", Addrs: []string{"h:6379"}, Password: "pw"}},
		{"unix:///tmp/r.sock?db=5", nil, driver.URL{Network: "unix", Addrs: []string{"/tmp/r.sock"}, DB: 5}},
		{"unix://u:p@/tmp/r.sock", nil, driver.URL{Network: "unix", Addrs: []string{"/tmp/r.sock"}, Username: "u", Password: "p"}},
		{"redis://a:1?addr=b:2&addr=c", nil, driver.URL{Network: "tcp", Addrs: []string{"a:1", "b:2", "c:6379"}}},
		{"redis://s:26379?master_name=mymaster&addr=t:26379", nil, driver.URL{Network: "tcp", Addrs: []string{"s:26379", "t:26379"}, MasterName: "mymaster"}},
		{"redis://h?pool_size=7&dial_timeout=1s&read_timeout=2s&write_timeout=3ms&client_name=me", nil, driver.URL{Network: "tcp", Addrs: []string{"h:6379"},
			PoolSize: 7, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 3 * time.Millisecond, ClientName: "me"}},
		{"redis://h?max_idle=3&idle_timeout=x", []string{"max_idle", "idle_timeout", "unused"}, driver.URL{Network: "tcp", Addrs: []string{"h:6379"},
			Extra: url.Values{"max_idle": {"3"}, "idle_timeout": {"x"}}}},
	} {
		got, err := driver.ParseURL(tc.dsn, tc.extra...)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.dsn, err)
			continue
		}
		if tc.want.Extra == nil {
			tc.want.Extra = url.Values{}
		}
		if err := got.Parse(tc.dsn, tc.extra...); err != nil { // again: the same
			t.Errorf("Parse(%q) again: %v", tc.dsn, err)
		}
		if g, w := strip(*got), tc.want; !reflect.DeepEqual(g, w) {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tc.dsn, g, w)
		}
	}
}

// strip returns u without its unexported fields, for comparison.
func strip(u driver.URL) driver.URL {
	return driver.URL{Network: u.Network, Addrs: u.Addrs, TLS: u.TLS, DB: u.DB, Username: u.Username, Password: u.Password,
		PoolSize: u.PoolSize, DialTimeout: u.DialTimeout, ReadTimeout: u.ReadTimeout, WriteTimeout: u.WriteTimeout,
		ClientName: u.ClientName, MasterName: u.MasterName, Extra: u.Extra}
}

// TestParseURLDefaults checks that Parse keeps the fields a URL does not
// set, and Has.
func TestParseURLDefaults(t *testing.T) {
	u := driver.URL{PoolSize: 4, DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, DB: 1}
	if err := u.Parse("redis://h?read_timeout=0s&client_name=x"); err != nil {
		t.Fatal(err)
	}
	if u.PoolSize != 4 || u.DialTimeout != 5*time.Second || u.ReadTimeout != 0 || u.DB != 1 || u.ClientName != "x" {
		t.Errorf("Parse over defaults: %+v", u)
	}
	if !u.Has("read_timeout") || !u.Has("client_name") || u.Has("pool_size") {
		t.Errorf("Has: wrong for %+v", u)
	}
}

func TestParseURLExtra(t *testing.T) {
	u, err := driver.ParseURL("redis://:s3cret@h?max_idle=3&idle_timeout=1m&bad_n=-1&bad_d=soon", "max_idle", "idle_timeout", "bad_n", "bad_d", "none")
	if err != nil {
		t.Fatal(err)
	}
	n, d := 10, 5*time.Minute
	if err := u.Int("max_idle", &n); err != nil || n != 3 {
		t.Errorf("Int(max_idle) = %d, %v", n, err)
	}
	if err := u.Duration("idle_timeout", &d); err != nil || d != time.Minute {
		t.Errorf("Duration(idle_timeout) = %v, %v", d, err)
	}
	if err := u.Int("none", &n); err != nil || n != 3 {
		t.Errorf("Int(none) = %d, %v; want it unchanged", n, err)
	}
	if err := u.Int("bad_n", &n); !errors.Is(err, driver.ErrInvalidURL) || n != 3 {
		t.Errorf("Int(bad_n) = %d, %v", n, err)
	}
	if err := u.Duration("bad_d", &d); !errors.Is(err, driver.ErrInvalidURL) || d != time.Minute {
		t.Errorf("Duration(bad_d) = %v, %v", d, err)
	}
}

func TestParseURLTLS(t *testing.T) {
	for dsn, host := range map[string]string{"redis://h:1": "", "rediss://h:1": "h", "rediss://[::1]": "::1", "rediss://a?addr=b": "a"} {
		u, err := driver.ParseURL(dsn)
		if err != nil {
			t.Fatal(err)
		}
		c := u.TLSConfig()
		if (c != nil) != (host != "") || c != nil && c.ServerName != host {
			t.Errorf("ParseURL(%q).TLSConfig() = %+v, want ServerName %q", dsn, c, host)
		}
	}
}

// TestParseURLErrors checks that every bad URL fails, with an error that
// matches ErrInvalidURL, says why, and never shows the password.
func TestParseURLErrors(t *testing.T) {
	bad := map[string]string{ // URL after "user:s3cret@" -> a part of the error
		"h/notadb":                          `database "notadb"`,
		"h/-1":                              `database "-1"`,
		"%zz":                               "escape",
		"h:6379/0?bogus=1":                  "unknown option bogus",
		"h/1?db=2":                          "database given twice",
		"h?db=1&db=2":                       "option db given 2 times",
		"h?addr=":                           "option addr: empty",
		"h?client_name=a&client_name=b":     "client_name given",
		"h?master_name=s3cret&master_name=": "master_name given",
	}
	for _, name := range []string{"db", "pool_size"} {
		for _, v := range []string{"many", "-1", "1.5", ""} {
			bad["h?"+name+"="+v] = "option " + name
		}
	}
	for _, name := range []string{"dial_timeout", "read_timeout", "write_timeout"} {
		for _, v := range []string{"soon", "-1s", "3", ""} {
			bad["h?"+name+"="+v] = "option " + name
		}
	}
	for _, scheme := range []string{"redis://", "rediss://", "unix://"} {
		bad["user:s3cret@"+scheme+"x"] = "scheme" // the whole thing is the scheme's opaque part
	}
	dsns := map[string]string{"": "scheme", "127.0.0.1:6379": "colon", "unix://": "unix:///path", "unix://host/path": "unix:///path", "unix:path": "unix:///path",
		"redis:opaque": "redis://host", "redis:///0": "redis://host", "http://user:s3cret@h": `scheme "http"`,
		"redis://s3cret@h?bogus=1": "bogus", "redis://s3cret@%zz": "escape", "redis://user:s3%63ret@%zz": "escape",
		"redis://user:s3cret@h?client_name=s3cret&client_name=x": "given 2 times",
		"redis://user:s3cret@h?pool_size=s3cret":                 `pool_size="xxxxx"`, "redis://s3cret@h?read_timeout=s3cret": `read_timeout="xxxxx"`,
		"redis://user:s3%63ret@h?db=s3cret": `db="xxxxx"`}
	for tail, want := range bad {
		if !strings.Contains(tail, "://") {
			tail = "redis://user:s3cret@" + tail
		}
		dsns[tail] = want
	}
	for dsn, want := range dsns {
		u, err := driver.ParseURL(dsn, "extra_ok")
		switch {
		case err == nil:
			t.Errorf("ParseURL(%q) = %+v, want an error", dsn, u)
		case !errors.Is(err, driver.ErrInvalidURL):
			t.Errorf("ParseURL(%q): %v, does not match ErrInvalidURL", dsn, err)
		case strings.Contains(err.Error(), "s3cret"):
			t.Errorf("ParseURL(%q): %v, shows the password", dsn, err)
		case !strings.Contains(err.Error(), want):
			t.Errorf("ParseURL(%q): %v, want it to say %q", dsn, err, want)
		}
	}
}
