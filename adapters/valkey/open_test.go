package valkeyadapter_test

import (
	"testing"

	valkeyadapter "github.com/relock-go/relock/adapters/valkey"
	"github.com/relock-go/relock/internal/testkit/adaptertest"
	"github.com/relock-go/relock/internal/testkit/testredis"
)

func TestOpenRules(t *testing.T) {
	adaptertest.CheckOpen(t, valkeyadapter.Driver{},
		"redis://127.0.0.1:6379?master_name=a&master_set=b",
		"redis://127.0.0.1:6379?pool_size=-1",
		"valkey://user:s3cret@127.0.0.1:6379/notadb",
		"memcached://127.0.0.1:11211",
	)
}

func TestOpenVocabulary(t *testing.T) { adaptertest.CheckOpenVocabulary(t, valkeyadapter.Driver{}) }

// TestOpenValkeyScheme: valkey:// is redis://.
func TestOpenValkeyScheme(t *testing.T) {
	adaptertest.CheckOpenURL(t, valkeyadapter.Driver{}, "valkey://"+testredis.Addr(t)+"/0?client_name=relock-valkey")
}
