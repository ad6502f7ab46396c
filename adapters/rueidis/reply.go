package rueidisadapter

import (
	"github.com/redis/rueidis"

	"github.com/relock-go/relock/driver"
)

// result maps the reply to one command as the driver package says.
func result(r rueidis.RedisResult) (any, error) {
	if err := r.NonRedisError(); err != nil {
		return nil, err
	}
	m, _ := r.ToMessage() // an error reply is in m too
	return convert(&m)
}

// convert maps one reply through the plain Go values of ToAny (nested
// error replies become error values) and driver.ConvertReply.
func convert(m *rueidis.RedisMessage) (any, error) {
	if m.IsNil() {
		return nil, nil
	}
	v, err := m.ToAny()
	if err != nil {
		return nil, translate(err)
	}
	return driver.ConvertReply(v)
}

// translate makes an error reply match the driver sentinel its text names,
// keeping the *rueidis.RedisError; other errors pass unchanged.
func translate(err error) error {
	if _, ok := rueidis.IsRedisErr(err); ok {
		return driver.WrapServerError(err)
	}
	return err
}
