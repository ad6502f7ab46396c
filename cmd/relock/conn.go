package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/adapters/goredis"
	"github.com/relock-go/relock/adapters/goredisv8"
	radixadapter "github.com/relock-go/relock/adapters/radix"
	redigoadapter "github.com/relock-go/relock/adapters/redigo"
	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"
	valkeyadapter "github.com/relock-go/relock/adapters/valkey"
	"github.com/relock-go/relock/driver"
)

// defaultURL is the server the subcommands use when neither -url nor
// $REDIS_URL names one.
const defaultURL = "redis://127.0.0.1:6379/0"

// defaultDriver is the client library -driver picks unless told otherwise.
const defaultDriver = "goredis"

// Default per-call and connect timeouts: a server that does not answer is
// reported within about their sum.
const (
	defaultTimeout        = 2 * time.Second
	defaultConnectTimeout = 2 * time.Second
	// probeTimeout bounds each step of the diagnosis that runs after a
	// failed connection, to name its likely cause.
	probeTimeout = time.Second
)

// drivers are the client libraries the CLI can open, by their -driver
// name. The CLI opens them itself rather than through relock.Open, so that
// it keeps the driver.Conn: release --force of a value relock did not
// write needs a raw compare-and-delete.
var drivers = map[string]driver.Driver{
	"goredis":   goredis.Driver{},
	"goredisv8": goredisv8.Driver{},
	"radix":     radixadapter.Driver{},
	"redigo":    redigoadapter.Driver{},
	"rueidis":   rueidisadapter.Driver{},
	"valkey":    valkeyadapter.Driver{},
}

// timeoutOptions are the URL query options through which each driver's
// Open takes the connect timeout and the per-call timeout.
var timeoutOptions = map[string]struct{ connect, call []string }{
	"goredis":   {[]string{"dial_timeout"}, []string{"read_timeout", "write_timeout"}},
	"goredisv8": {[]string{"dial_timeout"}, []string{"read_timeout", "write_timeout"}},
	"radix":     {[]string{"dial_timeout"}, []string{"read_timeout", "write_timeout"}},
	"redigo":    {[]string{"dial_timeout"}, []string{"read_timeout", "write_timeout"}},
	// rueidis and valkey-go have no read timeout: the write timeout also
	// bounds the background PINGs that find a dead connection.
	"rueidis": {[]string{"dial_timeout"}, []string{"write_timeout"}},
	"valkey":  {[]string{"dial_timeout"}, []string{"write_timeout"}},
}

// connFlags are the connection flags that run (and the commands that talk to
// a server) share.
type connFlags struct {
	url            string
	driver         string
	timeout        time.Duration
	connectTimeout time.Duration
	verbose        bool // the client library may log (go-redis does)

	explicit map[string]bool // the flags given on the command line
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
  -connect-timeout becomes the URL's dial_timeout, -timeout its
  read_timeout and write_timeout (rueidis: write_timeout only), unless the
  URL sets them and the flag is not given. Before anything else relock
  checks that the server answers, within -connect-timeout plus -timeout;
  if it does not, relock exits 69 and names the likely cause (nothing
  listens, no answer, TLS mismatch).
`

// register adds the connection flags to fs.
func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "", "Redis `URL`; default $REDIS_URL, else "+defaultURL)
	fs.StringVar(&c.driver, "driver", defaultDriver, "client `library`: "+strings.Join(driverNames(), ", "))
	fs.DurationVar(&c.timeout, "timeout", defaultTimeout, "bound on each Redis call (its reply)")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", defaultConnectTimeout, "bound on connecting to Redis (TCP and TLS)")
}

// driverNames lists the -driver names, sorted.
func driverNames() []string {
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// check validates the flags after parsing and fills in the URL's default.
func (c *connFlags) check(fs *flag.FlagSet) error {
	c.explicit = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.explicit[f.Name] = true })
	if c.url == "" {
		c.url = os.Getenv("REDIS_URL")
	}
	if c.url == "" {
		c.url = defaultURL
	}
	if _, ok := drivers[c.driver]; !ok {
		return fmt.Errorf("-driver: unknown driver %q (known: %s)", c.driver, strings.Join(driverNames(), ", "))
	}
	switch {
	case c.timeout <= 0:
		return fmt.Errorf("-timeout %v: must be positive", c.timeout)
	case c.connectTimeout <= 0:
		return fmt.Errorf("-connect-timeout %v: must be positive", c.connectTimeout)
	}
	return nil
}

// dsn is the URL with the timeouts added as the driver's query options: a
// flag given on the command line wins over the URL, the URL over a flag's
// default. A URL that does not parse is returned as it is, for the
// driver to report.
func (c *connFlags) dsn() string {
	u, err := url.Parse(c.url)
	if err != nil {
		return c.url
	}
	q := u.Query()
	set := func(names []string, flagName string, d time.Duration) {
		for _, n := range names {
			if c.explicit[flagName] || !q.Has(n) {
				q.Set(n, d.String())
			}
		}
	}
	opts := timeoutOptions[c.driver]
	set(opts.connect, "connect-timeout", c.connectTimeout)
	set(opts.call, "timeout", c.timeout)
	u.RawQuery = q.Encode()
	return u.String()
}

// quietLogger drops go-redis's log lines ("failed to dial after 5
// attempts", ...), which would repeat relock's own report on stderr.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// open returns a client over the chosen driver and URL, and the driver
// connection under it (the client owns it). Its errors never repeat the
// URL's password. Unless -v, it silences go-redis's logger: it is global
// to the process, which here is relock's own.
func (c *connFlags) open(opts ...relock.Option) (*relock.Client, driver.Conn, error) {
	if !c.verbose {
		redis.SetLogger(quietLogger{})
	}
	var conn driver.Conn
	var err error
	if c.driver == "goredis" {
		conn, err = openGoredis(c.dsn())
	} else {
		conn, err = drivers[c.driver].Open(c.dsn())
	}
	if err == nil {
		var client *relock.Client
		if client, err = relock.New(conn, opts...); err == nil {
			return client, conn, nil
		}
		_ = conn.Close()
	}
	return nil, nil, fmt.Errorf("connect to %s with %s: %s", redactURL(c.url), c.driver, c.hidePassword(err.Error()))
}

// callContext bounds the first calls to Redis, which may have to connect
// first: -connect-timeout plus -timeout per call.
func (c *connFlags) callContext(parent context.Context, calls int) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, c.connectTimeout+time.Duration(calls)*c.timeout)
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

// Exit statuses for Redis failures, shared by every subcommand; sysexits(3)
// numbers.
const (
	exitUnavailable  = 69 // EX_UNAVAILABLE: Redis did not answer, or refused the commands for now
	exitNoPermission = 77 // EX_NOPERM: NOPERM, or a failed AUTH
)

// failure is a classified error of a Redis call.
type failure struct {
	code int    // exitUnavailable, exitNoPermission or exitError
	err  error  // the call's error
	why  string // for exitUnavailable: the likely cause, when found
}

// classify sorts err, the error of a call to Redis, into an exit status.
// It relies on relock's sentinels, and for errors that carry none (older
// cores, or the CLI's own connection check) on the error's kind: a network
// error, a TLS error or a deadline means no answer. With probe it also
// looks for the cause of an unavailable server (see diagnose).
func (c *connFlags) classify(err error, probe bool) failure {
	f := failure{code: exitError, err: err}
	msg := err.Error()
	switch {
	case errors.Is(err, relock.ErrNoPermission), errors.Is(err, driver.ErrNoPermission),
		strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "NOAUTH"):
		f.code = exitNoPermission
	case errors.Is(err, relock.ErrInvalidArgument), errors.Is(err, relock.ErrWrongType),
		errors.Is(err, relock.ErrUnsupported), errors.Is(err, relock.ErrClosed):
	case errors.Is(err, relock.ErrUnavailable), errors.Is(err, driver.ErrServerRefused), noAnswer(err):
		f.code = exitUnavailable
	}
	if f.code == exitUnavailable && probe {
		f.why = c.diagnose()
	}
	return f
}

// noAnswer reports whether err says that the server could not be reached
// or did not answer in time.
func noAnswer(err error) bool {
	var ne net.Error
	var rh tls.RecordHeaderError
	var ae tls.AlertError
	return errors.As(err, &ne) || errors.As(err, &rh) || errors.As(err, &ae) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed)
}

// message is the line that reports f: for an unavailable server, what
// relock found about why, then the error.
func (c *connFlags) message(f failure) string {
	msg := c.hidePassword(f.err.Error())
	switch f.code {
	case exitUnavailable:
		if f.why != "" {
			return fmt.Sprintf("redis unavailable at %s: %s (%s)", redactURL(c.url), f.why, msg)
		}
		return fmt.Sprintf("redis unavailable at %s: %s", redactURL(c.url), msg)
	case exitNoPermission:
		return "no permission: " + msg
	}
	return msg
}

// diagnose connects to the URL's first host itself, to tell why the client
// got no answer: nothing listens, no answer to connect, a plaintext server
// behind rediss://, a TLS server behind redis://, or a server that accepts
// connections and answers nothing. It returns "" when it cannot tell.
func (c *connFlags) diagnose() string {
	u, err := url.Parse(c.url)
	if err != nil || u.Host == "" {
		return ""
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "6379")
	}
	dialTimeout := min(c.connectTimeout, 2*probeTimeout)
	nc, err := net.DialTimeout("tcp", addr, dialTimeout)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: nothing listens on " + addr
	case isTimeout(err):
		return fmt.Sprintf("no answer to connect to %s within %v: host down, or a firewall drops the packets", addr, dialTimeout)
	case err != nil:
		return err.Error()
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := io.WriteString(nc, "PING\r\n"); err != nil {
		return ""
	}
	line, err := bufio.NewReader(nc).ReadString('\n')
	resp := err == nil && line != "" && strings.ContainsRune("+-", rune(line[0]))
	tlsScheme := u.Scheme == "rediss"
	switch {
	case resp && tlsScheme:
		return "TLS mismatch: the server speaks plaintext Redis, not TLS (use redis://, not rediss://)"
	case resp:
		return "" // it answers now: the error says more
	case isTimeout(err) && tlsScheme:
		return fmt.Sprintf("connected to %s, but no answer within %v: the server is hung or not Redis", addr, probeTimeout)
	case isTimeout(err):
		return fmt.Sprintf("connected to %s, but no answer within %v: the server is hung, overloaded or not Redis", addr, probeTimeout)
	case !tlsScheme && c.speaksTLS(addr, u.Hostname()):
		return "TLS mismatch: the server speaks TLS (use rediss://, not redis://)"
	case !tlsScheme:
		return fmt.Sprintf("the server at %s closes connections without an answer: not Redis, or it expects TLS", addr)
	}
	return ""
}

// speaksTLS reports whether the server at addr completes a TLS handshake
// (certificates not checked: only the protocol matters here).
func (c *connFlags) speaksTLS(addr, host string) bool {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: probeTimeout},
		Config: &tls.Config{ServerName: host, InsecureSkipVerify: true}} //nolint:gosec // a probe, no data sent
	ctx, cancel := context.WithTimeout(context.Background(), 2*probeTimeout)
	defer cancel()
	tc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	_ = tc.Close()
	return true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// openGoredis is goredis.Driver.Open (see adapters/goredis/open.go: the
// same URL forms, ContextTimeoutEnabled) with one dial attempt per
// connection instead of go-redis's five: relock retries on its own
// schedule, and five attempts made a refused port or a TLS mismatch cost
// five times the dial timeout, and a wrong password seconds of back-off.
// go-redis's plain-URL parser has no option for it (dialer_retries is for
// cluster and failover URLs only), hence the client built here.
func openGoredis(dsn string) (driver.Conn, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return drivers["goredis"].Open(dsn) // for its error, without the URL
	}
	var rdb redis.UniversalClient
	switch q := u.Query(); {
	case q.Has("master_name"):
		var opt *redis.FailoverOptions
		if opt, err = redis.ParseFailoverURL(dsn); err == nil {
			opt.ContextTimeoutEnabled = true
			if !q.Has("dialer_retries") {
				opt.DialerRetries = 1
			}
			rdb = redis.NewFailoverClient(opt)
		}
	case q.Has("addr"):
		var opt *redis.ClusterOptions
		if opt, err = redis.ParseClusterURL(dsn); err == nil {
			opt.ContextTimeoutEnabled = true
			if !q.Has("dialer_retries") {
				opt.DialerRetries = 1
			}
			rdb = redis.NewClusterClient(opt)
		}
	default:
		var opt *redis.Options
		if opt, err = redis.ParseURL(dsn); err == nil {
			opt.ContextTimeoutEnabled = true
			opt.DialerRetries = 1
			rdb = redis.NewClient(opt)
		}
	}
	if err != nil {
		return drivers["goredis"].Open(dsn) // the adapter's error: relock.ErrInvalidArgument, no password
	}
	return &ownedGoredis{Conn: goredis.New(rdb), rdb: rdb}, nil
}

// ownedGoredis is a goredis.Conn that closes its client: the methods of
// *goredis.Conn, and so every optional driver interface it implements,
// are promoted.
type ownedGoredis struct {
	*goredis.Conn
	rdb  redis.UniversalClient
	once sync.Once
	err  error
}

// Close closes the Conn, then the client, once.
func (c *ownedGoredis) Close() error {
	c.once.Do(func() { c.err = errors.Join(c.Conn.Close(), c.rdb.Close()) })
	return c.err
}
