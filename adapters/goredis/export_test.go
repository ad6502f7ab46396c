package goredis

import "github.com/redis/go-redis/v9"

// Client exposes the client a Conn wraps.
func Client(c *Conn) redis.UniversalClient { return c.rdb }

// WorkersStarted is how many worker goroutines c has started for guarded
// calls.
func WorkersStarted(c *Conn) int64 { return c.g.spawned.Load() }
