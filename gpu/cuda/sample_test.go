package cuda_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
)

// llamaVocab is Llama 3's vocabulary, the size the sampling figures use.
const llamaVocab = 128256

// sampleLogits returns rows×n logits shaped like a language model's: normal
// with a few tokens far above the rest, on a bf16 grid (ties, as a bf16 LM
// head gives).
func sampleLogits(rows, n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, rows*n)
	for i := range x {
		v := float32(2.5 * r.NormFloat64())
		if r.IntN(2000) == 0 {
			v += 12
		}
		x[i] = gpu.ToBFloat16(v).Float32()
	}
	return x
}

// sampleMix packs rows of the kinds a batch mixes, uniforms from seed.
func sampleMix(rows int, seed uint64) gpu.SamplePack {
	r := rand.New(rand.NewPCG(seed, 8))
	var p gpu.SamplePack
	for i := range rows {
		row := gpu.SampleRow{Temperature: 0.3 + r.Float64(), TopP: 1, Repetition: 1, U: r.Float64()}
		switch i % 5 {
		case 0:
			row.TopP = 0.5 + 0.5*r.Float64()
		case 1:
			row.TopK = 1 + r.IntN(100)
		case 2:
			row.TopK, row.TopP = 20+r.IntN(1000), 0.9
		case 3:
			row.MinP = 0.1 * r.Float64()
		case 4:
			row.Temperature = 0
		}
		var edits []gpu.SampleEdit
		if i%3 == 0 {
			row.Repetition, row.Frequency, row.Presence = 1.3, 0.5, 0.25
			for _, t := range r.Perm(llamaVocab)[:200] {
				edits = append(edits, gpu.SampleEdit{Token: int32(t), Count: int32(r.IntN(3)), Seen: true, Mask: r.IntN(50) == 0})
			}
		}
		p.Add(row, edits)
	}
	return p
}

// sampleOn runs Sample on d over logits x with pack and returns the tokens.
func sampleOn(t testing.TB, d gpu.Device, x []float32, rows, n int, pack gpu.SamplePack) []int32 {
	t.Helper()
	logits, err := gpu.FromHost(d, x, rows, n)
	if err != nil {
		t.Fatal(err)
	}
	defer logits.Free()
	b := gpu.SampleBatch{Rows: words(t, d, pack.Rows, rows, gpu.SampleRowWords)}
	defer b.Rows.Free()
	if pack.NumEdits() > 0 {
		b.Edits = words(t, d, pack.Edits, pack.NumEdits(), 3)
		defer b.Edits.Free()
	}
	dst, err := d.Alloc(gpu.I32, rows)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Free()
	if err := d.Ops().Sample(dst, logits, b); err != nil {
		t.Fatal(err)
	}
	out, err := gpu.ToHost[int32](dst)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// words uploads packed I32 words as a [rows, cols] tensor.
func words(t testing.TB, d gpu.Device, data []byte, rows, cols int) *gpu.Tensor {
	t.Helper()
	x, err := d.Alloc(gpu.I32, rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Upload(x, data); err != nil {
		x.Free()
		t.Fatal(err)
	}
	return x
}

// TestSampleVocab samples 100 rows of Llama 3's vocabulary on the GPU and
// on the cpu backend (the host sampler's algorithm): the tokens must agree
// except where the order of float64 sums decides, which random uniforms
// hit with a chance of about 1e-12 per row; and twice on the GPU, equal.
func TestSampleVocab(t *testing.T) {
	d := open(t)
	c, err := cpu.New(cpu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const rows = 100
	x := sampleLogits(rows, llamaVocab, 1)
	pack := sampleMix(rows, 2)
	got := sampleOn(t, d, x, rows, llamaVocab, pack)
	want := sampleOn(t, c, x, rows, llamaVocab, pack)
	for r := range rows {
		if got[r] != want[r] {
			t.Errorf("row %d: cuda %d, cpu %d", r, got[r], want[r])
		}
	}
	if again := sampleOn(t, d, x, rows, llamaVocab, pack); !slices.Equal(again, got) {
		t.Errorf("a second run drew other tokens: %v, then %v", got, again)
	}
}

// BenchmarkSample times Sample over 256 rows of Llama 3's vocabulary, one
// kind of row at a time; it enqueues b.N calls and waits once.
func BenchmarkSample(b *testing.B) {
	const rows, n = 256, llamaVocab
	kinds := []struct {
		name string
		row  gpu.SampleRow
	}{
		{"greedy", gpu.SampleRow{TopP: 1}},
		{"temperature", gpu.SampleRow{Temperature: 0.8, TopP: 1}},
		{"top_k=50", gpu.SampleRow{Temperature: 0.8, TopK: 50, TopP: 1}},
		{"top_p=0.95", gpu.SampleRow{Temperature: 0.8, TopP: 0.95}},
		{"top_k=50,top_p=0.95", gpu.SampleRow{Temperature: 0.8, TopK: 50, TopP: 0.95}},
		{"min_p=0.05", gpu.SampleRow{Temperature: 0.8, MinP: 0.05, TopP: 1}},
	}
	d := benchDevice(b)
	x := sampleLogits(rows, n, 3)
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			var pack gpu.SamplePack
			for r := range rows {
				row := k.row
				row.Repetition, row.U = 1, math.Mod(float64(r)*0.618, 1)
				pack.Add(row, nil)
			}
			logits, err := gpu.FromHost(d, x, rows, n)
			if err != nil {
				b.Fatal(err)
			}
			defer logits.Free()
			sb := gpu.SampleBatch{Rows: words(b, d, pack.Rows, rows, gpu.SampleRowWords)}
			defer sb.Rows.Free()
			dst, err := d.Alloc(gpu.I32, rows)
			if err != nil {
				b.Fatal(err)
			}
			defer dst.Free()
			if err := d.Sample(dst, logits, sb); err != nil { // warm-up
				b.Fatal(err)
			}
			if err := d.Sync(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := d.Sample(dst, logits, sb); err != nil {
					b.Fatal(err)
				}
			}
			if err := d.Sync(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/op")
			b.ReportMetric(float64(4*rows*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s/pass")
		})
	}
}
