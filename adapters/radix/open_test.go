package radixadapter_test

import (
	"testing"

	radixadapter "github.com/relock-go/relock/adapters/radix"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
)

// TestOpenRules checks the rules Open follows on every driver.
func TestOpenRules(t *testing.T) {
	adaptertest.CheckOpen(t, radixadapter.Driver{}, "unix://", "redis://127.0.0.1:6379?pool_size=-1",
		"redis://user:s3cret@127.0.0.1/1?db=2", "redis://127.0.0.1?addr=")
}

// TestOpenVocabulary checks the query options the adapters share.
func TestOpenVocabulary(t *testing.T) {
	adaptertest.CheckOpenVocabulary(t, radixadapter.Driver{})
}

// TestOutages checks that relock, over this adapter, tells "Redis is
// unavailable" (no answer, refused connection, TLS mismatch, OOM, BUSY,
// READONLY) and "no permission" (NOPERM) from "the lock is taken".
func TestOutages(t *testing.T) { adaptertest.CheckOutages(t, "radix") }

// TestKeyPrefixACL runs the whole API as a Redis user confined to the
// Client's key prefix.
func TestKeyPrefixACL(t *testing.T) { adaptertest.CheckKeyPrefixACL(t, radixadapter.Driver{}) }
