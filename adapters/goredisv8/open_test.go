package goredisv8_test

import (
	"testing"

	"github.com/relock-go/relock/adapters/goredisv8"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
)

// TestOpenRules checks the rules Open follows on every driver.
func TestOpenRules(t *testing.T) {
	adaptertest.CheckOpen(t, goredisv8.Driver{}, "redis://127.0.0.1:6379/1?addr=127.0.0.1:6380")
}

// TestOpenVocabulary checks the query options the adapters share.
func TestOpenVocabulary(t *testing.T) { adaptertest.CheckOpenVocabulary(t, goredisv8.Driver{}) }

// TestOutages checks that relock tells "Redis is unavailable" and "no
// permission" from "the lock is taken" over this adapter.
func TestOutages(t *testing.T) { adaptertest.CheckOutages(t, "goredisv8") }

// TestKeyPrefixACL runs the whole API as a user confined to the Client's
// key prefix.
func TestKeyPrefixACL(t *testing.T) { adaptertest.CheckKeyPrefixACL(t, goredisv8.Driver{}) }
