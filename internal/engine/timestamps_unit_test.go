package engine

import (
	"strings"
	"testing"
)

func TestParseTimestamps(t *testing.T) {
	for _, s := range []string{"clamp", "keep"} {
		if got, err := ParseTimestamps(s); err != nil || string(got) != s {
			t.Errorf("ParseTimestamps(%q) = %q, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "Keep", "real", "clamp "} {
		_, err := ParseTimestamps(s)
		if err == nil || !strings.Contains(err.Error(), `"clamp"`) || !strings.Contains(err.Error(), `"keep"`) {
			t.Errorf("ParseTimestamps(%q) = %v, want an error naming the choices", s, err)
		}
	}
	if err := WithTimestamps("sometimes")(&Engine{}); err == nil || !strings.Contains(err.Error(), `"sometimes"`) {
		t.Errorf("WithTimestamps(sometimes) = %v, want an error naming the value", err)
	}
}

// TestTimestampsKey: the default keeps every step key as it was (stores
// made before the option keep their cache); keep gives each key another.
func TestTimestampsKey(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	var clamp, keep Engine
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(WithEpoch(DefaultEpoch)(&clamp))
	must(WithEpoch(DefaultEpoch)(&keep))
	must(WithTimestamps(TimestampsKeep)(&keep))
	if got := (&Engine{}).timestampsKey(key); got != key {
		t.Errorf("default builder: key %s became %s", key, got)
	}
	must(WithTimestamps(TimestampsClamp)(&clamp))
	if got := clamp.timestampsKey(key); got != key {
		t.Errorf("clamp: key %s became %s", key, got)
	}
	kk := keep.timestampsKey(key)
	if kk == key || len(kk) != len(key) || keep.timestampsKey(key) != kk || keep.timestampsKey(key[1:]+"0") == kk {
		t.Errorf("keep: key %s became %s: want another, stable key of the same form, one per key", key, kk)
	}
	if e := clamp.layerEpoch(); e == nil || !e.Equal(DefaultEpoch) {
		t.Errorf("clamp: layer epoch %v, want %v", e, DefaultEpoch)
	}
	if e := keep.layerEpoch(); e != nil {
		t.Errorf("keep: layer epoch %v, want nil (no clamping)", e)
	}
	if len(clamp.timestampsWorkerOptions()) != 0 || len(keep.timestampsWorkerOptions()) != 1 {
		t.Error("worker options: want none for clamp and one for keep")
	}
}
