package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
	"github.com/sluicehq/sluice/infer/model/loratest"
)

// loraSpecs are three adapters of different ranks and targets: attention
// only, every projection, and up and o alone (half of the merged gate_up).
var loraSpecs = []loratest.Spec{
	{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj"}, Seed: 1},
	{Rank: 16, Alpha: 16, Targets: LoRATargets, Seed: 2},
	{Rank: 8, Alpha: 4, Targets: []string{"up_proj", "o_proj"}, Seed: 3},
}

// writeAdapters writes loraSpecs for fixture name and their merged models:
// adapter i in dirs[i], its merge in merged[i].
func writeAdapters(t *testing.T, name string) (dirs, merged []string) {
	t.Helper()
	root := t.TempDir()
	for i, s := range loraSpecs {
		d, m := filepath.Join(root, "a", string(rune('0'+i))), filepath.Join(root, "m", string(rune('0'+i)))
		if err := loratest.Write(fixtureDir(name), d, s); err != nil {
			t.Fatal(err)
		}
		if err := loratest.Merge(fixtureDir(name), d, m); err != nil {
			t.Fatal(err)
		}
		dirs, merged = append(dirs, d), append(merged, m)
	}
	return dirs, merged
}

// prefillLogits runs each prompt alone on m (with adapter lora[i]) and
// returns its last logits.
func prefillLogits(t *testing.T, m *Model, prompt []int32, lora int) []float32 {
	t.Helper()
	c := newCache(t, m, 8, 16)
	out, err := m.Forward(c, &Batch{Seqs: []SeqInput{{Tokens: prompt, BlockTable: []int32{0, 1, 2}, WantLogits: true, LoRA: lora}}})
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(out)
}

// plainDevice hides the cpu device's gpu.LoRAOps, so that a model on it
// takes the MatMul and Add path of backends without it.
type plainDevice struct{ gpu.Device }

func (d plainDevice) Ops() gpu.Ops { return struct{ gpu.Ops }{d.Device.Ops()} }

// TestLoRABatchMatchesMerged: one step mixing the base model and three
// adapters (two sequences of one adapter side by side, so that they form
// one segment), prefill then a decode step, gives each sequence the
// logits of its model with the adapter merged into the weights, run
// alone, within 1e-4 of the largest logit; and each adapter changes the
// logits. Both paths: the cpu device's grouped LoRA op, and MatMul and
// Add per segment on a device without it.
func TestLoRABatchMatchesMerged(t *testing.T) {
	forFixtures(t, func(t *testing.T, name string, _ *expected) {
		t.Run("LoRAOps", func(t *testing.T) { testLoRABatch(t, name, openCPU(t)) })
		t.Run("MatMul and Add", func(t *testing.T) {
			dev := plainDevice{openCPU(t)}
			if _, ok := dev.Ops().(gpu.LoRAOps); ok {
				t.Fatal("plainDevice has LoRAOps")
			}
			testLoRABatch(t, name, dev)
		})
	})
}

func testLoRABatch(t *testing.T, name string, dev gpu.Device) {
	dirs, merged := writeAdapters(t, name)
	m := load(t, dev, name, gpu.F32)
	var ids []int
	for i, d := range dirs {
		id, err := m.LoadLoRA("ad"+string(rune('0'+i)), d, LoRAOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	prompts := [][]int32{{1, 17, 30, 42, 9, 5}, {7, 7, 100}, {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, {2, 90}, {50, 60, 70, 80}, {11, 12}}
	loras := []int{ids[0], 0, ids[1], ids[1], ids[2], 0}
	which := []int{0, -1, 1, 1, 2, -1} // merged model of each sequence, -1 the base
	c := newCache(t, m, 64, 16)
	bl := newBlocks(64, 9)
	b := &Batch{}
	for i, p := range prompts {
		b.Seqs = append(b.Seqs, SeqInput{Tokens: p, BlockTable: bl.cover(t, nil, len(p)+1, 16), WantLogits: true, LoRA: loras[i]})
	}
	got, err := m.Forward(c, b)
	if err != nil {
		t.Fatal(err)
	}
	got = slices.Clone(got)
	// One decode token each, again mixed.
	next := make([]int32, len(prompts))
	for i := range b.Seqs {
		next[i] = argmax(got[i*m.cfg.Vocab : (i+1)*m.cfg.Vocab])
		b.Seqs[i].StartPos, b.Seqs[i].Tokens = len(prompts[i]), next[i:i+1]
	}
	dec, err := m.Forward(c, b)
	if err != nil {
		t.Fatal(err)
	}
	dec = slices.Clone(dec)

	refs := []*Model{m}
	for _, d := range merged {
		rm, err := Load(d, dev, Options{DType: gpu.F32})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rm.Close() })
		refs = append(refs, rm)
	}
	v := m.cfg.Vocab
	for i, p := range prompts {
		ref := refs[which[i]+1]
		want := prefillLogits(t, ref, p, 0)
		if e := relErr(got[i*v:(i+1)*v], want); e > 1e-4 {
			t.Errorf("sequence %d (adapter %d): prefill logits differ from the merged model's by %.2g relative", i, which[i], e)
		}
		full := append(slices.Clone(p), next[i])
		want = prefillLogits(t, ref, full, 0)
		if e := relErr(dec[i*v:(i+1)*v], want); e > 1e-4 {
			t.Errorf("sequence %d (adapter %d): decode logits differ from the merged model's by %.2g relative", i, which[i], e)
		}
		if which[i] >= 0 {
			if e := relErr(want, prefillLogits(t, m, full, 0)); e < 1e-2 {
				t.Errorf("adapter %d changes the logits of sequence %d by only %.2g relative: the test would not see it", which[i], i, e)
			}
		}
	}
}

// TestLoRABadAdapters: adapters that do not fit are refused with
// ErrAdapter, naming the key or the tensor.
func TestLoRABadAdapters(t *testing.T) {
	dev := openCPU(t)
	m := load(t, dev, "llama3", gpu.F32)
	good := filepath.Join(t.TempDir(), "good")
	if err := loratest.Write(fixtureDir("llama3"), good, loratest.Spec{Rank: 8, Alpha: 8, Targets: []string{"q_proj", "down_proj"}, Seed: 4}); err != nil {
		t.Fatal(err)
	}
	edit := func(t *testing.T, fn func(map[string]any)) string {
		d := t.TempDir()
		b, err := os.ReadFile(filepath.Join(good, "adapter_model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "adapter_model.safetensors"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := map[string]any{"peft_type": "LORA", "r": 8, "lora_alpha": 8, "target_modules": []string{"q_proj", "down_proj"}, "bias": "none"}
		fn(cfg)
		js := mustJSON(t, cfg)
		if err := os.WriteFile(filepath.Join(d, "adapter_config.json"), js, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	other := filepath.Join(t.TempDir(), "llama2")
	if err := loratest.Write(fixtureDir("llama2"), other, loratest.Spec{Rank: 8, Alpha: 8, Targets: []string{"q_proj", "down_proj"}, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		dir  string
		opts LoRAOptions
		want []string
	}{
		{"rank above max_lora_rank", good, LoRAOptions{MaxRank: 4}, []string{"adapter_config.json", "r (8) is larger than max_lora_rank (4)"}},
		{"unknown target module", edit(t, func(c map[string]any) { c["target_modules"] = []string{"q_proj", "lm_head"} }), LoRAOptions{}, []string{"target_modules names \"lm_head\""}},
		{"another base's shapes", other, LoRAOptions{}, []string{"adapter_model.safetensors", "model.layers.0.self_attn.q_proj.lora_A.weight", "has shape [8 96]", "wants [8 64]"}},
		{"tensor of an untargeted module", edit(t, func(c map[string]any) { c["target_modules"] = []string{"q_proj"} }), LoRAOptions{}, []string{"mlp.down_proj.lora_A.weight", "is not a LoRA weight of a target module"}},
		{"a target without tensors", edit(t, func(c map[string]any) { c["target_modules"] = []string{"q_proj", "down_proj", "k_proj"} }), LoRAOptions{}, []string{"k_proj.lora_A.weight\" is missing"}},
		{"DoRA", edit(t, func(c map[string]any) { c["use_dora"] = true }), LoRAOptions{}, []string{"use_dora"}},
		{"not LoRA", edit(t, func(c map[string]any) { c["peft_type"] = "IA3" }), LoRAOptions{}, []string{"peft_type is \"IA3\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.LoadLoRA(tc.name, tc.dir, tc.opts)
			if !errors.Is(err, ErrAdapter) {
				t.Fatalf("err = %v, want ErrAdapter", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if got := dev.LiveBytes(); got == 0 {
		t.Fatal("no live bytes: the model is not loaded?")
	}
	id, err := m.LoadLoRA("good", good, LoRAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.LoadLoRA("good", good, LoRAOptions{}); !errors.Is(err, ErrAdapter) {
		t.Errorf("a second adapter called good: err = %v, want ErrAdapter", err)
	}
	c := newCache(t, m, 4, 16)
	_, err = m.Forward(c, &Batch{Seqs: []SeqInput{{Tokens: []int32{1}, BlockTable: []int32{0}, WantLogits: true, LoRA: id + 1}}})
	if !errors.Is(err, ErrBatch) || !strings.Contains(err.Error(), "names no loaded adapter") {
		t.Errorf("an unknown adapter id: err = %v, want ErrBatch naming it", err)
	}
	if err := m.UnloadLoRA(id); err != nil {
		t.Fatal(err)
	}
	_, err = m.Forward(c, &Batch{Seqs: []SeqInput{{Tokens: []int32{1}, BlockTable: []int32{0}, WantLogits: true, LoRA: id}}})
	if !errors.Is(err, ErrBatch) {
		t.Errorf("an unloaded adapter: err = %v, want ErrBatch", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkDecodeLoRA: one decode step of 256 sequences of the llama2
// fixture (hidden 96, 3 layers) at 24 cached tokens, on the base model and
// with the sequences spread over 16 adapters of rank 16 on every
// projection, 16 rows each side by side (as the engine lays them out).
func BenchmarkDecodeLoRA(b *testing.B) {
	dev, err := cpu.New(cpu.Config{Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	m, err := Load(fixtureDir("llama2"), dev, Options{DType: gpu.F32})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	root := b.TempDir()
	for i := range 16 {
		d := filepath.Join(root, fmt.Sprint(i))
		if err := loratest.Write(fixtureDir("llama2"), d, loratest.Spec{Rank: 16, Alpha: 32, Targets: LoRATargets, Seed: uint64(i)}); err != nil {
			b.Fatal(err)
		}
		if _, err := m.LoadLoRA(d, d, LoRAOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	const seqs = 256
	c, err := m.NewCache(seqs*2, 16)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Free()
	batch := func(lora bool) *Batch {
		b := &Batch{}
		for s := range seqs {
			q := SeqInput{Tokens: []int32{int32(s % 300)}, StartPos: 24, BlockTable: []int32{int32(2 * s), int32(2*s + 1)}, WantLogits: true}
			if lora {
				q.LoRA = 1 + s/16
			}
			b.Seqs = append(b.Seqs, q)
		}
		return b
	}
	for _, mode := range []string{"base", "loras16"} {
		b.Run(mode, func(b *testing.B) {
			bt := batch(mode != "base")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.ForwardArgmax(c, bt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// pairs: a base step and a loras16 step one after the other in each
	// iteration, so that both see the same load on a shared machine; it
	// reports the median of each and the median of the pairs' ratios.
	b.Run("pairs", func(b *testing.B) {
		base, lora := batch(false), batch(true)
		var tb, tl, ratio []float64
		for b.Loop() {
			t0 := time.Now()
			if _, err := m.ForwardArgmax(c, base); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if _, err := m.ForwardArgmax(c, lora); err != nil {
				b.Fatal(err)
			}
			d0, d1 := t1.Sub(t0).Seconds(), time.Since(t1).Seconds()
			tb, tl, ratio = append(tb, d0), append(tl, d1), append(ratio, d1/d0)
		}
		med := func(x []float64) float64 { slices.Sort(x); return x[len(x)/2] }
		b.ReportMetric(1e3*med(tb), "base-ms")
		b.ReportMetric(1e3*med(tl), "loras16-ms")
		b.ReportMetric(med(ratio), "ratio")
	})
}
