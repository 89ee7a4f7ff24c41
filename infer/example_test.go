package infer_test

import (
	"context"
	"fmt"
	"log"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/infer"
	"github.com/sluicehq/sluice/infer/engine"
)

func Example() {
	// A fake model and its byte-level tokenizer; infer.Load(dir, ...) gives
	// a real model's Runner and Tokenizer the same way.
	e, err := engine.New(engine.NewFakeRunner(256), engine.FakeTokenizer(), engine.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()

	// A batch of requests, completed together.
	comps, err := e.Generate(ctx, []engine.Request{
		{Prompt: "Hello", Params: engine.SamplingParams{MaxTokens: 8, IgnoreEOS: true}},
		{PromptIDs: []int32{104, 105}, Params: engine.SamplingParams{MaxTokens: 4, Temperature: 0.8, Seed: new(int64(7))}},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range comps {
		fmt.Println(c.PromptTokens, c.CompletionTokens, c.FinishReason)
	}

	// One request, streamed.
	ch, err := e.Submit(ctx, engine.Request{Prompt: "Hi", Params: engine.SamplingParams{MaxTokens: 5, IgnoreEOS: true}})
	if err != nil {
		log.Fatal(err)
	}
	n := 0
	for o := range ch {
		n += len(o.TokenIDs)
		if o.Finished {
			fmt.Println(n, o.FinishReason)
		}
	}
	// Output:
	// 6 8 length
	// 2 4 length
	// 5 length
}

func ExampleGenerate() {
	e, err := engine.New(engine.NewFakeRunner(256), engine.FakeTokenizer(), engine.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	type row struct {
		Prompt string `sluice:"prompt"`
	}
	// With Model instead of Engine, the stage loads the model once per
	// process and shares it between batches and tasks.
	stage := infer.Generate(infer.StageConfig{Engine: e, Params: engine.SamplingParams{MaxTokens: 3, IgnoreEOS: true}})
	ds := dataset.FromItems([]row{{"a"}, {"bb"}, {"ccc"}}).MapBatches(stage, dataset.MapOptions{Name: "generate"})
	for rec, err := range ds.Iter(context.Background()) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Schema().Field(1).Name, rec.Column(2), rec.Column(3), rec.Column(4))
	}
	// Output:
	// completion [2 3 4] [3 3 3] ["length" "length" "length"]
}
