package model

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer/safetensors"
)

// quantTol bounds max|logits − reference| / max|reference| for a quantized
// checkpoint on the cpu backend: the weights are the reference's exactly
// (the dequantization is exact in float32), so only the summation order
// differs, as for the float fixtures (tol).
const quantTol = 1e-4

// quantExpected is make_quantized.py's expected.json.
type quantExpected struct {
	Base      string       `json:"base"`
	Format    string       `json:"format"`
	NewTokens int          `json:"new_tokens"`
	Ref       quantRecord  `json:"ref"`
	LoadFP8   *quantRecord `json:"load_fp8"`
}

type quantRecord struct {
	Logits []struct {
		Tokens []int32   `json:"tokens"`
		Last   []float32 `json:"last"`
	} `json:"logits"`
	Greedy []struct {
		Prompt  []int32   `json:"prompt"`
		Tokens  []int32   `json:"tokens"`
		Margins []float64 `json:"margins"`
	} `json:"greedy"`
}

func quantDir(name string) string { return filepath.Join("testdata", "quant", name) }

func forQuantized(t *testing.T, fn func(t *testing.T, name string, e *quantExpected)) {
	ents, err := os.ReadDir(filepath.Join("testdata", "quant"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) < 20 {
		t.Fatalf("testdata/quant holds %d checkpoints, want the 22 make_quantized.py writes", len(ents))
	}
	for _, ent := range ents {
		name := ent.Name()
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(quantDir(name), "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			var e quantExpected
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatal(err)
			}
			fn(t, name, &e)
		})
	}
}

// checkRecord compares m's prefill logits and greedy tokens with r.
func checkRecord(t *testing.T, m *Model, r *quantRecord, newTokens int) {
	t.Helper()
	if len(r.Logits) == 0 || len(r.Greedy) == 0 {
		t.Fatal("expected.json has no logits or greedy records")
	}
	for i, lc := range r.Logits {
		c := newCache(t, m, 8, 0)
		table := newBlocks(8, uint64(i)).cover(t, nil, len(lc.Tokens), c.BlockSize())
		out, err := m.Forward(c, &Batch{Seqs: []SeqInput{{Tokens: lc.Tokens, BlockTable: table, WantLogits: true}}})
		if err != nil {
			t.Fatal(err)
		}
		if e := relErr(out, lc.Last); e > quantTol {
			t.Errorf("prompt %d (%d tokens): relative error %.3g > %g", i, len(lc.Tokens), e, quantTol)
		} else {
			t.Logf("prompt %d (%d tokens): relative error %.3g", i, len(lc.Tokens), e)
		}
		c.Free()
	}
	for i, g := range r.Greedy {
		// Every step's top-1/top-2 margin is at least 1e-3 of the largest
		// logit (the script redraws prompts until it is), far above the
		// float32 error, so all the tokens must agree.
		if len(g.Tokens) != newTokens || slices.Min(g.Margins) < 1e-3 {
			t.Fatalf("greedy %d: %d tokens, smallest margin %g", i, len(g.Tokens), slices.Min(g.Margins))
		}
		c := newCache(t, m, 8, 16)
		got := greedy(t, m, c, newBlocks(8, uint64(30+i)), []*gen{{toks: slices.Clone(g.Prompt), prompt: len(g.Prompt)}}, len(g.Prompt), newTokens)
		if !slices.Equal(got[0], g.Tokens) {
			t.Errorf("greedy %d: tokens\n got %v\nwant %v", i, got[0], g.Tokens)
		}
		c.Free()
	}
}

// TestQuantized loads every quantized checkpoint (FP8 per tensor and per
// channel, AWQ, GPTQ with act_order and without) on the cpu backend and
// checks its logits and greedy tokens against the dequantized float
// reference make_quantized.py computed with transformers.
func TestQuantized(t *testing.T) {
	forQuantized(t, func(t *testing.T, name string, e *quantExpected) {
		dev := openCPU(t)
		m, err := Load(quantDir(name), dev, Options{DType: gpu.F32})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if m.Config().Quant == nil || len(m.quant) != 6*m.Config().Layers {
			t.Fatalf("%d quantized weights for %d layers, want 6 per layer", len(m.quant), m.Config().Layers)
		}
		checkRecord(t, m, &e.Ref, e.NewTokens)
	})
}

// TestQuantizeAtLoad loads the float32 fixtures with Quantization "fp8"
// and checks them against the reference of the same per-tensor FP8
// quantization done by torch.
func TestQuantizeAtLoad(t *testing.T) {
	forQuantized(t, func(t *testing.T, name string, e *quantExpected) {
		if e.LoadFP8 == nil {
			t.Skip("no load_fp8 record")
		}
		dev := openCPU(t)
		m, err := Load(fixtureDir(e.Base), dev, Options{DType: gpu.F32, Quantization: "fp8"})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		fl := load(t, dev, e.Base, gpu.F32)
		qb, fb := 0, 0
		for i := range m.layers {
			for _, l := range []linear{m.layers[i].q, m.layers[i].k, m.layers[i].v, m.layers[i].o, m.layers[i].gateUp, m.layers[i].down} {
				if l.q == nil || l.q.Format != gpu.QuantFP8 {
					t.Fatal("a linear layer was not quantized")
				}
				qb += l.q.Data.Bytes()
			}
			for _, l := range []linear{fl.layers[i].q, fl.layers[i].k, fl.layers[i].v, fl.layers[i].o, fl.layers[i].gateUp, fl.layers[i].down} {
				fb += l.w.Bytes()
			}
		}
		if qb*4 != fb {
			t.Errorf("fp8 linear weights take %d bytes, float32 %d: want a quarter", qb, fb)
		}
		checkRecord(t, m, e.LoadFP8, e.NewTokens)
	})
}

func copyQuant(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"config.json", "generation_config.json", safetensors.SingleFile} {
		b, err := os.ReadFile(filepath.Join(quantDir(name), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// editTensor rewrites one tensor of dir's checkpoint.
func editTensor(t *testing.T, dir, name string, edit func(*safetensors.Tensor)) {
	t.Helper()
	found := false
	rewriteTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
		for i := range ts {
			if ts[i].Name == name {
				edit(&ts[i])
				found = true
			}
		}
		return ts
	})
	if !found {
		t.Fatalf("no tensor %q", name)
	}
}

// TestQuantErrors checks that bad scales, shapes, group indices and
// configs fail Load with an error naming the tensor or key, and leave
// nothing allocated.
func TestQuantErrors(t *testing.T) {
	f32bits := func(v float32) []byte { return binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)) }
	cases := []struct {
		name, model string
		edit        func(t *testing.T, dir string)
		want        error
		msg         string
	}{
		{"fp8 negative scale", "llama3-fp8", func(t *testing.T, dir string) {
			editTensor(t, dir, "model.layers.1.mlp.up_proj.weight_scale", func(x *safetensors.Tensor) { x.Data = f32bits(-0.5) })
		}, ErrShape, `tensor "model.layers.1.mlp.up_proj.weight_scale": scale 0 is -0.5, want a positive finite number`},
		{"fp8 NaN channel scale", "llama3-ct-fp8-channel", func(t *testing.T, dir string) {
			editTensor(t, dir, "model.layers.0.self_attn.k_proj.weight_scale", func(x *safetensors.Tensor) { x.Data[6], x.Data[7] = 0xc0, 0x7f })
		}, ErrShape, `tensor "model.layers.0.self_attn.k_proj.weight_scale": scale 3 is NaN`},
		{"fp8 scale shape", "llama3-ct-fp8-channel", func(t *testing.T, dir string) {
			editTensor(t, dir, "model.layers.0.self_attn.o_proj.weight_scale", func(x *safetensors.Tensor) { x.Shape = []int{1, 64}; x.Data = x.Data[:128] })
		}, ErrShape, `tensor "model.layers.0.self_attn.o_proj.weight_scale" has shape [1 64], want [[] [1] [64 1] [64]]`},
		{"fp8 missing scale", "llama3-fp8", func(t *testing.T, dir string) {
			rewriteTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				return slices.DeleteFunc(ts, func(x safetensors.Tensor) bool { return x.Name == "model.layers.0.mlp.down_proj.weight_scale" })
			})
		}, ErrMissingTensor, `tensor "model.layers.0.mlp.down_proj.weight_scale" is missing`},
		{"awq qweight shape", "llama3-awq", func(t *testing.T, dir string) {
			editTensor(t, dir, "model.layers.0.self_attn.q_proj.qweight", func(x *safetensors.Tensor) { x.Shape = []int{8, 64} })
		}, ErrShape, `tensor "model.layers.0.self_attn.q_proj.qweight" has shape [8 64], want [[64 8]]`},
		{"awq zero scale", "llama3-awq", func(t *testing.T, dir string) {
			editTensor(t, dir, "model.layers.1.mlp.down_proj.scales", func(x *safetensors.Tensor) { x.Data[2], x.Data[3] = 0, 0 })
		}, ErrShape, `tensor "model.layers.1.mlp.down_proj.scales": scale 1 is 0`},
		{"gptq g_idx out of range", "llama3-gptq", func(t *testing.T, dir string) {
			editTensor(t, dir, "model.layers.0.mlp.gate_proj.g_idx", func(x *safetensors.Tensor) { binary.LittleEndian.PutUint32(x.Data[20:], 2) })
		}, ErrShape, `tensor "model.layers.0.mlp.gate_proj.g_idx": entry 5 is group 2, want 0 to 1`},
		{"gptq scales dtype", "llama3-gptq", func(t *testing.T, dir string) {
			editTensor(t, dir, "model.layers.0.self_attn.v_proj.scales", func(x *safetensors.Tensor) { x.DType = safetensors.I16 })
		}, ErrShape, `tensor "model.layers.0.self_attn.v_proj.scales" has dtype I16, want [F32 BF16 F16]`},
		{"int4 without config", "llama3-gptq", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
			var m map[string]any
			json.Unmarshal(b, &m)
			delete(m, "quantization_config")
			b, _ = json.Marshal(m)
			os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
		}, ErrConfig, `tensor "model.layers.0.self_attn.q_proj.qweight" is int4 but config.json has no awq or gptq quantization_config`},
		{"3-bit gptq", "llama3-gptq", func(t *testing.T, dir string) {
			editConfig(t, dir, `"bits": 4`, `"bits": 3`)
		}, ErrConfig, `config.json: quantization_config.bits is 3: only 4-bit gptq is supported`},
		{"unknown method", "llama3-awq", func(t *testing.T, dir string) {
			editConfig(t, dir, `"quant_method": "awq"`, `"quant_method": "bitsandbytes"`)
		}, ErrConfig, `quantization_config.quant_method "bitsandbytes": want fp8, compressed-tensors, awq or gptq`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyQuant(t, tc.model)
			tc.edit(t, dir)
			dev := openCPU(t)
			m, err := Load(dir, dev, Options{DType: gpu.F32})
			if err == nil {
				m.Close()
				t.Fatal("Load succeeded")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q\nwant %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
	t.Run("bad Options.Quantization", func(t *testing.T) {
		_, err := Load(fixtureDir("llama3"), openCPU(t), Options{Quantization: "int8"})
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), `Options.Quantization "int8"`) {
			t.Errorf("error %v", err)
		}
	})
}

// TestKVCacheFP8 runs the float32 fixtures with an FP8 KV cache: a cache
// block takes a quarter of the bytes, and prefill logits stay within
// kvFP8Tol of transformers' float32 ones (E4M3 keeps 3 mantissa bits, so
// keys and values are off by up to 1/16 relatively; the logits move by a
// few percent of their range).
func TestKVCacheFP8(t *testing.T) {
	const kvFP8Tol = 0.1
	forFixtures(t, func(t *testing.T, name string, e *expected) {
		dev := openCPU(t)
		m, err := Load(fixtureDir(name), dev, Options{DType: gpu.F32, KVCacheDType: "fp8"})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		fl := load(t, dev, name, gpu.F32)
		c8, cf := newCache(t, m, 8, 0), newCache(t, fl, 8, 0)
		if c8.BytesPerBlock()*4 != cf.BytesPerBlock() {
			t.Errorf("fp8 cache block %d bytes, f32 %d: want a quarter", c8.BytesPerBlock(), cf.BytesPerBlock())
		}
		c8.Free()
		cf.Free()
		worst := 0.0
		for i, lc := range e.F32.Logits {
			c := newCache(t, m, 8, 0)
			table := newBlocks(8, uint64(i)).cover(t, nil, len(lc.Tokens), c.BlockSize())
			out, err := m.Forward(c, &Batch{Seqs: []SeqInput{{Tokens: lc.Tokens, BlockTable: table, WantLogits: true}}})
			if err != nil {
				t.Fatal(err)
			}
			e := relErr(out, lc.Last)
			worst = max(worst, e)
			if e > kvFP8Tol {
				t.Errorf("prompt %d (%d tokens): relative error %.3g > %g", i, len(lc.Tokens), e, kvFP8Tol)
			}
			c.Free()
		}
		// A cache that were not FP8, or not read back, would be exact.
		if worst < 1e-4 {
			t.Errorf("relative error %.3g: the FP8 cache changed nothing", worst)
		}
		t.Logf("worst relative error %.3g", worst)
	})
}
