package goredisv8

import (
	"errors"

	"github.com/go-redis/redis/v8"

	"github.com/relock-go/relock/driver"
)

// reply maps a command's result to the driver's shapes: a nil reply
// (redis.Nil) to nil, the rest through driver.ConvertReply.
func reply(v any, err error) (any, error) {
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, translate(err)
	}
	return driver.ConvertReply(v)
}

// translate makes an error reply match the driver's sentinel for it;
// network and context errors pass unchanged.
func translate(err error) error {
	if isReply(err) {
		return driver.WrapServerError(err)
	}
	return err
}

// isReply reports whether err is an error reply of the server.
func isReply(err error) bool {
	re := redis.Error(nil)
	return errors.As(err, &re)
}

func anys(ss []string) []any {
	a := make([]any, len(ss))
	for i, s := range ss {
		a[i] = s
	}
	return a
}
