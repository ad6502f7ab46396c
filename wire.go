package relock

import (
	"fmt"
	"strconv"
	"strings"
)

// The wire formats of relock's scripts, each defined and parsed here once:
// the obtain script's reply and the hand-over announcement that the
// release script publishes. internal/scripts holds the scripts that write
// them; wire_test.go runs the scripts and checks both sides agree.

// Statuses of the obtain script's reply.
const (
	obtainTaken  = 0 // another owner holds the key; not queued
	obtainOurs   = 1 // the key holds our token
	obtainQueued = 2 // queued (joined or renewed); the server's time is set
	obtainLapsed = 3 // a renewal found our place gone: join again
	obtainLeft   = 4 // our token left the queue for good
)

// obtainReply is the obtain script's reply: five integers, {status, pttl,
// fence, seconds, microseconds}.
type obtainReply struct {
	status int64
	pttl   int64 // ours when status is obtainOurs, else the holder's; -1 unknown
	fence  int64 // the fencing number when ours and fenced, else 0
	// serverTime is the server's clock in microseconds when the script
	// ran: set when we queued, and in every reply that is not ours
	// (statuses 0 and 3), so a waiter can convert its deadline to server
	// time.
	serverTime int64
}

func parseObtainReply(r any) (obtainReply, error) {
	a, ok := r.([]any)
	if !ok || len(a) != 5 {
		return obtainReply{}, errorf("relock: driver replied %T (%v) to the obtain script where an array of 5 integers was due", r, r)
	}
	var n [5]int64
	for i, v := range a {
		x, err := asInt64(v)
		if err != nil {
			return obtainReply{}, fmt.Errorf("%w, in the obtain script's reply %v", err, a)
		}
		n[i] = x
	}
	if n[0] < obtainTaken || n[0] > obtainLeft {
		return obtainReply{}, errorf("relock: obtain script replied status %d", n[0])
	}
	return obtainReply{status: n[0], pttl: n[1], fence: n[2], serverTime: n[3]*1e6 + n[4]}, nil
}

// handover is a hand-over announcement: the release script publishes
// "token:seconds:microseconds:fence" on the lock's channel when it gives
// the lock to the waiter with that token. seconds and microseconds are,
// from the mutex's release script, when the claim it set expires, in the
// server's clock (the key is ours at least until then); from the
// semaphore's and read-write lock's scripts, and from releases of earlier
// versions, when the hand-over ran: an expiry already past, which makes
// the waiter confirm the claim before it relies on it (takeOverEarly).
type handover struct {
	token      string
	serverTime int64 // microseconds: see above
	fence      int64
}

func parseHandover(payload string) (handover, bool) {
	token, rest, ok1 := strings.Cut(payload, ":")
	sec, rest, ok2 := strings.Cut(rest, ":")
	usec, fence, ok3 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || !ok3 || token == "" {
		return handover{}, false
	}
	s, err1 := strconv.ParseInt(sec, 10, 64)
	u, err2 := strconv.ParseInt(usec, 10, 64)
	f, err3 := strconv.ParseInt(fence, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return handover{}, false
	}
	return handover{token: token, serverTime: s*1e6 + u, fence: f}, true
}

// handoverToken is the token a hand-over announcement is for, without
// parsing the rest: the notifier routes on it.
func handoverToken(payload string) string {
	token, _, _ := strings.Cut(payload, ":")
	return token
}
