package infer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/infer/engine"
)

// The stage's tests share these with infer/engine's (each package's tests
// build alone).

func fixtureDir(name string) string { return filepath.Join("model", "testdata", "fixtures", name) }

// newTestEngine starts an engine on a FakeRunner, closed when the test ends.
func newTestEngine(t testing.TB, cfg engine.Config, maxPositions int) (*engine.Engine, *engine.FakeRunner) {
	t.Helper()
	f := engine.NewFakeRunner(maxPositions)
	e, err := engine.New(f, engine.FakeTokenizer(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e, f
}

// smallConfig is a cache small enough that the stage's tests share blocks.
func smallConfig() engine.Config {
	c := engine.DefaultConfig()
	c.BlockSize = 4
	c.NumBlocks = 256
	c.MaxNumSeqs = 8
	c.MaxNumBatchedTokens = 64
	return c
}

type greedyFixture struct {
	Prompt []int32 `json:"prompt"`
	Tokens []int32 `json:"tokens"`
}

// readGreedy reads the greedy continuations transformers computed for a
// fixture model.
func readGreedy(t testing.TB, name string) []greedyFixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir(name), "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		F32 struct {
			Greedy []greedyFixture `json:"greedy"`
		} `json:"f32"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	if len(e.F32.Greedy) == 0 {
		t.Fatalf("%s: no greedy cases", name)
	}
	return e.F32.Greedy
}
