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
	retry       RetryStrategy
	maxWait     time.Duration // 0: until the context ends
	autoRefresh bool
	fencing     bool
	replicas    *replicaWait
	observer    Observer // nil: no events
	metadata    string
	minHold     time.Duration // 0: Release deletes the key at once
	prefix      string        // a Client setting: before every key
	prefixGiven bool          // WithKeyPrefix was given (to Obtain: refused)
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
// released just before then is still obtained. The budget bounds network
// I/O too: Obtain returns by the budget plus 100 ms (the last try's
// grace), however slow the server. A negative budget makes
// Obtain fail with ErrInvalidArgument.
func WithMaxWait(d time.Duration) Option {
	return optionFunc(func(st *settings) { st.maxWait = d })
}

// WithAutoRefresh keeps an obtained lock alive: a goroutine refreshes it to
// its full TTL every TTL/3 until Release, loss, or Client.Close, and is gone
// when they return. If a refresh finds the lock taken or gone, or no refresh
// succeeds before the lock's validity runs out, the lock is lost: its Done
// channel closes and Err says why. Use it with Obtain; Client.Do turns it on
// by itself.
func WithAutoRefresh() Option {
	return optionFunc(func(st *settings) { st.autoRefresh = true })
}

// WithFencing makes Obtain also draw a fencing number: a counter, kept in
// Redis next to the lock key (in the same hash slot), that the obtain
// increments atomically, so the numbers strictly increase across all the
// holders of a key. Lock.Fence returns it. Storage that records the highest
// number it has seen and rejects writes with a lower one turns away a
// holder whose lock expired while it was paused.
//
// Numbers survive a server that restarts empty and forgets the counter: a
// missing counter starts from the server's clock in microseconds (on the
// WATCH path, the client's), above every number handed out before as long
// as that clock does not go back; so numbers are large (about 1.8e15 in
// 2026) and not consecutive across such a restart. An unused counter
// expires a day after its last use, and starts from the clock again. A
// key that contains '}' must use a hash tag ("{...}") to be fenced, so
// that the counter can share its slot in a Redis Cluster. Not available
// on a quorum (NewQuorum): each master would count on its own.
func WithFencing() Option {
	return optionFunc(func(st *settings) { st.fencing = true })
}

// WithReplicas makes Obtain, and Refresh of the lock it returns, wait
// until n replicas have acknowledged the write, for at most timeout, with
// WAIT sent on the same connection right after the write. When fewer
// acknowledge, the lock is released and the call fails with an error
// matching ErrTooFewReplicas.
//
// It narrows, not closes, the window in which a failover to a replica that
// missed the write lets a second holder in: Redis replication stays
// asynchronous. The driver must implement driver.ReplicaWaiter, else
// Obtain fails with ErrUnsupported before sending anything. n must be at least 1 and timeout
// at least 1 ms. All three adapters implement it, on a Redis Cluster too
// (go-redis and rueidis: the script and WAIT go to the key's primary).
func WithReplicas(n int, timeout time.Duration) Option {
	return optionFunc(func(st *settings) { st.replicas = &replicaWait{n: n, timeout: timeout} })
}

// WithMinHold keeps the lock at least d after it was obtained: a Release
// (and so Do's release after fn) that comes sooner does not delete the key
// but, owner-checked, sets its expiry to what is left of d, and lets Redis
// drop it then; it never sets it beyond ObtainedAt()+d. The lock counts as
// released at once (Err is ErrReleased); no waiter is handed the lock
// before the key expires. A Release at d or later deletes the key as
// usual. A negative d makes Obtain fail with ErrInvalidArgument.
//
// It is for jobs that must run once across replicas (see Client.DoOnce):
// a replica whose timer fires late finds the lock still held, even when
// the job was quicker than the timers' spread.
func WithMinHold(d time.Duration) Option {
	return optionFunc(func(st *settings) { st.minHold = d })
}
