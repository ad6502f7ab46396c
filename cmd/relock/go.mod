module github.com/relock-go/relock/cmd/relock

go 1.26.0

require (
	github.com/alicebob/miniredis/v2 v2.40.0
	github.com/redis/go-redis/v9 v9.23.0
	github.com/relock-go/relock v0.0.0
	github.com/relock-go/relock/adapters/goredis v0.0.0
	github.com/relock-go/relock/adapters/redigo v0.0.0
	github.com/relock-go/relock/adapters/rueidis v0.0.0
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.48.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/gomodule/redigo v1.9.3 // indirect
	github.com/redis/rueidis v1.0.79 // indirect
	github.com/yuin/gopher-lua v1.1.1 // indirect
	go.uber.org/atomic v1.12.0 // indirect
)

replace github.com/relock-go/relock => ../..

replace github.com/relock-go/relock/adapters/goredis => ../../adapters/goredis

replace github.com/relock-go/relock/adapters/redigo => ../../adapters/redigo

replace github.com/relock-go/relock/adapters/rueidis => ../../adapters/rueidis
