package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/infer/model"
	"github.com/sluicehq/sluice/infer/safetensors"
)

// writeRows writes n JSONL rows of random-looking ids (seeded) to dir.
func writeRows(t *testing.T, dir string, n, vocab int) string {
	t.Helper()
	path := filepath.Join(dir, "rows.jsonl")
	var b strings.Builder
	x := uint64(12345)
	for i := range n {
		l := 3 + i%9
		ids := make([]int, l)
		for j := range ids {
			x = x*6364136223846793005 + 1442695040888963407
			ids[j] = int(x>>33) % vocab
		}
		js, _ := json.Marshal(map[string]any{"input_ids": ids})
		b.Write(js)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runLosses(t *testing.T, cfg Config, data string) []Metrics {
	t.Helper()
	var ms []Metrics
	cfg.OnStep = func(m Metrics) error { ms = append(ms, m); return nil }
	if err := Run(context.Background(), cfg, dataset.ReadJSONL(data)); err != nil {
		t.Fatal(err)
	}
	return ms
}

func baseConfig(t *testing.T, name string) Config {
	c := DefaultConfig()
	c.Model = fixtureDir(name)
	c.Out = filepath.Join(t.TempDir(), "out")
	c.LR, c.BatchSize, c.MaxSeqLen, c.Seed = 3e-3, 3, 16, 7
	return c
}

// TestResumeBitForBit: a run stopped at a checkpoint and resumed gives the
// uninterrupted run's losses, bit for bit.
func TestResumeBitForBit(t *testing.T) {
	for _, lora := range []int{0, 4} {
		t.Run(fmt.Sprintf("lora%d", lora), func(t *testing.T) {
			data := writeRows(t, t.TempDir(), 7, 512)
			c := baseConfig(t, "llama3")
			c.Steps, c.GradAccum, c.WeightDecay, c.LRSchedule, c.WarmupSteps = 6, 2, 0.01, "cosine", 2
			c.LoRARank = lora
			full := runLosses(t, c, data)

			half := c
			half.Out = filepath.Join(t.TempDir(), "half")
			half.Steps, half.CheckpointEvery = 3, 3
			// The first half schedules over 3 steps; PBT-style resumes may
			// change hyperparameters, so give it the full run's lr at
			// each step by keeping Steps for the schedule: run 6 with a
			// checkpoint at 3 and stop there through OnStep.
			half.Steps = 6
			stop := errors.New("stop")
			half.OnStep = func(m Metrics) error {
				if m.Step == 3 {
					return stop
				}
				return nil
			}
			if err := Run(context.Background(), half, dataset.ReadJSONL(data)); !errors.Is(err, stop) {
				t.Fatalf("Run: %v", err)
			}
			if _, err := os.Stat(filepath.Join(half.Out, "checkpoint", "state.json")); err != nil {
				t.Fatal(err)
			}
			res := c
			res.Out = filepath.Join(t.TempDir(), "resumed")
			res.Resume = filepath.Join(half.Out, "checkpoint")
			got := runLosses(t, res, data)
			if len(got) != 3 {
				t.Fatalf("resumed run made %d steps, want 3", len(got))
			}
			for i, m := range got {
				w := full[3+i]
				if m.Step != w.Step || m.Loss != w.Loss || m.GradNorm != w.GradNorm || m.LR != w.LR {
					t.Errorf("resumed step %d loss %v grad_norm %v; uninterrupted step %d loss %v grad_norm %v",
						m.Step, m.Loss, m.GradNorm, w.Step, w.Loss, w.GradNorm)
				}
			}
		})
	}
}

func readTensors(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	f, err := safetensors.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]float32{}
	for _, info := range f.Header().Tensors {
		raw, err := f.Data(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		if out[info.Name], err = decodeF32(raw, info.DType); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestLoRAAdapterIsMerged: the PEFT adapter applied to the base weights
// gives the merged weights written to Out, which infer loads.
func TestLoRAAdapterIsMerged(t *testing.T) {
	data := writeRows(t, t.TempDir(), 6, 768)
	c := baseConfig(t, "qwen3")
	c.Steps, c.LoRARank, c.LR = 3, 4, 0.05
	runLosses(t, c, data)
	var ac struct {
		R       int      `json:"r"`
		Alpha   float64  `json:"lora_alpha"`
		Targets []string `json:"target_modules"`
		Type    string   `json:"peft_type"`
	}
	js, err := os.ReadFile(filepath.Join(c.Out, "adapter", "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &ac); err != nil || ac.R != 4 || ac.Type != "LORA" {
		t.Fatalf("adapter_config.json %s: %v", js, err)
	}
	base := readTensors(t, filepath.Join(fixtureDir("qwen3"), "model.safetensors"))
	merged := readTensors(t, filepath.Join(c.Out, "model.safetensors"))
	ad := readTensors(t, filepath.Join(c.Out, "adapter", "adapter_model.safetensors"))
	if len(ad) != 2*2*len(ac.Targets) { // 2 layers, A and B per target
		t.Fatalf("%d adapter tensors", len(ad))
	}
	scale := float32(ac.Alpha / float64(ac.R))
	changed := false
	for name, w0 := range base {
		m := merged[name]
		stem := "base_model.model." + strings.TrimSuffix(name, ".weight")
		a, b := ad[stem+".lora_A.weight"], ad[stem+".lora_B.weight"]
		if a == nil {
			for i := range w0 {
				if m[i] != w0[i] {
					t.Fatalf("%s changed without an adapter", name)
				}
			}
			continue
		}
		in := len(a) / ac.R
		out := len(b) / ac.R
		for i := range out {
			for j := range in {
				var d float32
				for k := range ac.R {
					d += b[i*ac.R+k] * a[k*in+j]
				}
				want := w0[i*in+j] + scale*d
				if math.Abs(float64(m[i*in+j]-want)) > 1e-6*math.Max(1, math.Abs(float64(want))) {
					t.Fatalf("%s[%d,%d] = %v, base + adapter = %v", name, i, j, m[i*in+j], want)
				}
				changed = changed || m[i*in+j] != w0[i*in+j]
			}
		}
	}
	if !changed {
		t.Fatal("LoRA training left every weight as it was")
	}
	dev, err := gpu.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	m, err := model.Load(c.Out, dev, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
}

// TestBadInput: each mistake is refused with an error naming the flag or
// column, and nothing is written to Out.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := writeRows(t, dir, 4, 512)
	ckdir := filepath.Join(t.TempDir(), "ck")
	{
		c := baseConfig(t, "qwen3")
		c.Out, c.Steps, c.CheckpointEvery = ckdir, 1, 1
		runLosses(t, c, writeRows(t, t.TempDir(), 4, 768))
	}
	for _, tc := range []struct {
		name, data, want string
		edit             func(*Config)
	}{
		{"empty", write("empty.jsonl", ""), "no rows", nil},
		{"no column", write("other.jsonl", `{"prompt":"x"}`+"\n"), `"input_ids" (--ids-column) nor a text column "text"`, nil},
		{"null text", write("null.jsonl", `{"text":"a b"}`+"\n"+`{"text":null}`+"\n"), `row 1: column "text" is null`, nil},
		{"too long", good, "--max-seq-len (4096) is longer than the model's max_position_embeddings (512)", func(c *Config) { c.MaxSeqLen = 4096 }},
		{"nan lr", good, "--lr (NaN)", func(c *Config) { c.LR = math.NaN() }},
		{"bad id", write("id.jsonl", `{"input_ids":[1,2,99999]}`+"\n"), "outside the vocabulary", nil},
		{"other model", good, "written for another model", func(c *Config) { c.Resume = filepath.Join(ckdir, "checkpoint") }},
		{"cuda", good, "--device cuda", func(c *Config) { c.Device = "cuda" }},
		{"prompt alone", good, `--prompt-column ("p") and --completion-column ("") go together`, func(c *Config) { c.PromptColumn = "p" }},
		{"no prompt column", good, `no prompt column "p" (--prompt-column) or completion column "c" (--completion-column)`,
			func(c *Config) { c.PromptColumn, c.CompletionColumn = "p", "c" }},
		{"null completion", write("pc.jsonl", `{"p":"a b","c":"d"}`+"\n"+`{"p":"x","c":null}`+"\n"), `row 1: column "c" is null`,
			func(c *Config) { c.PromptColumn, c.CompletionColumn = "p", "c" }},
		{"chat loss", good, `--chat-loss "some": want assistant or all`, func(c *Config) { c.ChatLoss = "some" }},
		{"no backward", good, "--device train-test-forward-only: the train-test-forward-only backend has no backward ops", func(c *Config) { c.Device = "train-test-forward-only" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := baseConfig(t, "llama3")
			c.Steps = 2
			if tc.edit != nil {
				tc.edit(&c)
			}
			err := Run(context.Background(), c, dataset.ReadJSONL(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if _, serr := os.Stat(c.Out); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("%s was written after the error", c.Out)
			}
		})
	}
}

// TestResumeNewLR: a checkpoint continues under another --lr (as PBT's
// exploit-and-explore does): the first resumed step's loss is the
// checkpoint's, and it reports the new lr.
func TestResumeNewLR(t *testing.T) {
	data := writeRows(t, t.TempDir(), 5, 512)
	c := baseConfig(t, "llama3")
	c.Steps, c.CheckpointEvery = 2, 2
	first := runLosses(t, c, data)
	r := baseConfig(t, "llama3")
	r.Steps, r.LR, r.Resume = 4, 1e-2, filepath.Join(c.Out, "checkpoint")
	again := baseConfig(t, "llama3")
	again.Steps, again.LR, again.Resume = 4, 3e-3, r.Resume
	a, b := runLosses(t, r, data), runLosses(t, again, data)
	if len(a) != 2 || a[0].Step != 3 || a[0].LR != 1e-2 || a[0].Loss != b[0].Loss || a[1].Loss == b[1].Loss {
		t.Fatalf("first run %+v\nresumed at lr 1e-2 %+v\nresumed at lr 3e-3 %+v", first, a, b)
	}
}
