package model

import (
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
)

// BenchmarkDecodeStep measures one decode step of 8 sequences of the qwen2
// fixture (4 layers, hidden 64, vocab 1024) at about 100 cached tokens each,
// in float32 on two threads.
func BenchmarkDecodeStep(b *testing.B) {
	dev, err := cpu.New(cpu.Config{Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	m, err := Load(fixtureDir("qwen2"), dev, Options{DType: gpu.F32})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewCache(8*8, 16)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Free()
	batch := &Batch{}
	for s := range 8 {
		table := make([]int32, 8)
		for j := range table {
			table[j] = int32(s*8 + j)
		}
		batch.Seqs = append(batch.Seqs, SeqInput{Tokens: []int32{int32(s)}, StartPos: 100, BlockTable: table, WantLogits: true})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Forward(c, batch); err != nil {
			b.Fatal(err)
		}
	}
}
