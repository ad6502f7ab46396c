package goredis

import "github.com/redis/go-redis/v9"

// Internal helpers exported to the external tests of this package only.
var (
	Normalize = normalize
	Translate = translate
)

// Client exposes the client a Conn wraps.
func Client(c *Conn) redis.UniversalClient { return c.rdb }

// WorkersStarted is how many worker goroutines c has started for guarded
// calls.
func WorkersStarted(c *Conn) int64 { return c.spawned.Load() }
