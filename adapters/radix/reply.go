package radixadapter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/mediocregopher/radix/v4/resp"
	"github.com/mediocregopher/radix/v4/resp/resp3"

	"github.com/relock-go/relock/driver"
)

// commands writes commands (each a name and its arguments) in one write.
type commands [][]string

func (cs commands) MarshalRESP(w io.Writer, o *resp.Opts) error {
	for _, c := range cs {
		if err := resp3.Marshal(w, c, o); err != nil {
			return err
		}
	}
	return nil
}

// replies reads one reply per element of vals, keeping an error reply in
// errs and reading on, so that the connection stays in step.
type replies struct {
	vals []any
	errs []error
}

func newReplies(n int) *replies { return &replies{make([]any, n), make([]error, n)} }

func (r *replies) UnmarshalRESP(br resp.BufferedReader, o *resp.Opts) error {
	for i := range r.vals {
		if r.errs[i] = resp3.Unmarshal(br, &r.vals[i], o); !errors.As(r.errs[i], new(resp.ErrConnUsable)) && r.errs[i] != nil {
			return r.errs[i] // the connection is broken
		}
	}
	return nil
}

// convert maps a reply that radix decoded into an interface{} to the
// driver's shapes; radix gives a nil []byte for a nil bulk string and a nil
// []interface{} for a nil array.
func convert(v any) (any, error) {
	switch v := v.(type) {
	case []byte:
		if v == nil {
			return nil, nil
		}
	case []any:
		if v == nil {
			return nil, nil
		}
		out := make([]any, len(v))
		for i, e := range v {
			c, err := convert(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	}
	return driver.ConvertReply(v)
}

// translate maps an error of radix: an error reply to the server's error
// (matching the driver's sentinels), a context's error kept visible, and
// radix's "closed" (a closed connection or pool) to a network error.
func translate(ctx context.Context, err error) error {
	var se resp3.SimpleError
	var be resp3.BlobError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return driver.WrapServerError(se)
	case errors.As(err, &be):
		return driver.WrapServerError(be)
	case ctx.Err() != nil && !errors.Is(err, ctx.Err()):
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "closed" {
			return fmt.Errorf("relock/radix: %w (%w)", err, net.ErrClosed)
		}
	}
	return err
}

// inStep reports whether err leaves a connection in step with the server:
// no error, or an error reply.
func inStep(err error) bool {
	return err == nil || errors.As(err, new(resp3.SimpleError)) || errors.As(err, new(resp3.BlobError))
}
