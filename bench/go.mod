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
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f // indirect
	github.com/tilinna/clock v1.0.2 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
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

require github.com/relock-go/relock/adapters/goredisv8 v0.0.0

replace github.com/relock-go/relock/adapters/goredisv8 => ../adapters/goredisv8

require github.com/relock-go/relock/adapters/radix v0.0.0

replace github.com/relock-go/relock/adapters/radix => ../adapters/radix

require (
	github.com/go-redis/redis/v8 v8.11.5
	github.com/mediocregopher/radix/v4 v4.1.4
	github.com/relock-go/relock/adapters/valkey v0.0.0
	github.com/valkey-io/valkey-go v1.0.80
)

replace github.com/relock-go/relock/adapters/valkey => ../adapters/valkey
