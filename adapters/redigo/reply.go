package redigo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/relock-go/relock/driver"
)

// translate maps an error of redigo to what the driver contract asks: an
// error reply goes through driver.WrapServerError; any other error, when
// ctx is over, shows the context's error through errors.Is.
func translate(ctx context.Context, err error) error {
	if err == nil || errors.As(err, new(redis.Error)) {
		return driver.WrapServerError(err)
	}
	cerr := ctx.Err()
	// redigo sets the read deadline to the context's, so the read can time
	// out an instant before ctx reports DeadlineExceeded.
	if dl, ok := ctx.Deadline(); cerr == nil && ok && !time.Now().Before(dl) && errors.Is(err, os.ErrDeadlineExceeded) {
		cerr = context.DeadlineExceeded
	}
	if cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}

// getReply maps the reply of GET: nil is a missing key.
func getReply(r any, err error) (string, bool, error) {
	if err != nil || r == nil {
		return "", false, err
	}
	if b, ok := r.([]byte); ok {
		return string(b), true, nil
	}
	return "", false, fmt.Errorf("relock/redigo: unexpected reply %T to GET", r)
}
