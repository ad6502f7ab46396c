package redigo_test

import (
	"testing"

	"github.com/relock-go/relock/adapters/redigo"

	"github.com/relock-go/relock/internal/testkit/adaptertest"
)

// TestOpenRules checks the rules Open follows on every driver.
func TestOpenRules(t *testing.T) {
	adaptertest.CheckOpen(t, redigo.Driver{})
}

// TestOpenVocabulary checks the query options the three adapters share.
func TestOpenVocabulary(t *testing.T) {
	adaptertest.CheckOpenVocabulary(t, redigo.Driver{})
}
