package testredis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Bounds of the cluster helpers. Every wait is bounded, so that a cluster
// that does not settle fails the test instead of hanging it.
const (
	// ClusterSlots is the number of hash slots of a Redis Cluster.
	ClusterSlots = 16384

	clusterNodes       = 6                      // three primaries, one replica each
	clusterNodeTimeout = 2000                   // ms, --cluster-node-timeout
	clusterCreateLimit = 30 * time.Second       // redis-cli --cluster create
	clusterSettleLimit = 20 * time.Second       // until the cluster is settled again
	clusterPoll        = 100 * time.Millisecond // between two looks at the nodes
	clusterDialTimeout = 2 * time.Second        // one look at one node
	manualFailoverPace = 6 * time.Second        // CLUSTER FAILOVER sent again after this
)

// Cluster is a private Redis Cluster that one test started with
// [StartCluster]: six redis-server processes, made with [Start] (so each
// has its own directory under t.TempDir(), and is stopped by the test's
// clean-up), joined by redis-cli --cluster create into three primaries with
// one replica each. Every slot is covered.
//
// The roles change under Failover and KillPrimary: the methods that name
// primaries and replicas ask the nodes each time. Methods that take a
// testing.TB fail it with t.Fatal, and the others (Primaries, Replicas,
// ReplicasOf, PrimaryFor) fail the test that started the cluster when no
// node answers, as Server.Restart does: call each from the goroutine of the
// test it fails.
type Cluster struct {
	t      testing.TB // the test that started it
	nodes  []*Server  // in start order, stopped ones included
	byAddr map[string]*Server
}

// StartCluster starts six cluster-enabled redis-server processes on free
// loopback ports:
//
//	redis-server (Start's arguments) --cluster-enabled yes
//	    --cluster-config-file nodes.conf --cluster-node-timeout 2000
//	    [--cluster-port Q]
//
// (nodes.conf sits in the node's own directory; on Redis 7 and later the
// cluster bus gets a free port Q of its own, instead of port+10000, which
// may be taken or above 65535), joins them with
//
//	redis-cli --cluster create <6 addrs> --cluster-replicas 1 --cluster-yes
//
// and waits, up to 20 s, until the cluster is settled: every reachable
// node says cluster_state:ok with all 16384 slots ok, all nodes see the
// same slot owners, and every replica's link to its primary is up. That
// takes one to three seconds.
//
// Without a redis-server binary (as for Start) or a redis-cli binary
// ($RELOCK_REDIS_CLI, else redis-cli next to $RELOCK_REDIS_SERVER, else
// redis-cli in $PATH), it skips t, or fails it when Required. It skips t
// under go test -short ([SkipShort]).
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	SkipShort(t, "starts a six-node Redis Cluster")
	cli := cliBinary(t)
	start := time.Now()
	ownBusPort := serverMajorVersion() >= 7 // --cluster-port is new in 7.0
	c := &Cluster{t: t, byAddr: map[string]*Server{}}
	for range clusterNodes {
		args := []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(clusterNodeTimeout),
		}
		if ownBusPort {
			p, err := freePort()
			if err != nil {
				t.Fatalf("testredis: find a free port for the cluster bus: %v", err)
			}
			args = append(args, "--cluster-port", strconv.Itoa(p))
		}
		s := Start(t, args...)
		c.nodes = append(c.nodes, s)
		c.byAddr[s.Addr()] = s
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterCreateLimit)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("testredis: redis-cli --cluster create: %v; output:\n%s", err, out)
	}
	c.waitSettled(t, "the new cluster", nil)
	t.Logf("testredis: cluster %v ready in %v", c.Addrs(), time.Since(start).Round(time.Millisecond))
	return c
}

// Nodes returns the six servers, in the order they were started, stopped
// ones included.
func (c *Cluster) Nodes() []*Server { return slices.Clone(c.nodes) }

// Addrs returns the addresses of the six nodes (127.0.0.1:port), in the
// order of Nodes: seeds for a cluster client.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Node returns the node at addr, or nil.
func (c *Cluster) Node(addr string) *Server { return c.byAddr[addr] }

// Primaries returns the nodes that serve slots now, as a reachable node
// sees them, ordered by their first slot. It fails t when no node answers.
func (c *Cluster) Primaries() []*Server {
	t := c.t
	t.Helper()
	v := c.mustView(t)
	var ps []*clusterNode
	for i := range v {
		if n := &v[i]; n.flag("master") && !n.failed() && len(n.slots) > 0 {
			ps = append(ps, n)
		}
	}
	slices.SortFunc(ps, func(a, b *clusterNode) int { return a.slots[0][0] - b.slots[0][0] })
	out := make([]*Server, 0, len(ps))
	for _, n := range ps {
		out = append(out, c.server(t, n.addr))
	}
	return out
}

// Replicas returns the nodes that replicate a primary now, as a reachable
// node sees them (nodes it marks as failing left out), in start order.
func (c *Cluster) Replicas() []*Server {
	t := c.t
	t.Helper()
	v := c.mustView(t)
	var out []*Server
	for _, s := range c.nodes {
		if n := v.byAddr(s.Addr()); n != nil && n.flag("slave") && !n.failed() {
			out = append(out, s)
		}
	}
	return out
}

// ReplicasOf returns the nodes that replicate primary now, in start order.
func (c *Cluster) ReplicasOf(primary *Server) []*Server {
	t := c.t
	t.Helper()
	v := c.mustView(t)
	p := v.byAddr(primary.Addr())
	if p == nil {
		t.Fatalf("testredis: %s is not a node of the cluster", primary.Addr())
	}
	var out []*Server
	for _, s := range c.nodes {
		if n := v.byAddr(s.Addr()); n != nil && n.flag("slave") && !n.failed() && n.master == p.id {
			out = append(out, s)
		}
	}
	return out
}

// PrimaryFor returns the node that serves key's hash slot ([KeySlot]) now,
// as a reachable node's CLUSTER NODES says.
func (c *Cluster) PrimaryFor(key string) *Server {
	t := c.t
	t.Helper()
	slot := KeySlot(key)
	v := c.mustView(t)
	owner := v.owner(slot)
	if owner == nil {
		t.Fatalf("testredis: no node serves slot %d (key %q)", slot, key)
	}
	return c.server(t, owner.addr)
}

// Failover runs CLUSTER FAILOVER on replica, a graceful hand-over in which
// the primary stops taking writes until replica has caught up, and waits,
// up to 20 s, until replica serves its primary's slots, the old primary
// replicates it, and the cluster is settled (as after StartCluster). The
// command is sent again every 6 s while replica is not yet a primary, in
// case one hand-over timed out. It logs how long the failover took.
func (c *Cluster) Failover(t testing.TB, replica *Server) {
	t.Helper()
	v := c.mustView(t)
	me := v.byAddr(replica.Addr())
	if me == nil || !me.flag("slave") {
		t.Fatalf("testredis: Failover: %s is not a replica", replica.Addr())
	}
	old := v.byID(me.master)
	if old == nil {
		t.Fatalf("testredis: Failover: the primary of %s is unknown", replica.Addr())
	}
	start := time.Now()
	sent := time.Time{}
	c.waitUntil(t, "CLUSTER FAILOVER on "+replica.Addr(), func(states []nodeState) error {
		if time.Since(sent) >= manualFailoverPace {
			if _, err := replica.Do("CLUSTER", "FAILOVER"); err != nil {
				return fmt.Errorf("CLUSTER FAILOVER: %w", err)
			}
			sent = time.Now()
		}
		v, err := settled(states)
		if err != nil {
			return err
		}
		n := v.byAddr(replica.Addr())
		if n == nil || !n.flag("master") || len(n.slots) == 0 {
			return errors.New("the replica is not a primary yet")
		}
		if o := v.byAddr(old.addr); o != nil && !o.failed() && o.master != n.id {
			return errors.New("the old primary does not replicate the new one yet")
		}
		return nil
	})
	t.Logf("testredis: CLUSTER FAILOVER: %s took over from %s in %v", replica.Addr(), old.addr, time.Since(start).Round(time.Millisecond))
}

// KillPrimary stops primary at once, as Server.Stop does (a crash), and
// waits, up to 20 s, until one of its replicas has been elected in its
// place and the cluster is settled again among the remaining nodes. It
// returns that replica, and logs how long the promotion took (about the
// node timeout, 2 s, plus the election: 3 to 4 s).
func (c *Cluster) KillPrimary(t testing.TB, primary *Server) *Server {
	t.Helper()
	v := c.mustView(t)
	p := v.byAddr(primary.Addr())
	if p == nil || !p.flag("master") || len(p.slots) == 0 {
		t.Fatalf("testredis: KillPrimary: %s is not a primary serving slots", primary.Addr())
	}
	slot := p.slots[0][0]
	replicas := map[string]bool{}
	for _, n := range v {
		if n.flag("slave") && n.master == p.id {
			replicas[n.id] = true
		}
	}
	if len(replicas) == 0 {
		t.Fatalf("testredis: KillPrimary: %s has no replica to take over", primary.Addr())
	}
	start := time.Now()
	primary.Stop()
	var promoted string
	c.waitUntil(t, "the promotion of a replica of "+primary.Addr(), func(states []nodeState) error {
		v, err := settled(states)
		if err != nil {
			return err
		}
		owner := v.owner(slot)
		if owner == nil || !replicas[owner.id] {
			return fmt.Errorf("slot %d is not served by a former replica yet", slot)
		}
		promoted = owner.addr
		return nil
	})
	t.Logf("testredis: killed primary %s; replica %s promoted, cluster ok, after %v", primary.Addr(), promoted, time.Since(start).Round(time.Millisecond))
	return c.server(t, promoted)
}

// Restart starts node again (Server.Restart), on the same port with the
// same nodes.conf, and waits, up to 20 s, until it has rejoined and the
// cluster is settled. A primary that lost its slots while it was down
// comes back as a replica of the node that took them over.
func (c *Cluster) Restart(t testing.TB, node *Server) {
	t.Helper()
	start := time.Now()
	node.Restart()
	c.waitUntil(t, "the rejoining of "+node.Addr(), func(states []nodeState) error {
		v, err := settled(states)
		if err != nil {
			return err
		}
		if n := v.byAddr(node.Addr()); n == nil || n.failed() {
			return errors.New("the node has not rejoined yet")
		}
		return nil
	})
	t.Logf("testredis: node %s rejoined in %v", node.Addr(), time.Since(start).Round(time.Millisecond))
}

// WaitSettled waits, up to 20 s, until the cluster is settled among its
// reachable nodes, as StartCluster does.
func (c *Cluster) WaitSettled(t testing.TB) {
	t.Helper()
	c.waitSettled(t, "the cluster", nil)
}

func (c *Cluster) waitSettled(t testing.TB, what string, cond func(clusterView) error) {
	t.Helper()
	c.waitUntil(t, what, func(states []nodeState) error {
		v, err := settled(states)
		if err == nil && cond != nil {
			err = cond(v)
		}
		return err
	})
}

// waitUntil polls the nodes until check accepts what they say, or fails t
// after clusterSettleLimit with check's last complaint and a view of the
// cluster.
func (c *Cluster) waitUntil(t testing.TB, what string, check func([]nodeState) error) {
	t.Helper()
	deadline := time.Now().Add(clusterSettleLimit)
	for {
		states := c.look()
		err := check(states)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			var nodes string
			for _, st := range states {
				if st.alive {
					nodes = st.nodesText
					break
				}
			}
			t.Fatalf("testredis: %s: not settled within %v: %v; CLUSTER NODES:\n%s", what, clusterSettleLimit, err, nodes)
		}
		time.Sleep(clusterPoll)
	}
}

// server returns the node at addr or fails t.
func (c *Cluster) server(t testing.TB, addr string) *Server {
	t.Helper()
	s := c.byAddr[addr]
	if s == nil {
		t.Fatalf("testredis: the cluster names a node %s that is none of ours", addr)
	}
	return s
}

// mustView returns the CLUSTER NODES of the first node that answers.
func (c *Cluster) mustView(t testing.TB) clusterView {
	t.Helper()
	var errs []error
	for _, s := range c.nodes {
		r, err := s.Do("CLUSTER", "NODES")
		if err == nil {
			text, _ := r.(string)
			var v clusterView
			if v, err = parseClusterNodes(text); err == nil {
				return v
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", s.Addr(), err))
	}
	t.Fatalf("testredis: no cluster node answers CLUSTER NODES: %v", errors.Join(errs...))
	return nil
}

// nodeState is what one look at one node found.
type nodeState struct {
	addr      string
	alive     bool // it answered
	err       error
	info      string // CLUSTER INFO
	nodesText string // CLUSTER NODES
	nodes     clusterView
	repl      string // INFO replication
}

// look asks every node, on one connection each, for CLUSTER INFO, CLUSTER
// NODES and INFO replication.
func (c *Cluster) look() []nodeState {
	states := make([]nodeState, len(c.nodes))
	for i, s := range c.nodes {
		st := nodeState{addr: s.Addr()}
		replies, err := respPipeline(s.Addr(), clusterDialTimeout,
			[]string{"CLUSTER", "INFO"}, []string{"CLUSTER", "NODES"}, []string{"INFO", "replication"})
		if err == nil {
			st.alive = true
			for _, r := range replies {
				if e, ok := r.(Error); ok && err == nil {
					err = e
				}
			}
		}
		if err == nil {
			st.info, _ = replies[0].(string)
			st.nodesText, _ = replies[1].(string)
			st.repl, _ = replies[2].(string)
			st.nodes, err = parseClusterNodes(st.nodesText)
		}
		st.err = err
		states[i] = st
	}
	return states
}

// settled checks that the reachable nodes agree on a healthy cluster, and
// returns the view they share. Settled means: at least one node answers;
// every node that answers says cluster_state:ok with 16384 slots ok, sees
// every slot served by a primary that answers, and sees each node that
// answers as healthy and in the role that node claims for itself (primary,
// or replica of a given primary); all of them see the same owner for every
// slot; and every one that is a replica has its link to its primary up.
func settled(states []nodeState) (clusterView, error) {
	alive := map[string]bool{}
	for _, st := range states {
		if st.alive {
			alive[st.addr] = true
		}
	}
	if len(alive) == 0 {
		return nil, errors.New("no node answers")
	}
	// What each node that answers says of itself: its role and primary.
	self := map[string]string{}
	for _, st := range states {
		if st.alive && st.err == nil {
			if me := st.nodes.myself(); me != nil {
				self[st.addr] = me.role()
			}
		}
	}
	var ref clusterView
	var refOwners []string
	for _, st := range states {
		if !st.alive {
			continue
		}
		if st.err != nil {
			return nil, fmt.Errorf("%s: %w", st.addr, st.err)
		}
		if s := infoField(st.info, "cluster_state"); s != "ok" {
			return nil, fmt.Errorf("%s: cluster_state:%s", st.addr, s)
		}
		if s := infoField(st.info, "cluster_slots_ok"); s != strconv.Itoa(ClusterSlots) {
			return nil, fmt.Errorf("%s: cluster_slots_ok:%s", st.addr, s)
		}
		owners := make([]string, ClusterSlots)
		for _, n := range st.nodes {
			if alive[n.addr] && n.failed() {
				return nil, fmt.Errorf("%s sees %s, which answers, as %s", st.addr, n.addr, n.flags)
			}
			if want, ok := self[n.addr]; ok && n.role() != want {
				return nil, fmt.Errorf("%s sees %s as %s, which says it is %s", st.addr, n.addr, n.role(), want)
			}
			if !n.flag("master") {
				continue
			}
			for _, r := range n.slots {
				for s := r[0]; s <= r[1]; s++ {
					owners[s] = n.addr
				}
			}
		}
		for s, o := range owners {
			if o == "" {
				return nil, fmt.Errorf("%s sees slot %d unserved", st.addr, s)
			}
			if !alive[o] {
				return nil, fmt.Errorf("%s sees slot %d served by %s, which does not answer", st.addr, s, o)
			}
		}
		if ref == nil {
			ref, refOwners = st.nodes, owners
		} else if !slices.Equal(owners, refOwners) {
			return nil, fmt.Errorf("%s and another node disagree on the slot owners", st.addr)
		}
		me := st.nodes.myself()
		if me == nil {
			return nil, fmt.Errorf("%s: CLUSTER NODES has no myself line", st.addr)
		}
		if me.flag("slave") {
			p := st.nodes.byID(me.master)
			if p == nil {
				return nil, fmt.Errorf("%s replicates an unknown node %s", st.addr, me.master)
			}
			if s := infoField(st.repl, "master_link_status"); s != "up" {
				return nil, fmt.Errorf("replica %s: master_link_status:%s", st.addr, s)
			}
			if got := net.JoinHostPort(infoField(st.repl, "master_host"), infoField(st.repl, "master_port")); got != p.addr {
				return nil, fmt.Errorf("replica %s replicates %s, CLUSTER NODES says %s", st.addr, got, p.addr)
			}
		}
	}
	return ref, nil
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id     string
	addr   string // 127.0.0.1:port, without the bus port or hostname
	flags  string // comma-separated: myself, master, slave, fail?, fail, ...
	master string // the primary's id for a replica, else "-"
	link   string // connected or disconnected
	slots  [][2]int
}

func (n *clusterNode) flag(f string) bool {
	return slices.Contains(strings.Split(n.flags, ","), f)
}

// failed reports whether the view marks the node as failing or unusable.
func (n *clusterNode) failed() bool {
	return n.flag("fail") || n.flag("fail?") || n.flag("noaddr") || n.flag("handshake")
}

// role is "master", or "slave of <id>".
func (n *clusterNode) role() string {
	if n.flag("slave") {
		return "slave of " + n.master
	}
	if n.flag("master") {
		return "master"
	}
	return n.flags
}

// clusterView is a node's CLUSTER NODES.
type clusterView []clusterNode

func (v clusterView) byAddr(addr string) *clusterNode {
	for i := range v {
		if v[i].addr == addr {
			return &v[i]
		}
	}
	return nil
}

func (v clusterView) byID(id string) *clusterNode {
	for i := range v {
		if v[i].id == id {
			return &v[i]
		}
	}
	return nil
}

func (v clusterView) myself() *clusterNode {
	for i := range v {
		if v[i].flag("myself") {
			return &v[i]
		}
	}
	return nil
}

// owner returns the primary that serves slot, or nil.
func (v clusterView) owner(slot int) *clusterNode {
	for i := range v {
		n := &v[i]
		if !n.flag("master") || n.failed() {
			continue
		}
		for _, r := range n.slots {
			if r[0] <= slot && slot <= r[1] {
				return n
			}
		}
	}
	return nil
}

// parseClusterNodes parses the reply of CLUSTER NODES:
//
//	<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot> ...
//
// where a slot is "n", "a-b", or "[n->-id]"/"[n-<-id]" for a slot being
// migrated (left out here).
func parseClusterNodes(text string) (clusterView, error) {
	var v clusterView
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("testredis: malformed CLUSTER NODES line %q", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		addr, _, _ = strings.Cut(addr, ",")
		n := clusterNode{id: f[0], addr: addr, flags: f[2], master: f[3], link: f[7]}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue
			}
			lo, hi, isRange := strings.Cut(s, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || a < 0 || b < a || b >= ClusterSlots {
				return nil, fmt.Errorf("testredis: malformed slot %q in CLUSTER NODES line %q", s, line)
			}
			n.slots = append(n.slots, [2]int{a, b})
		}
		v = append(v, n)
	}
	return v, nil
}

// KeySlot returns the hash slot of key in a Redis Cluster, as CLUSTER
// KEYSLOT does: CRC16 (XMODEM) of the key's hash tag, modulo 16384. The
// hash tag is what lies between the first '{' and the first '}' after it,
// when that is not empty; otherwise the whole key is hashed.
func KeySlot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	return int(crc16([]byte(key)) % ClusterSlots)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0, no
// reflection, no final xor), the checksum Redis Cluster hashes keys with.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// cliBinary returns the redis-cli binary: $RELOCK_REDIS_CLI if set, else
// redis-cli in the directory of $RELOCK_REDIS_SERVER when that is a path,
// else redis-cli from $PATH. When there is none it skips t, or fails it
// when Required.
func cliBinary(t testing.TB) string {
	t.Helper()
	name := os.Getenv("RELOCK_REDIS_CLI")
	if name == "" {
		name = "redis-cli"
		if srv := os.Getenv("RELOCK_REDIS_SERVER"); strings.ContainsRune(srv, os.PathSeparator) {
			if p := filepath.Join(filepath.Dir(srv), "redis-cli"); fileExists(p) {
				name = p
			}
		}
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		if Required() {
			t.Fatalf("redis-cli is required (RELOCK_REQUIRE_REDIS is set) but not found: %v", err)
		}
		t.Skipf("no redis-cli binary (%v); install Redis, set RELOCK_REDIS_CLI, or RELOCK_REQUIRE_REDIS=1 to fail instead", err)
	}
	return bin
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// serverMajorVersion returns the major version of the redis-server binary
// that Start runs, or 0 when it cannot tell (no binary: Start will skip).
func serverMajorVersion() int {
	name := os.Getenv("RELOCK_REDIS_SERVER")
	if name == "" {
		name = "redis-server"
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return 0
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`v=(\d+)\.`).FindSubmatch(out)
	if m == nil {
		return 0
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v
}

// respPipeline sends cmds on one new connection to addr and reads their
// replies, all within timeout: a string for a simple or bulk string, an
// int64 for an integer, []any for an array, nil for a nil reply, and an
// [Error] value (not the error) for an error reply. The error is for the
// network or a malformed reply. (Server.Do sends one command per
// connection and cannot reach a process that is no Server, a sentinel.)
func respPipeline(addr string, timeout time.Duration, cmds ...[]string) ([]any, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	var b []byte
	for _, args := range cmds {
		b = append(b, encode(args)...)
	}
	if _, err := c.Write(b); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	out := make([]any, len(cmds))
	for i := range cmds {
		if out[i], err = readValue(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}
