package infer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/executor/local"
	"github.com/sluicehq/sluice/infer/engine"
)

type promptRow struct {
	ID     int64  `sluice:"id"`
	Prompt string `sluice:"prompt"`
}

// stageRow is one output row, read back by column name.
type stageRow struct {
	id               int64
	completion       *string
	promptTokens     *int64
	completionTokens *int64
	finish, err      *string
	tokenIDs         []int32
}

func collect(t *testing.T, ds *dataset.Dataset) map[int64]stageRow {
	t.Helper()
	out := map[int64]stageRow{}
	for rec, err := range ds.Iter(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		col := func(name string) arrow.Array {
			idx := rec.Schema().FieldIndices(name)
			if len(idx) == 0 {
				return nil
			}
			return rec.Column(idx[0])
		}
		str := func(a arrow.Array, i int) *string {
			if a == nil || a.IsNull(i) {
				return nil
			}
			s := a.(*array.String).Value(i)
			return &s
		}
		i64 := func(a arrow.Array, i int) *int64 {
			if a.IsNull(i) {
				return nil
			}
			v := a.(*array.Int64).Value(i)
			return &v
		}
		for i := range int(rec.NumRows()) {
			r := stageRow{
				id:               col("id").(*array.Int64).Value(i),
				completion:       str(col("completion"), i),
				promptTokens:     i64(col("prompt_tokens"), i),
				completionTokens: i64(col("completion_tokens"), i),
				finish:           str(col("finish_reason"), i),
				err:              str(col("error"), i),
			}
			if ids := col("token_ids"); ids != nil && !ids.IsNull(i) {
				l := ids.(*array.List)
				s, e := l.ValueOffsets(i)
				r.tokenIDs = slices.Clone(l.ListValues().(*array.Int32).Int32Values()[s:e])
			}
			out[r.id] = r
		}
	}
	return out
}

func localConfig() local.Config {
	c := local.DefaultConfig()
	c.Concurrency = 4
	return c
}

// TestStage runs the stage over a small dataset with a fake engine: rows
// of several concurrent batches share the engine, and each row's
// completion is the fake model's.
func TestStage(t *testing.T) {
	e, f := newTestEngine(t, smallConfig(), 256)
	var items []promptRow
	for i := range 30 {
		items = append(items, promptRow{ID: int64(i), Prompt: strings.Repeat(fmt.Sprintf("row %d ", i), 1+i%5)})
	}
	items[7].Prompt = ""
	cfg := StageConfig{Engine: e, Params: engine.SamplingParams{MaxTokens: 8, IgnoreEOS: true}, OnError: OnErrorColumn, TokenIDs: "token_ids"}
	ds := dataset.FromItems(items).Configure(localConfig()).
		MapBatches(Generate(cfg), dataset.MapOptions{Name: "generate", BatchRows: 4, Concurrency: 4})
	rows := collect(t, ds)
	if len(rows) != len(items) {
		t.Fatalf("%d rows out of %d", len(rows), len(items))
	}
	tok := engine.FakeTokenizer()
	for _, it := range items {
		r := rows[it.ID]
		if it.Prompt == "" {
			if r.err == nil || *r.err != "infer: invalid prompt: the prompt is empty" || r.completion != nil || r.finish != nil || r.tokenIDs != nil {
				t.Errorf("row %d: %+v", it.ID, r)
			}
			continue
		}
		prompt := tok.Encode(it.Prompt, true)
		want := f.Generate(prompt, 8, true)
		if r.err != nil || r.completion == nil || *r.completion != tok.Decode(want, true) || !slices.Equal(r.tokenIDs, want) ||
			*r.promptTokens != int64(len(prompt)) || *r.completionTokens != 8 || *r.finish != engine.FinishLength {
			t.Errorf("row %d: %+v", it.ID, r)
		}
	}

	// Failing the job names the row.
	cfg.OnError = ""
	_, err := dataset.FromItems(items[4:9]).MapBatches(Generate(cfg), dataset.MapOptions{}).Count(context.Background())
	if err == nil || !strings.Contains(err.Error(), `row 3 of the batch (prompt ""): infer: invalid prompt: the prompt is empty`) {
		t.Errorf("error %v", err)
	}
}

func TestStageValidate(t *testing.T) {
	cases := []struct {
		cfg  StageConfig
		want string
	}{
		{StageConfig{}, "infer: invalid config: stage: model is required"},
		{StageConfig{Model: "m", OnError: "skip"}, `infer: invalid config: stage: on_error must be "fail" or "column", got "skip"`},
		{StageConfig{Model: "m", Params: engine.SamplingParams{N: 2}}, "infer: invalid config: stage: params.n must be 1 (one completion per row), got 2"},
		{StageConfig{Model: "m", Params: engine.SamplingParams{TopP: 3}}, "stage: params: infer: invalid sampling params: top_p must be in (0, 1], got 3"},
		{StageConfig{Model: "m", Output: "finish_reason"}, `infer: invalid config: stage: output "finish_reason" collides with another output column`},
		{StageConfig{Model: "m", OnError: "column", ErrorColumn: "completion"}, `infer: invalid config: stage: error_column "completion" collides with another output column`},
		{StageConfig{Model: "m", EngineConfig: engine.Config{BlockSize: 16}}, "stage: engine: infer: invalid config: CacheBytes must be positive when NumBlocks is 0, got 0"},
		{StageConfig{Model: "m", DType: "f64"}, `infer: invalid config: stage: gpu: dtype "f64": want auto, f32, bf16 or f16`},
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec, err := dataset.ItemsRecord(mem, []promptRow{{ID: 1, Prompt: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	for _, c := range cases {
		if err := c.cfg.Validate(); err == nil || err.Error() != c.want {
			t.Errorf("%+v: got %v, want %q", c.cfg, err, c.want)
		}
		// The stage function reports it on its first batch.
		if _, err := Generate(c.cfg)(context.Background(), mem, rec); err == nil || err.Error() != c.want {
			t.Errorf("stage: %v", err)
		}
	}
	// The output schema comes from an empty batch without loading a model.
	reg := &Registry{Load: func(string, LoadOptions) (*Loaded, error) { return nil, errors.New("loaded") }}
	empty := rec.NewSlice(0, 0)
	defer empty.Release()
	out, err := Generate(StageConfig{Model: "m", Registry: reg, OnError: OnErrorColumn})(context.Background(), mem, empty)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if got := fmt.Sprint(fieldNames(out.Schema())); got != "[id prompt completion prompt_tokens completion_tokens finish_reason error]" {
		t.Errorf("schema %s", got)
	}
	if _, err := Generate(StageConfig{Model: "m", Registry: reg, Prompt: "id"})(context.Background(), mem, rec); err == nil ||
		err.Error() != `infer: stage: prompt column "id" is int64; want a string or a list of integer token ids` {
		t.Errorf("prompt column of ints: %v", err)
	}
	if _, err := Generate(StageConfig{Model: "m", Registry: reg})(context.Background(), mem, rec); err == nil ||
		err.Error() != "infer: stage: loading m: loaded" {
		t.Errorf("load failure: %v", err)
	}
}

// TestRegistryLoadsOnce: concurrent batches of stages with the same model
// and options share one engine, loaded once.
func TestRegistryLoadsOnce(t *testing.T) {
	var loads atomic.Int32
	f := engine.NewFakeRunner(256)
	reg := &Registry{Load: func(dir string, opts LoadOptions) (*Loaded, error) {
		loads.Add(1)
		return &Loaded{Runner: f, Tokenizer: engine.FakeTokenizer()}, nil
	}}
	defer func() {
		if err := reg.Close(); err != nil {
			t.Error(err)
		}
	}()
	cfg := StageConfig{Model: "fake", Registry: reg, EngineConfig: smallConfig(), Params: engine.SamplingParams{MaxTokens: 4}}
	var wg sync.WaitGroup
	engines := make([]*engine.Engine, 8)
	for i := range engines {
		wg.Go(func() {
			e, err := reg.Engine(cfg)
			if err != nil {
				t.Error(err)
			}
			engines[i] = e
		})
	}
	wg.Wait()
	if loads.Load() != 1 || engines[0] == nil || slices.ContainsFunc(engines, func(e *engine.Engine) bool { return e != engines[0] }) {
		t.Errorf("%d loads, engines %v", loads.Load(), engines)
	}
	other := cfg
	other.EngineConfig.MaxNumSeqs = 4
	if e, err := reg.Engine(other); err != nil || e == engines[0] || loads.Load() != 2 {
		t.Errorf("another config: %v, %d loads", err, loads.Load())
	}
	rows := collect(t, dataset.FromItems([]promptRow{{1, "a"}, {2, "b"}}).MapBatches(Generate(cfg), dataset.MapOptions{BatchRows: 1}))
	if len(rows) != 2 || loads.Load() != 2 {
		t.Errorf("%d rows, %d loads", len(rows), loads.Load())
	}
}

// TestStageFixture runs the stage over token-id prompts with a real
// fixture model, loaded by the registry, and checks transformers'
// greedy continuations.
func TestStageFixture(t *testing.T) {
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
	ecfg.BlockSize, ecfg.NumBlocks, ecfg.MaxNumSeqs, ecfg.MaxNumBatchedTokens = 4, 40, 8, 16
	cfg := StageConfig{Model: fixtureDir("qwen3"), Device: "cpu", Registry: reg, EngineConfig: ecfg, Prompt: "ids", TokenIDs: "token_ids",
		Params: engine.SamplingParams{MaxTokens: 32, IgnoreEOS: true}}
	rows := collect(t, dataset.FromRecords(rec).Configure(localConfig()).MapBatches(Generate(cfg), dataset.MapOptions{BatchRows: 1, Concurrency: 4}))
	for i, c := range cases {
		r := rows[int64(i)]
		if !slices.Equal(r.tokenIDs, c.Tokens) || *r.completionTokens != 32 || *r.promptTokens != int64(len(c.Prompt)) {
			t.Errorf("row %d: %+v, want %v", i, r, c.Tokens)
		}
	}
}
