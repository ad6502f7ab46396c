package goredis_test

import (
	"testing"

	"github.com/relock-go/relock/internal/testkit/adaptertest"
)

// TestOutages checks that relock, over this adapter, tells "Redis is
// unavailable" (no answer, refused connection, TLS mismatch, OOM, BUSY,
// READONLY) and "no permission" (NOPERM) from "the lock is taken".
func TestOutages(t *testing.T) { adaptertest.CheckOutages(t, "goredis") }
