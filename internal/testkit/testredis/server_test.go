package testredis

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gone fails t unless the process pid has ended and no redis-server
// process serves port any more.
func gone(t *testing.T, pid, port int) {
	t.Helper()
	if pid != 0 {
		if p, err := os.FindProcess(pid); err == nil {
			if err := p.Signal(syscall.Signal(0)); err == nil {
				t.Errorf("redis-server process %d (port %d) is still alive", pid, port)
			}
		}
	}
	if pgrep, err := exec.LookPath("pgrep"); err == nil {
		// redis-server renames its process "redis-server 127.0.0.1:PORT".
		pat := fmt.Sprintf(`redis-server.*(:|--port )%d( |$)`, port)
		if out, err := exec.Command(pgrep, "-f", pat).Output(); err == nil {
			t.Errorf("redis-server processes left on port %d: %s", port, strings.TrimSpace(string(out)))
		}
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second); err == nil {
		_ = c.Close()
		t.Errorf("something still listens on port %d", port)
	}
}

func mustDo(t *testing.T, s *Server, args ...string) any {
	t.Helper()
	r, err := s.Do(args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return r
}

func TestStart(t *testing.T) {
	var pid, port int
	t.Run("server", func(t *testing.T) {
		s := Start(t)
		pid, port = s.pid(), s.Port()
		if pid == 0 || !s.running() {
			t.Fatal("Start returned a server that is not running")
		}
		if s.Addr() != "127.0.0.1:"+strconv.Itoa(port) || s.URL() != "redis://"+s.Addr() {
			t.Fatalf("Addr %q, URL %q, Port %d disagree", s.Addr(), s.URL(), port)
		}
		if r := mustDo(t, s, "PING"); r != "PONG" {
			t.Fatalf("PING = %#v", r)
		}
		// The arguments Start promises.
		for param, want := range map[string]string{
			"port":                     strconv.Itoa(port),
			"bind":                     "127.0.0.1",
			"save":                     "",
			"appendonly":               "no",
			"enable-debug-command":     "local",
			"repl-diskless-sync-delay": "0",
		} {
			r := mustDo(t, s, "CONFIG", "GET", param)
			if !reflect.DeepEqual(r, []any{param, want}) {
				t.Errorf("CONFIG GET %s = %#v, want %q", param, r, want)
			}
		}
		if _, err := s.Do("DEBUG", "SLEEP", "0"); err != nil {
			t.Errorf("DEBUG is not enabled: %v", err)
		}
	})
	gone(t, pid, port)
}

func TestStartExtraArgs(t *testing.T) {
	s := Start(t, "--maxmemory", "12345678", "--repl-diskless-sync-delay", "2")
	for param, want := range map[string]string{"maxmemory": "12345678", "repl-diskless-sync-delay": "2"} {
		if r := mustDo(t, s, "CONFIG", "GET", param); !reflect.DeepEqual(r, []any{param, want}) {
			t.Errorf("CONFIG GET %s = %#v, want %q", param, r, want)
		}
	}
}

func TestStartsAreIndependent(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Port() == b.Port() {
		t.Fatalf("two servers on port %d", a.Port())
	}
	mustDo(t, a, "SET", "k", "a")
	if r := mustDo(t, b, "GET", "k"); r != nil {
		t.Fatalf("the second server sees the first one's key: %#v", r)
	}
}

func TestDo(t *testing.T) {
	s := Start(t)
	for _, tc := range []struct {
		args []string
		want any
	}{
		{[]string{"SET", "k", "v\r\nwith CRLF and \x00"}, "OK"},
		{[]string{"GET", "k"}, "v\r\nwith CRLF and \x00"},
		{[]string{"GET", "missing"}, nil},
		{[]string{"SET", "empty", ""}, "OK"},
		{[]string{"GET", "empty"}, ""},
		{[]string{"INCR", "n"}, int64(1)},
		{[]string{"INCRBY", "n", "-5"}, int64(-4)},
		{[]string{"RPUSH", "l", "a", "b"}, int64(2)},
		{[]string{"LRANGE", "l", "0", "-1"}, []any{"a", "b"}},
		{[]string{"LRANGE", "nolist", "0", "-1"}, []any{}},
		{[]string{"BLPOP", "nolist", "0.01"}, nil}, // nil array
		{[]string{"EVAL", "return {1, {'x', false}, redis.error_reply('MY nested')}", "0"},
			[]any{int64(1), []any{"x", nil}, Error("MY nested")}},
	} {
		got, err := s.Do(tc.args...)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Do%q = %#v, %v; want %#v", tc.args, got, err, tc.want)
		}
	}

	_, err := s.Do("GET", "l")
	var re Error
	if !errors.As(err, &re) || !strings.HasPrefix(string(re), "WRONGTYPE") {
		t.Errorf("Do(GET list) err = %#v, want a WRONGTYPE Error", err)
	}
	if _, err := s.Do("NOSUCHCOMMAND"); !errors.As(err, &re) || !strings.HasPrefix(string(re), "ERR ") {
		t.Errorf("Do(NOSUCHCOMMAND) err = %#v, want an ERR Error", err)
	}
	if _, err := s.Do(); err == nil {
		t.Error("Do() with no command: no error")
	}
}

// TestReadReply covers reply shapes, and malformed input, without a server.
func TestReadReply(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
		err  string
	}{
		{in: "+OK\r\n", want: "OK"},
		{in: "-ERR bad\r\n", err: "ERR bad"},
		{in: ":-12\r\n", want: int64(-12)},
		{in: "$3\r\na\nb\r\n", want: "a\nb"},
		{in: "$0\r\n\r\n", want: ""},
		{in: "$-1\r\n", want: nil},
		{in: "*-1\r\n", want: nil},
		{in: "*0\r\n", want: []any{}},
		{in: "*3\r\n:1\r\n*1\r\n$-1\r\n-E x\r\n", want: []any{int64(1), []any{nil}, Error("E x")}},
		{in: "", err: "EOF"},
		{in: "+OK\n", err: "malformed"},
		{in: ":x\r\n", err: "malformed"},
		{in: "$-2\r\n", err: "malformed"},
		{in: "$3\r\nabcd\r\n", err: "CRLF"},
		{in: "$5\r\nab\r\n", err: "EOF"},
		{in: "*2\r\n:1\r\n", err: "EOF"},
		{in: "%1\r\n", err: "unknown"},
	} {
		got, err := readReply(bufio.NewReader(strings.NewReader(tc.in)))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("readReply(%q) = %#v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("readReply(%q) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
	if got, want := string(encode([]string{"SET", "k", ""})), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"; got != want {
		t.Errorf("encode = %q, want %q", got, want)
	}
}

func TestStopAndRestart(t *testing.T) {
	var pids []int
	var port int
	t.Run("server", func(t *testing.T) {
		s := Start(t)
		port = s.Port()
		pids = append(pids, s.pid())
		mustDo(t, s, "SET", "k", "v")

		start := time.Now()
		s.Stop()
		if d := time.Since(start); d > time.Second {
			t.Errorf("Stop took %v", d)
		}
		if s.running() {
			t.Fatal("running after Stop")
		}
		gone(t, pids[0], port)
		if _, err := s.Do("PING"); err == nil {
			t.Fatal("PING answered after Stop")
		}
		s.Stop() // a second Stop does nothing

		s.Restart()
		pids = append(pids, s.pid())
		if s.Port() != port || pids[1] == pids[0] || pids[1] == 0 {
			t.Fatalf("after Restart: port %d (was %d), pid %d (was %d)", s.Port(), port, pids[1], pids[0])
		}
		if r := mustDo(t, s, "PING"); r != "PONG" {
			t.Fatalf("PING after Restart = %#v", r)
		}
		if r := mustDo(t, s, "GET", "k"); r != nil {
			t.Fatalf("GET after Restart = %#v, want nil: nothing is saved", r)
		}
		if r := mustDo(t, s, "CONFIG", "GET", "enable-debug-command"); !reflect.DeepEqual(r, []any{"enable-debug-command", "local"}) {
			t.Fatalf("Restart lost the arguments: %#v", r)
		}

		// Restart of a running server stops it first.
		mustDo(t, s, "SET", "k", "v")
		s.Restart()
		pids = append(pids, s.pid())
		if pids[2] == pids[1] || s.Port() != port {
			t.Fatalf("Restart of a running server: pid %d (was %d), port %d", pids[2], pids[1], s.Port())
		}
		if r := mustDo(t, s, "GET", "k"); r != nil {
			t.Fatalf("GET after the second Restart = %#v", r)
		}
		// The clean-up stops the last one, gracefully.
	})
	for _, pid := range pids {
		gone(t, pid, port)
	}
}

func TestReplica(t *testing.T) {
	type proc struct{ pid, port int }
	var procs []proc
	t.Run("servers", func(t *testing.T) {
		p := Start(t)
		start := time.Now()
		r := StartReplica(t, p)
		t.Logf("StartReplica took %v", time.Since(start))
		procs = append(procs, proc{p.pid(), p.Port()}, proc{r.pid(), r.Port()})

		info, _ := mustDo(t, r, "INFO", "replication").(string)
		if infoField(info, "role") != "slave" || infoField(info, "master_port") != strconv.Itoa(p.Port()) ||
			infoField(info, "master_link_status") != "up" {
			t.Fatalf("replica's INFO replication:\n%s", info)
		}
		info, _ = mustDo(t, p, "INFO", "replication").(string)
		if infoField(info, "role") != "master" || infoField(info, "connected_slaves") != "1" {
			t.Fatalf("primary's INFO replication:\n%s", info)
		}

		// A write flows to the replica.
		mustDo(t, p, "SET", "k", "v")
		deadline := time.Now().Add(5 * time.Second)
		for {
			v, err := r.Do("GET", "k")
			if err == nil && v == "v" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the write did not reach the replica in 5 s: GET = %#v, %v", v, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := r.Do("SET", "k", "w"); err == nil || !strings.HasPrefix(err.Error(), "READONLY") {
			t.Fatalf("SET on the replica: %v, want READONLY", err)
		}

		// A restarted primary (empty: nothing was saved) gets its replica
		// back, which then drops the old data.
		p.Restart()
		procs = append(procs, proc{p.pid(), p.Port()})
		start = time.Now()
		mustDo(t, p, "SET", "k2", "v2")
		for {
			old, err1 := r.Do("GET", "k")
			v, err2 := r.Do("GET", "k2")
			if err1 == nil && err2 == nil && old == nil && v == "v2" {
				break
			}
			if time.Since(start) > linkTimeout {
				t.Fatalf("after the primary's Restart, the replica has k = %#v (%v), k2 = %#v (%v)", old, err1, v, err2)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("replica in sync again %v after the primary's Restart", time.Since(start))
		if err := r.waitLinkUp(time.Second); err != nil {
			t.Fatal(err)
		}

		// The replica is gone once stopped: the primary counts none.
		r.Stop()
		deadline = time.Now().Add(5 * time.Second)
		for {
			info, _ = mustDo(t, p, "INFO", "replication").(string)
			if infoField(info, "connected_slaves") == "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the primary still counts the stopped replica:\n%s", info)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	for _, p := range procs {
		gone(t, p.pid, p.port)
	}
}

// fakeTB records how Start ended a test, without ending the real one.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestMissingBinary(t *testing.T) {
	t.Setenv("RELOCK_REDIS_SERVER", "redis-server-that-does-not-exist")
	for _, required := range []string{"", "0", "1"} {
		t.Setenv("RELOCK_REQUIRE_REDIS", required)
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Start(f)
		}()
		<-done
		want := "skipped"
		if required == "1" {
			want = "failed"
		}
		got := map[[2]bool]string{{true, false}: "skipped", {false, true}: "failed"}[[2]bool{f.skipped, f.failed}]
		if got != want || !strings.Contains(f.msg, "redis-server") {
			t.Errorf("RELOCK_REQUIRE_REDIS=%q: Start %s (skipped %v, failed %v: %q), want %s", required, got, f.skipped, f.failed, f.msg, want)
		}
	}
}

func TestBadArgsFail(t *testing.T) {
	serverBinary(t)
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(f, "--no-such-directive", "x")
	}()
	<-done
	if !f.failed || !strings.Contains(f.msg, "no-such-directive") {
		t.Fatalf("Start with a bad directive: failed %v, message %q", f.failed, f.msg)
	}
}

func TestMonitor(t *testing.T) {
	s := Start(t)
	m := s.Monitor(t)
	tricky := "a \"q\" \\ \r\n\t\x01\xff é"
	mustDo(t, s, "SET", "k", tricky)
	if c := m.Next(t, func(c Command) bool { return c.Is("set") }); !reflect.DeepEqual(c.Args, []string{"SET", "k", tricky}) {
		t.Fatalf("Monitor saw %q, want SET k %q", c.Args, tricky)
	}

	// A script's calls come from "lua"; two commands pipelined on one
	// connection share an Addr, two Do calls do not.
	mustDo(t, s, "EVAL", "return redis.call('GET', KEYS[1])", "1", "k")
	ev := m.Next(t, func(c Command) bool { return c.Is("eval") })
	if c := m.Next(t, func(c Command) bool { return c.Is("get") }); c.Addr != "lua" || !reflect.DeepEqual(c.Args, []string{"GET", "k"}) {
		t.Fatalf("the script's GET: %+v", c)
	}
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(append(encode([]string{"ECHO", "one"}), encode([]string{"ECHO", "two"})...)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	for _, want := range []string{"one", "two"} {
		if got, err := readReply(r); err != nil || got != want {
			t.Fatalf("ECHO %s = %#v, %v", want, got, err)
		}
	}
	one := m.Next(t, func(c Command) bool { return c.Is("echo") })
	two := m.Next(t, func(c Command) bool { return c.Is("echo") })
	if one.Addr != two.Addr || one.Addr == ev.Addr || !strings.HasPrefix(one.Addr, "127.0.0.1:") {
		t.Fatalf("addresses: pipelined %q and %q, EVAL's %q", one.Addr, two.Addr, ev.Addr)
	}
	if len(m.Commands()) < 5 {
		t.Fatalf("Commands() = %+v", m.Commands())
	}

	// Next fails when nothing matches.
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.nextWithin(f, 100*time.Millisecond, func(c Command) bool { return c.Is("nosuchcommand") })
	}()
	<-done
	if !f.failed {
		t.Fatal("Next without a match did not fail")
	}
}

func TestParseMonitorLine(t *testing.T) {
	c, err := parseMonitorLine(`+1700000000.123456 [0 127.0.0.1:54321] "SET" "k" "\"\\\r\n\t\a\b\x01\xc3\xa9" ""`)
	if err != nil || c.Addr != "127.0.0.1:54321" || !reflect.DeepEqual(c.Args, []string{"SET", "k", "\"\\\r\n\t\a\b\x01é", ""}) {
		t.Fatalf("parseMonitorLine = %+v, %v", c, err)
	}
	c, err = parseMonitorLine(`+1.0 [3 lua] "GET" "k"`)
	if err != nil || c.Addr != "lua" || !reflect.DeepEqual(c.Args, []string{"GET", "k"}) {
		t.Fatalf("parseMonitorLine(lua) = %+v, %v", c, err)
	}
	for _, bad := range []string{`OK`, `+1.0 "GET"`, `+1.0 [0 x] GET`, `+1.0 [0 x] "GET`, `+1.0 [0 x] "\`, `+1.0 [0 x] "\x4"`, `+1.0 [0 x] "\xzz"`} {
		if c, err := parseMonitorLine(bad); err == nil {
			t.Errorf("parseMonitorLine(%q) = %+v, no error", bad, c)
		}
	}
}

// TestStartServer starts a server without a testing.TB, as bench/ does:
// Close stops it and removes the directory StartServer made.
func TestStartServer(t *testing.T) {
	serverBinary(t) // skips, or fails under RELOCK_REQUIRE_REDIS, without one
	s, err := StartServer(Options{Args: []string{"--maxmemory", "7mb"}})
	if err != nil {
		t.Fatal(err)
	}
	pid, port, dir := s.pid(), s.Port(), s.dir
	if r, err := s.Do("CONFIG", "GET", "maxmemory"); err != nil || !reflect.DeepEqual(r, []any{"maxmemory", strconv.Itoa(7 << 20)}) {
		t.Errorf("CONFIG GET maxmemory = %#v, %v: Args not passed", r, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "redis.log")); err != nil {
		t.Errorf("no log in the server's directory: %v", err)
	}

	// A replica, waited for as StartReplica does.
	r, err := StartServer(Options{ReplicaOf: s})
	if err != nil {
		_ = s.Close()
		t.Fatal(err)
	}
	if _, err := s.Do("SET", "k", "v"); err != nil {
		t.Error(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("replica Close: %v", err)
	}

	if err := s.Relaunch(); err != nil || s.Port() != port {
		t.Errorf("Relaunch: %v (port %d, was %d)", err, s.Port(), port)
	}
	if s.pid() == pid {
		t.Errorf("Relaunch kept process %d", pid)
	}
	pid = s.pid()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	gone(t, pid, port)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left the directory %s (stat: %v)", dir, err)
	}
	if err := s.Relaunch(); err == nil {
		t.Error("Relaunch after Close started the server again")
		_ = s.Close()
	}
}

// TestStartServerErrors: no binary gives ErrNoBinary; a server that does
// not come up gives an error with its log, and leaves no directory behind.
func TestStartServerErrors(t *testing.T) {
	bin, binErr := ServerBinary()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Setenv("RELOCK_REDIS_SERVER", "redis-server-that-does-not-exist")
	if s, err := StartServer(Options{}); !errors.Is(err, ErrNoBinary) {
		t.Errorf("StartServer without a binary = %v, %v; want ErrNoBinary", s, err)
	}
	if binErr != nil {
		skipOrFail(t, binErr)
	}
	if s, err := StartServer(Options{Bin: bin, Args: []string{"--no-such-directive", "x"}}); err == nil || !strings.Contains(err.Error(), "no-such-directive") {
		t.Errorf("StartServer with a bad directive = %v, %v; want an error quoting the log", s, err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("StartServer left %v in TMPDIR", left)
	}
}

// TestHeavySetUpsSkipShort: under go test -short, StartReplica,
// StartCluster and StartSentinel skip the test before starting anything.
func TestHeavySetUpsSkipShort(t *testing.T) {
	if !testing.Short() {
		t.Skip("checks the -short behaviour: run with go test -short")
	}
	for name, setUp := range map[string]func(testing.TB){
		"StartReplica":  func(tb testing.TB) { StartReplica(tb, &Server{port: 1}) },
		"StartCluster":  func(tb testing.TB) { StartCluster(tb) },
		"StartSentinel": func(tb testing.TB) { StartSentinel(tb) },
	} {
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			setUp(f)
		}()
		<-done
		if !f.skipped || !strings.Contains(f.msg, "-short") {
			t.Errorf("%s under -short: skipped %v, failed %v (%q)", name, f.skipped, f.failed, f.msg)
		}
	}
}

func TestSuspendResume(t *testing.T) {
	s := Start(t)
	mustDo(t, s, "SET", "k", "v", "PX", "200")
	if err := s.Suspend(); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	if err := s.Suspend(); err != nil {
		t.Fatalf("a second Suspend: %v", err)
	}
	if _, err := do(s.Addr(), 300*time.Millisecond, "PING"); err == nil {
		t.Fatal("a suspended server answered PING")
	}
	if !s.running() {
		t.Fatal("a suspended server counts as ended")
	}
	if err := s.Resume(); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if r := mustDo(t, s, "PING"); r != "PONG" {
		t.Fatalf("PING after Resume = %#v", r)
	}
	// The key's 200 ms ran out while the server was stopped.
	if r := mustDo(t, s, "GET", "k"); r != nil {
		t.Fatalf("GET after Resume = %#v, want nil: the key's deadline passed", r)
	}
	if err := s.Resume(); err != nil {
		t.Fatalf("a second Resume: %v", err)
	}

	// The clean-up ends a suspended server without waiting for SIGKILL.
	if err := s.Suspend(); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	pid, port := s.pid(), s.Port()
	start := time.Now()
	s.shutdown()
	if d := time.Since(start); d >= stopTimeout {
		t.Errorf("stopping a suspended server took %v: it waited for SIGKILL", d)
	}
	gone(t, pid, port)
	if err := s.Suspend(); err == nil {
		t.Error("Suspend of an ended server succeeded")
	}
}
