// Package loratest writes LoRA adapters in PEFT's layout for a float32
// model directory, with random nonzero A and B (PEFT initializes B to
// zero, which would make an adapter a no-op), and the model with an
// adapter merged into its weights (W + alpha/r·B·A, as PEFT's
// merge_and_unload), so tests can compare an unmerged, batched adapter
// with the merged reference; and a copy of a model with only its first
// layers (Truncate), a draft model of the same vocabulary for speculative
// decoding. It is for tests and benchmarks.
package loratest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluicehq/sluice/infer/safetensors"
)

// Spec describes an adapter to write.
type Spec struct {
	Rank    int
	Alpha   float64
	Targets []string // PEFT target_modules, e.g. q_proj, v_proj, gate_proj
	Seed    uint64
	// BScale is the half-width of B's uniform entries; 0 means 0.5.
	BScale float64
}

// Write writes adapter_config.json and adapter_model.safetensors into dir
// for the float32 model in base (its model.safetensors).
func Write(base, dir string, s Spec) error {
	ts, err := read(base)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(s.Seed, 0x10a))
	bs := s.BScale
	if bs == 0 {
		bs = 0.5
	}
	var out []safetensors.Tensor
	for _, t := range ts.order {
		if !target(t, s.Targets) {
			continue
		}
		shape := ts.shape[t]
		o, in := shape[0], shape[1]
		stem := "base_model.model." + strings.TrimSuffix(t, ".weight")
		a := make([]float32, s.Rank*in)
		for i := range a {
			a[i] = float32((2*r.Float64() - 1) / math.Sqrt(float64(in)))
		}
		b := make([]float32, o*s.Rank)
		for i := range b {
			b[i] = float32((2*r.Float64() - 1) * bs)
		}
		out = append(out,
			safetensors.Tensor{Name: stem + ".lora_A.weight", DType: safetensors.F32, Shape: []int{s.Rank, in}, Data: bytesOf(a)},
			safetensors.Tensor{Name: stem + ".lora_B.weight", DType: safetensors.F32, Shape: []int{o, s.Rank}, Data: bytesOf(b)})
	}
	if len(out) == 0 {
		return fmt.Errorf("loratest: %s has no weight of target modules %v", base, s.Targets)
	}
	if err := writeFile(filepath.Join(dir, "adapter_model.safetensors"), out); err != nil {
		return err
	}
	cfg, _ := json.MarshalIndent(map[string]any{
		"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": s.Rank, "lora_alpha": s.Alpha,
		"target_modules": s.Targets, "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": false,
		"inference_mode": true, "base_model_name_or_path": base,
	}, "", "  ")
	return os.WriteFile(filepath.Join(dir, "adapter_config.json"), cfg, 0o644)
}

// Merge writes into dir the model of base with the PEFT adapter in
// adapter merged into its weights, reading the adapter's files only (not
// its Spec), with the config files of base copied.
func Merge(base, adapter, dir string) error {
	ts, err := read(base)
	if err != nil {
		return err
	}
	js, err := os.ReadFile(filepath.Join(adapter, "adapter_config.json"))
	if err != nil {
		return err
	}
	var ac struct {
		R     int     `json:"r"`
		Alpha float64 `json:"lora_alpha"`
	}
	if err := json.Unmarshal(js, &ac); err != nil {
		return err
	}
	ad, err := read(adapter, "adapter_model.safetensors")
	if err != nil {
		return err
	}
	scale := float32(ac.Alpha / float64(ac.R))
	var out []safetensors.Tensor
	for _, name := range ts.order {
		w := ts.data[name]
		stem := "base_model.model." + strings.TrimSuffix(name, ".weight")
		if a, b := ad.data[stem+".lora_A.weight"], ad.data[stem+".lora_B.weight"]; a != nil && b != nil {
			in, o := len(a)/ac.R, len(b)/ac.R
			w = append([]float32(nil), w...)
			for i := range o {
				for j := range in {
					var d float32
					for k := range ac.R {
						d += b[i*ac.R+k] * a[k*in+j]
					}
					w[i*in+j] += scale * d
				}
			}
		}
		out = append(out, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: ts.shape[name], Data: bytesOf(w)})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(base, f))
		if os.IsNotExist(err) {
			continue
		} else if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return err
		}
	}
	return writeFile(filepath.Join(dir, "model.safetensors"), out)
}

func target(name string, targets []string) bool {
	if !strings.HasPrefix(name, "model.layers.") {
		return false
	}
	for _, t := range targets {
		if strings.HasSuffix(name, "."+t+".weight") {
			return true
		}
	}
	return false
}

type tensors struct {
	order []string
	shape map[string][]int
	data  map[string][]float32
}

// read reads the float32 tensors of a model directory (model.safetensors
// or its shards), or of file in dir.
func read(dir string, file ...string) (*tensors, error) {
	var (
		names []string
		info  func(string) safetensors.TensorInfo
		data  func(string) ([]byte, error)
	)
	if len(file) > 0 {
		f, err := safetensors.Open(context.Background(), filepath.Join(dir, file[0]))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		for _, t := range f.Header().Tensors {
			names = append(names, t.Name)
		}
		info = func(n string) safetensors.TensorInfo { t, _ := f.Tensor(n); return t }
		data = f.Data
	} else {
		c, err := safetensors.OpenDir(context.Background(), dir)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		names = c.Names()
		info = func(n string) safetensors.TensorInfo { t, _, _ := c.Tensor(n); return t }
		data = c.Data
	}
	ts := &tensors{shape: map[string][]int{}, data: map[string][]float32{}}
	for _, name := range names {
		t := info(name)
		if t.DType != safetensors.F32 {
			return nil, fmt.Errorf("loratest: %s: tensor %q is %s; only F32 models are supported", dir, name, t.DType)
		}
		raw, err := data(name)
		if err != nil {
			return nil, err
		}
		w := make([]float32, t.Len())
		for i := range w {
			w[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		ts.order = append(ts.order, name)
		ts.shape[name] = t.Shape
		ts.data[name] = w
	}
	return ts, nil
}

func bytesOf(w []float32) []byte {
	b := make([]byte, 4*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func writeFile(path string, ts []safetensors.Tensor) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := safetensors.Write(f, map[string]string{"format": "pt"}, ts...); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Truncate writes into dir a copy of the float32 model in base with only
// its first layers decoder layers (config.json's num_hidden_layers set to
// layers, the other config files copied): a smaller model of the same
// vocabulary and tokenizer, whose outputs differ from the base's.
func Truncate(base, dir string, layers int) error {
	ts, err := read(base)
	if err != nil {
		return err
	}
	js, err := os.ReadFile(filepath.Join(base, "config.json"))
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(js, &cfg); err != nil {
		return fmt.Errorf("loratest: %s/config.json: %w", base, err)
	}
	n, _ := cfg["num_hidden_layers"].(float64)
	if layers < 1 || float64(layers) > n {
		return fmt.Errorf("loratest: %s has %v layers; cannot keep %d", base, n, layers)
	}
	cfg["num_hidden_layers"] = layers
	var out []safetensors.Tensor
	for _, name := range ts.order {
		if rest, ok := strings.CutPrefix(name, "model.layers."); ok {
			var i int
			if _, err := fmt.Sscanf(rest, "%d.", &i); err == nil && i >= layers {
				continue
			}
		}
		out = append(out, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: ts.shape[name], Data: bytesOf(ts.data[name])})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"generation_config.json", "tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(base, f))
		if os.IsNotExist(err) {
			continue
		} else if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return err
		}
	}
	js, _ = json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "config.json"), js, 0o644); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "model.safetensors"), out)
}
