package tune

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestRegister(t *testing.T) {
	fn := func(context.Context, *Trial) error { return nil }
	if err := Register("reg_test.a", fn); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		fn   Func
		want string
	}{
		{"reg_test.a", fn, `trial function "reg_test.a" is registered already`},
		{"9lives", fn, `trial function name "9lives": want a letter`},
		{"", fn, `trial function name ""`},
		{"reg_test.nil", nil, `trial function "reg_test.nil" is nil`},
	} {
		if err := Register(tc.name, tc.fn); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Register(%q): %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, ok := Lookup("reg_test.a"); !ok {
		t.Error("reg_test.a not found")
	}
	_, err := RunFunc(context.Background(), TrialSpec{Trial: "t0007", Function: "reg_test.b", Metrics: t.TempDir() + "/m.jsonl"})
	if want := `tune: trial t0007: tune: invalid: trial function "reg_test.b" is not registered in this program (tune.Register); registered: reg_test.a`; err == nil || err.Error() != want {
		t.Errorf("RunFunc: %v\nwant %s", err, want)
	}
}

// A config crosses to a worker with its numbers' kinds: floats (even
// integral ones) stay float64, integers arrive as int64.
func TestConfigKinds(t *testing.T) {
	in := Values{"lr": 1e-3, "whole": 2.0, "big": 1e300, "rank": 8, "steps": int64(100), "name": "adamw", "on": true,
		"opt": Values{"momentum": 0.9, "layers": []any{1, 2.5, "x"}}, "none": nil}
	raw, err := encodeConfig(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := Values{"lr": 1e-3, "whole": 2.0, "big": 1e300, "rank": int64(8), "steps": int64(100), "name": "adamw", "on": true,
		"opt": Values{"momentum": 0.9, "layers": []any{int64(1), 2.5, "x"}}, "none": nil}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s\ngot  %#v\nwant %#v", raw, got, want)
	}
}
