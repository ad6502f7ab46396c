package valkeyadapter_test

import (
	"testing"

	valkeyadapter "github.com/relock-go/relock/adapters/valkey"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
)

// TestOutages: relock over this adapter tells "Redis is unavailable" and
// "no permission" from "the lock is taken".
func TestOutages(t *testing.T) { adaptertest.CheckOutages(t, "valkey") }

// TestKeyPrefixACL runs the whole API as a user confined to the Client's
// key prefix: no key or channel of relock's may fall outside it.
func TestKeyPrefixACL(t *testing.T) { adaptertest.CheckKeyPrefixACL(t, valkeyadapter.Driver{}) }
