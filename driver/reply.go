package driver

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// ConvertReply maps v, the Go value a client library returned for a reply
// of Eval, EvalSha or one command of Tx.Exec, to the shapes of the package
// doc, so that every driver hands relock the same values whatever its
// client returns natively:
//
//   - nil stays nil;
//   - int64 stays; int, int32, int16, int8 and unsigned integers that fit
//     become int64 (an unsigned integer over math.MaxInt64 is an error);
//   - string stays; []byte becomes a string (a nil []byte too: a client
//     that returns nil for a nil bulk string should map it before);
//   - a RESP3 boolean: true becomes int64(1) and false nil, as a script's
//     true and false read under RESP2;
//   - a RESP3 double (float64, float32) becomes a bulk string, as RESP2
//     sends a double: the shortest decimal text that reads back as the
//     same float64 (1.5 gives "1.5", 0.1 gives "0.1"; Redis 7 over RESP2
//     sends more digits, "0.10000000000000001"), and infinities "inf" and
//     "-inf";
//   - a slice ([]any, []string, []int64, [][]byte) becomes []any, each
//     element converted;
//   - a map (map[string]any, map[any]any, map[string]string) becomes the
//     flat []any of key, value pairs that RESP2 sends for it, ordered by
//     key, since a Go map keeps no order;
//   - an error value (an error reply nested in an array) is returned as
//     the error, passed through WrapServerError.
//
// Any other type is an error naming it. A client type of its own (a
// message struct) is the driver's to unwrap before calling ConvertReply.
func ConvertReply(v any) (any, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case int64:
		return v, nil
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	case int:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case int16:
		return int64(v), nil
	case int8:
		return int64(v), nil
	case uint:
		return unsigned(uint64(v))
	case uint64:
		return unsigned(v)
	case uint32:
		return int64(v), nil
	case uint16:
		return int64(v), nil
	case uint8:
		return int64(v), nil
	case bool:
		if v {
			return int64(1), nil
		}
		return nil, nil
	case float64:
		return formatDouble(v), nil
	case float32:
		return formatDouble(float64(v)), nil
	case error:
		return nil, WrapServerError(v)
	case []any:
		return convertSlice(v)
	case []string:
		return convertSlice(v)
	case []int64:
		return convertSlice(v)
	case [][]byte:
		return convertSlice(v)
	case map[string]any:
		return convertMap(v)
	case map[string]string:
		return convertMap(v)
	case map[any]any:
		pairs := make([]pair, 0, len(v))
		for k, e := range v {
			ck, err := ConvertReply(k)
			if err != nil {
				return nil, err
			}
			pairs = append(pairs, pair{key: fmt.Sprint(ck), k: ck, v: e})
		}
		return flatten(pairs)
	default:
		return nil, fmt.Errorf("relock/driver: a reply of type %T has no RESP shape", v)
	}
}

func unsigned(v uint64) (any, error) {
	if v > math.MaxInt64 {
		return nil, fmt.Errorf("relock/driver: integer reply %d overflows int64", v)
	}
	return int64(v), nil
}

func formatDouble(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func convertSlice[E any](s []E) (any, error) {
	out := make([]any, len(s))
	for i, e := range s {
		c, err := ConvertReply(e)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

type pair struct {
	key  string // the key's text, for ordering
	k, v any
}

func convertMap[V any](m map[string]V) (any, error) {
	pairs := make([]pair, 0, len(m))
	for k, v := range m {
		pairs = append(pairs, pair{key: k, k: k, v: v})
	}
	return flatten(pairs)
}

func flatten(pairs []pair) (any, error) {
	slices.SortFunc(pairs, func(a, b pair) int { return cmp.Compare(a.key, b.key) })
	out := make([]any, 0, 2*len(pairs))
	for _, p := range pairs {
		v, err := ConvertReply(p.v)
		if err != nil {
			return nil, err
		}
		out = append(out, p.k, v)
	}
	return out, nil
}
