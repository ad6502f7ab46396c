package testredis

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Bounds and settings of the sentinel helpers.
const (
	sentinelMaster        = "mymaster"
	sentinelCount         = 3
	sentinelQuorum        = 2
	sentinelDownAfter     = 1000 // ms, down-after-milliseconds
	sentinelFailoverLimit = 5000 // ms, failover-timeout
	sentinelReadyLimit    = 20 * time.Second
	sentinelSwitchLimit   = 20 * time.Second
	sentinelPoll          = 100 * time.Millisecond
	sentinelStartLimit    = 5 * time.Second // until a started sentinel answers
	sentinelStopGrace     = 3 * time.Second // from SIGTERM to SIGKILL in the clean-up
)

// Sentinel is a private Redis Sentinel set-up that one test started with
// [StartSentinel]: a primary and one replica (from [Start] and
// [StartReplica]) and three sentinels that monitor the primary under the
// name MasterName with a quorum of 2. The test's clean-up stops the
// sentinels, then the servers.
//
// Methods that take a testing.TB fail it with t.Fatal: call them from the
// test's goroutine. The others are safe for concurrent use.
type Sentinel struct {
	sentinels []*sentinelProc

	mu      sync.Mutex
	primary *Server
	replica *Server // nil once it has been promoted
}

// StartSentinel starts a primary, one replica of it, and three sentinels on
// free loopback ports, each run as redis-server <conf> --sentinel with a
// writable sentinel.conf of its own under t.TempDir():
//
//	port P
//	bind 127.0.0.1
//	dir <its directory>
//	sentinel monitor mymaster 127.0.0.1 <primary's port> 2
//	sentinel down-after-milliseconds mymaster 1000
//	sentinel failover-timeout mymaster 5000
//
// It returns once every sentinel reports the primary's address, lists the
// replica as a healthy replica, knows the two other sentinels and passes
// SENTINEL CKQUORUM: a failover can then be authorised. That takes two to
// four seconds (sentinels find each other through hello messages sent
// every 2 s); the bound is 20 s.
//
// Without a redis-server binary it skips t, or fails it when Required, as
// Start does. It skips t under go test -short ([SkipShort]).
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	SkipShort(t, "starts Redis Sentinel (a primary, a replica, three sentinels)")
	bin := serverBinary(t) // skips without one
	primary := Start(t)
	replica := StartReplica(t, primary)
	start := time.Now()
	s := &Sentinel{primary: primary, replica: replica}
	for range sentinelCount {
		s.sentinels = append(s.sentinels, startSentinelProc(t, bin, primary.Port()))
	}
	s.waitAll(t, "the sentinels to know the primary, the replica and each other", sentinelReadyLimit, func(addr string) error {
		return sentinelReady(addr, primary.Addr(), replica.Addr())
	})
	t.Logf("testredis: sentinels %v monitor %s (primary %s, replica %s); ready in %v",
		s.SentinelAddrs(), sentinelMaster, primary.Addr(), replica.Addr(), time.Since(start).Round(time.Millisecond))
	return s
}

// MasterName returns the name the sentinels monitor the primary under,
// "mymaster".
func (s *Sentinel) MasterName() string { return sentinelMaster }

// SentinelAddrs returns the addresses of the three sentinels.
func (s *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, p := range s.sentinels {
		addrs[i] = p.addr()
	}
	return addrs
}

// Primary returns the current primary: the one started first, or the
// replica that KillPrimaryAndWaitFailover saw promoted.
func (s *Sentinel) Primary() *Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.primary
}

// Replica returns the replica, or nil after it was promoted.
func (s *Sentinel) Replica() *Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replica
}

// KillPrimaryAndWaitFailover stops the primary at once (Server.Stop, like
// a crash) and waits, up to 20 s, until every sentinel reports the replica's
// address as the master's and the replica says it is a primary (ROLE). It
// returns the new primary and logs how long the failover took (about the
// down-after time, 1 s, plus the election: 2 to 4 s).
func (s *Sentinel) KillPrimaryAndWaitFailover(t testing.TB) *Server {
	t.Helper()
	s.mu.Lock()
	old, next := s.primary, s.replica
	s.mu.Unlock()
	if next == nil {
		t.Fatal("testredis: KillPrimaryAndWaitFailover: no replica left to promote")
	}
	start := time.Now()
	old.Stop()
	s.waitAll(t, "the sentinels to switch to "+next.Addr(), sentinelSwitchLimit, func(addr string) error {
		got, err := masterAddr(addr)
		if err != nil {
			return err
		}
		if got != next.Addr() {
			return fmt.Errorf("master is %s", got)
		}
		return nil
	})
	// The sentinels switch after the promotion is confirmed, so this is
	// expected to pass at once.
	deadline := time.Now().Add(sentinelSwitchLimit)
	for {
		r, err := next.Do("ROLE")
		if a, ok := r.([]any); err == nil && ok && len(a) > 0 && a[0] == "master" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: %s is the sentinels' master but ROLE says %v, %v", next.Addr(), r, err)
		}
		time.Sleep(sentinelPoll)
	}
	s.mu.Lock()
	s.primary, s.replica = next, nil
	s.mu.Unlock()
	t.Logf("testredis: killed primary %s; sentinels switched to %s after %v", old.Addr(), next.Addr(), time.Since(start).Round(time.Millisecond))
	return next
}

// waitAll waits until check passes for every sentinel that runs, or fails
// t after limit with the last complaint.
func (s *Sentinel) waitAll(t testing.TB, what string, limit time.Duration, check func(addr string) error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var errs []error
		for _, p := range s.sentinels {
			if err := check(p.addr()); err != nil {
				errs = append(errs, fmt.Errorf("sentinel %s: %w", p.addr(), err))
			}
		}
		if len(errs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: waited %v for %s: %v; log of the first sentinel:\n%s", limit, what, errors.Join(errs...), s.sentinels[0].logTail())
		}
		time.Sleep(sentinelPoll)
	}
}

// masterAddr asks a sentinel for the master's address.
func masterAddr(sentinel string) (string, error) {
	r, err := do(sentinel, clusterDialTimeout, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", sentinelMaster)
	if err != nil {
		return "", err
	}
	a, ok := r.([]any)
	if !ok || len(a) != 2 {
		return "", fmt.Errorf("GET-MASTER-ADDR-BY-NAME replied %#v", r)
	}
	host, _ := a[0].(string)
	port, _ := a[1].(string)
	return net.JoinHostPort(host, port), nil
}

// sentinelReady checks that a sentinel monitors primary, sees replica as a
// healthy replica, knows the other sentinels and can reach its quorum.
func sentinelReady(sentinel, primary, replica string) error {
	replies, err := respPipeline(sentinel, clusterDialTimeout,
		[]string{"SENTINEL", "GET-MASTER-ADDR-BY-NAME", sentinelMaster},
		[]string{"SENTINEL", "REPLICAS", sentinelMaster},
		[]string{"SENTINEL", "SENTINELS", sentinelMaster},
		[]string{"SENTINEL", "CKQUORUM", sentinelMaster})
	if err != nil {
		return err
	}
	for _, r := range replies {
		if e, ok := r.(Error); ok {
			return e
		}
	}
	if a, _ := replies[0].([]any); len(a) != 2 || net.JoinHostPort(fmt.Sprint(a[0]), fmt.Sprint(a[1])) != primary {
		return fmt.Errorf("master is %v, want %s", replies[0], primary)
	}
	found := false
	for _, r := range asList(replies[1]) {
		m := flatMap(r)
		if net.JoinHostPort(m["ip"], m["port"]) != replica {
			continue
		}
		if m["flags"] != "slave" || m["master-link-status"] != "ok" {
			return fmt.Errorf("replica %s: flags %q, master-link-status %q", replica, m["flags"], m["master-link-status"])
		}
		found = true
	}
	if !found {
		return fmt.Errorf("replica %s not known yet", replica)
	}
	others := 0
	for _, r := range asList(replies[2]) {
		m := flatMap(r)
		if !strings.Contains(m["flags"], "s_down") && !strings.Contains(m["flags"], "disconnected") {
			others++
		}
	}
	if others < sentinelCount-1 {
		return fmt.Errorf("knows %d healthy sentinels besides itself, want %d", others, sentinelCount-1)
	}
	return nil
}

func asList(v any) []any {
	a, _ := v.([]any)
	return a
}

// flatMap turns a flat array of field names and values into a map.
func flatMap(v any) map[string]string {
	a := asList(v)
	m := make(map[string]string, len(a)/2)
	for i := 0; i+1 < len(a); i += 2 {
		k, _ := a[i].(string)
		val, _ := a[i+1].(string)
		m[k] = val
	}
	return m
}

// sentinelProc is one sentinel process.
type sentinelProc struct {
	dir  string
	conf string
	log  string

	mu   sync.Mutex
	port int
	proc *exec.Cmd
	done chan struct{} // closed when proc has been waited for
}

// startSentinelProc starts a sentinel that monitors the primary on
// primaryPort, on a free port (three tries, in case another process takes
// the port first), and registers its clean-up.
func startSentinelProc(t testing.TB, bin string, primaryPort int) *sentinelProc {
	t.Helper()
	dir := t.TempDir()
	p := &sentinelProc{
		dir:  dir,
		conf: filepath.Join(dir, "sentinel.conf"),
		log:  filepath.Join(dir, "sentinel.log"),
	}
	t.Cleanup(p.shutdown)
	var lastErr error
	for range 3 {
		if lastErr = p.launch(bin, primaryPort); lastErr == nil {
			return p
		}
	}
	t.Fatalf("testredis: sentinel: %v", lastErr)
	return nil
}

func (p *sentinelProc) addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port))
}

func (p *sentinelProc) launch(bin string, primaryPort int) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
		"sentinel monitor %s 127.0.0.1 %d %d\n"+
		"sentinel down-after-milliseconds %s %d\n"+
		"sentinel failover-timeout %s %d\n",
		port, p.dir,
		sentinelMaster, primaryPort, sentinelQuorum,
		sentinelMaster, sentinelDownAfter,
		sentinelMaster, sentinelFailoverLimit)
	// The sentinel rewrites its file (its id, what it learns): it must be
	// writable.
	if err := os.WriteFile(p.conf, []byte(conf), 0o600); err != nil {
		return err
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(bin, p.conf, "--sentinel")
	tieToParent(cmd)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.mu.Lock()
	p.port, p.proc, p.done = port, cmd, done
	p.mu.Unlock()

	addr := p.addr()
	deadline := time.Now().Add(sentinelStartLimit)
	for {
		select {
		case <-done:
			p.mu.Lock()
			p.proc, p.done = nil, nil
			p.mu.Unlock()
			return fmt.Errorf("sentinel on port %d exited at start (%v); log:\n%s", port, cmd.ProcessState, p.logTail())
		default:
		}
		info, err := do(addr, time.Second, "INFO", "server")
		text, _ := info.(string)
		if err == nil && infoField(text, "process_id") == strconv.Itoa(cmd.Process.Pid) && infoField(text, "redis_mode") == "sentinel" {
			return nil
		}
		if time.Now().After(deadline) {
			p.stop(0)
			return fmt.Errorf("sentinel on port %d did not answer within %v (%v); log:\n%s", port, sentinelStartLimit, err, p.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// shutdown is the clean-up: SIGTERM, SIGKILL after sentinelStopGrace, and a wait
// for the process either way.
func (p *sentinelProc) shutdown() { p.stop(sentinelStopGrace) }

func (p *sentinelProc) stop(grace time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return
	}
	proc, done := p.proc.Process, p.done
	p.proc, p.done = nil, nil
	stopProcess(proc, done, grace)
}

func (p *sentinelProc) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}
