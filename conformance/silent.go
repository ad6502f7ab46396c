package conformance

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// SilentServer starts a TCP server on a free loopback port that stands for
// a Redis server that has stopped answering, and returns its address
// (127.0.0.1:port). It speaks just enough RESP for a client to connect: it
// answers the commands clients send while they set a connection up (PING,
// AUTH, SELECT, CLIENT ..., READONLY with OK or PONG; HELLO as a Redis 7
// server in standalone mode, in RESP3 when asked for protocol 3; CLUSTER
// with "cluster support disabled", so the client sees a single node), and
// never answers
// any other command; from the first command left unanswered on, the
// connection stays silent. The server and its connections are closed when
// t ends, so calls still blocked on it then fail.
//
// Give Harness.NewSilentConn a driver connected to it:
//
//	NewSilentConn: func(t *testing.T) driver.Conn {
//		return mybackend.Dial(conformance.SilentServer(t))
//	},
func SilentServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("conformance: SilentServer: %v", err)
	}
	s := &silentServer{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	silentMu.Lock()
	silentServers[t] = append(silentServers[t], s)
	silentMu.Unlock()
	t.Cleanup(func() {
		silentMu.Lock()
		delete(silentServers, t)
		silentMu.Unlock()
		s.close()
	})
	return ln.Addr().String()
}

// The silent servers started for each test, so that the suite can hang
// them up before it closes the connections to them: a driver whose Close
// waits for calls still blocked on a silent server then does not wait long.
var (
	silentMu      sync.Mutex
	silentServers = map[testing.TB][]*silentServer{}
)

// hangUpSilentServers closes the silent servers started for t, and their
// connections.
func hangUpSilentServers(t testing.TB) {
	silentMu.Lock()
	servers := silentServers[t]
	silentMu.Unlock()
	for _, s := range servers {
		s.close()
	}
}

type silentServer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (s *silentServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(c)
	}
}

// close closes s and its connections, and waits for its goroutines. It
// may be called more than once.
func (s *silentServer) close() {
	s.mu.Lock()
	s.closed = true
	_ = s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// handle answers c's set-up commands until the first other command, then
// reads and discards everything until c closes.
func (s *silentServer) handle(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
	}()
	serveSilently(c)
}

// serveSilently answers c's set-up commands until the first other command,
// then reads and discards everything until c fails or closes.
func serveSilently(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		reply, ok := setupReply(args)
		if !ok {
			_, _ = io.Copy(io.Discard, r)
			return
		}
		if _, err := io.WriteString(c, reply); err != nil {
			return
		}
	}
}

// setupReply is the answer to a connection set-up command, or false for
// any other command.
func setupReply(args []string) (string, bool) {
	if len(args) == 0 {
		return "", false
	}
	switch strings.ToUpper(args[0]) {
	case "PING":
		return "+PONG\r\n", true
	case "AUTH", "SELECT", "CLIENT", "READONLY", "READWRITE":
		return "+OK\r\n", true
	case "HELLO":
		return helloReply(len(args) > 1 && args[1] == "3"), true
	case "CLUSTER":
		return "-ERR This instance has cluster support disabled\r\n", true
	}
	return "", false
}

// helloReply is a Redis 7 server's answer to HELLO, as a RESP3 map or a
// RESP2 array.
func helloReply(resp3 bool) string {
	fields := []struct {
		name  string
		value string // a RESP value
	}{
		{"server", "$5\r\nredis\r\n"},
		{"version", "$5\r\n7.0.0\r\n"},
		{"proto", ":2\r\n"},
		{"id", ":1\r\n"},
		{"mode", "$10\r\nstandalone\r\n"},
		{"role", "$6\r\nmaster\r\n"},
		{"modules", "*0\r\n"},
	}
	var b strings.Builder
	if resp3 {
		fields[2].value = ":3\r\n"
		fmt.Fprintf(&b, "%%%d\r\n", len(fields))
	} else {
		fmt.Fprintf(&b, "*%d\r\n", 2*len(fields))
	}
	for _, f := range fields {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n%s", len(f.name), f.name, f.value)
	}
	return b.String()
}

// readCommand reads one command: a RESP array of bulk strings, or an
// inline command.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return strings.Fields(line), nil
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 || n > 1<<20 {
		return nil, fmt.Errorf("conformance: bad array header %q", line)
	}
	args := make([]string, 0, n)
	for range n {
		h, err := readLine(r)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(h, "$") {
			return nil, fmt.Errorf("conformance: bad bulk header %q", h)
		}
		size, err := strconv.Atoi(h[1:])
		if err != nil || size < 0 || size > 512<<20 {
			return nil, fmt.Errorf("conformance: bad bulk length %q", h)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args = append(args, string(buf[:size]))
	}
	return args, nil
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if len(line) == 0 {
		return "", errors.New("conformance: empty line")
	}
	return line, nil
}
