// Package scripttest holds the tests of relockotel that need the script
// path (Lua scripts, EVALSHA, the hand-over to a subscribed waiter): they
// run relock on miniredis through the go-redis adapter. It has no code of
// its own, only tests.
//
// They are here, not in relockotel's own tests, because go mod tidy in a
// module that imports relockotel loads the tests of relockotel (but not of
// this internal package): had relockotel's tests imported miniredis and
// go-redis, every user of the otel module would have them in go.sum.
package scripttest
