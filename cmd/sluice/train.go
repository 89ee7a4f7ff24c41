package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluicehq/sluice/dataset"
	"github.com/sluicehq/sluice/storage"
	"github.com/sluicehq/sluice/train"
)

// trainData opens --data: JSONL or Parquet by the path's extension, or for
// a directory by the extension of the files in it.
func trainData(path string) (*dataset.Dataset, error) {
	ext := func(p string) string {
		switch {
		case strings.HasSuffix(p, ".parquet"):
			return "parquet"
		case strings.HasSuffix(p, ".jsonl"), strings.HasSuffix(p, ".json"), strings.HasSuffix(p, ".ndjson"):
			return "jsonl"
		}
		return ""
	}
	kind := ext(path)
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
	return nil, fmt.Errorf("--data %s: cannot tell JSONL (.jsonl) from Parquet (.parquet) by the name: %w", filepath.Base(path), errUsage)
}

func init() {
	var c train.Config
	var data, targets string
	var seed uint64
	register(&command{
		name:    "train",
		summary: "fine-tune a Hugging Face model on JSONL or Parquet rows; one JSON object per step on stdout",
		flags: func(fs *flag.FlagSet) {
			d := train.DefaultConfig()
			c = d
			fs.StringVar(&c.Model, "model", "", "model directory (config.json, *.safetensors, tokenizer.json; local or s3://)")
			fs.StringVar(&data, "data", "", "JSONL or Parquet rows: a file, directory or glob, local or s3://")
			fs.IntVar(&c.Steps, "steps", d.Steps, "optimizer steps")
			fs.Float64Var(&c.LR, "lr", d.LR, "peak learning rate")
			fs.IntVar(&c.BatchSize, "batch-size", d.BatchSize, "rows per micro-batch")
			fs.IntVar(&c.MaxSeqLen, "max-seq-len", d.MaxSeqLen, "longer rows are cut to this many tokens")
			fs.StringVar(&c.Out, "out", "", "directory for the trained model (Hugging Face layout), local or s3://")
			fs.IntVar(&c.LoRARank, "lora-rank", 0, "train LoRA adapters of this rank instead of every weight (0: full fine-tune)")
			fs.Float64Var(&c.LoRAAlpha, "lora-alpha", d.LoRAAlpha, "LoRA alpha (the adapter is scaled by alpha/rank)")
			fs.StringVar(&targets, "lora-targets", strings.Join(d.LoRATargets, ","), "comma-separated module names LoRA adapts")
			fs.StringVar(&c.Device, "device", d.Device, "cpu or cuda (cuda training is not written yet)")
			fs.Uint64Var(&seed, "seed", 0, "seed of the shuffle and the LoRA initialization")
			fs.BoolVar(&c.Shuffle, "shuffle", d.Shuffle, "shuffle the rows each epoch (--shuffle=false keeps file order)")
			fs.IntVar(&c.ShuffleBuffer, "shuffle-buffer", train.DefaultShuffleBuffer, "rows the shuffle mixes at a time (the data streams; it is never all held)")
			fs.StringVar(&c.TextColumn, "text-column", d.TextColumn, "column of text, tokenized with the model's tokenizer")
			fs.StringVar(&c.IDsColumn, "ids-column", d.IDsColumn, "column of token id lists (used when present)")
			fs.BoolVar(&c.Chat, "chat", false, "render the messages column with the tokenizer's chat template")
			fs.StringVar(&c.Optimizer, "optimizer", d.Optimizer, "adamw (betas 0.9, 0.999, eps 1e-8) or sgd (momentum 0.9)")
			fs.Float64Var(&c.WeightDecay, "weight-decay", d.WeightDecay, "decoupled weight decay (AdamW) or L2 (SGD)")
			fs.Float64Var(&c.MaxGradNorm, "max-grad-norm", d.MaxGradNorm, "clip gradients to this global norm (0: off)")
			fs.StringVar(&c.LRSchedule, "lr-schedule", d.LRSchedule, "constant, linear or cosine")
			fs.IntVar(&c.WarmupSteps, "warmup-steps", d.WarmupSteps, "linear warmup steps")
			fs.IntVar(&c.GradAccum, "grad-accum", d.GradAccum, "micro-batches per optimizer step")
			fs.IntVar(&c.CheckpointEvery, "checkpoint-every", 0, "write OUT/checkpoint every N steps and at the end (0: never)")
			fs.StringVar(&c.Resume, "resume", "", "continue from this checkpoint directory (OUT/checkpoint of an earlier run), local or s3://")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("train takes no arguments (plan files are not supported yet), got %q: %w", args, errUsage)
			}
			if data == "" {
				return fmt.Errorf("--data is required: %w", errUsage)
			}
			c.Seed = seed
			c.LoRATargets = nil
			for t := range strings.SplitSeq(targets, ",") {
				if t = strings.TrimSpace(t); t != "" {
					c.LoRATargets = append(c.LoRATargets, t)
				}
			}
			if err := c.Validate(); err != nil {
				return err
			}
			ds, err := trainData(data)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(e.stdout)
			c.Log = e.stderr
			c.OnStep = func(m train.Metrics) error {
				fmt.Fprintf(e.stderr, "step %d/%d loss %.4f lr %.3g grad_norm %.3f %.0f tok/s\n", m.Step, c.Steps, m.Loss, m.LR, m.GradNorm, m.TokensPerSec)
				return enc.Encode(m)
			}
			return train.Run(ctx, c, ds)
		},
	})
}
