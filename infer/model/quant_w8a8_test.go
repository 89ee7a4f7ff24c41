package model

import (
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/gputest"
)

// w8a8 is a QuantOps (the cpu backend's) with FP8 products of more than 8
// rows of a rounding a to E4M3 first, as gpu/cuda's lt path does
// (gputest.RoundFP8Act): one scale per row (perToken: the outer-vector
// product gpu/cuda prefers where cuBLASLt has it, or where there is a
// bias), else one scale for all of a where there is no bias and w's scales
// come in at most 8 runs of multiples of 16 rows (the scaled product; the
// fixtures' prompts fit one band). Only the accumulation then differs from
// gpu/cuda's.
type w8a8 struct {
	gpu.QuantOps
	perToken          bool
	perTensor, perRow int // products rounded so
}

func (q *w8a8) QMatMul(c, a *gpu.Tensor, w *gpu.QuantWeight, bias *gpu.Tensor) error {
	k := a.Dim(a.NDim() - 1)
	m := a.Len() / k
	if w.Format != gpu.QuantFP8 || m <= 8 {
		return q.QuantOps.QMatMul(c, a, w, bias)
	}
	v := make([]float32, a.Len())
	if err := gpu.DownloadF32(v, a); err != nil {
		return err
	}
	rows := 1
	if !q.perToken && bias == nil && fewScaleRuns(w) {
		rows = m
		q.perTensor++
	} else {
		q.perRow++
	}
	gputest.RoundFP8Act(v, k, rows)
	ra, err := gpu.FromHost(a.Device(), v, a.Shape()...)
	if err != nil {
		return err
	}
	defer ra.Free()
	return q.QuantOps.QMatMul(c, ra, w, bias)
}

// fewScaleRuns reports whether w's scales come in at most 8 runs of equal
// ones, each starting at a multiple of 16 rows (gpu/cuda's scaleRuns).
func fewScaleRuns(w *gpu.QuantWeight) bool {
	s := make([]float32, w.Scales.Len())
	if gpu.DownloadF32(s, w.Scales) != nil {
		return false
	}
	runs := 1
	for i := 1; i < len(s); i++ {
		if s[i] != s[i-1] {
			if i%16 != 0 || runs == 8 {
				return false
			}
			runs++
		}
	}
	return true
}

// TestW8A8Rounding runs every FP8 checkpoint on the cpu backend with the
// activations rounded to E4M3 as gpu/cuda's lt path rounds them, and
// requires the prefill logits within quantDevTolW8A8 of the dequantized
// reference, the error that W8A8 honestly has on these fixtures (and so
// the tolerance TestQuantizedDevice holds the lt path to), and, for
// prompts of more than 8 tokens, more than 1% off it (the rounding did
// happen). It logs how many greedy runs the rounding moves off the
// reference's tokens.
func TestW8A8Rounding(t *testing.T) {
	forQuantized(t, func(t *testing.T, name string, e *quantExpected) {
		if !strings.Contains(name, "fp8") {
			t.Skip("not FP8")
		}
		dev := openCPU(t)
		check := func(t *testing.T, m *Model, r *quantRecord, perToken bool) {
			q := &w8a8{QuantOps: m.qops, perToken: perToken}
			m.qops = q
			defer func() { m.qops = q.QuantOps }()
			worst := 0.0
			for i, lc := range r.Logits {
				c := newCache(t, m, 8, 0)
				table := newBlocks(8, uint64(i)).cover(t, nil, len(lc.Tokens), c.BlockSize())
				out, err := m.Forward(c, &Batch{Seqs: []SeqInput{{Tokens: lc.Tokens, BlockTable: table, WantLogits: true}}})
				if err != nil {
					t.Fatal(err)
				}
				c.Free()
				e := relErr(out, lc.Last)
				worst = max(worst, e)
				switch {
				case !(e <= quantDevTolW8A8):
					t.Errorf("prompt %d (%d tokens): relative error %.3g > %g", i, len(lc.Tokens), e, quantDevTolW8A8)
				case len(lc.Tokens) > 8 && e < 1e-2:
					t.Errorf("prompt %d (%d tokens): relative error %.3g < 1e-2: the activations were not rounded", i, len(lc.Tokens), e)
				case len(lc.Tokens) <= 8 && e > quantTol:
					t.Errorf("prompt %d (%d tokens, no rounded product): relative error %.3g > %g", i, len(lc.Tokens), e, quantTol)
				default:
					t.Logf("prompt %d (%d tokens): relative error %.3g", i, len(lc.Tokens), e)
				}
			}
			apart := 0
			for i, g := range r.Greedy {
				c := newCache(t, m, 8, 16)
				got := greedy(t, m, c, newBlocks(8, uint64(30+i)), []*gen{{toks: slices.Clone(g.Prompt), prompt: len(g.Prompt)}}, len(g.Prompt), e.NewTokens)
				c.Free()
				if !slices.Equal(got[0], g.Tokens) {
					apart++
				}
			}
			t.Logf("worst %.3g; greedy runs off the reference's tokens: %d of %d; products rounded per tensor %d, per token %d", worst, apart, len(r.Greedy), q.perTensor, q.perRow)
		}
		m, err := Load(quantDir(name), dev, Options{DType: gpu.F32})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		for _, pt := range []bool{false, true} {
			t.Logf("per token only: %v", pt)
			check(t, m, &e.Ref, pt)
		}
		if e.LoadFP8 == nil {
			return
		}
		m2, err := Load(fixtureDir(e.Base), dev, Options{DType: gpu.F32, Quantization: "fp8"})
		if err != nil {
			t.Fatal(err)
		}
		defer m2.Close()
		t.Log("--quantization fp8:")
		for _, pt := range []bool{false, true} {
			t.Logf("per token only: %v", pt)
			check(t, m2, e.LoadFP8, pt)
		}
	})
}
