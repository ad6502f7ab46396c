package rueidisadapter_test

import (
	"testing"

	rueidisadapter "github.com/relock-go/relock/adapters/rueidis"

	"github.com/relock-go/relock/internal/testkit/adaptertest"
)

// TestOpenRules checks the rules Open follows on every driver.
func TestOpenRules(t *testing.T) {
	adaptertest.CheckOpen(t, rueidisadapter.Driver{})
}

// TestOpenVocabulary checks the query options the three adapters share.
func TestOpenVocabulary(t *testing.T) {
	adaptertest.CheckOpenVocabulary(t, rueidisadapter.Driver{})
}
