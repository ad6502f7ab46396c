module github.com/relock-go/relock/cmd/relock

go 1.26.0

require (
	github.com/alicebob/miniredis/v2 v2.40.0
	github.com/redis/go-redis/v9 v9.23.0
	github.com/relock-go/relock v0.0.0
	github.com/relock-go/relock/adapters/goredis v0.0.0
	github.com/relock-go/relock/adapters/goredisv8 v0.0.0
	github.com/relock-go/relock/adapters/radix v0.0.0
	github.com/relock-go/relock/adapters/redigo v0.0.0
	github.com/relock-go/relock/adapters/rueidis v0.0.0
	github.com/relock-go/relock/adapters/valkey v0.0.0
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f // indirect
	github.com/go-redis/redis/v8 v8.11.5 // indirect
	github.com/gomodule/redigo v1.9.3 // indirect
	github.com/mediocregopher/radix/v4 v4.1.4 // indirect
	github.com/redis/rueidis v1.0.79 // indirect
	github.com/tilinna/clock v1.0.2 // indirect
	github.com/valkey-io/valkey-go v1.0.80 // indirect
	github.com/yuin/gopher-lua v1.1.1 // indirect
	go.uber.org/atomic v1.12.0 // indirect
)

replace github.com/relock-go/relock => ../..

replace github.com/relock-go/relock/adapters/goredis => ../../adapters/goredis

replace github.com/relock-go/relock/adapters/redigo => ../../adapters/redigo

replace github.com/relock-go/relock/adapters/rueidis => ../../adapters/rueidis

replace github.com/relock-go/relock/adapters/goredisv8 => ../../adapters/goredisv8

replace github.com/relock-go/relock/adapters/radix => ../../adapters/radix

replace github.com/relock-go/relock/adapters/valkey => ../../adapters/valkey
