package driver_test

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/relock-go/relock/driver"
)

func TestConvertReply(t *testing.T) {
	for _, c := range []struct {
		name string
		in   any
		want any
	}{
		{"nil", nil, nil},
		{"int64", int64(-7), int64(-7)},
		{"int", 42, int64(42)},
		{"uint64", uint64(math.MaxInt64), int64(math.MaxInt64)},
		{"numeric-looking string stays a string", "42", "42"},
		{"empty string", "", ""},
		{"bytes", []byte("x"), "x"},
		{"true", true, int64(1)},
		{"false", false, nil},
		{"double", 1.5, "1.5"},
		{"whole double", 3.0, "3"},
		{"inf", math.Inf(1), "inf"},
		{"nested array with nil", []any{"a", nil, []any{int64(1), []byte("b")}}, []any{"a", nil, []any{int64(1), "b"}}},
		{"strings", []string{"a", ""}, []any{"a", ""}},
		{"map", map[string]any{"b": int64(2), "a": "1"}, []any{"a", "1", "b", int64(2)}},
		{"any map", map[any]any{"k": true}, []any{"k", int64(1)}},
	} {
		got, err := driver.ConvertReply(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: ConvertReply(%#v) = %#v, %v; want %#v", c.name, c.in, got, err, c.want)
		}
	}
}

func TestConvertReplyErrors(t *testing.T) {
	_, err := driver.ConvertReply([]any{"a", errors.New("WRONGTYPE Operation against a key holding the wrong kind of value")})
	if !errors.Is(err, driver.ErrWrongType) {
		t.Errorf("an error reply nested in an array: got %v, want ErrWrongType", err)
	}
	if _, err := driver.ConvertReply(uint64(math.MaxInt64) + 1); err == nil {
		t.Error("an unsigned integer over MaxInt64: no error")
	}
	if _, err := driver.ConvertReply(struct{}{}); err == nil {
		t.Error("a struct: no error")
	}
}
