package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/relock-go/relock"
)

// defaultURL is the server the subcommands use when neither -url nor
// $REDIS_URL names one.
const defaultURL = "redis://127.0.0.1:6379/0"

// defaultDriver is the client library -driver picks unless told otherwise.
const defaultDriver = "goredis"

// connFlags are the connection flags that run (and the commands that talk to
// a server) share.
type connFlags struct {
	url    string
	driver string
}

// connHelp explains the connection flags, for the subcommands' usage.
const connHelp = `Connection:
  -url is parsed by the driver that -driver names. Every driver takes
    redis://[user:password@]host:port/db    rediss://... for TLS
  and query options of its client library (dial_timeout=3s, ...). With
  -driver goredis or rueidis a URL can also name a Redis Cluster,
    redis://host1:port?addr=host2:port&addr=host3:port
  or a primary that Sentinels watch,
    redis://sentinel1:26379?master_name=NAME&addr=sentinel2:26379
  (redigo has no cluster or Sentinel client). Prefer $REDIS_URL to -url
  when the URL holds a password: command lines are visible in ps.
`

// register adds -url and -driver to fs.
func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "", "Redis `URL`; default $REDIS_URL, else "+defaultURL)
	fs.StringVar(&c.driver, "driver", defaultDriver, "client `library`: "+strings.Join(relock.Drivers(), ", "))
}

// check validates the flags after parsing and fills in the URL's default.
func (c *connFlags) check() error {
	if c.url == "" {
		c.url = os.Getenv("REDIS_URL")
	}
	if c.url == "" {
		c.url = defaultURL
	}
	if all := relock.Drivers(); !slices.Contains(all, c.driver) {
		return fmt.Errorf("-driver: unknown driver %q (registered: %s)", c.driver, strings.Join(all, ", "))
	}
	return nil
}

// open returns a client over the chosen driver and URL. Its errors never
// repeat the URL's password.
func (c *connFlags) open(opts ...relock.Option) (*relock.Client, error) {
	client, err := relock.Open(c.driver, c.url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s with %s: %s", redactURL(c.url), c.driver, c.hidePassword(err.Error()))
	}
	return client, nil
}

// hidePassword replaces the URL's password wherever it appears in s: some
// URL parsers quote the whole URL in their errors.
func (c *connFlags) hidePassword(s string) string {
	u, err := url.Parse(c.url)
	if err != nil || u.User == nil {
		if err != nil {
			return strings.ReplaceAll(s, c.url, "(the URL)")
		}
		return s
	}
	if p, ok := u.User.Password(); ok && p != "" {
		s = strings.ReplaceAll(s, p, "xxxxx")
	}
	return s
}
