package goredisv8

import (
	"errors"

	"github.com/go-redis/redis/v8"

	"github.com/relock-go/relock/driver"
)

// reply maps the result of a go-redis command to the driver's shapes: a
// nil reply (redis.Nil) to nil, the rest through driver.ConvertReply (an
// error reply nested in an array fails the call).
func reply(v any, err error) (any, error) {
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, translate(err)
	}
	return driver.ConvertReply(v)
}

// translate makes an error reply of the server match the driver's
// sentinel for it (driver.WrapServerError); network and context errors
// pass through unchanged.
func translate(err error) error {
	var re redis.Error
	if errors.As(err, &re) {
		return driver.WrapServerError(err)
	}
	return err
}

// anys converts command arguments for go-redis.
func anys(ss []string) []any {
	a := make([]any, len(ss))
	for i, s := range ss {
		a[i] = s
	}
	return a
}
