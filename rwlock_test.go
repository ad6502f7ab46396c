package relock

import (
	"strings"
	"testing"
)

// TestRWCompanions: a read-write lock's companions (readers, their
// metadata, its queue) share the lock key's slot and prefix, differ from
// each other and from the mutex's companions, and keep the name.
func TestRWCompanions(t *testing.T) {
	for _, c := range []struct{ prefix, name string }{
		{"", "job"}, {"app:", "job"}, {"app:", "{user:7}:doc"}, {"{tenant}:", "x"}, {"", "r:q:job"},
	} {
		key := c.prefix + c.name
		k := keysIn(key, len(c.prefix))
		keys := rwKeys(k)
		seen := map[string]bool{k.queue: true, k.channel: true, k.waiter + "t": true}
		for i, rk := range keys {
			if slot(rk) != slot(key) {
				t.Errorf("%q: key %d %q in slot %d, not the lock key's %d", key, i, rk, slot(rk), slot(key))
			}
			if !strings.HasPrefix(rk, c.prefix) {
				t.Errorf("%q: key %q lacks the prefix", key, rk)
			}
			if i == 0 || i == 4 {
				continue // the lock key and the fencing counter: the mutex's own
			}
			if seen[rk] {
				t.Errorf("%q: companion %q named twice", key, rk)
			}
			seen[rk] = true
			if !strings.HasSuffix(rk, ":"+c.name) {
				t.Errorf("%q: companion %q does not end with the name", key, rk)
			}
		}
		if keys[0] != key || keys[4] != k.fence {
			t.Errorf("%q: keys %v", key, keys)
		}
	}
}
