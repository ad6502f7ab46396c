package rueidisadapter

import (
	"sort"

	"github.com/redis/rueidis"

	"github.com/relock-go/relock/driver"
)

// result maps the reply to one command as the package doc says.
func result(r rueidis.RedisResult) (any, error) {
	if err := r.NonRedisError(); err != nil {
		return nil, err
	}
	m, _ := r.ToMessage() // the error, if any, is in m too
	return convert(&m)
}

// convert maps one reply, recursively, to nil, int64, string or []any. An
// error reply, at any depth, becomes the returned error.
func convert(m *rueidis.RedisMessage) (any, error) {
	if m.IsNil() {
		return nil, nil
	}
	if err := m.Error(); err != nil {
		return nil, translate(err)
	}
	switch {
	case m.IsInt64():
		return m.AsInt64()
	case m.IsString():
		return m.ToString()
	case m.IsArray(): // arrays and RESP3 sets
		elems, err := m.ToArray()
		if err != nil {
			return nil, err
		}
		out := make([]any, len(elems))
		for i := range elems {
			if out[i], err = convert(&elems[i]); err != nil {
				return nil, err
			}
		}
		return out, nil
	case m.IsMap():
		kv, err := m.AsMap()
		if err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(kv))
		for k := range kv {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([]any, 0, 2*len(keys))
		for _, k := range keys {
			v := kv[k]
			cv, err := convert(&v)
			if err != nil {
				return nil, err
			}
			out = append(out, k, cv)
		}
		return out, nil
	case m.IsBool(): // RESP2 clients get :1 or :0
		b, err := m.AsBool()
		if b {
			return int64(1), err
		}
		return int64(0), err
	}
	// Double, big number and verbatim string: their text, as RESP2 sends it.
	s, err := m.ToString()
	if err != nil {
		return nil, err
	}
	if !m.IsFloat64() && len(s) >= 4 && s[3] == ':' {
		s = s[4:] // verbatim "txt:..."; a big number never holds ':'
	}
	return s, nil
}

// translate makes NOSCRIPT and WRONGTYPE error replies match the driver
// sentinels under errors.Is, keeping the rueidis error and its text. Other
// errors are returned unchanged.
func translate(err error) error {
	re, ok := rueidis.IsRedisErr(err)
	if !ok {
		return err
	}
	// driver.ReplyKind classifies the reply's text (NOSCRIPT, WRONGTYPE,
	// also raised inside a script) as every adapter does.
	if kind := driver.ReplyKind(re.Error()); kind != nil {
		return &replyError{sentinel: kind, err: re}
	}
	return err
}

// replyError is an error reply that also matches a driver sentinel.
type replyError struct {
	sentinel error
	err      *rueidis.RedisError
}

func (e *replyError) Error() string { return e.err.Error() }

// Unwrap gives errors.Is the sentinel and errors.As the *rueidis.RedisError.
func (e *replyError) Unwrap() []error { return []error{e.sentinel, e.err} }
