// Package testkit groups relock's test toolkits: packages that only tests,
// examples and benchmarks import, never production code.
//
//   - testredis: finds the real Redis for tests; starts private servers,
//     replicas, clusters and sentinels on free loopback ports (servers
//     also without a testing.TB, for bench/).
//   - memdriver: an in-memory driver written from the driver docs.
//   - adaptertest: checks the three adapters' own tests share.
//   - failover: the adapters' failover probes.
//
// Production code lives beside it in internal/ (scripts, backoff).
package testkit
