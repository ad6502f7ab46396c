package lockbench

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/relock-go/relock"
	"github.com/relock-go/relock/driver"
)

// SemaphorePermits is how many permits the semaphore contenders (and the
// mutex-per-permit baseline) share on a scenario's key.
const SemaphorePermits = 4

// RWReadShare is the share of a read-write contender's acquisitions that
// are reads; the rest are writes.
const RWReadShare = 0.9

// primitiveContenders are relock's semaphore and read-write lock, each
// next to the baseline a user without them would write: for the
// semaphore, SemaphorePermits mutexes tried in turn ("mutex per permit",
// no Go library offers a Redis semaphore with leases); for the read-write
// lock, the plain mutex (every reader exclusive), which is the relock/*
// mutex contender itself in the same run.
func primitiveContenders() []Contender {
	var cs []Contender
	for _, a := range relockAdapters[:3] { // goredis, redigo, rueidis
		cs = append(cs,
			Contender{
				Name: "relock-sem/" + a.Name, Library: "relock-sem", Client: a.Name, Permits: SemaphorePermits, MustExclude: true,
				Settings: "Client.Semaphore(key, " + strconv.Itoa(SemaphorePermits) + ").Obtain: a permit per acquisition, fair queue, hand-over",
				Open: func(cfg Config) (Session, error) {
					return openPrimitive(cfg, a.Open, func(c *relock.Client, ttl time.Duration) Session {
						return &semSession{c: c, ttl: ttl}
					})
				},
			},
			Contender{
				Name: "permit-mutex/" + a.Name, Library: "permit-mutex", Client: a.Name, Permits: SemaphorePermits, MustExclude: true,
				Settings: strconv.Itoa(SemaphorePermits) + " relock mutexes key:0..N-1: TryObtain each from a random one, 1ms sleep when all are taken",
				Open: func(cfg Config) (Session, error) {
					return openPrimitive(cfg, a.Open, func(c *relock.Client, ttl time.Duration) Session {
						return &permitMutexSession{c: c, ttl: ttl}
					})
				},
			},
			Contender{
				Name: "relock-rw/" + a.Name, Library: "relock-rw", Client: a.Name, Permits: rwUnbounded, MustExclude: true,
				Settings: "Client.RWLock(key): 90 % ObtainRead, 10 % ObtainWrite; no writer may overlap anyone (checked by the session)",
				Open: func(cfg Config) (Session, error) {
					return openPrimitive(cfg, a.Open, func(c *relock.Client, ttl time.Duration) Session {
						return &rwSession{c: c, ttl: ttl}
					})
				},
			},
		)
	}
	return cs
}

// rwUnbounded is the read-write contenders' Permits: the harness does not
// count their holders (readers overlap); the session checks them.
const rwUnbounded = 1 << 30

func openPrimitive(cfg Config, open func(Config) (driver.Conn, func() error, error), mk func(*relock.Client, time.Duration) Session) (Session, error) {
	conn, closeClient, err := open(cfg)
	if err != nil {
		return nil, err
	}
	c, err := relock.New(conn)
	if err != nil {
		_ = closeClient()
		return nil, err
	}
	return &closingSession{Session: mk(c, cfg.TTL), close: func() error { return errors.Join(c.Close(), closeClient()) }}, nil
}

type closingSession struct {
	Session
	close func() error
}

func (s *closingSession) Close() error { return s.close() }

// Violations reports the wrapped session's own count, if it keeps one.
func (s *closingSession) Violations() int64 {
	if v, ok := s.Session.(selfChecked); ok {
		return v.Violations()
	}
	return 0
}

// selfChecked is a Session that checks its own exclusion (the harness
// cannot: readers may overlap) and counts what it found.
type selfChecked interface {
	Violations() int64
}

type semSession struct {
	c   *relock.Client
	ttl time.Duration
}

func (s *semSession) Lock(ctx context.Context, key string) (Unlock, error) {
	l, err := s.c.Semaphore(key, SemaphorePermits).Obtain(ctx, s.ttl)
	if err != nil {
		if errors.Is(err, relock.ErrNotObtained) {
			return nil, gaveUp(ctx, err)
		}
		return nil, err
	}
	return l.Release, nil
}

func (s *semSession) Close() error { return nil }

type permitMutexSession struct {
	c   *relock.Client
	ttl time.Duration
}

func (s *permitMutexSession) Lock(ctx context.Context, key string) (Unlock, error) {
	first := rand.IntN(SemaphorePermits)
	for {
		for i := range SemaphorePermits {
			k := key + ":" + strconv.Itoa((first+i)%SemaphorePermits)
			l, err := s.c.TryObtain(ctx, k, s.ttl)
			if err == nil {
				return l.Release, nil
			}
			if !errors.Is(err, relock.ErrNotObtained) {
				return nil, err
			}
		}
		t := time.NewTimer(time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (s *permitMutexSession) Close() error { return nil }

type rwSession struct {
	c                  *relock.Client
	ttl                time.Duration
	readers, writers   atomic.Int64
	violations, writes atomic.Int64
}

func (s *rwSession) Lock(ctx context.Context, key string) (Unlock, error) {
	rw := s.c.RWLock(key)
	write := rand.Float64() >= RWReadShare
	var l *relock.Lock
	var err error
	if write {
		l, err = rw.ObtainWrite(ctx, s.ttl)
	} else {
		l, err = rw.ObtainRead(ctx, s.ttl)
	}
	if err != nil {
		if errors.Is(err, relock.ErrNotObtained) {
			return nil, gaveUp(ctx, err)
		}
		return nil, err
	}
	if write {
		s.writes.Add(1)
		if s.writers.Add(1) != 1 || s.readers.Load() != 0 {
			s.violations.Add(1)
		}
	} else if s.readers.Add(1); s.writers.Load() != 0 {
		s.violations.Add(1)
	}
	return func(ctx context.Context) error {
		if write {
			s.writers.Add(-1)
		} else {
			s.readers.Add(-1)
		}
		return l.Release(ctx)
	}, nil
}

func (s *rwSession) Violations() int64 { return s.violations.Load() }

func (s *rwSession) Close() error { return nil }
