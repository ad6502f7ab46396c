package relock_test

// Every adapter registers its driver, so that the tests that range over
// relock.Drivers() (TestSubscriptionFaults) cover each of them.
import (
	_ "github.com/relock-go/relock/adapters/goredis"
	_ "github.com/relock-go/relock/adapters/goredisv8"
	_ "github.com/relock-go/relock/adapters/radix"
	_ "github.com/relock-go/relock/adapters/redigo"
	_ "github.com/relock-go/relock/adapters/rueidis"
	_ "github.com/relock-go/relock/adapters/valkey"
)
