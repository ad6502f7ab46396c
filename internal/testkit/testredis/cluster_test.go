package testredis

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

func TestCRC16(t *testing.T) {
	// The check value of CRC-16/XMODEM, and the one in Redis's crc16.c.
	if got := crc16([]byte("123456789")); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#04x, want 0x31c3", got)
	}
	if got := crc16(nil); got != 0 {
		t.Fatalf("crc16(nil) = %#04x, want 0", got)
	}
}

func TestKeySlot(t *testing.T) {
	// Slots that CLUSTER KEYSLOT gives (Redis 7.0), and the hash-tag rules
	// of the cluster specification.
	for _, tc := range []struct {
		key  string
		want int
	}{
		{"foo", 12182},
		{"bar", 5061},
		{"hello", 866},
		{"", 0},
		{"{foo}", 12182},
		{"{foo}:fence", 12182},
		{"xx{foo}yy{bar}", 12182}, // the first tag counts
		{"foo{}{bar}", -1},        // empty tag: the whole key
		{"foo{{bar}}zap", -2},     // tag "{bar"
		{"foo{bar}{zap}", 5061},   // tag "bar"
		{"{user1000}.following", -3},
	} {
		want := tc.want
		switch want {
		case -1:
			want = int(crc16([]byte(tc.key)) % ClusterSlots)
		case -2:
			want = int(crc16([]byte("{bar")) % ClusterSlots)
		case -3:
			want = KeySlot("{user1000}.followers")
		}
		if got := KeySlot(tc.key); got != want {
			t.Errorf("KeySlot(%q) = %d, want %d", tc.key, got, want)
		}
	}
}

func TestParseClusterNodes(t *testing.T) {
	text := "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected\n" +
		"e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 6000 [5461->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]\n" +
		"67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master,fail - 0 1426238316232 2 disconnected\n"
	v, err := parseClusterNodes(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 3 {
		t.Fatalf("%d nodes, want 3", len(v))
	}
	me := v.myself()
	if me == nil || me.addr != "127.0.0.1:30001" || !me.flag("master") || fmt.Sprint(me.slots) != "[[0 5460] [6000 6000]]" {
		t.Fatalf("myself = %+v", me)
	}
	r := v.byAddr("127.0.0.1:30004")
	if r == nil || !r.flag("slave") || r.master != me.id || r.failed() {
		t.Fatalf("replica = %+v", r)
	}
	if f := v.byAddr("127.0.0.1:30002"); f == nil || !f.failed() {
		t.Fatalf("failed node = %+v", f)
	}
	if o := v.owner(6000); o != me {
		t.Fatalf("owner(6000) = %+v", o)
	}
	if o := v.owner(7000); o != nil {
		t.Fatalf("owner(7000) = %+v, want none", o)
	}
	if _, err := parseClusterNodes("a b c"); err == nil {
		t.Fatal("a short line parsed")
	}
}

// slowTest skips t in -short mode and runs it in parallel with the other
// slow tests of the package: each starts processes and waits for failovers.
func slowTest(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a cluster or sentinels and waits for failovers: skipped in -short mode")
	}
	t.Parallel()
}

// closedPorts fails t if something still listens on one of addrs.
func closedPorts(t *testing.T, addrs []string) {
	t.Helper()
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			_ = c.Close()
			t.Errorf("something still listens on %s after the test's clean-up", a)
		}
	}
}

func randomKey(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// setAndWait writes key=val on s and waits (on the same connection) for one
// replica to acknowledge it.
func setAndWait(t *testing.T, s *Server, key, val string) {
	t.Helper()
	r, err := respPipeline(s.Addr(), 5*time.Second, []string{"SET", key, val}, []string{"WAIT", "1", "2000"})
	if err != nil || r[0] != "OK" || r[1] != int64(1) {
		t.Fatalf("SET %s then WAIT 1 on %s = %#v, %v; want OK, 1", key, s.Addr(), r, err)
	}
}

func wantValue(t *testing.T, s *Server, key, want string) {
	t.Helper()
	if got, err := s.Do("GET", key); got != want || err != nil {
		t.Fatalf("GET %s on %s = %#v, %v; want %q", key, s.Addr(), got, err, want)
	}
}

func TestCluster(t *testing.T) {
	slowTest(t)
	var addrs []string
	t.Run("run", func(t *testing.T) {
		c := StartCluster(t)
		addrs = c.Addrs()
		if len(addrs) != 6 {
			t.Fatalf("Addrs() = %v, want 6", addrs)
		}
		primaries, replicas := c.Primaries(), c.Replicas()
		if len(primaries) != 3 || len(replicas) != 3 {
			t.Fatalf("%d primaries, %d replicas; want 3 and 3", len(primaries), len(replicas))
		}
		for _, p := range primaries {
			if rs := c.ReplicasOf(p); len(rs) != 1 {
				t.Fatalf("primary %s has replicas %v, want one", p.Addr(), rs)
			}
		}

		t.Run("Routing", func(t *testing.T) {
			keys := []string{"lockA", "{lockA}", "{lockA}:fence", "relock:{job}:42"}
			for range 30 {
				keys = append(keys, randomKey("k:"))
			}
			for _, k := range keys {
				got, err := primaries[0].Do("CLUSTER", "KEYSLOT", k)
				if err != nil || got != int64(KeySlot(k)) {
					t.Fatalf("CLUSTER KEYSLOT %s = %v, %v; KeySlot says %d", k, got, err, KeySlot(k))
				}
				owner := c.PrimaryFor(k)
				if r, err := owner.Do("SET", k, "v"); r != "OK" || err != nil {
					t.Fatalf("SET %s on PrimaryFor = %v, %v", k, r, err)
				}
				for _, p := range primaries {
					if p == owner {
						continue
					}
					_, err := p.Do("GET", k)
					want := fmt.Sprintf("MOVED %d %s", KeySlot(k), owner.Addr())
					if err == nil || err.Error() != want {
						t.Fatalf("GET %s on another primary: %v, want %q", k, err, want)
					}
				}
			}
			// Every key of one lock shares a slot by hash tag; keys
			// without one are in other slots.
			script := "redis.call('SET', KEYS[1], 'x'); return redis.call('INCR', KEYS[2])"
			lock := randomKey("lock")
			tagged := "{" + lock + "}"
			if _, err := c.PrimaryFor(tagged).Do("EVAL", script, "2", tagged, tagged+":fence"); err != nil {
				t.Fatalf("a script over %s and %s:fence: %v", tagged, tagged, err)
			}
			if KeySlot(lock) == KeySlot(lock+":fence") {
				t.Skipf("%s and %s:fence happen to share a slot", lock, lock)
			}
			_, err := c.PrimaryFor(lock).Do("EVAL", script, "2", lock, lock+":fence")
			if err == nil || !strings.HasPrefix(err.Error(), "CROSSSLOT") {
				t.Fatalf("a script over %s and %s:fence: %v, want CROSSSLOT", lock, lock, err)
			}
		})

		t.Run("Failover", func(t *testing.T) {
			k := randomKey("failover:")
			p := c.PrimaryFor(k)
			setAndWait(t, p, k, "before")
			r := c.ReplicasOf(p)[0]
			c.Failover(t, r)
			if got := c.PrimaryFor(k); got != r {
				t.Fatalf("after Failover(%s), PrimaryFor = %s", r.Addr(), got.Addr())
			}
			if rs := c.ReplicasOf(r); len(rs) != 1 || rs[0] != p {
				t.Fatalf("after Failover, the new primary's replicas are %v, want the old primary %s", rs, p.Addr())
			}
			wantValue(t, r, k, "before")

			// Kill the new primary: the old one comes back into office.
			setAndWait(t, r, k, "after")
			promoted := c.KillPrimary(t, r)
			if promoted != p {
				t.Fatalf("KillPrimary promoted %s, want %s", promoted.Addr(), p.Addr())
			}
			if got := c.PrimaryFor(k); got != p {
				t.Fatalf("after KillPrimary, PrimaryFor = %s, want %s", got.Addr(), p.Addr())
			}
			wantValue(t, p, k, "after")
			if n, m := len(c.Primaries()), len(c.Replicas()); n != 3 || m != 2 {
				t.Fatalf("after KillPrimary: %d primaries, %d replicas; want 3 and 2", n, m)
			}

			// The killed node rejoins as a replica of the promoted one.
			c.Restart(t, r)
			if rs := c.ReplicasOf(p); len(rs) != 1 || rs[0] != r {
				t.Fatalf("after Restart, %s has replicas %v, want %s", p.Addr(), rs, r.Addr())
			}
			if n := len(c.Replicas()); n != 3 {
				t.Fatalf("after Restart: %d replicas, want 3", n)
			}
		})
	})
	closedPorts(t, addrs)
}

func TestSentinel(t *testing.T) {
	slowTest(t)
	var addrs []string
	t.Run("run", func(t *testing.T) {
		s := StartSentinel(t)
		if s.MasterName() != "mymaster" || len(s.SentinelAddrs()) != 3 {
			t.Fatalf("MasterName %q, SentinelAddrs %v", s.MasterName(), s.SentinelAddrs())
		}
		old, replica := s.Primary(), s.Replica()
		addrs = append(s.SentinelAddrs(), old.Addr(), replica.Addr())
		for _, a := range s.SentinelAddrs() {
			if got, err := masterAddr(a); got != old.Addr() || err != nil {
				t.Fatalf("sentinel %s: master %s, %v; want %s", a, got, err, old.Addr())
			}
		}
		k := randomKey("sentinel:")
		setAndWait(t, old, k, "v")

		next := s.KillPrimaryAndWaitFailover(t)
		if next != replica || s.Primary() != replica || s.Replica() != nil {
			t.Fatalf("after the failover: returned %v, Primary %v, Replica %v; want the replica %s", next.Addr(), s.Primary().Addr(), s.Replica(), replica.Addr())
		}
		wantValue(t, next, k, "v")
		if r, err := next.Do("SET", k, "w"); r != "OK" || err != nil {
			t.Fatalf("SET on the new primary = %v, %v", r, err)
		}
		var e Error
		if _, err := old.Do("PING"); err == nil || errors.As(err, &e) {
			t.Fatalf("the old primary still answers: %v", err)
		}
	})
	closedPorts(t, addrs)
}

// TestRespPipeline: the cluster and sentinel helpers' RESP client reads every reply type.
func TestRespPipeline(t *testing.T) {
	s := Start(t)
	r, err := respPipeline(s.Addr(), 5*time.Second,
		[]string{"SET", "k", "v"}, []string{"GET", "k"}, []string{"GET", "missing"},
		[]string{"INCR", "n"}, []string{"LPUSH", "k", "x"}, []string{"ECHO", "a\r\nb"},
		[]string{"EVAL", "return {1, 'a', {2}}", "0"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"OK", "v", "<nil>", "1", "WRONGTYPE", "a\r\nb", "[1 a [2]]"}
	for i, w := range want {
		got := fmt.Sprint(r[i])
		if e, ok := r[i].(Error); ok {
			got, _, _ = strings.Cut(string(e), " ")
		}
		if got != w {
			t.Errorf("reply %d = %q, want %q", i, got, w)
		}
	}
	if _, err := do(s.Addr(), time.Second, "NOSUCHCOMMAND"); err == nil {
		t.Error("respCall of an unknown command: no error")
	}
	if n, err := do(s.Addr(), time.Second, "DBSIZE"); n != int64(2) || err != nil {
		t.Errorf("DBSIZE = %v, %v", n, err)
	}
}
