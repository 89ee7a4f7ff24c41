package train_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/train"
)

// Fine-tune a fixture model for two steps on rows of token ids, with a
// callback per step, and write it as a Hugging Face model directory.
func Example() {
	dir, _ := os.MkdirTemp("", "train-example")
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "rows.jsonl")
	os.WriteFile(data, []byte(`{"input_ids":[1,5,9,12,40,7]}
{"input_ids":[3,3,8,100,2]}
`), 0o644)

	cfg := train.DefaultConfig()
	cfg.Model = "../infer/model/testdata/fixtures/llama3"
	cfg.Out = filepath.Join(dir, "out")
	cfg.Steps, cfg.LR, cfg.BatchSize, cfg.MaxSeqLen = 2, 1e-3, 2, 16
	cfg.OnStep = func(m train.Metrics) error {
		fmt.Printf("step %d: %d tokens, loss > 0: %v\n", m.Step, m.Tokens, m.Loss > 0)
		return nil
	}
	if err := train.Run(context.Background(), cfg, dataset.ReadJSONL(data)); err != nil {
		fmt.Println(err)
		return
	}
	_, err := os.Stat(filepath.Join(cfg.Out, "model.safetensors"))
	fmt.Println("model written:", err == nil)
	// Output:
	// step 1: 11 tokens, loss > 0: true
	// step 2: 11 tokens, loss > 0: true
	// model written: true
}
