package tune

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSpaceErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"lr: {uniform: [1, 1]}", "s.yaml:1:15: space.lr.uniform: empty range [1, 1): lo must be below hi"},
		{"lr: {loguniform: [0, 1]}", "s.yaml:1:18: space.lr.loguniform: lo must be above 0 for a log scale, got 0"},
		{"lr: {uniform: [1]}", "s.yaml:1:15: space.lr.uniform: want [lo, hi] (2 numbers), got a list of 1"},
		{"lr: {uniform: [a, 2]}", `s.yaml:1:16: space.lr.uniform[0]: want a number, got "a"`},
		{"n: {randint: [3, 3]}", "s.yaml:1:14: space.n.randint: empty range [3, 3): hi is exclusive and must be above lo"},
		{"n: {randint: [1.5, 3]}", "s.yaml:1:15: space.n.randint[0]: want an integer, got 1.5"},
		{"q: {quniform: [0, 1, 0]}", "s.yaml:1:15: space.q.quniform: q must be above 0, got 0"},
		{"c: {choice: []}", "s.yaml:1:13: space.c.choice: needs at least one value"},
		{"c: {choice: 3}", "s.yaml:1:13: space.c.choice: want a list of values, got 3"},
		{"c: {uniform: [0, 1], choice: [1]}", "s.yaml:1:4: space.c: a range takes exactly one key (one of uniform, loguniform, quniform, randint, choice, grid), got 2 keys"},
		{"x:\n  choice:\n    - {m: {uniform: [2, 1]}}", "s.yaml:3:21: space.x.choice[0].m.uniform: empty range [2, 1): lo must be below hi"},
		{"[1, 2]", "s.yaml:1:1: space: want a mapping of parameter names to ranges"},
		{"{}", "s.yaml:1:1: space: the space has no parameters"},
	} {
		_, err := ParseSpace("s.yaml", []byte(tc.src))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q:\n got %v\nwant %s", tc.src, err, tc.want)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v is not ErrInvalid", tc.src, err)
		}
	}
}

func TestSpaceValidate(t *testing.T) {
	s := Space{"a": Space{"b": Choice{[]any{Space{"c": RandInt{5, 1}}}}}}
	err := s.Validate()
	if err == nil || !strings.Contains(err.Error(), "a.b[0].c: randint: empty range [5, 1)") {
		t.Fatalf("got %v", err)
	}
	if err := (Space{"lr": LogUniform{1e-4, 1e-2}}).Validate(); err != nil {
		t.Fatal(err)
	}
}

// Every sampled value stays inside its domain.
func TestSampleInRange(t *testing.T) {
	s := Space{"u": Uniform{-1, 1}, "l": LogUniform{1e-3, 1}, "q": QUniform{0.1, 0.95, 0.2}, "i": RandInt{3, 5}}
	for n := range 500 {
		c := Random()
		c.Init(Setup{Space: s, NumSamples: 1000, Seed: 9})
		smp, _ := c.Suggest(n)
		u, l, q, i := smp.Config["u"].(float64), smp.Config["l"].(float64), smp.Config["q"].(float64), smp.Config["i"].(int64)
		if u < -1 || u >= 1 || l < 1e-3 || l >= 1 || i < 3 || i >= 5 {
			t.Fatalf("out of range: %v", smp.Config)
		}
		if q != 0.2 && q != 0.4 && q != 0.6 && q != 0.8 {
			t.Fatalf("quniform [0.1, 0.95] step 0.2 gave %v", q)
		}
	}
}
