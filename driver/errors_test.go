package driver_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
)

func TestReplyKind(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want error
	}{
		{"NOSCRIPT No matching script. Please use EVAL.", driver.ErrNoScript},
		{"WRONGTYPE Operation against a key holding the wrong kind of value", driver.ErrWrongType},
		{"WRONGTYPE Operation against a key holding the wrong kind of value script: 1a2b, on @user_script:1.", driver.ErrWrongType},
		{"ERR Error running script (call to f_1a2b): @user_script:1: WRONGTYPE Operation against a key holding the wrong kind of value", driver.ErrWrongType},
		{"ERR Error compiling script (new function): :1: WRONGTYPE Operation against a key holding the wrong kind of value", driver.ErrWrongType},
		{"Error compiling script (new function): :1: WRONGTYPE Operation against a key holding the wrong kind of value", driver.ErrWrongType},
		{"ERR my script failed", nil},
		{"ERR Error running script (call to f_1a2b): @user_script:1: user_script:1: Script attempted to access nonexistent global variable", nil},
		{"ERR this is not NOSCRIPT", nil},
		{"ERR a WRONGTYPE in the middle", nil},
		{"EXECABORT Transaction discarded because of previous errors.", nil},
		{"NOPERM User app has no permissions to access the 'lock' key", driver.ErrNoPermission},
		{"NOPERM this user has no permissions to run the 'evalsha' command", driver.ErrNoPermission},
		{"NOAUTH Authentication required.", driver.ErrNoPermission},
		{"WRONGPASS invalid username-password pair or user is disabled.", driver.ErrNoPermission},
		{"NOPERMISSION is not a code", nil},
		{"ERR unknown command 'EVALSHA', with args beginning with: ", errors.ErrUnsupported},
		{"unknown command 'EVALSHA'", errors.ErrUnsupported},
		{"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", driver.ErrServerRefused},
		{"LOADING Redis is loading the dataset in memory", driver.ErrServerRefused},
		{"TRYAGAIN Multiple keys request during rehashing of slot", driver.ErrServerRefused},
		{"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", driver.ErrServerRefused},
		{"CLUSTERDOWN The cluster is down", driver.ErrServerRefused},
		{"OOM command not allowed when used memory > 'maxmemory'.", driver.ErrServerRefused},
		{"READONLY You can't write against a read only replica.", driver.ErrServerRefused},
		{"MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.", driver.ErrServerRefused},
		{"NOREPLICAS Not enough good replicas to write.", driver.ErrServerRefused},
		{"ERR max number of clients reached", driver.ErrServerRefused},
		{"BUSYKEY Target key name already exists.", nil},
		{"ERR OOM in the middle", nil},
		{"", nil},
		{"NOPERM this user has no permissions to access one of the keys used as arguments", driver.ErrNoPermission},
		{"ERR The user executing the script can't access at least one of the keys mentioned in the command arguments script: 9de3, on @user_script:1.", driver.ErrNoPermission},
		{"ERR The user executing the script can't publish to the channel mentioned in the command script: 5874, on @user_script:1.", driver.ErrNoPermission},
		{"ERR a NOPERM in the middle", nil},
		{"ERR the server is BUSY", nil},
	} {
		if got := driver.ReplyKind(tc.msg); got != tc.want {
			t.Errorf("ReplyKind(%q) = %v, want %v", tc.msg, got, tc.want)
		}
		err := driver.ServerError(tc.msg)
		if err.Error() != tc.msg {
			t.Errorf("ServerError(%q).Error() = %q", tc.msg, err.Error())
		}
		for _, s := range []error{driver.ErrNoScript, driver.ErrWrongType, driver.ErrTxAborted, driver.ErrNoPermission, driver.ErrServerRefused, errors.ErrUnsupported} {
			if errors.Is(err, s) != (s == tc.want) {
				t.Errorf("errors.Is(ServerError(%q), %v) = %v", tc.msg, s, !(s == tc.want))
			}
		}
	}
}

// clientError stands for a client library's own error type for replies.
type clientError struct{ msg string }

func (e *clientError) Error() string { return e.msg }

func TestWrapServerError(t *testing.T) {
	if driver.WrapServerError(nil) != nil {
		t.Fatal("WrapServerError(nil) != nil")
	}
	plain := &clientError{"ERR boom"}
	if got := driver.WrapServerError(plain); got != error(plain) {
		t.Fatalf("WrapServerError of a plain reply = %v, want it unchanged", got)
	}
	ns := &clientError{"NOSCRIPT No matching script"}
	got := driver.WrapServerError(ns)
	var ce *clientError
	if !errors.Is(got, driver.ErrNoScript) || !errors.As(got, &ce) || ce != ns || got.Error() != ns.msg {
		t.Fatalf("WrapServerError(NOSCRIPT) = %v: want ErrNoScript, the client's error and its text", got)
	}
	if again := driver.WrapServerError(got); again != got {
		t.Fatalf("WrapServerError is not idempotent: %v", again)
	}
	wrapped := fmt.Errorf("client: %w", &clientError{"WRONGTYPE Operation against a key"})
	if got := driver.WrapServerError(wrapped); !errors.Is(got, driver.ErrWrongType) || !errors.Is(got, wrapped) {
		t.Fatalf("WrapServerError(wrapped WRONGTYPE) = %v", got)
	}
}

func TestWaitTimeout(t *testing.T) {
	for _, tc := range []struct {
		timeout time.Duration
		want    int64
	}{
		{time.Nanosecond, 1}, {999 * time.Microsecond, 1}, {time.Millisecond, 1},
		{1500 * time.Microsecond, 2}, {2 * time.Millisecond, 2}, {time.Second, 1000},
	} {
		if got, err := driver.WaitTimeout(1, tc.timeout); got != tc.want || err != nil {
			t.Errorf("WaitTimeout(1, %v) = %d, %v; want %d", tc.timeout, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		replicas int
		timeout  time.Duration
		want     string
	}{{1, 0, "timeout must be positive"}, {1, -time.Second, "timeout must be positive"}, {-1, time.Second, "replicas must not be negative"}} {
		if _, err := driver.WaitTimeout(tc.replicas, tc.timeout); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WaitTimeout(%d, %v) error = %v, want %q", tc.replicas, tc.timeout, err, tc.want)
		}
	}
}
