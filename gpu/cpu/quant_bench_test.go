package cpu_test

import (
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
)

// BenchmarkQMatMul times QMatMul with FP8 and int4 (group 128) weights
// beside MatMul with f32 weights on the same shapes, in one run: the cost
// of dequantizing inside the product.
func BenchmarkQMatMul(b *testing.B) {
	for _, s := range [][3]int{{8, 2048, 2048}, {64, 2048, 2048}} {
		m, n, k := s[0], s[1], s[2]
		name := fmt.Sprintf("%dx%dx%d", m, n, k)
		b.Run(name+"/f32", func(b *testing.B) { benchSluice(b, m, n, k, 2, gpu.F32) })
		for _, f := range []gpu.QuantFormat{gpu.QuantFP8, gpu.QuantInt4} {
			b.Run(name+"/"+f.String(), func(b *testing.B) { benchQuant(b, m, n, k, f) })
		}
	}
}

func benchQuant(b *testing.B, m, n, k int, f gpu.QuantFormat) {
	withProcs(b, 2)
	d, err := cpu.New(cpu.Config{Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	var ts []*gpu.Tensor
	up := func(t *gpu.Tensor, err error) *gpu.Tensor {
		if err != nil {
			b.Fatal(err)
		}
		ts = append(ts, t)
		return t
	}
	defer func() {
		for _, t := range ts {
			t.Free()
		}
	}()
	ones := func(n int, v float32) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = v
		}
		return x
	}
	w := &gpu.QuantWeight{Format: f, N: n, K: k}
	if f == gpu.QuantFP8 {
		w.Data = up(d.Alloc(gpu.F8E4M3, n, k))
		data := make([]byte, n*k)
		for i := range data {
			data[i] = byte(i*37) & 0x7e
		}
		if err := d.Upload(w.Data, data); err != nil {
			b.Fatal(err)
		}
		w.Scales = up(gpu.FromHost(d, ones(n, 0.01), n))
	} else {
		g := k / 128
		words := make([]int32, n*k/8)
		for i := range words {
			words[i] = int32(i * 2654435761)
		}
		groups := make([]int32, k)
		for c := range groups {
			groups[c] = int32(c / 128)
		}
		w.Data = up(gpu.FromHost(d, words, n, k/8))
		w.Scales = up(gpu.FromHost(d, ones(n*g, 0.01), n, g))
		w.Zeros = up(gpu.FromHost(d, ones(n*g, 8), n, g))
		w.Groups = up(gpu.FromHost(d, groups, 1, k))
	}
	a := up(gpu.FromHost(d, randFloats(m*k), m, k))
	c := up(d.Alloc(gpu.F32, m, n))
	if err := d.QMatMul(c, a, w, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := d.QMatMul(c, a, w, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
