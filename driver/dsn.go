package driver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidURL is matched by every error of [ParseURL], [URL.Parse],
// [URL.Int] and [URL.Duration]. An adapter's Open reports such an error
// as matching relock.ErrInvalidArgument, as it does its other DSN errors.
var ErrInvalidURL = errors.New("relock/driver: invalid URL")

// Options is the shared DSN vocabulary: the query options every URL
// [ParseURL] reads may carry, whatever the adapter.
var Options = []string{"db", "pool_size", "dial_timeout", "read_timeout", "write_timeout", "client_name", "addr", "master_name"}

// URL is a data source name in the vocabulary the adapters share:
//
//	redis://[[user]:password@]host[:port][/db][?option=value...]   (rediss:// for TLS)
//	unix://[[user]:password@]/path/to/socket[?db=N&option=value...]
//	redis://host:port?addr=host2:port2&addr=...          several seeds (a cluster)
//	redis://sentinel:port?master_name=NAME[&addr=...]    sentinels
//
// The options are [Options] and the client-specific ones an adapter names.
type URL struct {
	Network  string   // "tcp" or "unix"
	Addrs    []string // host:port (port 6379 when left out), or the socket's path; then each addr option
	TLS      bool     // rediss://
	DB       int      // the path of a redis:// URL, or the db option
	Username string   // from the userinfo; redis://secret@host gives Password "secret"
	Password string

	PoolSize                               int
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	ClientName, MasterName                 string

	// Extra holds the client-specific options named in Parse's extra, as
	// given; see Int and Duration.
	Extra url.Values

	given url.Values
}

// ParseURL reads dsn: see [URL.Parse]. Fields that dsn does not set are
// zero.
func ParseURL(dsn string, extra ...string) (*URL, error) {
	u := new(URL)
	if err := u.Parse(dsn, extra...); err != nil {
		return nil, err
	}
	return u, nil
}

// Parse reads dsn into u. It sets Network, Addrs, TLS, Username, Password
// and Extra always, and the other fields only when dsn gives them, so
// that u may hold an adapter's defaults beforehand. The numbers must be
// whole and not negative, the timeouts durations as time.ParseDuration
// takes them (not negative: 0 is for the client to read). An option of
// neither [Options] nor extra, an option other than addr given twice, a
// database given both as the path and as db= with different values, a
// scheme other than redis, rediss and unix, or a URL that does not parse
// is an error, which matches [ErrInvalidURL] and never shows the password.
func (u *URL) Parse(dsn string, extra ...string) error {
	if err := u.parse(dsn, extra); err != nil {
		return &urlError{redact(err.Error(), dsn)}
	}
	return nil
}

func (u *URL) parse(dsn string, extra []string) error {
	p, err := url.Parse(dsn)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return err
	}
	u.Network, u.Addrs, u.TLS, u.Username, u.Password = "tcp", nil, p.Scheme == "rediss", "", ""
	pathDB := ""
	switch p.Scheme {
	case "redis", "rediss":
		if p.Opaque != "" || p.Host == "" {
			return errors.New("want redis://host[:port][/db]")
		}
		u.Addrs = []string{withPort(p.Host)}
		pathDB = strings.TrimPrefix(p.Path, "/")
	case "unix":
		if p.Opaque != "" || p.Host != "" || p.Path == "" {
			return errors.New("want unix:///path/to/socket")
		}
		u.Network, u.Addrs = "unix", []string{p.Path}
	default:
		return fmt.Errorf("scheme %q: want redis, rediss or unix", p.Scheme)
	}
	if p.User != nil {
		u.Username = p.User.Username()
		if pw, ok := p.User.Password(); ok {
			u.Password = pw
		} else { // redis://secret@host, as redis-cli takes it
			u.Username, u.Password = "", u.Username
		}
	}
	q := p.Query()
	u.given, u.Extra = q, url.Values{}
	for name, vs := range q {
		switch {
		case slices.Contains(extra, name):
			u.Extra[name] = vs
		case !slices.Contains(Options, name):
			return fmt.Errorf("unknown option %s (known: %s)", name, strings.Join(append(slices.Clone(Options), extra...), ", "))
		case name == "addr":
			for _, a := range vs {
				if a == "" {
					return errors.New("option addr: empty")
				}
				u.Addrs = append(u.Addrs, withPort(a))
			}
		case len(vs) > 1:
			return fmt.Errorf("option %s given %d times", name, len(vs))
		}
	}
	if pathDB != "" {
		if u.DB, err = strconv.Atoi(pathDB); err != nil || u.DB < 0 {
			return fmt.Errorf("database %q: want a number", pathDB)
		}
		if q.Has("db") && q.Get("db") != pathDB {
			return fmt.Errorf("database given twice: /%s and db=%s", pathDB, q.Get("db"))
		}
	}
	for name, p := range map[string]*int{"db": &u.DB, "pool_size": &u.PoolSize} {
		if err := number(q, name, p); err != nil {
			return err
		}
	}
	for name, p := range map[string]*time.Duration{"dial_timeout": &u.DialTimeout, "read_timeout": &u.ReadTimeout, "write_timeout": &u.WriteTimeout} {
		if err := duration(q, name, p); err != nil {
			return err
		}
	}
	if q.Has("client_name") {
		u.ClientName = q.Get("client_name")
	}
	if q.Has("master_name") {
		u.MasterName = q.Get("master_name")
	}
	return nil
}

// Has reports whether the URL u read gave the query option name.
func (u *URL) Has(name string) bool { return u.given.Has(name) }

// Int sets *p to the extra option name, when the URL gives it, which must
// be a whole number, not negative. Its error matches [ErrInvalidURL].
func (u *URL) Int(name string, p *int) error {
	if err := number(u.Extra, name, p); err != nil {
		return &urlError{redactPassword(err.Error(), u.Password)}
	}
	return nil
}

// Duration sets *p to the extra option name, when the URL gives it,
// which must be a duration as time.ParseDuration takes it, not negative.
// Its error matches [ErrInvalidURL].
func (u *URL) Duration(name string, p *time.Duration) error {
	if err := duration(u.Extra, name, p); err != nil {
		return &urlError{redactPassword(err.Error(), u.Password)}
	}
	return nil
}

// TLSConfig returns nil for a redis:// or unix:// URL, and for rediss://
// a TLS configuration (1.2 at least) that checks the first address's host.
func (u *URL) TLSConfig() *tls.Config {
	if !u.TLS || len(u.Addrs) == 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(u.Addrs[0])
	if err != nil {
		host = u.Addrs[0]
	}
	return &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
}

func number(q url.Values, name string, p *int) error {
	if !q.Has(name) {
		return nil
	}
	v := q.Get(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return fmt.Errorf("option %s=%q: want a number", name, v)
	}
	*p = n
	return nil
}

func duration(q url.Values, name string, p *time.Duration) error {
	if !q.Has(name) {
		return nil
	}
	v := q.Get(name)
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("option %s=%q: want a duration such as 3s", name, v)
	}
	*p = d
	return nil
}

// withPort adds Redis's port to an address that has none.
func withPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"), "6379")
}

// urlError is an error of Parse, Int or Duration.
type urlError struct{ msg string }

func (e *urlError) Error() string        { return e.msg }
func (e *urlError) Is(target error) bool { return target == ErrInvalidURL }

// redact takes out of msg the password of dsn, as written and decoded,
// even where dsn does not parse.
func redact(msg, dsn string) string {
	rest := dsn
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 && !strings.Contains(rest[:i], "@") {
		rest = rest[:i] // the userinfo ends at the last @ before the path
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return msg
	}
	info := rest[:at]
	pw := info
	if i := strings.Index(info, ":"); i >= 0 {
		pw = info[i+1:]
	}
	msg = redactPassword(msg, pw)
	if dec, err := url.PathUnescape(pw); err == nil {
		msg = redactPassword(msg, dec)
	}
	return msg
}

func redactPassword(msg, pw string) string {
	if pw == "" {
		return msg
	}
	return strings.ReplaceAll(msg, pw, "xxxxx")
}
