package train

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/storage"
)

// A training plan is a YAML file whose train: mapping holds the run: the
// keys are the flags of `sluice train` in snake case, and the data is
// read from a path as --data is.
//
//	name: sft-demo
//	train:
//	  model: ./models/llama              # local or s3://
//	  data: s3://bucket/chats/           # JSONL or Parquet: a file, directory or glob
//	  text_column: text                  # or ids_column: input_ids, or chat: true (messages),
//	                                     # or prompt_column: prompt + completion_column: completion
//	  out: s3://bucket/runs/sft-demo     # local or s3://
//	  steps: 200
//	  lr: 2e-4
//	  batch_size: 8
//	  max_seq_len: 1024
//	  lora: {rank: 16, alpha: 32, targets: [q_proj, k_proj, v_proj, o_proj]}
//	  lr_schedule: cosine
//	  warmup_steps: 10
//	  checkpoint_every: 50
//
// `sluice train plan.yaml` runs it; flags given beside the plan override
// its keys.

// Plan is a parsed training plan.
type Plan struct {
	Name   string
	Data   string // the data key: what OpenData opens
	Format string // the format key: jsonl, parquet, or "" (by the path's extension)
	Config Config // DefaultConfig with the plan's keys applied
}

// PlanError is a mistake in a plan file, at its line and column.
type PlanError struct {
	File      string
	Line, Col int
	Key       string // the key path, as train.lora.rank
	Msg       string
}

func (e *PlanError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Col, e.Key, e.Msg)
}

func (e *PlanError) Unwrap() error { return ErrConfig }

// LoadPlan reads and checks a training plan file (local or s3://).
func LoadPlan(ctx context.Context, file string) (*Plan, error) {
	b, err := storage.ReadPath(ctx, file)
	if err != nil {
		return nil, fmt.Errorf("train: plan %s: %w", file, err)
	}
	return ParsePlan(file, b)
}

// ParsePlan parses a training plan; filename names it in errors.
func ParsePlan(filename string, data []byte) (*Plan, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("train: plan %s: %w: %w", filename, err, ErrConfig)
	}
	bad := func(n *yaml.Node, key, format string, args ...any) error {
		return &PlanError{File: filename, Line: n.Line, Col: n.Column, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, bad(&doc, "(top)", "a plan is a mapping with name and train keys")
	}
	root := doc.Content[0]
	p := &Plan{Config: DefaultConfig()}
	var trainNode *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "name":
			p.Name = v.Value
		case "description":
		case "train":
			trainNode = v
		default:
			return nil, bad(k, k.Value, "unknown key; a training plan has name, description and train")
		}
	}
	if trainNode == nil {
		return nil, bad(root, "train", "missing: the run's model, data, out and hyperparameters")
	}
	if err := p.decode(trainNode, bad); err != nil {
		return nil, err
	}
	for _, req := range []struct{ key, v string }{{"model", p.Config.Model}, {"data", p.Data}, {"out", p.Config.Out}} {
		if req.v == "" {
			return nil, bad(trainNode, "train."+req.key, "required")
		}
	}
	return p, nil
}

type badFunc func(n *yaml.Node, key, format string, args ...any) error

func (p *Plan) decode(m *yaml.Node, bad badFunc) error {
	if m.Kind != yaml.MappingNode {
		return bad(m, "train", "want a mapping of the run's keys")
	}
	c := &p.Config
	str := func(dst *string) func(*yaml.Node, string) error {
		return func(v *yaml.Node, key string) error {
			if v.Kind != yaml.ScalarNode {
				return bad(v, key, "want a string")
			}
			*dst = v.Value
			return nil
		}
	}
	integer := func(dst *int) func(*yaml.Node, string) error {
		return func(v *yaml.Node, key string) error {
			n, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil {
				return bad(v, key, "%q is not an integer", v.Value)
			}
			*dst = n
			return nil
		}
	}
	number := func(dst *float64) func(*yaml.Node, string) error {
		return func(v *yaml.Node, key string) error {
			f, err := strconv.ParseFloat(v.Value, 64)
			if v.Kind != yaml.ScalarNode || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return bad(v, key, "%q is not a finite number", v.Value)
			}
			*dst = f
			return nil
		}
	}
	boolean := func(dst *bool) func(*yaml.Node, string) error {
		return func(v *yaml.Node, key string) error {
			b, err := strconv.ParseBool(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil {
				return bad(v, key, "%q is not true or false", v.Value)
			}
			*dst = b
			return nil
		}
	}
	strs := func(dst *[]string) func(*yaml.Node, string) error {
		return func(v *yaml.Node, key string) error {
			if v.Kind != yaml.SequenceNode {
				return bad(v, key, "want a list of module names")
			}
			*dst = nil
			for _, e := range v.Content {
				*dst = append(*dst, e.Value)
			}
			return nil
		}
	}
	var seed int
	keys := map[string]func(*yaml.Node, string) error{
		"model": str(&c.Model), "data": str(&p.Data), "out": str(&c.Out), "format": str(&p.Format),
		"steps": integer(&c.Steps), "lr": number(&c.LR), "batch_size": integer(&c.BatchSize),
		"max_seq_len": integer(&c.MaxSeqLen), "device": str(&c.Device), "seed": integer(&seed),
		"shuffle": boolean(&c.Shuffle), "shuffle_buffer": integer(&c.ShuffleBuffer),
		"text_column": str(&c.TextColumn), "ids_column": str(&c.IDsColumn), "chat": boolean(&c.Chat),
		"chat_loss": str(&c.ChatLoss), "prompt_column": str(&c.PromptColumn), "completion_column": str(&c.CompletionColumn),
		"optimizer": str(&c.Optimizer), "weight_decay": number(&c.WeightDecay), "max_grad_norm": number(&c.MaxGradNorm),
		"lr_schedule": str(&c.LRSchedule), "warmup_steps": integer(&c.WarmupSteps), "grad_accum": integer(&c.GradAccum),
		"checkpoint_every": integer(&c.CheckpointEvery), "resume": str(&c.Resume),
		"peak_flops": number(&c.PeakFLOPS), "logit_chunk": integer(&c.LogitChunk), "precision": str(&c.Precision),
	}
	lora := map[string]func(*yaml.Node, string) error{
		"rank": integer(&c.LoRARank), "alpha": number(&c.LoRAAlpha), "targets": strs(&c.LoRATargets),
	}
	var walk func(m *yaml.Node, prefix string, keys map[string]func(*yaml.Node, string) error, subs []string) error
	walk = func(m *yaml.Node, prefix string, keys map[string]func(*yaml.Node, string) error, subs []string) error {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			key := prefix + "." + k.Value
			if k.Value == "lora" && slices.Contains(subs, "lora") {
				if v.Kind != yaml.MappingNode {
					return bad(v, key, "want a mapping of rank, alpha and targets")
				}
				if err := walk(v, key, lora, nil); err != nil {
					return err
				}
				continue
			}
			set, ok := keys[k.Value]
			if !ok {
				names := append([]string(nil), subs...)
				for n := range keys {
					names = append(names, n)
				}
				slices.Sort(names)
				return bad(k, key, "unknown key; want one of %s", strings.Join(names, ", "))
			}
			if err := set(v, key); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(m, "train", keys, []string{"lora"}); err != nil {
		return err
	}
	if seed < 0 {
		return bad(m, "train.seed", "%d must not be negative", seed)
	}
	c.Seed = uint64(seed)
	if p.Format != "" && p.Format != "jsonl" && p.Format != "parquet" {
		return bad(m, "train.format", "%q: want jsonl or parquet", p.Format)
	}
	return nil
}

// OpenData opens training rows: JSONL or Parquet by format ("" tells them
// by the path's extension, or for a local directory by its files').
func OpenData(path, format string) (*dataset.Dataset, error) {
	ext := func(p string) string {
		switch {
		case strings.HasSuffix(p, ".parquet"):
			return "parquet"
		case strings.HasSuffix(p, ".jsonl"), strings.HasSuffix(p, ".json"), strings.HasSuffix(p, ".ndjson"):
			return "jsonl"
		}
		return ""
	}
	kind := format
	if kind == "" {
		kind = ext(path)
	}
	if kind == "" && !storage.IsURL(path) {
		if ents, err := os.ReadDir(path); err == nil {
			for _, e := range ents {
				if k := ext(e.Name()); k != "" {
					kind = k
					break
				}
			}
		}
	}
	switch kind {
	case "parquet":
		return dataset.ReadParquet(path), nil
	case "jsonl":
		return dataset.ReadJSONL(path), nil
	}
	return nil, fmt.Errorf("train: data %s: cannot tell JSONL (.jsonl) from Parquet (.parquet) by the name; give the format: %w", filepath.Base(path), ErrConfig)
}
