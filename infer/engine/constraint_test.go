package engine_test

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/infer/engine"
)

// only allows one token id, whatever came before.
type only struct {
	mask  []bool
	calls *int
}

func (o only) Allowed(output []int32) []bool {
	*o.calls++
	return o.mask
}

func TestConstraintMasksDraws(t *testing.T) {
	e, err := engine.New(engine.NewFakeRunner(64), nil, engine.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	}()
	for _, temp := range []float64{0, 1} {
		calls := 0
		mask := make([]bool, 64)
		mask[7] = true
		seed := int64(3)
		comps, err := e.Generate(context.Background(), []engine.Request{{
			PromptIDs: []int32{1, 2, 3},
			Params:    engine.SamplingParams{N: 2, MaxTokens: 6, IgnoreEOS: true, Temperature: temp, Seed: &seed},
			Constrain: func(int) engine.Constraint { return only{mask, &calls} },
		}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range comps {
			for i, id := range c.TokenIDs {
				if id != 7 {
					t.Errorf("temperature %g: completion %d token %d is %d, want 7 (the only allowed)", temp, c.Index, i, id)
				}
			}
		}
		if calls != 12 {
			t.Errorf("temperature %g: Allowed called %d times, want 12 (2 completions × 6 draws)", temp, calls)
		}
	}
	g := e.Gauges()
	if g.FreeBlocks != g.NumBlocks || g.Running != 0 || g.Waiting != 0 {
		t.Errorf("gauges after the requests: %+v, want every block free and nothing running or waiting", g)
	}
}
