package relock

import "time"

// An Option tunes how a Client obtains locks. Options given to New set the
// Client's defaults; options given to Obtain override them for that call.
type Option interface {
	apply(*settings)
}

type optionFunc func(*settings)

func (f optionFunc) apply(s *settings) { f(s) }

type settings struct {
	retry   RetryStrategy
	maxWait time.Duration // 0: until the context ends
}

func defaultSettings() settings {
	return settings{retry: DefaultRetry()}
}

// WithRetry sets the retry strategy used while the lock is taken. A nil
// strategy means NoRetry.
func WithRetry(s RetryStrategy) Option {
	return optionFunc(func(st *settings) {
		if s == nil {
			s = NoRetry()
		}
		st.retry = s
	})
}

// WithMaxWait bounds how long Obtain waits for a taken lock, counted from
// the call's start; 0 (the default) waits until the context ends or the
// retry strategy stops. The last try happens at the budget's end, so a lock
// released just before then is still obtained. A negative budget makes
// Obtain fail with ErrInvalidArgument.
func WithMaxWait(d time.Duration) Option {
	return optionFunc(func(st *settings) { st.maxWait = d })
}
