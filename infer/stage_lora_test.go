package infer

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/infer/engine"
	"github.com/sluicehq/sluice/infer/model/loratest"
)

// TestStageLoRA: a stage with lora set completes its rows with the
// adapter (the tokens of the merged model's stage), a base stage over the
// same registry shares the engine and keeps the base model's tokens.
func TestStageLoRA(t *testing.T) {
	root := t.TempDir()
	ad, merged := filepath.Join(root, "ad"), filepath.Join(root, "merged")
	if err := loratest.Write(fixtureDir("qwen3"), ad, loratest.Spec{Rank: 8, Alpha: 16, Targets: []string{"q_proj", "o_proj", "down_proj"}, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	if err := loratest.Merge(fixtureDir("qwen3"), ad, merged); err != nil {
		t.Fatal(err)
	}
	cases := readGreedy(t, "qwen3")
	mem := memory.NewGoAllocator()
	b := array.NewRecordBuilder(mem, arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "ids", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64)},
	}, nil))
	defer b.Release()
	for i, c := range cases {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		lb := b.Field(1).(*array.ListBuilder)
		lb.Append(true)
		for _, id := range c.Prompt {
			lb.ValueBuilder().(*array.Int64Builder).Append(int64(id))
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	reg := &Registry{}
	defer func() {
		if err := reg.Close(); err != nil {
			t.Error(err)
		}
	}()
	ecfg := engine.DefaultConfig()
	ecfg.BlockSize, ecfg.NumBlocks, ecfg.MaxNumSeqs, ecfg.MaxNumBatchedTokens = 4, 80, 8, 16
	run := func(model, lora string) map[int64]stageRow {
		cfg := StageConfig{Model: model, LoRA: lora, Device: "cpu", Registry: reg, EngineConfig: ecfg, Prompt: "ids", TokenIDs: "token_ids",
			Params: engine.SamplingParams{MaxTokens: 12, IgnoreEOS: true}}
		return collect(t, dataset.FromRecords(rec).Configure(localConfig()).MapBatches(Generate(cfg), dataset.MapOptions{BatchRows: 1, Concurrency: 4}))
	}
	withLoRA, want, base := run(fixtureDir("qwen3"), ad), run(merged, ""), run(fixtureDir("qwen3"), "")
	differ := 0
	for i, c := range cases {
		id := int64(i)
		if !slices.Equal(withLoRA[id].tokenIDs, want[id].tokenIDs) {
			t.Errorf("row %d: lora stage %v, merged model %v", i, withLoRA[id].tokenIDs, want[id].tokenIDs)
		}
		if !slices.Equal(base[id].tokenIDs, c.Tokens[:12]) {
			t.Errorf("row %d: base stage %v, transformers %v", i, base[id].tokenIDs, c.Tokens[:12])
		}
		if !slices.Equal(withLoRA[id].tokenIDs, base[id].tokenIDs) {
			differ++
		}
	}
	if differ == 0 {
		t.Error("the adapter changes no row's tokens")
	}
	if n := len(reg.engines); n != 2 {
		t.Errorf("%d engines, want 2 (the base model's, shared by the lora stage, and the merged model's)", n)
	}
}
