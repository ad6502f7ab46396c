// The benchmark harness, run from a checkout: not released, not tagged
// (CONTRIBUTING.md, "Releasing"). relmod: no-release

module github.com/relock-go/relock/bench

go 1.26.0

require (
	github.com/bsm/redislock v0.9.4
	github.com/go-redsync/redsync/v4 v4.18.1
	github.com/gomodule/redigo v1.9.3
	github.com/redis/go-redis/v9 v9.23.0
	github.com/redis/rueidis v1.0.79
	github.com/relock-go/relock v0.0.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)

replace github.com/relock-go/relock => ../

require github.com/relock-go/relock/adapters/goredis v0.0.0

replace github.com/relock-go/relock/adapters/goredis => ../adapters/goredis

require github.com/relock-go/relock/adapters/redigo v0.0.0

replace github.com/relock-go/relock/adapters/redigo => ../adapters/redigo

require github.com/relock-go/relock/adapters/rueidis v0.0.0

replace github.com/relock-go/relock/adapters/rueidis => ../adapters/rueidis

require github.com/relock-go/relock/tests v0.0.0

replace github.com/relock-go/relock/tests => ../tests
