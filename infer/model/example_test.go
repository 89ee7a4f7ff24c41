package model_test

import (
	"fmt"
	"log"

	"github.com/sluicehq/sluice/gpu"
	_ "github.com/sluicehq/sluice/gpu/cpu" // registers "cpu"
	"github.com/sluicehq/sluice/infer/model"
)

// Greedy decoding of one sequence: a prefill step, then one token a step,
// each step's key and value written to the blocks of its block table.
func Example() {
	dev, err := gpu.Open("cpu")
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	m, err := model.Load("testdata/fixtures/llama3", dev, model.Options{DType: gpu.F32})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	cache, err := m.NewCache(4, 16) // 4 blocks of 16 tokens
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Free()

	tokens := []int32{36, 270, 482, 485, 428, 69, 412, 432}
	seq := model.SeqInput{Tokens: tokens, BlockTable: []int32{2}, WantLogits: true}
	for range 8 {
		logits, err := m.Forward(cache, &model.Batch{Seqs: []model.SeqInput{seq}})
		if err != nil {
			log.Fatal(err)
		}
		next := int32(0)
		for i, v := range logits {
			if v > logits[next] {
				next = int32(i)
			}
		}
		tokens = append(tokens, next)
		seq.StartPos += len(seq.Tokens)
		seq.Tokens = []int32{next}
	}
	fmt.Println(m.Config().Arch, tokens[8:])
	// Output: LlamaForCausalLM [58 58 413 413 413 413 228 281]
}
