package model

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	_ "github.com/sluicehq/sluice/gpu/cuda" // SLUICE_TEST_DEVICE=cuda
	"github.com/sluicehq/sluice/gpu/gputest"
)

// Tolerances of the quantized checkpoints on the device SLUICE_TEST_DEVICE
// names (max|logits − reference| / max|reference|, float32 activations):
// int4 dequantizes exactly into float32 (the gemv and tile paths of
// gpu/cuda), so only summation orders differ; FP8 prefill products round
// the activations to E4M3 with a per-token scale on GPUs with FP8 tensor
// cores (gpu/cuda's lt path), which the dequantized float reference does
// not do.
const (
	quantDevTolInt4 = 1e-3
	quantDevTolFP8  = 5e-2
)

// openTestDevice opens SLUICE_TEST_DEVICE, or skips the test where it is
// unset or cpu (TestQuantized covers the cpu backend).
func openTestDevice(t *testing.T) gpu.Device {
	t.Helper()
	name := os.Getenv("SLUICE_TEST_DEVICE")
	if name == "" || name == "cpu" {
		t.Skip("SLUICE_TEST_DEVICE names no accelerator (cuda on the GPU machine)")
	}
	dev, err := gpu.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	gputest.CheckLeaks(t, dev)
	return dev
}

// TestQuantizedDevice is TestQuantized and TestQuantizeAtLoad on the
// SLUICE_TEST_DEVICE backend: every quantized checkpoint's prefill logits
// within the tolerance above of the dequantized reference, and its greedy
// tokens equal to the reference's.
func TestQuantizedDevice(t *testing.T) {
	forQuantized(t, func(t *testing.T, name string, e *quantExpected) {
		dev := openTestDevice(t)
		tol := quantDevTolInt4
		if strings.Contains(name, "fp8") {
			tol = quantDevTolFP8
		}
		m, err := Load(quantDir(name), dev, Options{DType: gpu.F32})
		if err != nil {
			t.Fatal(err)
		}
		checkRecordTol(t, m, &e.Ref, e.NewTokens, tol)
		m.Close()
		if e.LoadFP8 == nil {
			return
		}
		m, err = Load(fixtureDir(e.Base), dev, Options{DType: gpu.F32, Quantization: "fp8"})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		t.Log("--quantization fp8:")
		checkRecordTol(t, m, e.LoadFP8, e.NewTokens, quantDevTolFP8)
	})
}

// checkRecordTol is checkRecord with the logits tolerance tol.
func checkRecordTol(t *testing.T, m *Model, r *quantRecord, newTokens int, tol float64) {
	t.Helper()
	for i, lc := range r.Logits {
		c := newCache(t, m, 8, 0)
		table := newBlocks(8, uint64(i)).cover(t, nil, len(lc.Tokens), c.BlockSize())
		out, err := m.Forward(c, &Batch{Seqs: []SeqInput{{Tokens: lc.Tokens, BlockTable: table, WantLogits: true}}})
		if err != nil {
			t.Fatal(err)
		}
		if e := relErr(out, lc.Last); !(e <= tol) {
			t.Errorf("prompt %d (%d tokens): relative error %.3g > %g", i, len(lc.Tokens), e, tol)
		} else {
			t.Logf("prompt %d (%d tokens): relative error %.3g", i, len(lc.Tokens), e)
		}
		c.Free()
	}
	for i, g := range r.Greedy {
		c := newCache(t, m, 8, 16)
		got := greedy(t, m, c, newBlocks(8, uint64(30+i)), []*gen{{toks: slices.Clone(g.Prompt), prompt: len(g.Prompt)}}, len(g.Prompt), newTokens)
		if !slices.Equal(got[0], g.Tokens) {
			t.Errorf("greedy %d: tokens\n got %v\nwant %v", i, got[0], g.Tokens)
		}
		c.Free()
	}
}
