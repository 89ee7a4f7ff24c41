package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer/safetensors"
)

// copyFixture copies a fixture directory into a temporary one for a test to
// damage.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir(fixtureDir(name))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(fixtureDir(name), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// rewriteTensors rewrites dir/model.safetensors through edit.
func rewriteTensors(t *testing.T, dir string, edit func([]safetensors.Tensor) []safetensors.Tensor) {
	t.Helper()
	path := filepath.Join(dir, safetensors.SingleFile)
	f, err := safetensors.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for _, info := range f.Header().Tensors {
		d, err := f.Data(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, safetensors.Tensor{Name: info.Name, DType: info.DType, Shape: info.Shape, Data: bytes.Clone(d)})
	}
	f.Close()
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, nil, edit(ts)...); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func editConfig(t *testing.T, dir, old, new string) {
	t.Helper()
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("config.json has no %q", old)
	}
	os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644)
}

// editHeader replaces old by new in the JSON header of dir/model.safetensors,
// keeping the data as it is.
func editHeader(t *testing.T, dir, old, new string) {
	t.Helper()
	path := filepath.Join(dir, safetensors.SingleFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b)
	js, data := b[8:8+n], b[8+n:]
	if !bytes.Contains(js, []byte(old)) {
		t.Fatalf("header has no %s", old)
	}
	js = bytes.Replace(js, []byte(old), []byte(new), 1)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(js)))
	out = append(append(out, js...), data...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLoadErrors checks the exact message of each way a model directory can
// be wrong, and that a failed Load leaves nothing allocated.
func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, dir string)
		want string // DIR stands for the directory
		is   error
	}{
		{"unknown architecture", func(t *testing.T, dir string) {
			editConfig(t, dir, `"MistralForCausalLM"`, `"GPT2LMHeadModel"`)
		}, `model: DIR/config.json: architectures ["GPT2LMHeadModel"] is not supported (want one of LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM): model: unsupported architecture`, ErrUnknownArch},
		{"no architectures", func(t *testing.T, dir string) {
			editConfig(t, dir, `"architectures": [
    "MistralForCausalLM"
  ],`, ``)
		}, `model: DIR/config.json: no "architectures" (want one of LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM): model: unsupported architecture`, ErrUnknownArch},
		{"missing tensor", func(t *testing.T, dir string) {
			rewriteTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				for i, x := range ts {
					if x.Name == "model.layers.1.mlp.up_proj.weight" {
						return append(ts[:i], ts[i+1:]...)
					}
				}
				t.Fatal("no up_proj")
				return nil
			})
		}, `model: DIR: tensor "model.layers.1.mlp.up_proj.weight" is missing from the checkpoint: model: missing tensor`, ErrMissingTensor},
		{"wrong shape", func(t *testing.T, dir string) {
			rewriteTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				for i, x := range ts {
					if x.Name == "model.layers.0.self_attn.k_proj.weight" {
						ts[i].Shape = []int{x.Shape[1], x.Shape[0]}
					}
				}
				return ts
			})
		}, `model: DIR/model.safetensors: tensor "model.layers.0.self_attn.k_proj.weight" has shape [64 16], the config wants [16 64]: model: tensor shape mismatch`, ErrShape},
		{"config disagrees", func(t *testing.T, dir string) {
			editConfig(t, dir, `"intermediate_size": 192`, `"intermediate_size": 190`)
		}, `model: DIR/model.safetensors: tensor "model.layers.0.mlp.gate_proj.weight" has shape [192 64], the config wants [190 64]: model: tensor shape mismatch`, ErrShape},
		{"integer weights", func(t *testing.T, dir string) {
			rewriteTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				for i, x := range ts {
					if x.Name == "model.norm.weight" {
						ts[i].DType = safetensors.I32
					}
				}
				return ts
			})
		}, `model: DIR/model.safetensors: tensor "model.norm.weight" has dtype I32, want F32, BF16 or F16: model: tensor shape mismatch`, ErrShape},
		{"unexpected tensor", func(t *testing.T, dir string) {
			rewriteTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				return append(ts, safetensors.Tensor{Name: "model.layers.0.self_attn.o_proj.bias", DType: safetensors.F32, Shape: []int{64}, Data: make([]byte, 256)})
			})
		}, `model: DIR: checkpoint tensor "model.layers.0.self_attn.o_proj.bias" is not part of a MistralForCausalLM with this config: model: unexpected tensor`, ErrUnexpectedTensor},
		{"corrupt header", func(t *testing.T, dir string) {
			path := filepath.Join(dir, safetensors.SingleFile)
			b, _ := os.ReadFile(path)
			binary.LittleEndian.PutUint64(b, uint64(len(b)))
			os.WriteFile(path, b, 0o644)
		}, `safetensors: DIR/model.safetensors: header length 511328 exceeds the 511320 bytes after the length field`, safetensors.ErrHeader},
		{"overlapping tensors", func(t *testing.T, dir string) {
			editHeader(t, dir, `"model.norm.weight":{"dtype":"F32","shape":[64],"data_offsets":[508928,509184]}`,
				`"model.norm.weight":{"dtype":"F32","shape":[64],"data_offsets":[0,256]}`)
		}, `safetensors: DIR/model.safetensors: tensor "lm_head.weight": bytes [0, 65536) overlap tensor "model.norm.weight"`, safetensors.ErrHeader},
		{"no checkpoint", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, safetensors.SingleFile))
		}, `safetensors: DIR: holds neither model.safetensors nor model.safetensors.index.json`, safetensors.ErrNoCheckpoint},
		{"rope type", func(t *testing.T, dir string) {
			editConfig(t, dir, `"rope_type": "default"`, `"rope_type": "yarn"`)
		}, `model: DIR/config.json: rope_parameters type "yarn" is not supported (want default or llama3): model: invalid config`, ErrConfig},
		{"activation", func(t *testing.T, dir string) {
			editConfig(t, dir, `"hidden_act": "silu"`, `"hidden_act": "gelu"`)
		}, `model: DIR/config.json: hidden_act "gelu" is not supported (want silu): model: invalid config`, ErrConfig},
		{"heads", func(t *testing.T, dir string) {
			editConfig(t, dir, `"num_key_value_heads": 2`, `"num_key_value_heads": 3`)
		}, `model: DIR/config.json: num_attention_heads (8) must be a multiple of num_key_value_heads (3): model: invalid config`, ErrConfig},
		{"eos outside vocabulary", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"eos_token_id": [2, 256]}`), 0o644)
		}, `model: DIR/generation_config.json: eos_token_id 256 is outside the vocabulary [0, 256): model: invalid config`, ErrConfig},
		{"no config", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "config.json"))
		}, "storage: DIR/config.json: no such file", os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := openCPU(t)
			dir := copyFixture(t, "mistral")
			tc.edit(t, dir)
			m, err := Load(dir, dev, Options{DType: gpu.F32})
			if err == nil {
				m.Close()
				t.Fatal("Load succeeded")
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if want := strings.ReplaceAll(tc.want, "DIR", dir); want != "" && err.Error() != want {
				t.Errorf("got  %s\nwant %s", err, want)
			}
		})
	}
}

// TestForwardErrors checks the exact message of each way a Batch can be
// wrong, and that the cache is left usable.
func TestForwardErrors(t *testing.T) {
	dev := openCPU(t)
	m := load(t, dev, "mistral", gpu.F32)
	c := newCache(t, m, 4, 4)
	other := newCache(t, load(t, dev, "qwen3", gpu.F32), 1, 4)
	for _, tc := range []struct {
		name string
		c    *Cache
		seq  SeqInput
		want string
	}{
		{"no tokens", c, SeqInput{BlockTable: []int32{0}}, "sequence 1 has no tokens"},
		{"negative start", c, SeqInput{Tokens: []int32{1}, StartPos: -1, BlockTable: []int32{0}}, "sequence 1: StartPos (-1) is negative"},
		{"short table", c, SeqInput{Tokens: []int32{1, 2, 3, 4, 5}, BlockTable: []int32{0}}, "sequence 1: BlockTable has 1 blocks, positions [0, 5) need 2 of 4 tokens"},
		{"block out of range", c, SeqInput{Tokens: []int32{1}, StartPos: 4, BlockTable: []int32{0, 4}}, "sequence 1: BlockTable[1] is block 4, the cache has blocks [0, 4)"},
		{"token out of range", c, SeqInput{Tokens: []int32{1, 256}, BlockTable: []int32{0}}, "sequence 1: Tokens[1] is 256, outside the vocabulary [0, 256)"},
		{"past max positions", c, SeqInput{Tokens: []int32{1}, StartPos: 512, BlockTable: make([]int32, 129)}, "sequence 1: positions [512, 513) reach past max_position_embeddings (512)"},
		{"other model's cache", other, SeqInput{Tokens: []int32{1}, BlockTable: []int32{0}}, "the cache belongs to another model"},
	} {
		ok := SeqInput{Tokens: []int32{1}, BlockTable: []int32{1}}
		_, err := m.Forward(tc.c, &Batch{Seqs: []SeqInput{ok, tc.seq}})
		if want := "model: Forward: " + tc.want + ": model: invalid batch"; err == nil || err.Error() != want {
			t.Errorf("%s: got %v\nwant %s", tc.name, err, want)
		}
	}
	out, err := m.Forward(c, &Batch{})
	if err != nil || len(out) != 0 {
		t.Errorf("empty batch: %v, %d logits", err, len(out))
	}
	c.Free()
	if _, err := m.Forward(c, &Batch{Seqs: []SeqInput{{Tokens: []int32{1}, BlockTable: []int32{0}}}}); !errors.Is(err, ErrClosed) {
		t.Errorf("freed cache: %v", err)
	}
	m.Close()
	if _, err := m.NewCache(1, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("NewCache after Close: %v", err)
	}
}
