package relock

import "testing"

func TestKeysFor(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want lockKeys
	}{
		{"job", lockKeys{"job", "{job}:q", "{job}:fence", "{job}:w:", "{job}:ch"}},
		{"{user:1}:lock", lockKeys{"{user:1}:lock", "{user:1}:lock:q", "{user:1}:lock:fence", "{user:1}:lock:w:", "{user:1}:lock:ch"}},
		{"a{b", lockKeys{"a{b", "{a{b}:q", "{a{b}:fence", "{a{b}:w:", "{a{b}:ch"}},
		{"a}b", lockKeys{lock: "a}b"}},
		{"{}x", lockKeys{lock: "{}x"}},
	} {
		if got := keysFor(tc.key); got != tc.want {
			t.Errorf("keysFor(%q) = %+v, want %+v", tc.key, got, tc.want)
		}
	}
}
