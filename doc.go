// Package relock provides distributed locks on Redis through any Redis
// client, in the manner of database/sql.
//
// The lock algorithm lives here once: a random 128-bit token per
// acquisition, SET key token NX PX ttl tried until it succeeds or the
// caller gives up, and release, refresh and TTL that act only if the key
// still holds our token. It reaches Redis through the small contract in
// package driver; adapters plug in go-redis v9 (adapters/goredis), redigo
// (adapters/redigo) and rueidis (adapters/rueidis).
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	locker, err := relock.New(goredis.New(rdb))
//	...
//	lock, err := locker.Obtain(ctx, "report:42", 10*time.Second)
//	switch {
//	case errors.Is(err, relock.ErrNotObtained): // another owner holds it
//	case errors.Is(err, relock.ErrUnavailable): // Redis did not answer, or refused
//	case err != nil: // no permission, bad input, ...
//	}
//	defer lock.Release(ctx) // right even once ctx has ended: see Lock.Release
//
// Client.Do runs a function under the lock, auto-refreshed; Client.DoOnce
// runs it only if the lock is free, for work that one of several replicas
// should do (with WithMinHold against timers that fire apart).
//
// Or, database/sql style, by driver name and URL after importing an adapter
// for its side effect:
//
//	locker, err := relock.Open("goredis", "redis://127.0.0.1:6379/0")
package relock
