package main

import (
	"context"
	"flag"

	"github.com/relock-go/relock"
)

// relock run --permits N: CMD runs holding one of N permits of the
// semaphore named KEY (docs/semaphore.md), like consul lock -n, instead of
// the lock named KEY. Everything else is the same: the permit is a lock
// (refreshed every TTL/3, released when CMD exits, its loss stops CMD),
// and RELOCK_FENCE is its fencing number, from one counter for the
// semaphore.

// registerPermits adds -permits to fs.
func registerPermits(fs *flag.FlagSet, cfg *runConfig) {
	fs.IntVar(&cfg.permits, "permits", 0, "take one of `N` permits of the semaphore named KEY instead of the lock KEY (a limit stored with SetLimit overrides N); 0: the lock")
}

// take obtains the lock KEY, or with -permits a permit of the semaphore
// KEY.
func (cfg *runConfig) take(ctx context.Context, client *relock.Client, opts []relock.Option) (*relock.Lock, error) {
	if cfg.permits > 0 {
		return client.Semaphore(cfg.key, cfg.permits).Obtain(ctx, cfg.ttl, opts...)
	}
	return client.Obtain(ctx, cfg.key, cfg.ttl, opts...)
}

// look reads KEY's state once, as the lock or, with -permits, as the
// semaphore: the error says whether Redis answers.
func (cfg *runConfig) look(ctx context.Context, client *relock.Client) error {
	if cfg.permits > 0 {
		_, err := client.Semaphore(cfg.key, cfg.permits).Inspect(ctx)
		return err
	}
	_, err := client.Inspect(ctx, cfg.key)
	return err
}
