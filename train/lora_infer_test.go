package train

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer/model"
)

// TestLoRAInferLogits: a LoRA fine-tune's PEFT adapter, applied to the
// base model as PEFT merges it (W + alpha/r·B·A, from adapter_config.json
// and adapter_model.safetensors alone), and loaded by infer, gives the
// logits of the merged model train wrote, as infer computes them. infer
// has no adapter loader yet, so the adapter is merged here, independently
// of train's merge.
func TestLoRAInferLogits(t *testing.T) {
	data := writeRows(t, t.TempDir(), 6, 512)
	c := baseConfig(t, "llama3")
	c.Steps, c.LoRARank, c.LoRAAlpha, c.LR = 3, 4, 8, 0.05
	c.LoRATargets = []string{"q_proj", "v_proj", "down_proj"}
	runLosses(t, c, data)

	var ac struct {
		R       int      `json:"r"`
		Alpha   float64  `json:"lora_alpha"`
		Targets []string `json:"target_modules"`
	}
	js, err := os.ReadFile(filepath.Join(c.Out, "adapter", "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &ac); err != nil {
		t.Fatal(err)
	}
	base := readTensors(t, filepath.Join(fixtureDir("llama3"), "model.safetensors"))
	ad := readTensors(t, filepath.Join(c.Out, "adapter", "adapter_model.safetensors"))
	scale := float32(ac.Alpha / float64(ac.R))
	var ps []*param
	names := make([]string, 0, len(base))
	for name := range base {
		names = append(names, name)
	}
	slices.Sort(names)
	adapted := 0
	for _, name := range names {
		w := slices.Clone(base[name])
		stem := "base_model.model." + strings.TrimSuffix(name, ".weight")
		if a, b := ad[stem+".lora_A.weight"], ad[stem+".lora_B.weight"]; a != nil {
			adapted++
			in, out := len(a)/ac.R, len(b)/ac.R
			for i := range out {
				for j := range in {
					var d float32
					for k := range ac.R {
						d += b[i*ac.R+k] * a[k*in+j]
					}
					w[i*in+j] += scale * d
				}
			}
		}
		ps = append(ps, &param{name: name, shape: tensorShape(t, name, len(w)), w: w})
	}
	if adapted != 2*len(ac.Targets) {
		t.Fatalf("%d weights adapted, want 2 layers × %v", adapted, ac.Targets)
	}
	peft := t.TempDir()
	for _, f := range []string{"config.json", "generation_config.json"} {
		b, err := os.ReadFile(filepath.Join(c.Out, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(peft, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeTensors(filepath.Join(peft, "model.safetensors"), map[string]string{"format": "pt"}, ps); err != nil {
		t.Fatal(err)
	}

	prompts := [][]int32{{1, 17, 300, 42, 9, 5}, {7, 7, 100}}
	want, got := inferLogits(t, c.Out, prompts), inferLogits(t, peft, prompts)
	var gmax, dmax float64
	for i := range want {
		gmax = math.Max(gmax, math.Abs(float64(want[i])))
		dmax = math.Max(dmax, math.Abs(float64(got[i]-want[i])))
	}
	if dmax > 1e-5*math.Max(gmax, 1) {
		t.Errorf("logits of base + PEFT adapter differ from the merged model's by %g (largest logit %g)", dmax, gmax)
	}
	baseLogits := inferLogits(t, fixtureDir("llama3"), prompts)
	if slices.Equal(baseLogits, want) {
		t.Error("the fine-tune did not change the logits")
	}
}

func tensorShape(t *testing.T, name string, n int) []int {
	t.Helper()
	f, err := os.ReadFile(filepath.Join(fixtureDir("llama3"), "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	hl := int(uint64(f[0]) | uint64(f[1])<<8 | uint64(f[2])<<16 | uint64(f[3])<<24)
	var hdr map[string]struct {
		Shape []int `json:"shape"`
	}
	if err := json.Unmarshal(f[8:8+hl], &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr[name].Shape
}

// inferLogits loads dir with infer (f32, cpu) and returns the last-token
// logits of each prompt.
func inferLogits(t *testing.T, dir string, prompts [][]int32) []float32 {
	t.Helper()
	dev, err := gpu.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	m, err := model.Load(dir, dev, model.Options{DType: gpu.F32})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cache, err := m.NewCache(len(prompts), 16)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Free()
	var b model.Batch
	for i, p := range prompts {
		b.Seqs = append(b.Seqs, model.SeqInput{Tokens: p, BlockTable: []int32{int32(i)}, WantLogits: true})
	}
	out, err := m.Forward(cache, &b)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(out)
}

// TestLoRAUnmergedLogits: the PEFT adapter a LoRA run writes (Out/adapter,
// every projection targeted, gate and up included, which infer keeps as one
// gate_up weight), loaded unmerged by infer's LoadLoRA over the base model,
// gives the logits of the merged model the run wrote to Out; without the
// adapter the base's.
func TestLoRAUnmergedLogits(t *testing.T) {
	data := writeRows(t, t.TempDir(), 6, 512)
	c := baseConfig(t, "qwen2")
	c.Steps, c.LoRARank, c.LoRAAlpha, c.LR = 3, 4, 8, 0.05
	c.LoRATargets = model.LoRATargets
	runLosses(t, c, data)
	prompts := [][]int32{{1, 17, 300, 42, 9, 5}, {7, 7, 100}}
	want := inferLogits(t, c.Out, prompts)

	dev, err := gpu.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	m, err := model.Load(fixtureDir("qwen2"), dev, model.Options{DType: gpu.F32})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	id, err := m.LoadLoRA("sft", filepath.Join(c.Out, "adapter"), model.LoRAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logits := func(lora int) []float32 {
		cache, err := m.NewCache(len(prompts), 16)
		if err != nil {
			t.Fatal(err)
		}
		defer cache.Free()
		var b model.Batch
		for i, p := range prompts {
			b.Seqs = append(b.Seqs, model.SeqInput{Tokens: p, BlockTable: []int32{int32(i)}, WantLogits: true, LoRA: lora})
		}
		out, err := m.Forward(cache, &b)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Clone(out)
	}
	got, base := logits(id), logits(0)
	var gmax, dmax float64
	for i := range want {
		gmax = math.Max(gmax, math.Abs(float64(want[i])))
		dmax = math.Max(dmax, math.Abs(float64(got[i]-want[i])))
	}
	t.Logf("largest logit %g, unmerged - merged %g", gmax, dmax)
	if dmax > 1e-5*math.Max(gmax, 1) {
		t.Errorf("logits with the adapter loaded unmerged differ from the merged model's by %g (largest logit %g)", dmax, gmax)
	}
	if !slices.Equal(base, inferLogits(t, fixtureDir("qwen2"), prompts)) {
		t.Error("LoRA id 0 does not give the base model's logits")
	}
	if slices.Equal(base, want) {
		t.Error("the fine-tune did not change the logits")
	}
}
