package valkeyadapter_test

import (
	"testing"

	"github.com/valkey-io/valkey-go"

	valkeyadapter "github.com/relock-go/relock/adapters/valkey"
	"github.com/relock-go/relock/conformance"
	"github.com/relock-go/relock/driver"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/failover"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

// TestConformanceCluster runs the suite on a private Redis Cluster (six
// processes) through a valkey cluster client seeded with every node.
func TestConformanceCluster(t *testing.T) {
	failover.SkipShort(t)
	c := testredis.StartCluster(t)
	h := adaptertest.ClusterHarness(c, func(t *testing.T) driver.Conn {
		return valkeyadapter.New(newClient(t, c.Addrs()[0], func(o *valkey.ClientOption) {
			o.InitAddress, o.DisableCache = c.Addrs(), true
		}))
	})
	t.Run("Hooks", func(t *testing.T) { adaptertest.CheckClusterHooks(t, c, h, "valkey") })
	t.Run("Open URL", func(t *testing.T) { adaptertest.CheckOpenURL(t, valkeyadapter.Driver{}, adaptertest.ClusterURL(c)) })
	conformance.Run(t, h)
}
