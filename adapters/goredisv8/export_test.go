package goredisv8

import (
	"github.com/go-redis/redis/v8"

	"github.com/relock-go/relock/driver"
)

// Guarded returns a Conn over rdb whose calls all run guarded, as those of
// a TLS or cluster client do.
func Guarded(rdb redis.UniversalClient) *Conn {
	c := New(rdb)
	c.guard = true
	return c
}

// IsGuarded reports whether c's calls run guarded.
func IsGuarded(c *Conn) bool { return c.guard }

var (
	_ driver.Validator     = (*Conn)(nil)
	_ driver.Scripter      = (*Conn)(nil)
	_ driver.Watcher       = (*Conn)(nil)
	_ driver.ReplicaWaiter = (*Conn)(nil)
	_ driver.Subscriber    = (*Conn)(nil)
)
