package redigo_test

import (
	"testing"

	"github.com/relock-go/relock/adapters/redigo"

	"github.com/relock-go/relock/internal/testkit/adaptertest"
)

// TestKeyPrefixACL runs the whole API as a Redis user confined to the
// Client's key prefix (ACL ~PREFIX* &PREFIX*): no key or channel of
// relock's may fall outside it (issue 15.4).
func TestKeyPrefixACL(t *testing.T) { adaptertest.CheckKeyPrefixACL(t, redigo.Driver{}) }
