package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gpu"
	"github.com/sluicehq/sluice/gpu/cpu"
	"github.com/sluicehq/sluice/infer/model"
	"github.com/sluicehq/sluice/infer/model/loratest"
)

// loraSpecs: three adapters of different ranks and target modules.
var loraSpecs = []loratest.Spec{
	{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj"}, Seed: 11},
	{Rank: 16, Alpha: 16, Targets: model.LoRATargets, Seed: 12},
	{Rank: 8, Alpha: 8, Targets: []string{"gate_proj", "down_proj", "o_proj"}, Seed: 13},
}

// loraBatchRunner records the most distinct adapters of one batch; it
// hides ForwardArgmax, so its engine samples on the host.
type loraBatchRunner struct {
	LoRARunner
	most int
}

func (r *loraBatchRunner) Forward(c KVCache, b *Batch) ([]float32, error) {
	var ids []int
	for _, s := range b.Seqs {
		if s.LoRA != 0 && !slices.Contains(ids, s.LoRA) {
			ids = append(ids, s.LoRA)
		}
	}
	r.most = max(r.most, len(ids))
	return r.LoRARunner.Forward(c, b)
}

// TestLoRAMixedBatchGreedy: requests of three adapters and of the base
// model, the same prompts under each (so the prefix cache would hand one
// adapter's KV to another if the hashes did not tell them apart), batched
// together, give each request the greedy tokens of serving it alone on
// the model with its adapter merged into the weights, on every fixture:
// with device argmax and up to 3 adapters a batch, and with host sampling
// and max_loras 1, which must hold.
func TestLoRAMixedBatchGreedy(t *testing.T) {
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			var dirs []string
			refs := []Runner{nil}
			for i, s := range loraSpecs {
				d, md := filepath.Join(root, fmt.Sprint("a", i)), filepath.Join(root, fmt.Sprint("m", i))
				if err := loratest.Write(fixtureDir(name), d, s); err != nil {
					t.Fatal(err)
				}
				if err := loratest.Merge(fixtureDir(name), d, md); err != nil {
					t.Fatal(err)
				}
				dirs = append(dirs, d)
				refs = append(refs, FromModel(loadDir(t, md)))
			}
			m := loadFixture(t, name)
			refs[0] = FromModel(m)
			cases := readGreedy(t, name)
			if len(cases) > 4 {
				cases = cases[:4]
			}
			adapters := []string{"", "a0", "a1", "a2"}
			var reqs []Request
			var which []int
			for _, c := range cases {
				for k, a := range adapters {
					reqs = append(reqs, Request{PromptIDs: c.Prompt, LoRA: a, Params: SamplingParams{MaxTokens: 10, IgnoreEOS: true}})
					which = append(which, k)
				}
			}
			want := make([][]int32, len(reqs))
			for i, r := range reqs {
				alone := r
				alone.LoRA = ""
				want[i] = generateSmall(t, refs[which[i]], []Request{alone}, 128)[0].TokenIDs
			}
			changed := 0
			for i := range reqs {
				if which[i] != 0 && !slices.Equal(want[i], want[i-which[i]]) {
					changed++
				}
			}
			if changed < len(cases) {
				t.Fatalf("only %d of %d adapted requests differ from the base model's tokens: the test would not see a lost adapter", changed, 3*len(cases))
			}
			for _, run := range []struct {
				name     string
				r        func() Runner
				maxLoRAs int
			}{
				{"device argmax, max_loras 3", func() Runner { return FromModel(m) }, 3},
				{"host sampling, max_loras 1", func() Runner { return &loraBatchRunner{LoRARunner: FromModel(m).(LoRARunner)} }, 1},
			} {
				r := run.r()
				cfg := DefaultConfig()
				cfg.BlockSize, cfg.NumBlocks, cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens = 4, 256, 16, 64
				cfg.MaxLoRAs = run.maxLoRAs
				e, err := New(r, nil, cfg)
				if err != nil {
					t.Fatal(err)
				}
				for i, d := range dirs {
					if err := e.LoadLoRA(adapters[i+1], d); err != nil {
						t.Fatal(err)
					}
				}
				got, err := e.Generate(context.Background(), reqs)
				if err != nil {
					t.Fatal(err)
				}
				for i := range reqs {
					if !slices.Equal(got[i].TokenIDs, want[i]) {
						t.Errorf("%s: request %d (adapter %q): %v, merged model alone %v", run.name, i, reqs[i].LoRA, got[i].TokenIDs, want[i])
					}
				}
				if br, ok := r.(*loraBatchRunner); ok && br.most != run.maxLoRAs {
					t.Errorf("%s: a batch held %d adapters, want at most (and, with this many requests, exactly) %d", run.name, br.most, run.maxLoRAs)
				}
				// The adapters leave the engine one by one.
				for _, a := range adapters[1:] {
					if err := e.UnloadLoRA(a); err != nil {
						t.Fatal(err)
					}
				}
				if n := len(e.LoRAs()); n != 0 {
					t.Errorf("%d adapters left after unloading all", n)
				}
				if err := e.Close(); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestLoRAErrors: an unknown adapter name fails the request, naming it
// and the loaded ones; a bad adapter fails LoadLoRA naming the key; a
// duplicate name is refused.
func TestLoRAErrors(t *testing.T) {
	m := loadFixture(t, "llama3")
	e, err := New(FromModel(m), nil, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	d := filepath.Join(t.TempDir(), "a")
	if err := loratest.Write(fixtureDir("llama3"), d, loratest.Spec{Rank: 32, Alpha: 8, Targets: []string{"q_proj"}, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	err = e.LoadLoRA("big", d)
	if !errors.Is(err, model.ErrAdapter) || !strings.Contains(err.Error(), "r (32) is larger than max_lora_rank (16)") {
		t.Errorf("rank 32 with the default max_lora_rank: err = %v", err)
	}
	d2 := filepath.Join(t.TempDir(), "b")
	if err := loratest.Write(fixtureDir("llama3"), d2, loratest.Spec{Rank: 4, Alpha: 8, Targets: []string{"q_proj"}, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := e.LoadLoRA("sql", d2); err != nil {
		t.Fatal(err)
	}
	if err := e.LoadLoRA("sql", d2); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("a second adapter called sql: err = %v", err)
	}
	_, err = e.Generate(context.Background(), []Request{{PromptIDs: []int32{1, 2}, LoRA: "chat"}})
	if !errors.Is(err, ErrUnknownLoRA) || !strings.Contains(err.Error(), `"chat" (loaded: sql)`) {
		t.Errorf("an unknown adapter: err = %v", err)
	}
	if err := e.UnloadLoRA("chat"); !errors.Is(err, ErrUnknownLoRA) {
		t.Errorf("unloading an unknown adapter: err = %v", err)
	}
}

// loadDir loads a model directory as loadFixture loads a fixture, f32 on
// a cpu device of its own.
func loadDir(t testing.TB, dir string) *model.Model {
	t.Helper()
	dev, err := cpu.New(cpu.Config{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	m, err := model.Load(dir, dev, model.Options{DType: gpu.F32})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestSchedulerLoRA: with max_loras 2, a step admits sequences of at most
// two adapters (the base model's do not count), skipping a third
// adapter's without stopping at it, and lays out the batch by adapter so
// that each adapter's rows are adjacent; the third runs once the others
// finish.
func TestSchedulerLoRA(t *testing.T) {
	bm := newBlockManager(64, 4, true)
	s := newScheduler(schedulerConfig{maxNumSeqs: 16, maxNumBatchedTokens: 256, maxModelLen: 64, chunkedPrefill: true, maxLoRAs: 2}, bm)
	loras := []int{1, 0, 3, 2, 1, 3, 0, 2}
	for i, l := range loras {
		seq := newSequence(int64(i+1), []int32{1, 2, 3, int32(10 + i)}, stopRule{maxTokens: 2})
		seq.lora = l
		s.Add(seq)
	}
	p := s.Schedule()
	var got []string
	for _, sc := range p.seqs {
		got = append(got, fmt.Sprintf("%d:%d", sc.seq.id, sc.seq.lora))
	}
	if want := []string{"2:0", "7:0", "1:1", "5:1", "3:3", "6:3"}; !slices.Equal(got, want) {
		t.Errorf("first step (id:adapter) %v, want %v", got, want)
	}
	ran2 := false
	for {
		s.Update(p, make([]int32, len(p.seqs)))
		if len(s.running)+len(s.waiting) == 0 {
			break
		}
		p = s.Schedule()
		var ids []int
		for _, sc := range p.seqs {
			if l := sc.seq.lora; l != 0 && !slices.Contains(ids, l) {
				ids = append(ids, l)
			}
			ran2 = ran2 || sc.seq.lora == 2
		}
		if len(ids) > 2 {
			t.Fatalf("a step with adapters %v, max_loras 2", ids)
		}
	}
	if !ran2 {
		t.Error("adapter 2's sequences never ran")
	}
	if len(s.waiting) != 0 {
		t.Fatalf("%d sequences never ran", len(s.waiting))
	}
}
