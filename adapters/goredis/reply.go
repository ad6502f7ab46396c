package goredis

import (
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/relock-go/relock/driver"
)

// reply maps the result of a go-redis *Cmd to the driver's shapes.
func reply(v any, err error) (any, error) {
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err != nil:
		return nil, wrap(err)
	}
	return driver.ConvertReply(bigText(v))
}

// bigText replaces the RESP3 big numbers in v, which go-redis reads as
// *big.Int, with their decimal text, as RESP2 sends them.
func bigText(v any) any {
	switch v := v.(type) {
	case *big.Int:
		return v.String()
	case []any:
		for i, e := range v {
			v[i] = bigText(e)
		}
	case map[any]any:
		for k, e := range v {
			v[k] = bigText(e)
		}
	}
	return v
}

// got maps the result of GET: a missing key is no error.
func got(v string, err error) (string, bool, error) {
	switch {
	case errors.Is(err, redis.Nil):
		return "", false, nil
	case err != nil:
		return "", false, wrap(err)
	}
	return v, true, nil
}

// wrap makes a go-redis error reply match the driver's sentinels, and adds
// to a MOVED reply how to follow it: a client of one node, such as Open
// makes from a URL with one address, follows no redirection. Other errors
// (network, context) pass unchanged.
func wrap(err error) error {
	var re redis.Error
	switch {
	case !errors.As(err, &re):
		return err
	case strings.HasPrefix(re.Error(), "MOVED "):
		return fmt.Errorf("%w (the server is a Redis Cluster node and the key lives on another one: give Open the other nodes with ?addr=host:port in the URL, which makes a cluster client, or pass goredis.New a *redis.ClusterClient)", err)
	}
	return driver.WrapServerError(err)
}

// anys converts ss for go-redis's variadic arguments.
func anys(ss []string) []any {
	a := make([]any, len(ss))
	for i, s := range ss {
		a[i] = s
	}
	return a
}
