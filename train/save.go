package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/sluicehq/sluice/infer/safetensors"
	"github.com/sluicehq/sluice/storage"
)

// copied are the files of the source model directory that go to Out as
// they are, when the source has them.
var copied = []string{"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
	"special_tokens_map.json", "chat_template.jinja", "vocab.json", "merges.txt", "tokenizer.model"}

// writeModel writes Out as a Hugging Face model directory (the merged
// weights with LoRA) and, with LoRA, the PEFT adapter in Out/adapter. Each
// file is written beside its final name and renamed into place.
func writeModel(ctx context.Context, cfg Config, n *net, ls *loraSet) error {
	if ls != nil {
		ls.merge()
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return fmt.Errorf("train: --out: %w", err)
	}
	for _, name := range copied {
		b, err := storage.ReadPath(ctx, storage.Join(cfg.Model, name))
		if errors.Is(err, storage.ErrNotExist) {
			if name == "generation_config.json" {
				b = generationConfig(n)
			} else {
				continue
			}
		} else if err != nil {
			return err
		}
		if err := writeAtomic(filepath.Join(cfg.Out, name), b); err != nil {
			return err
		}
	}
	if err := writeTensors(filepath.Join(cfg.Out, "model.safetensors"), map[string]string{"format": "pt"}, n.params); err != nil {
		return err
	}
	if ls == nil {
		return nil
	}
	dir := filepath.Join(cfg.Out, "adapter")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("train: --out: %w", err)
	}
	peft := make([]*param, len(ls.params))
	for i, p := range ls.params {
		q := *p
		q.name = "base_model.model." + p.name
		peft[i] = &q
	}
	if err := writeTensors(filepath.Join(dir, "adapter_model.safetensors"), map[string]string{"format": "pt"}, peft); err != nil {
		return err
	}
	ac, _ := json.MarshalIndent(map[string]any{
		"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": ls.rank, "lora_alpha": ls.alpha,
		"target_modules": ls.mods, "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": false,
		"inference_mode": true, "base_model_name_or_path": cfg.Model,
	}, "", "  ")
	return writeAtomic(filepath.Join(dir, "adapter_config.json"), ac)
}

func generationConfig(n *net) []byte {
	g := map[string]any{}
	if n.cfg.BOS >= 0 {
		g["bos_token_id"] = n.cfg.BOS
	}
	if len(n.cfg.EOS) > 0 {
		g["eos_token_id"] = n.cfg.EOS
	}
	b, _ := json.MarshalIndent(g, "", "  ")
	return b
}

func writeTensors(path string, meta map[string]string, ps []*param) error {
	ts := make([]safetensors.Tensor, len(ps))
	for i, p := range ps {
		ts[i] = safetensors.Tensor{Name: p.name, DType: safetensors.F32, Shape: p.shape, Data: encodeF32(p.w)}
	}
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, meta, ts...); err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	return writeAtomic(path, buf.Bytes())
}

// writeAtomic writes b to a temporary file beside path, syncs it and
// renames it over path.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("train: writing %s: %w", path, err)
	}
	return nil
}

// ckptState is checkpoint/state.json.
type ckptState struct {
	Step    int     `json:"step"`
	Data    dataPos `json:"data"`
	Rows    int     `json:"rows"` // rows per epoch; 0 before the first epoch ended
	Seed    uint64  `json:"seed"`
	Shuffle bool    `json:"shuffle"`
	// ShuffleBuffer is --shuffle-buffer (0 in checkpoints from before it,
	// which shuffled whole epochs).
	ShuffleBuffer int         `json:"shuffle_buffer,omitempty"`
	Optimizer     string      `json:"optimizer"`
	LoRARank      int         `json:"lora_rank"`
	LoRAAlpha     float64     `json:"lora_alpha,omitempty"`
	Model         modelSig    `json:"model"`
	Params        []tensorSig `json:"params"`
}

type modelSig struct {
	Arch                                                         string
	Vocab, Hidden, Layers, Heads, KVHeads, HeadDim, Intermediate int
}

type tensorSig struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
}

func sigOf(n *net) modelSig {
	c := n.cfg
	return modelSig{c.Arch, c.Vocab, c.Hidden, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.Intermediate}
}

// writeCheckpoint writes Out/checkpoint: state.json, params.safetensors
// (the trained tensors) and optimizer.safetensors (their moments), into a
// new directory renamed over the old one, so a crash leaves one whole
// checkpoint or the previous one.
func writeCheckpoint(cfg Config, n *net, ls *loraSet, opt *optimizer, pos dataPos, rows int) error {
	ps := n.params
	st := ckptState{Step: opt.step, Data: pos, Rows: rows, Seed: cfg.Seed, Shuffle: cfg.Shuffle,
		ShuffleBuffer: cfg.ShuffleBuffer, Optimizer: opt.name, Model: sigOf(n)}
	if ls != nil {
		ps = ls.params
		st.LoRARank, st.LoRAAlpha = ls.rank, ls.alpha
	}
	var moments []*param
	for _, p := range ps {
		st.Params = append(st.Params, tensorSig{p.name, p.shape})
		if p.m != nil {
			moments = append(moments, &param{name: p.name + ".m", shape: p.shape, w: p.m})
		}
		if p.v != nil {
			moments = append(moments, &param{name: p.name + ".v", shape: p.shape, w: p.v})
		}
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return fmt.Errorf("train: --out: %w", err)
	}
	final := filepath.Join(cfg.Out, "checkpoint")
	tmp, err := os.MkdirTemp(cfg.Out, ".checkpoint.tmp-*")
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	fail := func(err error) error { os.RemoveAll(tmp); return err }
	if err := writeTensors(filepath.Join(tmp, "params.safetensors"), nil, ps); err != nil {
		return fail(err)
	}
	if err := writeTensors(filepath.Join(tmp, "optimizer.safetensors"), nil, moments); err != nil {
		return fail(err)
	}
	js, _ := json.MarshalIndent(st, "", "  ")
	if err := writeAtomic(filepath.Join(tmp, "state.json"), js); err != nil {
		return fail(err)
	}
	old := filepath.Join(cfg.Out, ".checkpoint.old")
	os.RemoveAll(old)
	if err := os.Rename(final, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(fmt.Errorf("train: checkpoint: %w", err))
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(fmt.Errorf("train: checkpoint: %w", err))
	}
	os.RemoveAll(old)
	return nil
}

func ckptErr(dir, format string, args ...any) error {
	return fmt.Errorf("train: --resume %s: %s: %w", dir, fmt.Sprintf(format, args...), ErrCheckpoint)
}

// readCheckpoint restores params, optimizer state, step and data position
// from dir, after checking it was written for this model and run (the
// data's row count is checked as the data streams: see resumeData).
func readCheckpoint(ctx context.Context, cfg Config, dir string, n *net, ls *loraSet, opt *optimizer) (dataPos, error) {
	js, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return dataPos{}, ckptErr(dir, "%v", err)
	}
	var st ckptState
	if err := json.Unmarshal(js, &st); err != nil {
		return dataPos{}, ckptErr(dir, "state.json: %v", err)
	}
	if got := sigOf(n); st.Model != got {
		return dataPos{}, ckptErr(dir, "it was written for another model (%+v), --model %s is %+v", st.Model, cfg.Model, got)
	}
	rank := 0
	ps := n.params
	if ls != nil {
		rank, ps = ls.rank, ls.params
	}
	switch {
	case st.LoRARank != rank:
		return dataPos{}, ckptErr(dir, "it has --lora-rank %d, this run %d", st.LoRARank, rank)
	case st.Optimizer != opt.name:
		return dataPos{}, ckptErr(dir, "it has --optimizer %s, this run %s", st.Optimizer, opt.name)
	case st.Step >= cfg.Steps:
		return dataPos{}, ckptErr(dir, "it is at step %d, --steps is %d", st.Step, cfg.Steps)
	}
	pf, err := safetensors.Open(ctx, filepath.Join(dir, "params.safetensors"))
	if err != nil {
		return dataPos{}, ckptErr(dir, "%v", err)
	}
	defer pf.Close()
	of, err := safetensors.Open(ctx, filepath.Join(dir, "optimizer.safetensors"))
	if err != nil {
		return dataPos{}, ckptErr(dir, "%v", err)
	}
	defer of.Close()
	load := func(f *safetensors.File, name string, shape []int) ([]float32, error) {
		info, ok := f.Tensor(name)
		if !ok {
			return nil, ckptErr(dir, "%s has no tensor %q", f.Path(), name)
		}
		if !slices.Equal(info.Shape, shape) || info.DType != safetensors.F32 {
			return nil, ckptErr(dir, "tensor %q is %s %v, want F32 %v", name, info.DType, info.Shape, shape)
		}
		raw, err := f.Data(name)
		if err != nil {
			return nil, ckptErr(dir, "%v", err)
		}
		return decodeF32(raw, safetensors.F32)
	}
	for _, p := range ps {
		w, err := load(pf, p.name, p.shape)
		if err != nil {
			return dataPos{}, err
		}
		m, err := load(of, p.name+".m", p.shape)
		if err != nil {
			return dataPos{}, err
		}
		var v []float32
		if opt.name == "adamw" {
			if v, err = load(of, p.name+".v", p.shape); err != nil {
				return dataPos{}, err
			}
		}
		copy(p.w, w)
		p.m, p.v = m, v
		p.dirty = true
	}
	opt.step = st.Step
	return st.Data, nil
}

// resumeData is how a resumed run reads its data: the checkpoint's seed,
// shuffle and shuffle buffer, so that the data position it saved means the
// same rows (a PBT trial may continue another trial's checkpoint), and the
// rows per epoch it saw (0: unknown), which the data must have.
func resumeData(dir string) (ckptState, error) {
	js, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return ckptState{}, ckptErr(dir, "%v", err)
	}
	var st ckptState
	if err := json.Unmarshal(js, &st); err != nil {
		return ckptState{}, ckptErr(dir, "state.json: %v", err)
	}
	return st, nil
}
