package testredis

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts of the private servers. They bound every wait, so that a broken
// server fails a test instead of hanging it.
const (
	startTimeout = 5 * time.Second  // until a started server answers PING
	linkTimeout  = 10 * time.Second // until a replica's link to its primary is up
	stopTimeout  = 3 * time.Second  // from SIGTERM to SIGKILL in the clean-up
	doTimeout    = 10 * time.Second // one Server.Do, dial to reply
)

// Server is a private redis-server process, started by a test with [Start]
// or [StartReplica], or by any program with [StartServer]. It listens on
// 127.0.0.1 only, saves nothing (--save "", --appendonly no) and lives in
// a directory of its own, which also holds its log (redis.log). Close (for
// a test, its clean-up) stops it and waits for the process to end.
//
// Its methods are safe for concurrent use; Restart, like Start, must be
// called from the test's goroutine, since it fails the test with t.Fatal.
type Server struct {
	t      testing.TB // the test that started it; nil for StartServer
	bin    string
	args   []string // everything after the binary, --port included
	port   int
	dir    string
	ownDir bool   // dir was made by StartServer: Close removes it
	log    string // path of the server's stdout and stderr

	mu     sync.Mutex
	proc   *exec.Cmd
	done   chan struct{} // closed when proc has been waited for
	closed bool
}

// Error is an error reply (RESP "-") that Server.Do returns, or finds nested
// in an array reply. Its text is the server's, error code included.
type Error string

func (e Error) Error() string { return string(e) }

// ErrNoBinary is what StartServer's error matches (errors.Is) when there
// is no redis-server binary to run: the TB helpers skip then, or fail when
// Required.
var ErrNoBinary = errors.New("testredis: no redis-server binary")

// ServerBinary returns the path of the redis-server binary that the helpers
// run: $RELOCK_REDIS_SERVER if set, else redis-server from $PATH. Its error
// matches [ErrNoBinary] when there is none.
func ServerBinary() (string, error) {
	name := os.Getenv("RELOCK_REDIS_SERVER")
	if name == "" {
		name = "redis-server"
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %w; install Redis or set RELOCK_REDIS_SERVER", ErrNoBinary, err)
	}
	return bin, nil
}

// serverBinary returns ServerBinary or, when there is none, skips t (fails
// it when Required).
func serverBinary(t testing.TB) string {
	t.Helper()
	bin, err := ServerBinary()
	if err != nil {
		skipOrFail(t, err)
	}
	return bin
}

// skipOrFail skips t because of err, or fails it when Required.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("%v (RELOCK_REQUIRE_REDIS is set, so this fails instead of skipping)", err)
	}
	t.Skipf("%v; or set RELOCK_REQUIRE_REDIS=1 to fail instead of skipping", err)
}

// Options configure [StartServer].
type Options struct {
	// Bin is the redis-server binary to run. Empty: [ServerBinary].
	Bin string
	// Dir is the server's working directory, which also holds its log
	// (redis.log). Empty: a new temporary directory, which Close removes.
	Dir string
	// Args come after the default arguments (see [Start]); a later
	// directive wins, so they may override any of them.
	Args []string
	// ReplicaOf, when not nil, makes the server a replica of that one
	// (--replicaof before Args), and StartServer waits until the
	// replica's link to it is up, as [StartReplica] does.
	ReplicaOf *Server
}

// StartServer runs a private redis-server on a free loopback port, as
// [Start] does, for any program (a benchmark, a tool) rather than a test:
// it returns an error instead of failing or skipping a test, and the
// caller stops the server with Close. When there is no redis-server binary
// the error matches [ErrNoBinary]. On error nothing is left running.
func StartServer(opts Options) (*Server, error) {
	bin := opts.Bin
	if bin == "" {
		var err error
		if bin, err = ServerBinary(); err != nil {
			return nil, err
		}
	}
	s := &Server{bin: bin, dir: opts.Dir}
	if s.dir == "" {
		dir, err := os.MkdirTemp("", "testredis-")
		if err != nil {
			return nil, fmt.Errorf("testredis: %w", err)
		}
		s.dir, s.ownDir = dir, true
	}
	s.log = filepath.Join(s.dir, "redis.log")
	extra := opts.Args
	if opts.ReplicaOf != nil {
		extra = append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(opts.ReplicaOf.Port())}, extra...)
	}

	// Another process can take the free port between our probe and the
	// server's bind: then the server exits at once, and we try another.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			lastErr = fmt.Errorf("find a free port: %w", err)
			break
		}
		s.port = port
		s.args = append([]string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", s.dir,
			"--enable-debug-command", "local",
			"--repl-diskless-sync-delay", "0",
		}, extra...)
		if lastErr = s.launch(); lastErr == nil {
			break
		}
	}
	if lastErr == nil && opts.ReplicaOf != nil {
		if err := s.waitLinkUp(linkTimeout); err != nil {
			lastErr = fmt.Errorf("replica %s of %s: %w", s.Addr(), opts.ReplicaOf.Addr(), err)
		}
	}
	if lastErr != nil {
		_ = s.Close()
		return nil, fmt.Errorf("testredis: %w", lastErr)
	}
	return s, nil
}

// Start runs a private redis-server for t on a free loopback port:
//
//	redis-server --port P --bind 127.0.0.1 --save "" --appendonly no
//	    --dir <t.TempDir()> --enable-debug-command local
//	    --repl-diskless-sync-delay 0 extraArgs...
//
// (--repl-diskless-sync-delay 0 lets a replica's first sync start at once
// instead of after 5 s; extraArgs may override it, or anything else, since a
// later directive wins.) Start returns once the server answers PING, within
// about 5 s, and registers a clean-up that stops the server (SIGTERM, then
// SIGKILL after 3 s) and waits for the process to end.
//
// When no redis-server binary is found ($RELOCK_REDIS_SERVER, else
// redis-server in $PATH), Start skips t, or fails it when Required, as Addr
// does. A server that does not come up fails t. It is [StartServer] for a
// test.
func Start(t testing.TB, extraArgs ...string) *Server {
	t.Helper()
	return start(t, Options{Args: extraArgs})
}

func start(t testing.TB, opts Options) *Server {
	t.Helper()
	opts.Bin = serverBinary(t)
	opts.Dir = t.TempDir()
	s, err := StartServer(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	s.t = t
	t.Cleanup(s.shutdown)
	return s
}

// StartReplica runs a private redis-server, as Start does, with
// --replicaof 127.0.0.1 <primary's port> before extraArgs. It returns once
// INFO replication on the replica reports master_link_status:up, within
// about 10 s: the first sync is done, and writes to primary from then on
// flow to the replica. That takes some tens of milliseconds: the first sync
// starts at once because Start gave the primary --repl-diskless-sync-delay
// 0 (the setting is the primary's, not the replica's).
//
// Replication is for the heavy tests: StartReplica skips t under
// go test -short ([SkipShort]).
func StartReplica(t testing.TB, primary *Server, extraArgs ...string) *Server {
	t.Helper()
	SkipShort(t, "starts a replica")
	return start(t, Options{Args: extraArgs, ReplicaOf: primary})
}

// Port returns the server's TCP port, the same across Restart.
func (s *Server) Port() int { return s.port }

// Addr returns the server's address, 127.0.0.1:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns the server's address as a redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Stop kills the server at once (SIGKILL, like a crash: nothing is saved,
// connections are cut) and waits for the process to end. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(0)
}

// Restart starts the server again on the same port with the same arguments
// and waits until it answers PING, as Start does; a server still running is
// stopped first, as by Stop. The data is gone: nothing was saved. It fails
// the test that started the server, with t.Fatal, when the server does not
// come back (the port was taken meanwhile, say): call it from that test's
// goroutine. A server from StartServer has no test to fail: Restart panics
// there, and Relaunch is the call to make. A replica reconnects to a
// restarted primary by itself, after a second or so.
func (s *Server) Restart() {
	if s.t == nil {
		if err := s.Relaunch(); err != nil {
			panic(err)
		}
		return
	}
	s.t.Helper()
	if err := s.Relaunch(); err != nil {
		s.t.Fatalf("%v", err)
	}
}

// Relaunch is Restart that returns the error instead of failing a test.
func (s *Server) Relaunch() error {
	s.Stop()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errors.New("testredis: restart: the server was closed")
	}
	if err := s.launch(); err != nil {
		return fmt.Errorf("testredis: restart: %w", err)
	}
	return nil
}

// shutdown is the clean-up that Start registers: Close, whose only
// error, removing a directory, cannot happen for the test's own TempDir.
func (s *Server) shutdown() { _ = s.Close() }

// Close stops the server (SIGTERM, which a server that saves nothing obeys
// at once; SIGKILL if it has not exited after 3 s), waits for the process
// to end, and removes the directory that StartServer made for it. A test's
// clean-up calls it for Start's servers. Closing twice does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(stopTimeout)
	if s.closed {
		return nil
	}
	s.closed = true
	if s.ownDir {
		if err := os.RemoveAll(s.dir); err != nil {
			return fmt.Errorf("testredis: %w", err)
		}
	}
	return nil
}

// Do sends one command, args[0] being its name, on a new connection to the
// server and returns the reply: a string for a simple or bulk string, an
// int64 for an integer, []any for an array, nil for a nil bulk string or
// array; an error reply is returned as an [Error] (inside an array, as an
// element). A network failure or a reply not read within 10 s gives an
// error too. Since the connection is new, commands whose effect belongs to
// the connection (WAIT, WATCH, MULTI) do not carry over between calls.
func (s *Server) Do(args ...string) (any, error) {
	return do(s.Addr(), doTimeout, args...)
}

// Do is [Server.Do] for any server at addr, a miniredis included.
func Do(addr string, args ...string) (any, error) {
	return do(addr, doTimeout, args...)
}

// launch starts the process with s.args and waits until it answers PING.
// On failure the process is gone and the error tells why, with the tail of
// its log.
func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("server already running")
	}
	if s.closed {
		return errors.New("server closed")
	}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(s.bin, s.args...)
	tieToParent(cmd)
	// An *os.File, not a pipe: no copying goroutine, and nothing for Wait
	// to wait on but the process itself.
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.proc, s.done = cmd, done

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-done:
			s.proc, s.done = nil, nil
			return fmt.Errorf("redis-server on port %d exited at start (%v); log:\n%s", s.port, cmd.ProcessState, s.logTail())
		default:
		}
		if err = s.ours(cmd.Process.Pid); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.stopLocked(0)
			return fmt.Errorf("redis-server on port %d did not answer PING within %v (%v); log:\n%s", s.port, startTimeout, err, s.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ours checks that the server on s's port answers PING and is the process
// pid, not another one that took the port.
func (s *Server) ours(pid int) error {
	r, err := do(s.Addr(), time.Second, "PING")
	if err != nil {
		return err
	}
	if r != "PONG" {
		return fmt.Errorf("PING replied %v", r)
	}
	info, err := do(s.Addr(), time.Second, "INFO", "server")
	if err != nil {
		return err
	}
	text, _ := info.(string)
	if got := infoField(text, "process_id"); got != strconv.Itoa(pid) {
		return fmt.Errorf("port %d is served by process %q, not by ours (%d)", s.port, got, pid)
	}
	return nil
}

// waitLinkUp waits until the replica's INFO replication says that its link
// to the primary is up.
func (s *Server) waitLinkUp(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		r, err := s.Do("INFO", "replication")
		text, _ := r.(string)
		status := infoField(text, "master_link_status")
		if err == nil && status == "up" {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("master_link_status:%s", status)
			}
			return fmt.Errorf("link to the primary not up within %v: %v; log:\n%s", timeout, err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopLocked ends the process, gently within grace if grace > 0, and waits
// for it. s.mu must be held.
func (s *Server) stopLocked(grace time.Duration) {
	if s.proc == nil {
		return
	}
	p, done := s.proc.Process, s.done
	s.proc, s.done = nil, nil
	stopProcess(p, done, grace)
}

// stopProcess sends p SIGTERM and waits up to grace for done (closed when
// the process has been waited for), then SIGKILL and waits for done.
func stopProcess(p *os.Process, done <-chan struct{}, grace time.Duration) {
	if grace > 0 && p.Signal(syscall.SIGTERM) == nil {
		wake(p) // a suspended server acts on SIGTERM only once continued
		select {
		case <-done:
			return
		case <-time.After(grace):
		}
	}
	_ = p.Kill()
	<-done
}

// Command is one command that a Monitor saw the server receive.
type Command struct {
	// Addr is the address of the client connection that sent it, as the
	// server sees it ("127.0.0.1:54321"), or "lua" for a redis.call made
	// by a script. Two commands with the same Addr came on one connection.
	Addr string
	// Args are the command's name and arguments, as sent.
	Args []string
}

// Is reports whether c is the command name, in any case.
func (c Command) Is(name string) bool { return len(c.Args) > 0 && strings.EqualFold(c.Args[0], name) }

// Monitor records what a server receives, through MONITOR. It is safe for
// concurrent use.
type Monitor struct {
	conn net.Conn
	done chan struct{} // closed when the reading goroutine ends

	mu   sync.Mutex
	cmds []Command
	err  error // why reading stopped
	next int   // index after the command Next returned last
}

// Monitor runs MONITOR on a new connection to the server, from now until
// the test ends or the server stops, and returns what records the commands.
// The server reports a command to its monitors as it runs it, except the
// few MONITOR leaves out (AUTH, HELLO with a password, admin commands such
// as DEBUG and CONFIG); replication traffic is included.
func (s *Server) Monitor(t testing.TB) *Monitor {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr(), doTimeout)
	if err != nil {
		t.Fatalf("testredis: MONITOR: %v", err)
	}
	r := bufio.NewReader(c)
	_ = c.SetDeadline(time.Now().Add(doTimeout))
	if _, err := c.Write(encode([]string{"MONITOR"})); err != nil {
		_ = c.Close()
		t.Fatalf("testredis: MONITOR: %v", err)
	}
	if reply, err := readReply(r); err != nil || reply != "OK" {
		_ = c.Close()
		t.Fatalf("testredis: MONITOR replied %#v, %v", reply, err)
	}
	_ = c.SetDeadline(time.Time{})
	m := &Monitor{conn: c, done: make(chan struct{})}
	go m.read(r)
	t.Cleanup(m.stop)
	return m
}

func (m *Monitor) read(r *bufio.Reader) {
	defer close(m.done)
	for {
		line, err := r.ReadString('\n')
		var cmd Command
		if err == nil {
			cmd, err = parseMonitorLine(strings.TrimRight(line, "\r\n"))
		}
		m.mu.Lock()
		if err != nil {
			m.err = err
			m.mu.Unlock()
			return
		}
		m.cmds = append(m.cmds, cmd)
		m.mu.Unlock()
	}
}

func (m *Monitor) stop() {
	_ = m.conn.Close()
	<-m.done
}

// Commands returns the commands seen so far, oldest first.
func (m *Monitor) Commands() []Command {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Command(nil), m.cmds...)
}

// Next returns the first command that match accepts among those seen after
// the command Next returned last (or since the start), waiting up to 5 s for
// one to arrive. It fails t when none does.
func (m *Monitor) Next(t testing.TB, match func(Command) bool) Command {
	t.Helper()
	return m.nextWithin(t, startTimeout, match)
}

func (m *Monitor) nextWithin(t testing.TB, wait time.Duration, match func(Command) bool) Command {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		m.mu.Lock()
		for i := m.next; i < len(m.cmds); i++ {
			if match(m.cmds[i]) {
				m.next = i + 1
				c := m.cmds[i]
				m.mu.Unlock()
				return c
			}
		}
		err := m.err
		m.mu.Unlock()
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("testredis: Monitor: no matching command arrived within %v (reading: %v)", wait, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// parseMonitorLine parses a line of MONITOR output:
//
//	+1700000000.123456 [0 127.0.0.1:54321] "SET" "k" "v\r\n"
func parseMonitorLine(line string) (Command, error) {
	open := strings.IndexByte(line, '[')
	end := strings.Index(line, "] ")
	if !strings.HasPrefix(line, "+") || open < 0 || end < open {
		return Command{}, fmt.Errorf("testredis: unexpected MONITOR line %q", line)
	}
	_, addr, _ := strings.Cut(line[open+1:end], " ")
	args, err := parseQuoted(line[end+2:])
	if err != nil {
		return Command{}, fmt.Errorf("testredis: MONITOR line %q: %w", line, err)
	}
	return Command{Addr: addr, Args: args}, nil
}

// parseQuoted splits a space-separated list of double-quoted strings with
// the escapes Redis writes (\\ \" \n \r \t \a \b \xhh).
func parseQuoted(s string) ([]string, error) {
	var args []string
	for i := 0; i < len(s); {
		if s[i] == ' ' {
			i++
			continue
		}
		if s[i] != '"' {
			return nil, fmt.Errorf("expected a quote at %d", i)
		}
		i++
		var b []byte
		for {
			if i >= len(s) {
				return nil, errors.New("unterminated string")
			}
			ch := s[i]
			i++
			if ch == '"' {
				break
			}
			if ch != '\\' {
				b = append(b, ch)
				continue
			}
			if i >= len(s) {
				return nil, errors.New("unterminated escape")
			}
			esc := s[i]
			i++
			switch esc {
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'a':
				b = append(b, '\a')
			case 'b':
				b = append(b, '\b')
			case 'x':
				if i+2 > len(s) {
					return nil, errors.New("short \\x escape")
				}
				v, err := strconv.ParseUint(s[i:i+2], 16, 8)
				if err != nil {
					return nil, fmt.Errorf("bad \\x escape: %w", err)
				}
				b = append(b, byte(v))
				i += 2
			default: // \\ and \"
				b = append(b, esc)
			}
		}
		args = append(args, string(b))
	}
	return args, nil
}

// running reports whether the server's process is alive (started and not
// yet waited for). For the package's own tests.
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// pid returns the server's process id, or 0 when it is not running.
func (s *Server) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Process.Pid
}

// logTail returns the last lines of the server's log.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// infoField returns the value of field in the text of an INFO reply.
func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), field+":"); ok {
			return v
		}
	}
	return ""
}

// freePort returns a TCP port on 127.0.0.1 that nothing listened on a
// moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// do is a minimal RESP2 client: it sends args as an array of bulk strings on
// a new connection to addr and reads one reply, all within timeout.
func do(addr string, timeout time.Duration, args ...string) (any, error) {
	if len(args) == 0 {
		return nil, errors.New("testredis: Do without a command")
	}
	r, err := respPipeline(addr, timeout, args)
	if err != nil {
		return nil, err
	}
	if e, ok := r[0].(Error); ok {
		return nil, e
	}
	return r[0], nil
}

// encode renders a command as a RESP array of bulk strings.
func encode(args []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

// maxBulk bounds the length of a bulk string or array that readReply
// accepts, against a corrupt length.
const maxBulk = 512 << 20

// readReply reads one RESP2 reply. An error reply is returned as the value
// Error, not as the error: the caller decides (Do returns a top-level one
// as its error).
func readReply(r *bufio.Reader) (any, error) {
	v, err := readValue(r)
	if err != nil {
		return nil, err
	}
	if e, ok := v.(Error); ok {
		return nil, e
	}
	return v, nil
}

func readValue(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("testredis: malformed reply line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return Error(body), nil
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("testredis: malformed integer reply %q", line)
		}
		return n, nil
	case '$', '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > maxBulk {
			return nil, fmt.Errorf("testredis: malformed length in reply %q", line)
		}
		if n == -1 {
			return nil, nil
		}
		if kind == '$' {
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(r, buf); err != nil {
				return nil, err
			}
			if buf[n] != '\r' || buf[n+1] != '\n' {
				return nil, errors.New("testredis: bulk string not ended by CRLF")
			}
			return string(buf[:n]), nil
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readValue(r); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("testredis: unknown reply type in %q", line)
}
