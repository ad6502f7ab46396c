package redigo_test

import (
	"testing"

	"github.com/relock-go/relock/adapters/redigo"

	"github.com/relock-go/relock/internal/testkit/adaptertest"
)

// TestOpenRules checks the rules Open follows on every driver.
func TestOpenRules(t *testing.T) {
	adaptertest.CheckOpen(t, redigo.Driver{}, "redis://127.0.0.1?addr=127.0.0.1:6380", "redis://127.0.0.1?master_name=m",
		"redis://127.0.0.1?pool_size=1&max_active=2", "redis://127.0.0.1?max_idle=-1", "redis://user:s3cret@127.0.0.1?idle_timeout=s3cret")
}

// TestOpenVocabulary checks the query options the three adapters share.
func TestOpenVocabulary(t *testing.T) {
	adaptertest.CheckOpenVocabulary(t, redigo.Driver{})
}
