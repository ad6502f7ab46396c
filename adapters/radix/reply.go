package radixadapter

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mediocregopher/radix/v4/resp"
	"github.com/mediocregopher/radix/v4/resp/resp3"

	"github.com/relock-go/relock/driver"
)

// commands writes one or more commands, each a name and its arguments, in
// one write: a pipeline.
type commands [][]string

func (cs commands) MarshalRESP(w io.Writer, o *resp.Opts) error {
	for _, c := range cs {
		if err := resp3.Marshal(w, c, o); err != nil {
			return err
		}
	}
	return nil
}

// replies reads the replies of a pipeline, one per element of vals. An
// error reply is kept in errs, and the replies after it are read all the
// same, so that the connection stays in step.
type replies struct {
	vals []any
	errs []error
}

func newReplies(n int) *replies { return &replies{vals: make([]any, n), errs: make([]error, n)} }

func (r *replies) UnmarshalRESP(br resp.BufferedReader, o *resp.Opts) error {
	for i := range r.vals {
		err := resp3.Unmarshal(br, &r.vals[i], o)
		if err != nil && !errors.As(err, new(resp.ErrConnUsable)) {
			return err // the connection is broken
		}
		r.errs[i] = err
	}
	return nil
}

// convert maps a reply as radix decodes it into an interface{} to the
// shapes of the driver package. radix gives a nil []byte for a nil bulk
// string and a nil []interface{} for a nil array: both are nil.
func convert(v any) (any, error) {
	switch v := v.(type) {
	case []byte:
		if v == nil {
			return nil, nil
		}
		return string(v), nil
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
	case map[any]struct{}: // a RESP3 set
		out := make(map[any]any, len(v))
		for k := range v {
			out[k] = nil
		}
		return driver.ConvertReply(out)
	}
	return driver.ConvertReply(v)
}

// translate maps err, from radix, to what the driver contract asks: an
// error reply becomes the server's error, matching the driver sentinel its
// text names (radix's "response returned from Conn:" dropped); when ctx is
// over, its error stays visible through errors.Is; radix's "closed" reads
// as a network error.
func translate(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var se resp3.SimpleError
	var be resp3.BlobError
	switch {
	case errors.As(err, &se):
		return driver.WrapServerError(se)
	case errors.As(err, &be):
		return driver.WrapServerError(be)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "closed" {
			return closedConn{err}
		}
	}
	return err
}

// inStep reports whether err, from radix, leaves a connection in step with
// the server: no error, or an error reply.
func inStep(err error) bool {
	return err == nil || errors.As(err, new(resp3.SimpleError)) || errors.As(err, new(resp3.BlobError))
}
