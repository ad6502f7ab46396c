package valkeyadapter

import (
	"github.com/valkey-io/valkey-go"

	"github.com/relock-go/relock/driver"
)

// result maps a reply with driver.ConvertReply (valkey gives RESP3 doubles
// as float64, booleans as bool, maps as map[string]any); an error reply,
// at any depth, is the error.
func result(r valkey.ValkeyResult) (any, error) {
	v, err := r.ToAny()
	switch {
	case valkey.IsValkeyNil(err):
		return nil, nil
	case err != nil:
		return nil, wrap(err)
	}
	return driver.ConvertReply(v)
}

// wrap makes an error reply match the driver's sentinels; other errors
// (network, context) pass through.
func wrap(err error) error {
	if _, ok := valkey.IsValkeyErr(err); ok {
		return driver.WrapServerError(err)
	}
	return err
}
