package tune

import (
	"os"
	"testing"
)

// Experiment files never panic the parser, and what parses gives a space
// that samples.
func FuzzParseFile(f *testing.F) {
	if b, err := os.ReadFile("../examples/tune/lora-search.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("tune: {metric: m, space: {x: {quniform: [0, 1, 0.3]}, c: {choice: [{a: {randint: [1, 3]}}, 2]}}}\ntrain: {steps: 1}\n"))
	f.Add([]byte("tune: {metric: m, scheduler: pbt, space: {x: {grid: [1, 2]}}}\ntrain: {a: &x 1, b: *x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ef, err := ParseFile("f.yaml", data)
		if err != nil {
			return
		}
		cfg := ef.Config()
		s := Setup{Space: cfg.Space, Mode: cfg.Mode, NumSamples: 2}
		for _, searcher := range []Searcher{Random(), GridSearch()} {
			if searcher.Init(s) == nil {
				searcher.Suggest(0)
			}
		}
	})
}
