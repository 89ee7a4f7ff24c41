package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer/safetensors"
)

// withKVScales copies fixture name and adds per-layer k and v scale
// tensors under the layout names (kvScaleNames' entries), F32 scalars.
func withKVScales(t *testing.T, name string, layers int, layout [2]string, k, v float32) string {
	t.Helper()
	dir := copyFixture(t, name)
	rewriteTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
		for i := range layers {
			a := fmt.Sprintf("model.layers.%d.self_attn.", i)
			for j, s := range []float32{k, v} {
				if j == 1 && layout[1] == layout[0] {
					break // kv_scale: one tensor for both
				}
				ts = append(ts, safetensors.Tensor{Name: a + layout[j], DType: safetensors.F32, Shape: []int{},
					Data: binary.LittleEndian.AppendUint32(nil, math.Float32bits(s))})
			}
		}
		return ts
	})
	return dir
}

// kvLogits loads dir with opts on cpu and returns the last-token
// logits of each of e's float32 prompts.
func kvLogits(t *testing.T, dir string, e *expected, opts Options) [][]float32 {
	t.Helper()
	dev := openCPU(t)
	m, err := Load(dir, dev, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var out [][]float32
	for i, lc := range e.F32.Logits {
		c := newCache(t, m, 8, 0)
		table := newBlocks(8, uint64(i)).cover(t, nil, len(lc.Tokens), c.BlockSize())
		lg, err := m.Forward(c, &Batch{Seqs: []SeqInput{{Tokens: lc.Tokens, BlockTable: table, WantLogits: true}}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, slices.Clone(lg))
		c.Free()
	}
	return out
}

// TestKVCacheFP8Scales loads fixtures with checkpoint k and v scales (as a
// calibrated FP8 checkpoint has them) and an FP8 cache: the logits stay
// within TestKVCacheFP8's tolerance of transformers' float32 ones (a scale
// written but not read back, or read but not written, is off by the
// scale, far outside it), differ from the unscaled cache's (the scales are
// used), are the same whichever layout holds the scales, and are untouched
// by the scales with a float cache (vLLM applies them to FP8 caches only).
func TestKVCacheFP8Scales(t *testing.T) {
	const kvFP8Tol = 0.1
	const ks, vs = 0.0173, 0.0291 // k / ks and v / vs stay well inside ±448 on the fixtures
	for _, name := range []string{"llama3", "qwen3"} {
		t.Run(name, func(t *testing.T) {
			e := readExpected(t, name)
			layers := load(t, openCPU(t), name, gpu.F32).cfg.Layers
			fp8 := Options{DType: gpu.F32, KVCacheDType: "fp8"}
			scaled := kvLogits(t, withKVScales(t, name, layers, kvScaleNames[0], ks, vs), e, fp8)
			plain := kvLogits(t, fixtureDir(name), e, fp8)
			worst, moved := 0.0, 0.0
			for i, lc := range e.F32.Logits {
				err := relErr(scaled[i], lc.Last)
				worst = max(worst, err)
				moved = max(moved, relErr(scaled[i], plain[i]))
				if err > kvFP8Tol {
					t.Errorf("prompt %d: relative error %.3g > %g with scales", i, err, kvFP8Tol)
				}
			}
			if moved == 0 {
				t.Errorf("the scales changed no logit")
			}
			t.Logf("worst relative error %.3g; %.3g from the unscaled FP8 cache", worst, moved)
			for _, layout := range kvScaleNames[1:] {
				k, v := float32(ks), float32(vs)
				if layout[0] == layout[1] {
					v = k
				}
				ref := scaled
				if v != vs {
					ref = kvLogits(t, withKVScales(t, name, layers, kvScaleNames[0], k, v), e, fp8)
				}
				got := kvLogits(t, withKVScales(t, name, layers, layout, k, v), e, fp8)
				for i := range got {
					if !slices.Equal(got[i], ref[i]) {
						t.Errorf("layout %v: prompt %d logits differ from the k_scale/v_scale layout's", layout, i)
					}
				}
			}
			f32 := Options{DType: gpu.F32}
			got, want := kvLogits(t, withKVScales(t, name, layers, kvScaleNames[0], ks, vs), e, f32), kvLogits(t, fixtureDir(name), e, f32)
			for i := range got {
				if !slices.Equal(got[i], want[i]) {
					t.Errorf("f32 cache: prompt %d logits changed by the scales", i)
				}
			}
		})
	}
}

// TestKVScaleErrors: a bad scale tensor fails Load naming it.
func TestKVScaleErrors(t *testing.T) {
	const name = "llama3"
	layers := load(t, openCPU(t), name, gpu.F32).cfg.Layers
	scalar := func(f float32) []byte { return binary.LittleEndian.AppendUint32(nil, math.Float32bits(f)) }
	cases := []struct {
		name   string
		edit   func(*safetensors.Tensor)
		tensor string
		msg    string
	}{
		{"negative", func(x *safetensors.Tensor) { x.Data = scalar(-0.5) }, "model.layers.1.self_attn.k_scale", "scale 0 is -0.5"},
		{"NaN", func(x *safetensors.Tensor) { x.Data = scalar(float32(math.NaN())) }, "model.layers.0.self_attn.v_scale", "scale 0 is NaN"},
		{"zero", func(x *safetensors.Tensor) { x.Data = scalar(0) }, "model.layers.0.self_attn.k_scale", "scale 0 is 0"},
		{"two elements", func(x *safetensors.Tensor) { x.Shape, x.Data = []int{2}, append(scalar(1), scalar(1)...) }, "model.layers.1.self_attn.v_scale", "shape [2]"},
		{"int dtype", func(x *safetensors.Tensor) { x.DType = safetensors.I32 }, "model.layers.0.self_attn.k_scale", "dtype I32"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := withKVScales(t, name, layers, kvScaleNames[0], 0.5, 0.25)
			editTensor(t, dir, tc.tensor, tc.edit)
			m, err := Load(dir, openCPU(t), Options{DType: gpu.F32, KVCacheDType: "fp8"})
			if err == nil {
				m.Close()
				t.Fatal("Load succeeded")
			}
			if !errors.Is(err, ErrShape) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.tensor)) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q\nwant ErrShape naming %q and containing %q", err, tc.tensor, tc.msg)
			}
		})
	}
	t.Run("disagreeing layouts", func(t *testing.T) {
		dir := withKVScales(t, name, layers, kvScaleNames[0], 0.5, 0.25)
		rewriteTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
			return append(ts, safetensors.Tensor{Name: "model.layers.0.self_attn.kv_scale", DType: safetensors.F32, Shape: []int{1}, Data: scalar(0.75)})
		})
		_, err := Load(dir, openCPU(t), Options{DType: gpu.F32, KVCacheDType: "fp8"})
		if !errors.Is(err, ErrShape) || !strings.Contains(err.Error(), `"model.layers.0.self_attn.kv_scale"`) {
			t.Errorf("error %v", err)
		}
	})
}
