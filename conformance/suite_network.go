package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relock-go/relock/driver"
)

// netFaultLimit bounds a call under a refused or reset connection: it must
// fail, and a client's retries (with their back-off) fit well within it.
const netFaultLimit = time.Second

// testNetwork: the network fails under the driver, through a proxy of the
// suite's own in front of Harness.Addr. Every call must then return an
// error: a refused or reset connection is never "the key existed", "the
// key is missing" or a script's nil.
func testNetwork(t *testing.T, h Harness) {
	needAddr(t, h)
	faults := []struct {
		name string
		mode proxyMode
	}{
		{"Refused", modeRefuse},
		{"Reset", modeReset},
		{"Silent", modeSilent},
	}
	// Every call under every fault runs at once, each on a proxy and a
	// connection of its own (a client's retries make a refused call take
	// a second or two; one after the other they would take a minute); the
	// subtests then report each outcome under its own name.
	type outcome struct {
		err      error
		took     time.Duration
		hung     bool
		skip     string
		setupErr string
	}
	type job struct {
		p     *proxy
		conn  driver.Conn
		keys  []string
		limit time.Duration
		res   outcome
	}
	e := newEnv(t, h)
	jobs := map[string]*job{}
	var wg sync.WaitGroup
	for _, f := range faults {
		for _, c := range calls {
			if _, _, ok := h.known(t.Name() + "/" + f.name + "/" + c.name); ok {
				continue // its subtest says so
			}
			j := &job{p: newProxy(t, h.Addr), keys: []string{e.key(f.name + c.name)}, limit: netFaultLimit}
			if f.mode == modeSilent {
				j.limit = silentDeadline
			}
			jobs[f.name+"/"+c.name] = j
			j.conn = e.connTo(j.p.addr())
			// Runs before the connection's Close: a call left blocked
			// ends when the proxy hangs up.
			t.Cleanup(j.p.close)
			if !has(j.conn, c.need) {
				j.res.skip = "driver does not implement driver." + c.need
				continue
			}
			// The driver has a connection open when the fault strikes:
			// the fault hits the pool, not only a dial.
			if _, _, err := j.conn.Get(bg(), j.keys[0]); err != nil {
				j.res.setupErr = fmt.Sprintf("Get through the proxy before the fault: %v", err)
				continue
			}
			loadCallScript(t, e, j.keys)
			j.p.set(f.mode)
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(bg(), j.limit)
				defer cancel()
				start := time.Now()
				done := make(chan error, 1)
				go func() {
					err, panicked := callSafely(func() error { return c.run(ctx, j.conn, j.keys) })
					if panicked != nil {
						err = fmt.Errorf("panicked: %v", panicked)
					}
					done <- err
				}()
				select {
				case j.res.err = <-done:
				case <-time.After(j.limit + silentGiveUp):
					j.res.hung = true
					j.p.close() // lets the call end
					<-done
				}
				j.res.took = time.Since(start).Round(time.Millisecond)
			})
		}
	}
	wg.Wait()
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			for _, c := range calls {
				t.Run(c.name, func(t *testing.T) {
					h.skipKnown(t)
					j := jobs[f.name+"/"+c.name]
					r := j.res
					how := strings.ToLower(f.name)
					switch {
					case r.skip != "":
						t.Skip(r.skip)
					case r.setupErr != "":
						t.Fatal(r.setupErr)
					case r.hung:
						t.Fatalf("%s on a %s connection had not returned %v after its %v deadline", c.name, how, silentGiveUp, j.limit)
					case unsupported(c, r.err):
						t.Skipf("the driver's ReplicaWaiter cannot serve this backend: %v", r.err)
					case r.err == nil:
						t.Fatalf("%s on a %s connection returned no error (after %v): a network failure must never read as an answer", c.name, how, r.took)
					case f.mode == modeSilent && r.took > j.limit+silentMargin:
						t.Fatalf("%s on a connection gone silent, with a %v deadline, returned after %v: %v", c.name, j.limit, r.took, r.err)
					}
				})
			}
		})
	}
}

// testValidate: Validate of a driver built right returns nil at once,
// whatever the network, and sends nothing.
func testValidate(t *testing.T, h Harness) {
	validator := func(t *testing.T, c driver.Conn) driver.Validator {
		t.Helper()
		v, ok := c.(driver.Validator)
		if !ok {
			t.Skip("driver does not implement driver.Validator")
		}
		return v
	}
	validate := func(t *testing.T, v driver.Validator, where string) {
		t.Helper()
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- v.Validate() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Validate of a driver built right, %s: %v; it must not depend on the network", where, err)
			}
			if took := time.Since(start); took > silentMargin {
				t.Fatalf("Validate, %s, took %v: it must not block", where, took.Round(time.Millisecond))
			}
		case <-time.After(silentGiveUp):
			t.Fatalf("Validate, %s, had not returned after %v: it must not block", where, silentGiveUp)
		}
	}
	t.Run("Healthy", func(t *testing.T) {
		e := newEnv(t, h)
		validate(t, validator(t, e.conn()), "on a healthy server")
	})
	for _, fault := range []struct {
		name string
		mode proxyMode
	}{{"DeadAddress", modeRefuse}, {"SilentServer", modeSilent}} {
		t.Run(fault.name, func(t *testing.T) {
			needAddr(t, h)
			e := newEnv(t, h)
			p := newProxy(t, h.Addr)
			v := validator(t, e.connTo(p.addr()))
			t.Cleanup(p.close) // before the connection's Close
			p.set(fault.mode)
			validate(t, v, "with the server "+map[proxyMode]string{modeRefuse: "gone (connections refused)", modeSilent: "silent"}[fault.mode])
		})
	}
	t.Run("SendsNothing", func(t *testing.T) {
		needAddr(t, h)
		e := newEnv(t, h)
		p := newProxy(t, h.Addr)
		c := e.connTo(p.addr())
		v := validator(t, c)
		// A connection is open, so a ping would have a way to go.
		if _, _, err := c.Get(bg(), e.key("k")); err != nil {
			t.Fatalf("Get: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
		before := len(p.commands())
		validate(t, v, "on a healthy server")
		time.Sleep(20 * time.Millisecond) // lets the proxy log what came
		if sent := p.commands()[before:]; len(sent) > 0 {
			t.Fatalf("Validate sent %d commands (%q): it must send nothing", len(sent), sent[0].args)
		}
	})
}

// testWire: WAIT goes on the connection of the script it follows, after
// it. The suite's proxy sees every command and the connection it came on,
// so the verdict does not depend on when replicas acknowledge.
func testWire(t *testing.T, h Harness) {
	needAddr(t, h)
	e := newEnv(t, h)
	p := newProxy(t, h.Addr)
	c := e.connTo(p.addr())
	w, ok := c.(driver.ReplicaWaiter)
	if !ok {
		t.Skip("driver does not implement driver.ReplicaWaiter")
	}
	const script = "return redis.call('SET', KEYS[1], ARGV[1], 'PX', 10000)"
	keys := []string{e.key("k")}
	// Other traffic first, so that the pool has connections that wrote.
	for i := range 3 {
		if _, err := c.SetNX(bg(), e.key(fmt.Sprintf("other%d", i)), "v", 10*time.Second); err != nil {
			t.Fatalf("SetNX: %v", err)
		}
	}
	for i, step := range []struct {
		name string
		cmd  string
		do   func(arg string) (any, int, error)
	}{
		{"EvalWait", "EVAL", func(arg string) (any, int, error) {
			return w.EvalWait(bg(), script, keys, []string{arg}, h.Replicas, 100*time.Millisecond)
		}},
		{"EvalShaWait", "EVALSHA", func(arg string) (any, int, error) {
			return w.EvalShaWait(bg(), sha1hex(script), keys, []string{arg}, h.Replicas, 100*time.Millisecond)
		}},
	} {
		arg := e.prefix + "wire" + strconv.Itoa(i)
		before := len(p.commands())
		r, _, err := step.do(arg)
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skipf("the driver's ReplicaWaiter cannot serve this backend: %v", err)
		}
		if err != nil || r != "OK" {
			t.Fatalf("%s = %#v, %v; want OK", step.name, r, err)
		}
		// The proxy logs a command once it has passed it on: wait until
		// it has logged the script and a WAIT, or a second has passed.
		var sent []loggedCommand
		at := -1
		for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
			sent = p.commands()[before:]
			at = slices.IndexFunc(sent, func(l loggedCommand) bool {
				return upper(l.args[0]) == step.cmd && slices.Contains(l.args, arg)
			})
			waited := slices.ContainsFunc(sent, func(l loggedCommand) bool { return upper(l.args[0]) == "WAIT" })
			if (at >= 0 && waited) || time.Now().After(deadline) {
				break
			}
		}
		if at < 0 {
			t.Fatalf("%s: the proxy saw no %s with the call's argument; it saw %v", step.name, step.cmd, names(sent))
		}
		conn := sent[at].conn
		var after bool
		for j, l := range sent {
			if upper(l.args[0]) != "WAIT" {
				continue
			}
			switch {
			case l.conn != conn:
				t.Fatalf("%s sent WAIT on connection %d, the script on connection %d: WAIT counts only the writes of its own connection", step.name, l.conn, conn)
			case j < at:
				t.Fatalf("%s sent WAIT before the script on its connection: WAIT waits for the writes made before it", step.name)
			case len(l.args) != 3 || l.args[1] != strconv.Itoa(h.Replicas) || l.args[2] != "100":
				t.Fatalf("%s sent %q, want WAIT %d 100", step.name, l.args, h.Replicas)
			}
			after = true
		}
		if !after {
			t.Fatalf("%s sent no WAIT after its script; the proxy saw %v", step.name, names(sent))
		}
	}
}

// names lists the commands of a log, with their connections.
func names(l []loggedCommand) []string {
	var out []string
	for _, c := range l {
		out = append(out, fmt.Sprintf("%s@%d", upper(c.args[0]), c.conn))
	}
	return out
}

// testWaitTimeout: a WAIT that cannot be satisfied returns after about its
// timeout, with the replicas that did acknowledge.
func testWaitTimeout(t *testing.T, h Harness) {
	e, _, w := capable[driver.ReplicaWaiter](t, h, "ReplicaWaiter")
	const timeout = 300 * time.Millisecond
	// The server checks WAIT timeouts on its clock tick (100 ms at the
	// default hz 10), on top of the margin of every call.
	limit := timeout + 100*time.Millisecond + silentMargin
	start := time.Now()
	r, acked, err := w.EvalWait(bg(), "return redis.call('SET', KEYS[1], 'v', 'PX', 10000)", []string{e.key("k")}, nil, h.Replicas+1, timeout)
	took := time.Since(start)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("the driver's ReplicaWaiter cannot serve this backend: %v", err)
	}
	if err != nil || r != "OK" {
		t.Fatalf("EvalWait for %d replicas = %#v, %d, %v; want OK", h.Replicas+1, r, acked, err)
	}
	if acked > h.Replicas {
		t.Fatalf("EvalWait for %d replicas: %d acknowledged, more than Harness.Replicas = %d", h.Replicas+1, acked, h.Replicas)
	}
	if took > limit {
		t.Fatalf("EvalWait for %d replicas (of %d) with a %v timeout returned after %v: want at most %v (the timeout went out longer than given?)", h.Replicas+1, h.Replicas, timeout, took.Round(time.Millisecond), limit)
	}
	// A server whose clock the harness advances (miniredis) answers WAIT
	// at once; a real one waits for the whole timeout.
	if h.Advance == nil && took < timeout-5*time.Millisecond {
		t.Fatalf("EvalWait for %d replicas (of %d) with a %v timeout returned after %v: it did not wait for its timeout (the timeout went out shorter than given?)", h.Replicas+1, h.Replicas, timeout, took.Round(time.Millisecond))
	}
}

// hookUse is what the suite does with one Harness hook, and what a driver
// author loses by leaving it nil.
type hookUse struct {
	hook    string
	missing func(Harness) bool
	// loses says what the run did not check for want of the hook, given
	// the driver c.
	loses func(h Harness, c driver.Conn) string
}

func always(s string) func(Harness, driver.Conn) string {
	return func(Harness, driver.Conn) string { return s }
}

var hookUses = []hookUse{
	{"Advance", func(h Harness) bool { return h.Advance == nil }, always("nothing: the suite sleeps through TTLs instead (a backend whose clock does not run in real time must set it)")},
	{"FlushScripts", func(h Harness) bool { return h.FlushScripts == nil }, always("NoScript: that relock falls back to EVAL after the server lost its scripts")},
	{"SetWrongType", func(h Harness) bool { return h.SetWrongType == nil }, always("WrongType and Driver/*/WrongType: that a key of another type is an error, not a free or held lock")},
	{"Delete", func(h Harness) bool { return h.Delete == nil }, always("Lease/LostOnDelete: the lost-lock signal")},
	{"FlushAll", func(h Harness) bool { return h.FlushAll == nil }, always("Lease/LostOnFlushAll")},
	{"PauseWrites", func(h Harness) bool { return h.PauseWrites == nil }, always("Lease/LostOnStall: a lock whose refresh stalls is given up in time")},
	{"StallReplicas", func(h Harness) bool { return h.StallReplicas == nil || h.Replicas < 1 }, func(h Harness, c driver.Conn) string {
		if !has(c, "ReplicaWaiter") {
			return "nothing: the driver has no ReplicaWaiter"
		}
		if h.Addr != "" && h.NewConnTo != nil {
			return "Driver/ReplicaWaiter/SameConnection, by stalled replicas (Driver/ReplicaWaiter/Wire checked the same on the wire)"
		}
		return "Driver/ReplicaWaiter/SameConnection: on which connection, and after what, WAIT goes"
	}},
	{"Publish", func(h Harness) bool { return h.Publish == nil }, func(_ Harness, c driver.Conn) string {
		switch {
		case !has(c, "Subscriber"):
			return "nothing: the driver has no Subscriber"
		case has(c, "Scripter") || has(c, "Watcher"):
			return "nothing: the suite published through the driver's own scripts or transactions"
		}
		return "Driver/Subscriber: every check of delivery"
	}},
	{"NewSilentConn", func(h Harness) bool { return h.NewSilentConn == nil }, func(h Harness, _ driver.Conn) string {
		if h.Addr != "" && h.NewConnTo != nil {
			return "nothing: the suite ran its own silent server, through NewConnTo"
		}
		return "Driver/Context/Deadline and Driver/Context/InFlight: that every call ends at its context's deadline or cancellation on a server that never answers"
	}},
	{"Addr, NewConnTo", func(h Harness) bool { return h.Addr == "" || h.NewConnTo == nil }, always("Driver/Network (refused, reset and silent connections under the driver), Driver/Validate beyond Healthy, Driver/ReplicaWaiter/Wire, Driver/Values/ErrorTexts/Commands")},
}

// summarize logs which hooks h leaves nil, what the suite skipped for
// each, and the capabilities the driver lacks.
func summarize(t *testing.T, h Harness) {
	c := h.NewConn(t)
	if c == nil {
		return
	}
	defer c.Close()
	var b strings.Builder
	for _, u := range hookUses {
		if u.missing(h) {
			fmt.Fprintf(&b, "\n  Harness.%s not set: skipped %s", u.hook, u.loses(h, c))
		}
	}
	for _, capa := range []string{"Scripter", "Watcher", "ReplicaWaiter", "Subscriber"} {
		if !has(c, capa) {
			fmt.Fprintf(&b, "\n  driver.%s not implemented: its Driver/%s subtests and the paths that need it skipped", capa, capa)
		}
	}
	if _, ok := c.(driver.Validator); !ok {
		b.WriteString("\n  driver.Validator not implemented: Driver/Validate skipped")
	}
	if b.Len() == 0 {
		t.Log("conformance summary: every hook set, every capability implemented: nothing skipped for want of one")
		return
	}
	t.Log("conformance summary: what this run did not check, and why:" + b.String())
}
